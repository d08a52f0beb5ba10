// The lab bridge as the tests and benchmarks of lvsd's VRRP see it: an
// AF_PACKET socket on br0, in the switch namespace, that records every
// VRRP advert and gratuitous ARP with the kernel's receive timestamp
// (SO_TIMESTAMPNS, CLOCK_REALTIME, the clock time.Now reads), so a kill
// and the frames it causes are measured on one clock without parsing
// tcpdump's text. Also the helpers that run lvsd and Debian's keepalived
// as VRRP peers in lab hosts, shared by the keepalived interop tests and
// the takeover benchmarks.

package director_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/lvskit/lvskit/director/vrrp"
	"github.com/lvskit/lvskit/internal/lab"
)

// wireKind is what a recorded frame was.
type wireKind int

const (
	// wireAdvert is a VRRP advertisement (IPv4, protocol 112) with a
	// valid checksum.
	wireAdvert wireKind = iota + 1
	// wireGARP is a gratuitous ARP: sender and target protocol
	// addresses equal (request or reply).
	wireGARP
)

// vrrpProtocol is VRRP's IP protocol number.
const vrrpProtocol = 112

// wireFrame is one frame seen on the bridge.
type wireFrame struct {
	// At is the kernel's receive timestamp on br0 (wall clock, no
	// monotonic reading).
	At     time.Time
	Kind   wireKind
	SrcMAC net.HardwareAddr
	// Src is the IP source of an advert, or the address a GARP
	// announces.
	Src netip.Addr
	// Advert is the decoded VRRP message of a wireAdvert.
	Advert vrrp.Advertisement
}

func (f wireFrame) String() string {
	stamp := f.At.Format("15:04:05.000000")
	switch f.Kind {
	case wireAdvert:
		return fmt.Sprintf("%s %s %s %s", stamp, f.SrcMAC, f.Src, f.Advert.String())
	case wireGARP:
		return fmt.Sprintf("%s %s gratuitous ARP for %s", stamp, f.SrcMAC, f.Src)
	}
	return stamp + " ?"
}

// wireTap records the VRRP adverts and gratuitous ARPs crossing the lab
// bridge.
type wireTap struct {
	conn *packet.Conn
	done chan struct{}

	mu      sync.Mutex
	frames  []wireFrame
	changed chan struct{} // closed and replaced when a frame is added
	err     error         // why reading stopped
}

// startWireTap opens the tap on the bridge of l; the lab's teardown (or
// t.Cleanup) closes it.
func startWireTap(t testing.TB, l *lab.Lab) *wireTap {
	t.Helper()
	w := &wireTap{done: make(chan struct{}), changed: make(chan struct{})}
	err := l.Switch().Do(func() error {
		ifi, err := net.InterfaceByName(l.Bridge())
		if err != nil {
			return err
		}
		w.conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		t.Fatalf("opening a packet socket on the lab bridge: %v", err)
	}
	if err := w.conn.SetPromiscuous(true); err != nil {
		w.conn.Close()
		t.Fatalf("putting the lab bridge in promiscuous mode: %v", err)
	}
	rc, err := w.conn.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		})
		err = errors.Join(err, cerr)
	}
	if err != nil {
		w.conn.Close()
		t.Fatalf("asking for kernel receive timestamps on the lab bridge: %v", err)
	}
	go w.read(rc)
	t.Cleanup(func() {
		w.conn.Close()
		<-w.done
	})
	return w
}

// read records frames until the socket is closed.
func (w *wireTap) read(rc syscall.RawConn) {
	defer close(w.done)
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	for {
		var n, oobn int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			w.mu.Lock()
			w.err = err
			close(w.changed)
			w.mu.Unlock()
			return
		}
		at, ok := kernelTimestamp(oob[:oobn])
		if !ok {
			at = time.Now().Round(0)
		}
		if f, ok := parseWireFrame(buf[:n]); ok {
			f.At = at
			w.mu.Lock()
			w.frames = append(w.frames, f)
			close(w.changed)
			w.changed = make(chan struct{})
			w.mu.Unlock()
		}
	}
}

// kernelTimestamp finds SCM_TIMESTAMPNS in a control message.
func kernelTimestamp(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}

