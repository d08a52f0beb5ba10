// Package lab builds test hosts as Linux network namespaces joined by
// veth pairs to one bridge, for lvskit's network test tier (root on the
// build host) and its VM tier (real IPVS, same code).
//
// A lab is owned by one test:
//
//	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
//	client := l.AddHost("client", "10.77.0.2/24")
//	director := l.AddHost("director", "10.77.0.10/24")
//	rs1 := l.AddHost("rs1", "10.77.0.11/24")
//	rs1.ConfigureDRRealServer("10.77.0.100")
//	rs1.StartNginx(lab.HTTPOptions{})
//	body, err := client.HTTPGet(ctx, "http://10.77.0.11/")
//
// New skips the test (t.Skipf "needs root (CAP_NET_ADMIN): ...") when
// the process cannot create namespaces, and registers a t.Cleanup that
// tears everything down even when the test fails: background processes
// get SIGTERM (then SIGKILL) and are waited for, servers are closed, the
// veth pairs and namespaces are deleted. When the test failed, the
// output of every background process and each host's addresses, routes
// and neighbours are logged first.
//
// The bridge lives in a namespace of its own (Lab.Switch), so a lab
// never adds a link, an address or a route to the machine's own
// namespace. Namespaces are named lvs-PID-RAND-HOST; New removes the
// namespaces of earlier test processes whose PID is gone (a crashed run
// leaves no debris for the next).
//
// Methods that build the lab (AddHost, AddAddr, SetSysctl, Start, ...)
// fail the test with t.Fatalf, like other test fixtures: call them from
// the goroutine of the test that created the lab. Methods that a test
// asserts on (Run, Do, Sysctl, WaitTCP, HTTPGet) return errors.
package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ErrNotImplemented is returned by the stubs on systems without network
// namespaces; New skips the test there before any of them can run.
var ErrNotImplemented = errors.New("network namespaces are implemented only on Linux")

const (
	// NamePrefix starts the name of every namespace a lab creates.
	NamePrefix = "lvs-"
	// NetNSDir is where named network namespaces are bind-mounted, as
	// `ip netns` expects them.
	NetNSDir = "/run/netns"
	// HostInterface is the name of each host's link to the bridge.
	HostInterface = "eth0"
	// BridgeName is the bridge's name inside the switch namespace.
	BridgeName = "br0"
	// SwitchName is the reserved host name of the switch namespace.
	SwitchName = "switch"
	// stopGrace is how long a background process has to exit after
	// SIGTERM before it gets SIGKILL.
	stopGrace = 5 * time.Second
)

// Options configures a lab.
type Options struct {
	// Subnet is the lab's LAN. AddHost with no address gives the host
	// the next free address in it (starting at .2). The zero value
	// means 10.77.0.0/24; labs are isolated from each other, so
	// parallel tests may use the same subnet.
	Subnet netip.Prefix
}

// Lab is a set of hosts on one bridge. Its methods are safe for
// concurrent use; see the package doc for which goroutine may call the
// ones that fail the test.
type Lab struct {
	t    testing.TB
	id   string
	opts Options

	mu       sync.Mutex
	hosts    []*Host
	sw       *Host
	procs    []*Process
	closers  []func()
	nextAuto netip.Addr
	sys      labSys
}

// Host is one network namespace. Every host but the switch has one link,
// Interface, to the bridge.
type Host struct {
	// Name is the host's name in the lab ("client", "rs1").
	Name string
	// Interface is the host's link to the bridge ("eth0"); empty for
	// the switch.
	Interface string

	lab   *Lab
	netns string
	index int

	mu       sync.Mutex
	prefixes []netip.Prefix
	sys      hostSys
}

// New builds an empty lab (the switch namespace and its bridge) for t
// and registers its teardown with t.Cleanup. It skips the test when the
// process lacks the privileges to create namespaces, or on systems
// other than Linux.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	if !opts.Subnet.IsValid() {
		opts.Subnet = netip.MustParsePrefix("10.77.0.0/24")
	}
	opts.Subnet = opts.Subnet.Masked()
	l := &Lab{
		t:        t,
		id:       newLabID(),
		opts:     opts,
		nextAuto: opts.Subnet.Addr().Next().Next(),
	}
	newLab(t, l)
	return l
}

// ID is the lab's name prefix, lvs-PID-RAND; every namespace of the lab
// is named ID-HOST.
func (l *Lab) ID() string { return l.id }

// Switch is the namespace that holds the bridge. Run commands there to
// look at the bridge (`bridge fdb`, `tcpdump -i br0`).
func (l *Lab) Switch() *Host { return l.sw }

