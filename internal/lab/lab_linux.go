//go:build linux

package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// labSys is the Linux part of a Lab: nothing beyond its hosts.
type labSys struct{}

// hostSys is the Linux part of a Host.
type hostSys struct {
	fd     int             // the namespace, open; -1 when closed
	handle *netlink.Handle // rtnetlink socket inside the namespace
	// switchPort is the name of the host's veth end in the switch
	// namespace; deleting it deletes eth0 too.
	switchPort string
}

// ownIDs holds the IDs of the labs this process created, so that the
// sweep can tell them from leftovers of an earlier process that had the
// same PID.
var ownIDs = struct {
	sync.Mutex
	ids map[string]bool
}{ids: map[string]bool{}}

func newLabID() string {
	ownIDs.Lock()
	defer ownIDs.Unlock()
	for {
		id := fmt.Sprintf("%s%d-%04x", NamePrefix, os.Getpid(), rand.N(0x10000))
		if !ownIDs.ids[id] {
			ownIDs.ids[id] = true
			return id
		}
	}
}

func newLab(t testing.TB, l *Lab) {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		t.Skipf("needs root (CAP_NET_ADMIN): running as uid %d", uid)
	}
	t.Cleanup(l.teardown)
	sweepStale(t)

	sw, err := l.newNamespace(SwitchName)
	if errors.Is(err, unix.EPERM) {
		t.Skipf("needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN): %v", err)
	}
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	l.mu.Lock()
	l.sw = sw
	l.mu.Unlock()
	if err := setupSwitch(sw); err != nil {
		t.Fatalf("lab: setting up the switch %s: %v", sw.netns, err)
	}
}

// setupSwitch creates the bridge. IPv6 is off in the switch namespace so
// that the bridge and its ports send nothing of their own (no router
// solicitations, no MLD reports) into captures. Multicast snooping is
// off so that VRRP and neighbour discovery flood to every port.
func setupSwitch(sw *Host) error {
	for _, key := range []string{"net.ipv6.conf.default.disable_ipv6", "net.ipv6.conf.all.disable_ipv6"} {
		if err := sw.setSysctl(key, "1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	snooping := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName}, MulticastSnooping: &snooping}
	if err := sw.sys.handle.LinkAdd(br); err != nil {
		return fmt.Errorf("adding bridge %s: %w", BridgeName, err)
	}
	link, err := sw.sys.handle.LinkByName(BridgeName)
	if err != nil {
		return fmt.Errorf("finding bridge %s: %w", BridgeName, err)
	}
	if err := sw.sys.handle.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing bridge %s up: %w", BridgeName, err)
	}
	return nil
}

// newNamespace creates and opens the namespace of a host and brings its
// lo up. The host is registered with the lab as soon as its namespace
// exists, so teardown removes it even if a later step fails.
func (l *Lab) newNamespace(name string) (*Host, error) {
	h := &Host{Name: name, lab: l, netns: l.id + "-" + name, sys: hostSys{fd: -1}}
	if err := createNetNS(h.NetNSPath()); err != nil {
		return nil, fmt.Errorf("creating network namespace %s: %w", h.netns, err)
	}
	if name != SwitchName {
		l.mu.Lock()
		l.hosts = append(l.hosts, h)
		h.index = len(l.hosts)
		l.mu.Unlock()
	}
	fd, err := unix.Open(h.NetNSPath(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		deleteNetNS(h.NetNSPath())
		return nil, fmt.Errorf("opening network namespace %s: %w", h.netns, err)
	}
	h.sys.fd = fd
	h.sys.handle, err = netlink.NewHandleAt(netns.NsHandle(fd))
	if err != nil {
		return h, fmt.Errorf("opening rtnetlink in %s: %w", h.netns, err)
	}
	lo, err := h.sys.handle.LinkByName("lo")
	if err == nil {
		err = h.sys.handle.LinkSetUp(lo)
	}
	if err != nil {
		return h, fmt.Errorf("bringing lo up in %s: %w", h.netns, err)
	}
	return h, nil
}

// addHost creates a host's namespace and its veth pair: the host end,
// eth0, is created in the host's namespace and the other end directly
// in the switch namespace, where it joins the bridge.
func (l *Lab) addHost(name string, prefixes []netip.Prefix) (*Host, error) {
	h, err := l.newNamespace(name)
	if err != nil {
		return nil, err
	}
	h.Interface = HostInterface
	h.mu.Lock()
	h.prefixes = prefixes
	h.mu.Unlock()
	// Addresses on eth0 are usable at once: no IPv6 duplicate address
	// detection (links inherit "default").
	for _, key := range []string{"net.ipv6.conf.default.accept_dad", "net.ipv6.conf.all.accept_dad"} {
		if err := h.setSysctl(key, "0"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}

	port := switchPortName(h.index, name)
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: port, Namespace: netlink.NsFd(l.sw.sys.fd)},
		PeerName:  HostInterface,
	}
	if err := h.sys.handle.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("adding veth pair %s/%s: %w", port, HostInterface, err)
	}
	h.sys.switchPort = port
	if err := l.attachToBridge(port, h.netns); err != nil {
		return nil, err
	}
	if err := h.addAddrs(HostInterface, prefixes...); err != nil {
		return nil, err
	}
	return h, nil
}

