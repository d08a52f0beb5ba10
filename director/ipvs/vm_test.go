//go:build vmtest

// Kernel-VM tier: these tests need a kernel with IPVS. Run them with
// `make test-vm` (go test -tags vmtest -exec scripts/vm/run).

package ipvs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/lab"
	"github.com/sirupsen/logrus"
)

// newVMClient opens IPVS in a fresh lab host that has a dummy interface
// covering every real-server address the tests use (the kernel refuses
// real servers it cannot route to).
func newVMClient(t testing.TB) (ipvs.Client, *lab.Host) {
	t.Helper()
	l := lab.New(t, lab.Options{})
	h := l.AddHost("director")
	h.AddDummy("rsnet", "10.0.0.254/8", "2001:db8::fffe/32")
	c, err := ipvs.New(ipvs.Options{NetNS: h.NetNSPath()})
	if err != nil {
		t.Fatalf("opening IPVS in %s: %v", h.NetNSPath(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c, h
}

func run(t testing.TB, h *lab.Host, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.Run(ctx, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// table is what a test wrote: services and their real servers.
type table struct {
	services []ipvs.Service
	rs       map[ipvs.ServiceKey][]ipvs.RealServer
}

func rs(addr string, port uint16, fwd ipvs.Forwarding, w int32) ipvs.RealServer {
	return ipvs.RealServer{Address: netip.MustParseAddr(addr), Port: port, Forwarding: fwd, Weight: w}
}

// roundTripTable has a service for each scheduler, each with a real server
// of every forwarding method (tunnels of every type), plus services for
// each other service feature.
func roundTripTable() table {
	tb := table{rs: map[ipvs.ServiceKey][]ipvs.RealServer{}}
	add := func(s ipvs.Service, rss ...ipvs.RealServer) {
		tb.services = append(tb.services, s)
		tb.rs[s.ServiceKey] = rss
	}
	for i, sched := range ipvs.Schedulers {
		vip := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}), 80)
		s := ipvs.Service{ServiceKey: ipvs.TCPKey(vip), Scheduler: sched}
		if sched == "sh" || sched == "mh" {
			s.Flags = ipvs.SchedFlag1 | ipvs.SchedFlag2 // fallback, port
		}
		masq := rs("10.0.1.1", 8080, ipvs.Masquerade, 1)
		route := rs("10.0.1.2", 80, ipvs.DirectRoute, 2)
		route.UpperThreshold, route.LowerThreshold = 1000, 500
		ipip := rs("10.0.1.3", 80, ipvs.Tunnel, 3)
		gue := rs("10.0.1.4", 80, ipvs.Tunnel, 4)
		gue.TunnelType, gue.TunnelPort, gue.TunnelFlags = ipvs.TunnelGUE, 6080, ipvs.TunnelChecksum
		gueRem := rs("10.0.1.6", 80, ipvs.Tunnel, 6)
		gueRem.TunnelType, gueRem.TunnelPort, gueRem.TunnelFlags = ipvs.TunnelGUE, 6081, ipvs.TunnelRemoteChecksum
		gre := rs("10.0.1.5", 80, ipvs.Tunnel, 0)
		gre.TunnelType, gre.TunnelFlags = ipvs.TunnelGRE, ipvs.TunnelChecksum
		add(s, masq, route, ipip, gue, gueRem, gre)
	}
	add(ipvs.Service{ServiceKey: ipvs.TCPKey(netip.MustParseAddrPort("10.2.0.1:443")), Scheduler: "wlc",
		Flags: ipvs.FlagPersistent, Timeout: 300, NetmaskBits: 24},
		rs("10.0.2.1", 443, ipvs.DirectRoute, 1), rs("10.0.2.2", 443, ipvs.DirectRoute, 1))
	add(ipvs.Service{ServiceKey: ipvs.TCPKey(netip.MustParseAddrPort("10.2.0.2:0")), Scheduler: "rr",
		Flags: ipvs.FlagPersistent, Timeout: 600, NetmaskBits: 32}, // port 0: all ports
		rs("10.0.2.3", 0, ipvs.DirectRoute, 1))
	add(ipvs.Service{ServiceKey: ipvs.UDPKey(netip.MustParseAddrPort("10.2.0.3:5060")), Scheduler: "rr",
		Flags: ipvs.FlagPersistent | ipvs.FlagOnePacket, Timeout: 60, NetmaskBits: 32, PersistenceEngine: "sip"},
		rs("10.0.2.4", 5060, ipvs.Masquerade, 1))
	add(ipvs.Service{ServiceKey: ipvs.SCTPKey(netip.MustParseAddrPort("10.2.0.4:3868")), Scheduler: "wrr"},
		rs("10.0.2.5", 3868, ipvs.Masquerade, 5))
	add(ipvs.Service{ServiceKey: ipvs.UDPKey(netip.MustParseAddrPort("[2001:db8:1::1]:53")), Scheduler: "lc", Flags: ipvs.FlagOnePacket},
		rs("2001:db8:2::1", 53, ipvs.Masquerade, 1), rs("2001:db8:2::2", 53, ipvs.DirectRoute, 2))
	add(ipvs.Service{ServiceKey: ipvs.TCPKey(netip.MustParseAddrPort("[2001:db8:1::2]:80")), Scheduler: "sh",
		Flags: ipvs.FlagPersistent | ipvs.SchedFlag1, Timeout: 120, NetmaskBits: 64},
		rs("2001:db8:2::3", 80, ipvs.DirectRoute, 1))
	add(ipvs.Service{ServiceKey: ipvs.FWMarkKey(ipvs.IPv4, 1), Scheduler: "wrr", Flags: ipvs.FlagPersistent, Timeout: 300, NetmaskBits: 32},
		rs("10.0.3.1", 0, ipvs.DirectRoute, 1), rs("10.0.3.2", 0, ipvs.DirectRoute, 1))
	add(ipvs.Service{ServiceKey: ipvs.FWMarkKey(ipvs.IPv6, 21), Scheduler: "rr"},
		rs("2001:db8:3::1", 0, ipvs.DirectRoute, 1))
	return tb
}

// canonical renders services and real servers as comparable lines. fields
// says which attributes the source can show.
type fields struct{ thresholds, tunnel, pe, schedFlags, timeout, opsIPv6 bool }

func canonService(s ipvs.Service, f fields) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v sched=%s", s.ServiceKey, s.Scheduler)
	if s.Persistent() {
		b.WriteString(" persistent")
		if f.timeout {
			fmt.Fprintf(&b, "=%d", s.Timeout)
		}
		fmt.Fprintf(&b, " mask=%d", s.NetmaskBits)
	}
	if s.Flags&ipvs.FlagOnePacket != 0 && (s.Family == ipvs.IPv4 || f.opsIPv6) {
		b.WriteString(" ops")
	}
	if fl := s.Flags & (ipvs.SchedFlag1 | ipvs.SchedFlag2 | ipvs.SchedFlag3); f.schedFlags && fl != 0 {
		fmt.Fprintf(&b, " schedflags=%#x", uint32(fl))
	}
	if f.pe && s.PersistenceEngine != "" {
		fmt.Fprintf(&b, " pe=%s", s.PersistenceEngine)
	}
	return b.String()
}

func canonRealServer(k ipvs.ServiceKey, r ipvs.RealServer, f fields) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v -> %v %v w=%d", k, r.Key(), r.Forwarding, r.Weight)
	if f.thresholds {
		fmt.Fprintf(&b, " x=%d y=%d", r.UpperThreshold, r.LowerThreshold)
	}
	if f.tunnel && r.Forwarding == ipvs.Tunnel {
		fmt.Fprintf(&b, " tun=%v port=%d flags=%d", r.TunnelType, r.TunnelPort, r.TunnelFlags)
	}
	return b.String()
}