// parseWireFrame keeps VRRP adverts over IPv4 and gratuitous ARPs.
func parseWireFrame(b []byte) (wireFrame, bool) {
	const ethLen = 14
	if len(b) < ethLen {
		return wireFrame{}, false
	}
	f := wireFrame{SrcMAC: net.HardwareAddr(append([]byte(nil), b[6:12]...))}
	payload := b[ethLen:]
	switch binary.BigEndian.Uint16(b[12:14]) {
	case unix.ETH_P_ARP:
		// Ethernet/IPv4 ARP: sender IP at 14, target IP at 24.
		if len(payload) < 28 || binary.BigEndian.Uint16(payload[2:4]) != unix.ETH_P_IP {
			return wireFrame{}, false
		}
		sender := netip.AddrFrom4([4]byte(payload[14:18]))
		target := netip.AddrFrom4([4]byte(payload[24:28]))
		if sender != target {
			return wireFrame{}, false
		}
		f.Kind, f.Src = wireGARP, sender
		return f, true
	case unix.ETH_P_IP:
		if len(payload) < 20 || payload[0]>>4 != 4 || payload[9] != vrrpProtocol {
			return wireFrame{}, false
		}
		ihl := int(payload[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(payload[2:4]))
		if ihl < 20 || total < ihl || total > len(payload) {
			return wireFrame{}, false
		}
		src := netip.AddrFrom4([4]byte(payload[12:16]))
		dst := netip.AddrFrom4([4]byte(payload[16:20]))
		a, err := vrrp.Unmarshal(payload[ihl:total], src, dst)
		if err != nil {
			return wireFrame{}, false
		}
		f.Kind, f.Src, f.Advert = wireAdvert, src, a
		return f, true
	}
	return wireFrame{}, false
}

// mark is the number of frames recorded so far: wait(ctx, mark, ...)
// looks only at frames recorded later.
func (w *wireTap) mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.frames)
}