// attachToBridge makes port a bridge port, labels it with the host's
// namespace (shown by `ip link` as its alias) and brings it up.
func (l *Lab) attachToBridge(port, alias string) error {
	hd := l.sw.sys.handle
	br, err := hd.LinkByName(BridgeName)
	if err != nil {
		return fmt.Errorf("finding bridge %s: %w", BridgeName, err)
	}
	link, err := hd.LinkByName(port)
	if err != nil {
		return fmt.Errorf("finding switch port %s: %w", port, err)
	}
	if err := hd.LinkSetMasterByIndex(link, br.Attrs().Index); err != nil {
		return fmt.Errorf("adding %s to bridge %s: %w", port, BridgeName, err)
	}
	if err := hd.LinkSetAlias(link, alias); err != nil {
		return fmt.Errorf("setting alias of switch port %s: %w", port, err)
	}
	if err := hd.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing switch port %s up: %w", port, err)
	}
	return nil
}

// addAddrs adds addresses to a link in the host's namespace and brings
// the link up. IPv6 addresses skip duplicate address detection.
func (h *Host) addAddrs(dev string, prefixes ...netip.Prefix) error {
	link, err := h.sys.handle.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("finding link %s: %w", dev, err)
	}
	for _, p := range prefixes {
		addr := &netlink.Addr{IPNet: ipNet(p)}
		if p.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.sys.handle.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("adding address %s to %s: %w", p, dev, err)
		}
	}
	if err := h.sys.handle.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing %s up: %w", dev, err)
	}
	return nil
}

func (h *Host) addDummy(name string) error {
	if err := h.sys.handle.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		return fmt.Errorf("adding dummy link: %w", err)
	}
	return nil
}

// addRoute adds a route to dst (the default route when dst is the zero
// Prefix) via gw.
func (h *Host) addRoute(dst netip.Prefix, gw netip.Addr) error {
	route := &netlink.Route{Gw: gw.AsSlice()}
	if dst.IsValid() {
		route.Dst = ipNet(dst.Masked())
	}
	if err := h.sys.handle.RouteAdd(route); err != nil {
		return fmt.Errorf("adding route: %w", err)
	}
	return nil
}

func (h *Host) mac() (net.HardwareAddr, error) {
	if h.Interface == "" {
		return nil, fmt.Errorf("host %s has no link to the bridge", h.Name)
	}
	link, err := h.sys.handle.LinkByName(h.Interface)
	if err != nil {
		return nil, err
	}
	return link.Attrs().HardwareAddr, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// doResult carries the outcome of fn from the namespace's thread.
type doResult struct {
	err      error
	panicked bool
	panicVal any
	goexit   bool
}

func (h *Host) do(fn func() error) error {
	if h.sys.fd < 0 {
		return fmt.Errorf("entering network namespace %s: not open", h.netns)
	}
	res := make(chan doResult, 1)
	go func() {
		r := doResult{goexit: true}
		defer func() { res <- r }()

		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			r = doResult{err: fmt.Errorf("opening this thread's network namespace: %w", err)}
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(h.sys.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			r = doResult{err: fmt.Errorf("entering network namespace %s: %w", h.netns, err)}
			return
		}
		defer func() {
			if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
				// Stay locked: the runtime ends this thread when the
				// goroutine exits, so nothing else runs in the namespace.
				r.err = errors.Join(r.err, fmt.Errorf("leaving network namespace %s: %w", h.netns, err))
				return
			}
			runtime.UnlockOSThread()
		}()
		defer func() {
			if v := recover(); v != nil {
				r.panicked, r.panicVal, r.goexit = true, v, false
			}
		}()
		r.err = fn()
		r.goexit = false
	}()
	r := <-res
	if r.panicked {
		panic(r.panicVal)
	}
	if r.goexit {
		return errors.Join(r.err, fmt.Errorf("running code in %s: it called runtime.Goexit (t.FailNow inside Do?)", h.Name))
	}
	return r.err
}