// Bridge is the name of the bridge inside the switch namespace.
func (l *Lab) Bridge() string { return BridgeName }

// Hosts returns the lab's hosts in the order they were added, without
// the switch.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.hosts)
}

// Host returns the host named name, or nil.
func (l *Lab) Host(name string) *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

var hostNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}$`)

// AddHost creates a namespace named after the host, links its eth0 to
// the bridge, gives eth0 the addresses (CIDR notation, IPv4 or IPv6;
// IPv6 ones skip duplicate address detection) and brings eth0 and lo
// up. With no address, the host gets the next free one in the lab's
// subnet. Host names are lower-case letters, digits and '-', at most 20
// characters; "switch" is reserved.
func (l *Lab) AddHost(name string, addrs ...string) *Host {
	l.t.Helper()
	prefixes, err := l.hostPrefixes(name, addrs)
	if err != nil {
		l.t.Fatalf("lab: adding host %s: %v", name, err)
	}
	h, err := l.addHost(name, prefixes)
	if err != nil {
		l.t.Fatalf("lab: adding host %s: %v", name, err)
	}
	return h
}

// hostPrefixes validates name and parses (or picks) the host's addresses.
func (l *Lab) hostPrefixes(name string, addrs []string) ([]netip.Prefix, error) {
	if !hostNameRE.MatchString(name) || name == SwitchName {
		return nil, fmt.Errorf("invalid host name %q: want [a-z][a-z0-9-]{0,19}, not %q", name, SwitchName)
	}
	if l.Host(name) != nil {
		return nil, fmt.Errorf("host %s already exists", name)
	}
	var prefixes []netip.Prefix
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("parsing address: %w", err)
		}
		prefixes = append(prefixes, p)
	}
	if len(prefixes) == 0 {
		p, err := l.autoPrefix()
		if err != nil {
			return nil, err
		}
		prefixes = append(prefixes, p)
	}
	return prefixes, nil
}

// autoPrefix returns the next address of the subnet that no host uses.
func (l *Lab) autoPrefix() (netip.Prefix, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	used := map[netip.Addr]bool{}
	for _, h := range l.hosts {
		for _, p := range h.Prefixes() {
			used[p.Addr()] = true
		}
	}
	for a := l.nextAuto; l.opts.Subnet.Contains(a); a = a.Next() {
		if used[a] || (a.Is4() && !l.opts.Subnet.Contains(a.Next())) {
			continue // taken, or the IPv4 broadcast address
		}
		l.nextAuto = a.Next()
		return netip.PrefixFrom(a, l.opts.Subnet.Bits()), nil
	}
	return netip.Prefix{}, fmt.Errorf("no free address left in %s", l.opts.Subnet)
}

// NetNS is the name of the host's network namespace, as `ip netns` and
// `ip -n` take it.
func (h *Host) NetNS() string { return h.netns }

// NetNSPath is the namespace's bind mount, /run/netns/NAME.
func (h *Host) NetNSPath() string { return filepath.Join(NetNSDir, h.netns) }

// Lab is the lab the host belongs to.
func (h *Host) Lab() *Lab { return h.lab }

// Prefixes returns the addresses of eth0 given to AddHost.
func (h *Host) Prefixes() []netip.Prefix {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.prefixes)
}

// Prefix returns the host's first address on eth0 with its prefix
// length, or the zero Prefix for the switch.
func (h *Host) Prefix() netip.Prefix {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.prefixes) == 0 {
		return netip.Prefix{}
	}
	return h.prefixes[0]
}

// Addr returns the host's first address on eth0.
func (h *Host) Addr() netip.Addr { return h.Prefix().Addr() }

// MAC returns eth0's hardware address.
func (h *Host) MAC() net.HardwareAddr {
	h.lab.t.Helper()
	mac, err := h.mac()
	if err != nil {
		h.lab.t.Fatalf("lab: reading MAC address of %s on %s: %v", h.Interface, h.Name, err)
	}
	return mac
}

// Do runs fn on an OS thread switched into the host's namespace and
// switches the thread back afterwards. Sockets fn opens stay in the
// namespace after Do returns, so a listener opened here can be served
// from any goroutine. Goroutines that fn starts do not run in the
// namespace. A panic in fn is re-raised in the caller.
func (h *Host) Do(fn func() error) error {
	return h.do(fn)
}

// Run runs a command in the host's namespace (via `ip netns exec`, which
// also mounts the namespace's own /sys) and returns its standard output.
// The error names the command and the host and carries stdout and
// stderr.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	return h.run(ctx, name, args...)
}

// Start runs a command in the background in the host's namespace. It is
// stopped when ctx is done, by Process.Stop, or at teardown (SIGTERM to
// its process group, SIGKILL after 5s) and waited for; its output is
// kept and logged when the test fails.
func (h *Host) Start(ctx context.Context, name string, args ...string) *Process {
	h.lab.t.Helper()
	p, err := h.start(ctx, nil, name, args...)
	if err != nil {
		h.lab.t.Fatalf("lab: %v", err)
	}
	return p
}

// WaitTCP dials address ("10.77.0.11:80") from the host's namespace
// until a connection is accepted or ctx is done; it polls every 20ms.
func (h *Host) WaitTCP(ctx context.Context, address string) error {
	const interval = 20 * time.Millisecond
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 10*interval)
		conn, err := h.DialContext(attemptCtx, "tcp", address)
		cancel()
		if err == nil {
			return conn.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to accept TCP from %s: %w (last error: %w)", address, h.Name, ctx.Err(), err)
		case <-ticker.C:
		}
	}
}

// DialContext dials from the host's namespace. Use IP addresses: name
// resolution may run on other threads, outside the namespace.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	err := h.Do(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dialing %s %s from %s: %w", network, address, h.Name, err)
	}
	return conn, nil
}

// ConnectMany opens and closes n TCP connections to address from the
// host's namespace, workers of them at a time, and returns how many a
// second it managed; a connection that fails ends it with the error.
// Several at once keep a VM's CPUs busy, so that a rate measures the
// work per connection rather than one client's wake-up latency.
func (h *Host) ConnectMany(ctx context.Context, address string, n, workers int) (float64, error) {
	workers = max(1, min(workers, n))
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				c, err := h.DialContext(ctx, "tcp", address)
				if err != nil {
					errs <- fmt.Errorf("connection %d of %d: %w", i+1, n, err)
					return
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// Listen opens a listener in the host's namespace ("tcp", ":80"). The
// lab closes it at teardown.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on %s %s in %s: %w", network, address, h.Name, err)
	}
	h.lab.onTeardown(func() { ln.Close() })
	return ln, nil
}

// ListenPacket opens a packet socket in the host's namespace ("udp",
// ":53"). The lab closes it at teardown.
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := h.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on %s %s in %s: %w", network, address, h.Name, err)
	}
	h.lab.onTeardown(func() { pc.Close() })
	return pc, nil
}

// onTeardown registers fn to run at teardown, after background
// processes are stopped and before namespaces are deleted.
func (l *Lab) onTeardown(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closers = append(l.closers, fn)
}

// teardown stops everything the lab started and reports on failure.
// deleteAll (platform code) then removes links and namespaces.
func (l *Lab) stopAll() {
	l.mu.Lock()
	procs := slices.Clone(l.procs)
	closers := slices.Clone(l.closers)
	l.closers = nil
	l.mu.Unlock()

	if l.t.Failed() {
		l.logState()
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.Stop() })
	}
	wg.Wait()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	if l.t.Failed() {
		for _, p := range procs {
			l.t.Logf("lab: %s: %s (%v); output:\n%s", p.host.Name, p.String(), p.Err(), p.Output())
		}
	}
}

// logState logs each host's links, addresses, routes and neighbours, to
// explain a failed test.
func (l *Lab) logState() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	for _, h := range append([]*Host{l.sw}, l.Hosts()...) {
		if h == nil {
			continue
		}
		fmt.Fprintf(&b, "== %s (%s)\n", h.Name, h.netns)
		for _, args := range [][]string{
			{"-br", "link"}, {"-br", "addr"}, {"route"}, {"-6", "route"}, {"neigh"},
		} {
			out, err := h.Run(ctx, "ip", args...)
			if err != nil {
				fmt.Fprintf(&b, "%v\n", err)
				continue
			}
			b.WriteString(out)
		}
	}
	l.t.Logf("lab: state at failure:\n%s", b.String())
}

// switchPortName names a host's veth end in the switch namespace:
// v<index>-<host>, cut to the 15 bytes a link name may have. Link names
// need to be unique only within the lab's own switch namespace.
func switchPortName(index int, host string) string {
	name := "v" + strconv.Itoa(index) + "-" + host
	if len(name) > maxLinkName {
		name = name[:maxLinkName]
	}
	return name
}

// maxLinkName is the longest link name Linux takes (IFNAMSIZ-1).
const maxLinkName = 15