func canonTable(tb table, f fields) []string {
	var out []string
	for _, s := range tb.services {
		out = append(out, canonService(s, f))
		for _, r := range tb.rs[s.ServiceKey] {
			out = append(out, canonRealServer(s.ServiceKey, r, f))
		}
	}
	slices.Sort(out)
	return out
}

// supported drops the services whose scheduler this kernel lacks.
func supported(t *testing.T, c ipvs.Client, tb table) table {
	out := table{rs: tb.rs}
	for _, s := range tb.services {
		err := c.AddService(s)
		if errors.Is(err, ipvs.ErrNotSupported) {
			t.Logf("this kernel lacks %s: %v", s.Scheduler, err)
			continue
		}
		if err != nil {
			t.Fatalf("AddService: %v", err)
		}
		for _, r := range tb.rs[s.ServiceKey] {
			if err := c.AddRealServer(s.ServiceKey, r); err != nil {
				t.Fatalf("AddRealServer: %v", err)
			}
		}
		out.services = append(out.services, s)
	}
	return out
}

func readBack(t *testing.T, c ipvs.Client) table {
	t.Helper()
	svcs, err := c.Services()
	if err != nil {
		t.Fatal(err)
	}
	tb := table{services: svcs, rs: map[ipvs.ServiceKey][]ipvs.RealServer{}}
	for _, s := range svcs {
		rss, err := c.RealServers(s.ServiceKey)
		if err != nil {
			t.Fatal(err)
		}
		tb.rs[s.ServiceKey] = rss
	}
	return tb
}