// wait returns the first frame at index from or later that match
// accepts, and its index, waiting for it until ctx is done.
func (w *wireTap) wait(ctx context.Context, from int, match func(wireFrame) bool) (wireFrame, int, error) {
	for {
		w.mu.Lock()
		for i := from; i < len(w.frames); i++ {
			if match(w.frames[i]) {
				f := w.frames[i]
				w.mu.Unlock()
				return f, i, nil
			}
		}
		from = len(w.frames)
		changed, err := w.changed, w.err
		w.mu.Unlock()
		if err != nil {
			return wireFrame{}, 0, fmt.Errorf("reading the lab bridge: %w", err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return wireFrame{}, 0, ctx.Err()
		}
	}
}

// last returns the last frame with an index from from to to (not
// included) that match accepts.
func (w *wireTap) last(from, to int, match func(wireFrame) bool) (wireFrame, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := min(to, len(w.frames)) - 1; i >= from; i-- {
		if match(w.frames[i]) {
			return w.frames[i], true
		}
	}
	return wireFrame{}, false
}

// dump lists the frames from index from on, to explain a failure.
func (w *wireTap) dump(from int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, f := range w.frames[min(from, len(w.frames)):] {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// advertFrom matches the adverts of the router at src for vrid.
func advertFrom(src netip.Addr, vrid uint8) func(wireFrame) bool {
	return func(f wireFrame) bool { return f.Kind == wireAdvert && f.Src == src && f.Advert.VRID == vrid }
}

// priorityZeroFrom matches the priority-0 advert of a master stepping
// down.
func priorityZeroFrom(src netip.Addr, vrid uint8) func(wireFrame) bool {
	return func(f wireFrame) bool {
		return f.Kind == wireAdvert && f.Src == src && f.Advert.VRID == vrid && f.Advert.Priority == 0
	}
}

// garpFor matches a gratuitous ARP for vip from mac.
func garpFor(mac net.HardwareAddr, vip netip.Addr) func(wireFrame) bool {
	return func(f wireFrame) bool {
		return f.Kind == wireGARP && f.Src == vip && string(f.SrcMAC) == string(mac)
	}
}

// vrrpPeer is the VRRP setting both peers of a pair share.
type vrrpPeer struct {
	VRID     uint8
	Version  vrrp.Version
	Interval time.Duration // whole seconds for version 2
	Password string        // version 2 only; empty: no authentication
	VIP      netip.Addr
}

// skew is Skew_Time of a router of priority p (RFC 3768, RFC 5798; lvsd
// and keepalived compute it the same way).
func (p vrrpPeer) skew(priority uint8) time.Duration {
	base := time.Second
	if p.Version == vrrp.Version3 {
		base = p.Interval
	}
	return time.Duration(256-int(priority)) * base / 256
}

// masterDown is Master_Down_Interval of a backup of priority p.
func (p vrrpPeer) masterDown(priority uint8) time.Duration {
	return 3*p.Interval + p.skew(priority)
}

// lvsdOptions is how one lvsd of a pair runs.
type lvsdOptions struct {
	Priority uint8
	LogLevel string // default info
}

// lvsdPeer is an lvsd of a pair.
type lvsdPeer struct {
	*vrrpDirector
	// metricsSock is the unix socket of its metrics.
	metricsSock string
}

// startLVSDPeer runs bin/lvsd in h with a VRRP-only config (no virtual
// services, so no ip_vs) and its status API and metrics on unix sockets.
func startLVSDPeer(ctx context.Context, t testing.TB, bin string, h *lab.Host, p vrrpPeer, o lvsdOptions) lvsdPeer {
	t.Helper()
	dir := t.TempDir()
	d := lvsdPeer{&vrrpDirector{host: h, sock: filepath.Join(dir, "status.sock")}, filepath.Join(dir, "metrics.sock")}
	auth := ""
	if p.Password != "" {
		auth = fmt.Sprintf("      authentication: {password: %s}\n", p.Password)
	}
	cfg := fmt.Sprintf(`lvsd:
  state_dir: %s
  status_listen: unix:%s
  metrics_listen: unix:%s
vrrp:
  instances:
    - name: VI_peer
      interface: %s
      virtual_router_id: %d
      version: %d
      priority: %d
      advert_interval: %s
      virtual_addresses: [%s]
%s`, filepath.Join(dir, "state"), d.sock, d.metricsSock, h.Interface,
		p.VRID, p.Version, o.Priority, p.Interval, p.VIP, auth)
	path := filepath.Join(dir, "lvsd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	level := o.LogLevel
	if level == "" {
		level = "info"
	}
	d.proc = h.Start(ctx, bin, "--config", path, "--log-level", level)
	return d
}

// keepalivedConfig is a keepalived.conf with one VRRP instance of p.
// master sets state MASTER, so keepalived takes over at start instead
// of waiting a Master_Down_Interval as backup first (lvsd has no such
// setting: it always starts as backup).
func keepalivedConfig(h *lab.Host, p vrrpPeer, priority uint8, master bool) string {
	state := "BACKUP"
	if master {
		state = "MASTER"
	}
	auth := ""
	if p.Password != "" {
		auth = fmt.Sprintf("\tauthentication {\n\t\tauth_type PASS\n\t\tauth_pass %s\n\t}\n", p.Password)
	}
	// advert_int in seconds: whole ones for version 2, centiseconds for
	// version 3.
	interval := fmt.Sprintf("%g", p.Interval.Seconds())
	return fmt.Sprintf(`global_defs {
	router_id lvskit-%s
}
vrrp_instance VI_peer {
	state %s
	interface %s
	version %d
	virtual_router_id %d
	priority %d
	advert_int %s
%s	virtual_ipaddress {
		%s/32 dev %s
	}
}
`, h.Name, state, h.Interface, p.Version, p.VRID, priority, interval, auth, p.VIP, h.Interface)
}

// requireKeepalived skips unless Debian's keepalived is installed.
func requireKeepalived(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/keepalived"); err != nil {
		t.Skipf("needs Debian's keepalived (scripts/install-deps.sh): %v", err)
	}
}

// startKeepalivedPeer runs keepalived's VRRP process in h with its config
// and pid files in a temporary directory (never /etc/keepalived). It
// runs in the foreground, in its own process group with its VRRP child.
func startKeepalivedPeer(ctx context.Context, t testing.TB, h *lab.Host, conf string) *lab.Process {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return h.Start(ctx, "keepalived", "--vrrp", "--dont-fork", "--log-console", "--log-detail",
		"-f", path, "-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"),
		"-c", filepath.Join(dir, "checkers.pid"))
}

// killGroupNow sends SIGKILL to the process group of p (keepalived's
// parent and VRRP child die together) and returns the time just before
// the signal, on the wall clock the tap's timestamps use.
func killGroupNow(t testing.TB, p *lab.Process) time.Time {
	t.Helper()
	at := time.Now().Round(0)
	if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatalf("killing %s: %v", p, err)
	}
	<-p.Done()
	return at
}

// removeVIP takes vip off h's interface if a killed peer left it there.
func removeVIP(ctx context.Context, t testing.TB, h *lab.Host, vip netip.Addr) {
	t.Helper()
	out, err := h.Run(ctx, "ip", "-br", "addr", "show", "dev", h.Interface)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, " "+vip.String()+"/32") {
		return
	}
	if _, err := h.Run(ctx, "ip", "addr", "del", vip.String()+"/32", "dev", h.Interface); err != nil {
		t.Fatal(err)
	}
}

// lvsdBinary is bin/lvsd, built by make build; without it a test skips
// on the host and fails in the VM (make test-vm builds it first).
func lvsdBinary(tb testing.TB) string {
	tb.Helper()
	p, err := filepath.Abs(filepath.Join("..", "bin", "lvsd"))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("LVSKIT_IN_VM") != "" {
			tb.Fatalf("lvsd binary missing (%v): run make build first", err)
		}
		tb.Skipf("lvsd binary missing (%v): run make build first", err)
	}
	return p
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skipf("needs root (CAP_NET_ADMIN, CAP_NET_RAW) to build the lab: running as uid %d", os.Geteuid())
	}
}