// createNetNS creates a network namespace bind-mounted at path, the way
// `ip netns add` does, on a thread that is thrown away afterwards.
func createNetNS(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine returns, the runtime ends
		// the thread instead of reusing it in the new namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unsharing: %w", err)
			return
		}
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind-mounting to %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// deleteNetNS unmounts and removes a named namespace. The namespace
// itself goes when nothing else holds it. Already gone is not an error.
func deleteNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmounting %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	return nil
}

// labNameRE matches the namespaces labs create: lvs-PID-RAND-HOST.
var labNameRE = regexp.MustCompile(`^` + NamePrefix + `([0-9]+)-[0-9a-f]{4}-[a-z][a-z0-9-]*$`)

// staleNamespace reports whether a namespace name is a lab's whose
// process is gone: another PID that no longer exists, or this process's
// PID with a lab ID this process never made (an earlier process had the
// same PID). Namespaces of live processes are never touched.
func staleNamespace(name string) bool {
	m := labNameRE.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		id := name[:len(NamePrefix)+len(m[1])+len("-0000")]
		ownIDs.Lock()
		defer ownIDs.Unlock()
		return !ownIDs.ids[id]
	}
	return unix.Kill(pid, 0) == unix.ESRCH
}

// sweepStale removes the namespaces of earlier lab processes that are
// gone (crashed or killed before their cleanup ran). The processes those
// runs started were ended with them (parent-death signal). The links in
// the namespaces go with the namespaces.
func sweepStale(t testing.TB) {
	entries, err := os.ReadDir(NetNSDir)
	if err != nil {
		return // no namespaces at all
	}
	for _, e := range entries {
		if !staleNamespace(e.Name()) {
			continue
		}
		if err := deleteNetNS(filepath.Join(NetNSDir, e.Name())); err != nil {
			t.Logf("lab: removing stale namespace %s: %v", e.Name(), err)
			continue
		}
		t.Logf("lab: removed stale namespace %s: its process is gone", e.Name())
	}
}

// teardown stops what the lab started, then deletes the veth pairs (from
// the switch side, which removes both ends at once) and the namespaces.
func (l *Lab) teardown() {
	l.stopAll()
	l.mu.Lock()
	hosts := slices.Clone(l.hosts)
	sw := l.sw
	l.mu.Unlock()

	var errs []error
	if sw != nil && sw.sys.handle != nil {
		for _, h := range hosts {
			if h.sys.switchPort == "" {
				continue
			}
			link, err := sw.sys.handle.LinkByName(h.sys.switchPort)
			if err == nil {
				err = sw.sys.handle.LinkDel(link)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("deleting switch port %s of %s: %w", h.sys.switchPort, h.Name, err))
			}
		}
	}
	if sw != nil {
		hosts = append(hosts, sw)
	}
	for _, h := range hosts {
		if err := h.closeNamespace(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		l.t.Errorf("lab: tearing down %s: %v", l.id, err)
	}
}

// closeNamespace closes the host's handles and removes its namespace.
func (h *Host) closeNamespace() error {
	if h.sys.handle != nil {
		h.sys.handle.Delete()
		h.sys.handle = nil
	}
	if h.sys.fd >= 0 {
		unix.Close(h.sys.fd)
		h.sys.fd = -1
	}
	if err := deleteNetNS(h.NetNSPath()); err != nil {
		return fmt.Errorf("deleting namespace of %s: %w", h.Name, err)
	}
	return nil
}