func TestVMRoundTrip(t *testing.T) {
	c, h := newVMClient(t)
	want := supported(t, c, roundTripTable())
	for i := range want.services {
		if want.services[i].NetmaskBits == 0 { // the kernel's default: per client
			want.services[i].NetmaskBits = map[ipvs.Family]uint8{ipvs.IPv4: 32, ipvs.IPv6: 128}[want.services[i].Family]
		}
	}
	all := fields{thresholds: true, tunnel: true, pe: true, schedFlags: true, timeout: true, opsIPv6: true}

	t.Run("client", func(t *testing.T) {
		if diff := cmp.Diff(canonTable(want, all), canonTable(readBack(t, c), all)); diff != "" {
			t.Errorf("read back through Client (-wrote +read):\n%s", diff)
		}
	})
	t.Run("proc", func(t *testing.T) {
		// /proc/net/ip_vs shows neither thresholds, tunnel options,
		// scheduler flags nor the persistence engine, prints "ops" only
		// for IPv4 services (the kernel's IPv6 format lacks it), and the
		// persistence timeout in kernel ticks.
		st, err := ipvs.ParseServiceTable(strings.NewReader(run(t, h, "cat", "/proc/net/ip_vs")))
		if err != nil {
			t.Fatal(err)
		}
		got := table{rs: map[ipvs.ServiceKey][]ipvs.RealServer{}}
		for _, e := range st.Services {
			got.services = append(got.services, e.Service)
			got.rs[e.ServiceKey] = e.RealServers
		}
		shown := fields{}
		if diff := cmp.Diff(canonTable(want, shown), canonTable(got, shown)); diff != "" {
			t.Errorf("/proc/net/ip_vs (-wrote +proc):\n%s", diff)
		}
	})
	t.Run("ipvsadm", func(t *testing.T) {
		// ipvsadm -S does not save thresholds; -L --thresholds shows them.
		got := parseIPVSADMSave(t, run(t, h, "ipvsadm", "-Sn"))
		saved := fields{tunnel: true, pe: true, schedFlags: true, timeout: true, opsIPv6: true}
		if diff := cmp.Diff(canonTable(want, saved), canonTable(got, saved)); diff != "" {
			t.Errorf("ipvsadm -Sn (-wrote +ipvsadm):\n%s", diff)
		}
		var wantThresh []string
		for _, s := range want.services {
			for _, r := range want.rs[s.ServiceKey] {
				wantThresh = append(wantThresh, fmt.Sprintf("%v -> %v x=%d y=%d", s.ServiceKey, r.Key(), r.UpperThreshold, r.LowerThreshold))
			}
		}
		slices.Sort(wantThresh)
		gotThresh := parseIPVSADMThresholds(t, run(t, h, "ipvsadm", "-Ln", "--thresholds"))
		if diff := cmp.Diff(wantThresh, gotThresh); diff != "" {
			t.Errorf("ipvsadm -Ln --thresholds (-wrote +ipvsadm):\n%s", diff)
		}
	})
}

// parseIPVSADMThresholds reads ipvsadm -Ln --thresholds into lines
// "SERVICE -> RS x=U y=L", naming services as ServiceKey.String does.
func parseIPVSADMThresholds(t *testing.T, out string) []string {
	t.Helper()
	var (
		svc  string
		rows []string
	)
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || f[0] == "IP" || f[0] == "Prot" || (f[0] == "->" && f[1] == "RemoteAddress:Port"):
		case f[0] == "FWM" && len(f) > 2 && f[2] == "IPv6":
			svc = "FWM " + f[1] + " IPv6"
		case f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP" || f[0] == "FWM":
			svc = f[0] + " " + f[1]
		case f[0] == "->" && len(f) >= 4:
			rs := f[1]
			if strings.HasPrefix(svc, "FWM") && !strings.Contains(rs, "]:") && strings.Count(rs, ":") != 1 {
				rs += ":0"
			}
			rows = append(rows, fmt.Sprintf("%s -> %s x=%s y=%s", svc, rs, f[2], f[3]))
		default:
			t.Errorf("ipvsadm --thresholds: unexpected line %q", line)
		}
	}
	slices.Sort(rows)
	return rows
}

// parseIPVSADMSave reads ipvsadm -Sn: "-A -t VIP:PORT -s rr -p 300 -M mask
// -b flags -o --pe sip" and "-a -t VIP:PORT -r RIP:PORT -g|-m|-i -w N -x N
// -y N --tun-type gue --tun-port N --tun-csum". Unknown options fail the
// test, so a format change is noticed rather than ignored.
func parseIPVSADMSave(t *testing.T, out string) table {
	t.Helper()
	tb := table{rs: map[ipvs.ServiceKey][]ipvs.RealServer{}}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var (
			key        ipvs.ServiceKey
			svc        ipvs.Service
			r          ipvs.RealServer
			isDest     = f[0] == "-a"
			fwmark6    bool
			fwmarkMark uint32
		)
		for i := 1; i < len(f); i++ {
			arg := func() string {
				i++
				if i >= len(f) {
					t.Fatalf("ipvsadm -Sn: option %s without a value in %q", f[i-1], line)
				}
				return f[i]
			}
			switch f[i] {
			case "-t", "-u", "--sctp-service":
				ap := netip.MustParseAddrPort(arg())
				key = map[string]func(netip.AddrPort) ipvs.ServiceKey{"-t": ipvs.TCPKey, "-u": ipvs.UDPKey, "--sctp-service": ipvs.SCTPKey}[f[i-1]](ap)
			case "-f":
				n, _ := strconv.ParseUint(arg(), 10, 32)
				fwmarkMark = uint32(n)
			case "-6":
				fwmark6 = true
			case "-s":
				svc.Scheduler = arg()
			case "-p":
				n, _ := strconv.ParseUint(arg(), 10, 32)
				svc.Flags |= ipvs.FlagPersistent
				svc.Timeout = uint32(n)
			case "-M":
				m := arg()
				if a, err := netip.ParseAddr(m); err == nil {
					bits := 0
					for _, b := range a.As4() {
						for ; b&0x80 != 0; b <<= 1 {
							bits++
						}
					}
					svc.NetmaskBits = uint8(bits)
				} else {
					n, _ := strconv.Atoi(m)
					svc.NetmaskBits = uint8(n)
				}
			case "-b":
				for _, name := range strings.Split(arg(), ",") {
					fl, ok := ipvs.SchedulerFlagNames[name]
					if !ok {
						t.Errorf("ipvsadm -Sn: unknown scheduler flag %q", name)
					}
					svc.Flags |= fl
				}
			case "-o":
				svc.Flags |= ipvs.FlagOnePacket
			case "--pe":
				svc.PersistenceEngine = arg()
			case "-r":
				a := arg()
				ap, err := netip.ParseAddrPort(a)
				if err != nil { // fwmark real servers may print without a port
					ap = netip.AddrPortFrom(netip.MustParseAddr(strings.Trim(a, "[]")), 0)
				}
				r.Address, r.Port = ap.Addr(), ap.Port()
			case "-g":
				r.Forwarding = ipvs.DirectRoute
			case "-m":
				r.Forwarding = ipvs.Masquerade
			case "-i":
				r.Forwarding = ipvs.Tunnel
			case "-w":
				n, _ := strconv.Atoi(arg())
				r.Weight = int32(n)
			case "-x":
				n, _ := strconv.ParseUint(arg(), 10, 32)
				r.UpperThreshold = uint32(n)
			case "-y":
				n, _ := strconv.ParseUint(arg(), 10, 32)
				r.LowerThreshold = uint32(n)
			case "--tun-type":
				r.TunnelType = map[string]ipvs.TunnelType{"ipip": ipvs.TunnelIPIP, "gue": ipvs.TunnelGUE, "gre": ipvs.TunnelGRE}[arg()]
			case "--tun-port":
				n, _ := strconv.ParseUint(arg(), 10, 16)
				r.TunnelPort = uint16(n)
			case "--tun-nocsum":
			case "--tun-csum":
				r.TunnelFlags |= ipvs.TunnelChecksum
			case "--tun-remcsum":
				r.TunnelFlags |= ipvs.TunnelRemoteChecksum
			default:
				t.Errorf("ipvsadm -Sn: unknown option %q in %q", f[i], line)
			}
		}
		if fwmarkMark != 0 {
			fam := ipvs.IPv4
			if fwmark6 {
				fam = ipvs.IPv6
			}
			key = ipvs.FWMarkKey(fam, fwmarkMark)
		}
		if isDest {
			tb.rs[key] = append(tb.rs[key], r)
			continue
		}
		svc.ServiceKey = key
		if svc.NetmaskBits == 0 {
			svc.NetmaskBits = map[ipvs.Family]uint8{ipvs.IPv4: 32, ipvs.IPv6: 128}[key.Family]
		}
		tb.services = append(tb.services, svc)
	}
	return tb
}

// TestVMEditsInPlace changes a service's scheduler and persistence and a
// real server's weight, thresholds and forwarding without deleting them,
// as the reconciler will.
func TestVMEditsInPlace(t *testing.T) {
	c, h := newVMClient(t)
	key := ipvs.TCPKey(netip.MustParseAddrPort("10.9.0.1:80"))
	r := rs("10.0.9.1", 80, ipvs.DirectRoute, 1)
	if err := c.AddService(ipvs.Service{ServiceKey: key, Scheduler: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddRealServer(key, r); err != nil {
		t.Fatal(err)
	}
	edited := ipvs.Service{ServiceKey: key, Scheduler: "wlc", Flags: ipvs.FlagPersistent, Timeout: 900, NetmaskBits: 16}
	if err := c.UpdateService(edited); err != nil {
		t.Fatal(err)
	}
	r.Weight, r.UpperThreshold, r.LowerThreshold, r.Forwarding = 0, 10, 5, ipvs.Masquerade
	if err := c.UpdateRealServer(key, r); err != nil {
		t.Fatal(err)
	}
	got, err := c.Service(key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Scheduler != "wlc" || !got.Persistent() || got.Timeout != 900 || got.NetmaskBits != 16 {
		t.Errorf("after UpdateService: %+v", got)
	}
	rss, err := c.RealServers(key)
	if err != nil || len(rss) != 1 {
		t.Fatalf("RealServers: %v %v", rss, err)
	}
	if g := rss[0]; g.Weight != 0 || g.UpperThreshold != 10 || g.LowerThreshold != 5 || g.Forwarding != ipvs.Masquerade {
		t.Errorf("after UpdateRealServer: %+v", g)
	}
	if out := run(t, h, "ipvsadm", "-Ln"); !strings.Contains(out, "wlc persistent 900 mask 255.255.0.0") {
		t.Errorf("ipvsadm -Ln does not show the edit:\n%s", out)
	}
}

// TestVMKernelErrors checks the real kernel's errnos map to the sentinels
// callers branch on.
func TestVMKernelErrors(t *testing.T) {
	c, _ := newVMClient(t)
	key := ipvs.TCPKey(netip.MustParseAddrPort("10.9.0.2:80"))
	r := rs("10.0.9.2", 80, ipvs.DirectRoute, 1)
	check := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	check("update missing service", c.UpdateService(ipvs.Service{ServiceKey: key, Scheduler: "rr"}), ipvs.ErrServiceNotFound)
	check("delete missing service", c.DeleteService(key), ipvs.ErrServiceNotFound)
	check("unknown scheduler", c.AddService(ipvs.Service{ServiceKey: key, Scheduler: "nosuch"}), ipvs.ErrNotSupported)
	if err := c.AddService(ipvs.Service{ServiceKey: key, Scheduler: "rr"}); err != nil {
		t.Fatal(err)
	}
	check("add service twice", c.AddService(ipvs.Service{ServiceKey: key, Scheduler: "rr"}), ipvs.ErrServiceExists)
	check("update missing real server", c.UpdateRealServer(key, r), ipvs.ErrRealServerNotFound)
	check("delete missing real server", c.DeleteRealServer(key, r.Key()), ipvs.ErrRealServerNotFound)
	if err := c.AddRealServer(key, r); err != nil {
		t.Fatal(err)
	}
	check("add real server twice", c.AddRealServer(key, r), ipvs.ErrRealServerExists)
	if _, err := c.Service(ipvs.TCPKey(netip.MustParseAddrPort("10.9.9.9:1"))); !errors.Is(err, ipvs.ErrServiceNotFound) {
		t.Errorf("Service of a missing key: %v, want ErrServiceNotFound", err)
	}
	if err := c.DeleteRealServer(key, r.Key()); err != nil {
		t.Errorf("DeleteRealServer: %v", err)
	}
	if err := c.DeleteService(key); err != nil {
		t.Errorf("DeleteService: %v", err)
	}
}

// TestVMGlobals covers info, timeouts, the sync daemon, zeroing and flush,
// cross-checked with ipvsadm.
func TestVMGlobals(t *testing.T) {
	c, h := newVMClient(t)
	info, err := c.Info()
	if err != nil {
		t.Fatal(err)
	}
	if head := run(t, h, "ipvsadm", "-Ln"); !strings.Contains(head, fmt.Sprintf("version %v (size=%d)", info.Version, info.ConnTableSize)) {
		t.Errorf("Info %v size %d does not match ipvsadm:\n%s", info.Version, info.ConnTableSize, head)
	}

	if err := c.SetTimeouts(ipvs.Timeouts{TCP: 901, TCPFin: 121, UDP: 301}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Timeouts(); err != nil || got != (ipvs.Timeouts{TCP: 901, TCPFin: 121, UDP: 301}) {
		t.Errorf("Timeouts() = %+v, %v", got, err)
	}
	if out := run(t, h, "ipvsadm", "-L", "--timeout"); !strings.Contains(out, "Timeout (tcp tcpfin udp): 901 121 301") {
		t.Errorf("ipvsadm --timeout: %q", out)
	}
	if err := c.SetTimeouts(ipvs.Timeouts{UDP: 302}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Timeouts(); got.TCP != 901 || got.UDP != 302 {
		t.Errorf("a zero field changed a timeout: %+v", got)
	}

	master := ipvs.SyncDaemon{Role: ipvs.SyncMaster, Interface: lab.HostInterface, SyncID: 7}
	backup := ipvs.SyncDaemon{Role: ipvs.SyncBackup, Interface: lab.HostInterface, SyncID: 7}
	for _, d := range []ipvs.SyncDaemon{master, backup} {
		if err := c.StartSyncDaemon(d); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := c.SyncDaemons()
	if err != nil {
		t.Fatal(err)
	}
	roles := map[ipvs.SyncRole]ipvs.SyncDaemon{}
	for _, d := range ds {
		roles[d.Role] = d
	}
	if roles[ipvs.SyncMaster].Interface != lab.HostInterface || roles[ipvs.SyncBackup].SyncID != 7 {
		t.Errorf("SyncDaemons() = %+v", ds)
	}
	if out := run(t, h, "ipvsadm", "-L", "--daemon"); !strings.Contains(out, "master sync daemon (mcast="+lab.HostInterface+", syncid=7") ||
		!strings.Contains(out, "backup sync daemon (mcast="+lab.HostInterface+", syncid=7") {
		t.Errorf("ipvsadm --daemon:\n%s", out)
	}
	if err := c.StartSyncDaemon(ipvs.SyncDaemon{Role: ipvs.SyncMaster, Interface: "nosuch0"}); err == nil {
		t.Error("starting a second master sync daemon succeeded")
	}
	for _, r := range []ipvs.SyncRole{ipvs.SyncMaster, ipvs.SyncBackup} {
		if err := c.StopSyncDaemon(r); err != nil {
			t.Fatal(err)
		}
	}
	if ds, _ := c.SyncDaemons(); len(ds) != 0 {
		t.Errorf("daemons left after stop: %+v", ds)
	}

	key := ipvs.TCPKey(netip.MustParseAddrPort("10.9.0.3:80"))
	if err := c.AddService(ipvs.Service{ServiceKey: key, Scheduler: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := c.ZeroService(key); err != nil {
		t.Errorf("ZeroService: %v", err)
	}
	if err := c.ZeroAll(); err != nil {
		t.Errorf("ZeroAll: %v", err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if svcs, _ := c.Services(); len(svcs) != 0 {
		t.Errorf("services left after Flush: %v", svcs)
	}
}

// TestVMNewLeavesLogrusAlone: opening IPVS neither logs through nor
// reconfigures the process's logrus logger (moby/ipvs's), which belongs
// to the program embedding lvskit.
func TestVMNewLeavesLogrusAlone(t *testing.T) {
	var buf bytes.Buffer
	std := logrus.StandardLogger()
	old := std.Out
	std.SetOutput(&buf)
	t.Cleanup(func() { std.SetOutput(old) })
	c, err := ipvs.New(ipvs.Options{})
	if err != nil {
		t.Fatalf("opening IPVS: %v", err)
	}
	defer c.Close()
	if _, err := c.Services(); err != nil {
		t.Fatalf("listing services: %v", err)
	}
	if std.Out != &buf {
		t.Errorf("ipvs.New replaced logrus's output (%T)", std.Out)
	}
	if buf.Len() > 0 {
		t.Errorf("moby/ipvs logged through logrus: %q", buf.String())
	}
}
