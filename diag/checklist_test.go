package diag_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/lvskit/lvskit/diag"
	"github.com/lvskit/lvskit/diag/diagtest"
	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/director/vrrp"
)

// The fake segment every test starts from: a VIP held by director d1
// (VRRP master, d2 backup), three direct-routing real servers serving
// the same page, lvsd's status API; lvsdiag runs on a client.
var (
	t0     = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	vip    = netip.MustParseAddr("10.77.0.100")
	client = netip.MustParseAddr("10.77.0.2")
	d1     = netip.MustParseAddr("10.77.0.10")
	d2     = netip.MustParseAddr("10.77.0.11")
	rips   = []netip.Addr{netip.MustParseAddr("10.77.0.21"), netip.MustParseAddr("10.77.0.22"), netip.MustParseAddr("10.77.0.23")}
)

// macOf is the fake MAC of a lab address: 02:00:5e:00:00:<last byte>.
func macOf(a netip.Addr) string {
	return fmt.Sprintf("02:00:5e:00:00:%02x", a.As4()[3])
}

func rsPort(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 80) }

// advert builds the observations of a router advertising the VIP.
func advert(src netip.Addr, vrid uint8, priority uint8, from, to time.Duration, vips ...netip.Addr) []diag.VRRPObservation {
	if len(vips) == 0 {
		vips = []netip.Addr{vip}
	}
	var out []diag.VRRPObservation
	for at := from; at <= to; at += 200 * time.Millisecond {
		a := vrrp.Advertisement{Version: vrrp.Version3, VRID: vrid, Priority: priority, Interval: 200 * time.Millisecond, Addresses: vips}
		b, err := a.Marshal(src, vrrp.IPv4Group)
		if err != nil {
			panic(err)
		}
		out = append(out, diag.ObserveVRRP(t0.Add(at), vrrp.Packet{Payload: b, Src: src, Dst: vrrp.IPv4Group, HopLimit: 255, SrcMAC: diagtest.MAC(macOf(src))}))
	}
	return out
}

func census(obs ...[]diag.VRRPObservation) *diag.VRRPCensus {
	var all []diag.VRRPObservation
	for _, o := range obs {
		all = append(all, o...)
	}
	slices.SortStableFunc(all, func(a, b diag.VRRPObservation) int { return a.At.Compare(b.At) })
	return diag.BuildVRRPCensus("eth0", t0, t0.Add(2500*time.Millisecond), all)
}

// world is one fake setup; tests edit it, then run.
type world struct {
	opts     diag.Options
	links    []diag.Link
	files    fstest.MapFS
	pings    map[netip.Addr]diag.PingResult
	arp      *diagtest.ARP
	probes   map[netip.AddrPort]diag.ProbeResult
	status   *statusapi.Status
	census   *diag.VRRPCensus
	ipvs     *ipvstest.Fake
	rules    diag.FirewallRules
	config   *config.Config
	noRoutes bool
	route    *diag.Route // the default route; nil means via 10.77.0.1 on eth0
	tracer   *diagtest.Tracer
}

func newWorld() *world {
	w := &world{
		opts: diag.Options{VIP: vip, Port: 80, Host: "www.example.com", Timeout: 5 * time.Second, Listen: 2500 * time.Millisecond},
		links: []diag.Link{
			{Name: "lo", Kind: "loopback", Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
			{Name: "eth0", Kind: "veth", Up: true, MAC: diagtest.MAC(macOf(client)), Prefixes: []netip.Prefix{netip.MustParsePrefix("10.77.0.2/24")}},
		},
		files: fstest.MapFS{
			"proc/net/arp": {Data: []byte("IP address       HW type     Flags       HW address            Mask     Device\n" +
				"10.77.0.100      0x1         0x2         " + macOf(d1) + "     *        eth0\n")},
		},
		pings:  map[netip.Addr]diag.PingResult{},
		arp:    &diagtest.ARP{Hosts: map[netip.Addr][]string{vip: {macOf(d1)}, d1: {macOf(d1)}}, Start: t0},
		probes: map[netip.AddrPort]diag.ProbeResult{},
		census: census(advert(d1, 51, 150, 0, 2400*time.Millisecond)),
	}
	svc := statusapi.ServiceStatus{Key: "TCP 10.77.0.100:80", Source: "lvsd.yaml:3", Scheduler: "wlc", InKernel: true, UpWeight: 3}
	for _, a := range append([]netip.Addr{vip, d1, d2}, rips...) {
		w.pings[a] = diagtest.Up(3)
	}
	for _, a := range rips {
		w.arp.Hosts[a] = []string{macOf(a)}
		w.probes[rsPort(a)] = diagtest.OK("5e0dc0ffee")
		svc.RealServers = append(svc.RealServers, statusapi.RealServerStatus{Address: rsPort(a).String(), Forwarding: "Route",
			Weight: 1, KernelWeight: 1, Health: "up", Check: "http GET / on " + rsPort(a).String()})
	}
	w.status = &statusapi.Status{Config: "/etc/lvsd/lvsd.yaml", Loaded: t0.Add(-time.Hour), Services: []statusapi.ServiceStatus{svc},
		VRRP: []statusapi.VRRPStatus{{Name: "VI_1", VRID: 51, Interface: "eth0", Version: 3, State: "backup", Priority: 100,
			ConfiguredPriority: 100, Master: d1.String(), MasterPriority: 150, VIPs: []string{vip.String()}}}}
	return w
}

// onDirector makes lvsdiag run on d1, the master, with this host's IPVS
// holding the service and sane sysctls.
func (w *world) onDirector(t *testing.T) {
	t.Helper()
	w.links[1].MAC = diagtest.MAC(macOf(d1))
	w.links[1].Prefixes = []netip.Prefix{netip.MustParsePrefix("10.77.0.10/24"), netip.MustParsePrefix("10.77.0.100/32")}
	w.arp.Hosts[vip] = nil // our own VIP: no reply to our own request
	w.status = nil
	w.ipvs = ipvstest.New()
	key := ipvs.TCPKey(netip.AddrPortFrom(vip, 80))
	if err := w.ipvs.AddService(ipvs.Service{ServiceKey: key, Scheduler: "wlc", NetmaskBits: 32}); err != nil {
		t.Fatal(err)
	}
	for _, a := range rips {
		if err := w.ipvs.AddRealServer(key, ipvs.RealServer{Address: a, Port: 80, Forwarding: ipvs.DirectRoute, Weight: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{
		"net/ipv4/ip_forward": "0", "net/ipv4/conf/all/send_redirects": "0", "net/ipv4/conf/default/send_redirects": "0",
		"net/ipv4/conf/eth0/send_redirects": "0", "net/ipv4/vs/expire_nodest_conn": "1",
		"net/ipv4/vs/expire_quiescent_template": "1", "net/ipv4/vs/conn_reuse_mode": "1",
	} {
		w.files["proc/sys/"+k] = &fstest.MapFile{Data: []byte(v + "\n")}
	}
	w.rules = diag.FirewallRules{NFT: "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n"}
	w.conns(connLine("ESTABLISHED", rips[0], 40000, false), connLine("TIME_WAIT", rips[1], 40001, false))
}

// conns sets the IPVS connection table.
func (w *world) conns(lines ...string) {
	w.files["proc/net/ip_vs_conn"] = &fstest.MapFile{Data: []byte("Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n" + strings.Join(lines, ""))}
}

func hexAddr(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("%02X%02X%02X%02X", b[0], b[1], b[2], b[3])
}

func connLine(state string, rs netip.Addr, cport uint16, template bool) string {
	if template {
		cport = 0
	}
	return fmt.Sprintf("TCP %s %04X %s 0050 %s 0050 %-11s %7d\n", hexAddr(netip.MustParseAddr("10.88.0.5")), cport, hexAddr(vip), hexAddr(rs), state, 60)
}

// onRealServer makes lvsdiag rs run on rs1, set up right.
func (w *world) onRealServer() {
	w.opts.Mode = diag.ModeRealServer
	w.links[0].Prefixes = append(w.links[0].Prefixes, netip.MustParsePrefix("10.77.0.100/32"))
	w.links[1].MAC = diagtest.MAC(macOf(rips[0]))
	w.links[1].Prefixes = []netip.Prefix{netip.MustParsePrefix("10.77.0.21/24")}
	w.status = nil
	w.sysctls(map[string]string{
		"all/arp_ignore": "1", "eth0/arp_ignore": "1", "default/arp_ignore": "0", "lo/arp_ignore": "0",
		"all/arp_announce": "2", "eth0/arp_announce": "2", "default/arp_announce": "0", "lo/arp_announce": "0",
		"all/rp_filter": "0", "eth0/rp_filter": "1",
	})
	w.files["proc/net/tcp"] = &fstest.MapFile{Data: []byte(
		"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
			"   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n")}
}

func (w *world) sysctls(m map[string]string) {
	for k, v := range m {
		w.files["proc/sys/net/ipv4/conf/"+k] = &fstest.MapFile{Data: []byte(v + "\n")}
	}
}

func (w *world) env() (*diag.Env, *diagtest.Pinger, *diagtest.Prober) {
	pinger := &diagtest.Pinger{Results: w.pings}
	prober := &diagtest.Prober{Results: w.probes}
	env := &diag.Env{
		Root: w.files, Pinger: pinger, ARP: w.arp, Prober: prober,
		Net:      &diagtest.Net{LinkList: w.links, Default: w.defaultRoute()},
		Firewall: &diagtest.Firewall{Ruleset: w.rules},
		VRRP:     &diagtest.VRRP{Census: w.census},
		Config:   w.config,
		Now:      func() time.Time { return t0 },
	}
	if w.status != nil {
		env.LVSD = &diagtest.Status{S: *w.status}
	}
	if w.tracer != nil {
		env.Tracer = w.tracer
	}
	if w.ipvs != nil {
		env.IPVS = w.ipvs
	} else {
		env.IPVSErr = ipvs.ErrIPVSUnavailable
	}
	return env, pinger, prober
}

func (w *world) defaultRoute() diag.Route {
	if w.route != nil {
		return *w.route
	}
	return diag.Route{Interface: "eth0", Gateway: netip.MustParseAddr("10.77.0.1")}
}

func (w *world) run(t *testing.T) *diag.Report {
	t.Helper()
	env, _, _ := w.env()
	rep, err := diag.Run(context.Background(), env, w.opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

type idSubject struct{ ID, Subject string }

func findingsOf(rep *diag.Report) []idSubject {
	var out []idSubject
	for _, f := range rep.Findings() {
		out = append(out, idSubject{f.ID, f.Subject})
	}
	return out
}

// dump prints the report for a failing test.
func dump(t *testing.T, rep *diag.Report) string {
	t.Helper()
	var b strings.Builder
	diag.WriteReport(&b, rep, diag.ReportOptions{Format: diag.Text})
	return b.String()
}

func statuses(rep *diag.Report) map[diag.CheckID]diag.Status {
	m := map[diag.CheckID]diag.Status{}
	for _, c := range rep.Checks {
		m[c.ID] = c.Status
	}
	return m
}

func TestCleanSegmentReportsNothing(t *testing.T) {
	rep := newWorld().run(t)
	if fs := rep.Findings(); len(fs) != 0 {
		t.Fatalf("findings on a clean segment:\n%s", dump(t, rep))
	}
	want := map[diag.CheckID]diag.Status{
		diag.CheckReachability: diag.StatusOK, diag.CheckDirector: diag.StatusOK, diag.CheckRealServers: diag.StatusOK,
		diag.CheckRealServer: diag.StatusNotApplicable, diag.CheckARP: diag.StatusOK, diag.CheckFailover: diag.StatusOK,
		diag.CheckVRRP: diag.StatusOK, diag.CheckConnections: diag.StatusCouldNotRun,
	}
	got := statuses(rep)
	for id, s := range want {
		if got[id] != s {
			t.Errorf("check %s: %s, want %s\n%s", id, got[id], s, dump(t, rep))
		}
	}
	if rep.ExitCode(diag.Warning) != diag.ExitClean {
		t.Errorf("exit code %d", rep.ExitCode(diag.Warning))
	}
}

// TestProbesWhatAUserWouldPin checks that the real servers are probed
// at their own addresses with the site's Host, and every address is
// pinged.
func TestProbesWhatAUserWouldPin(t *testing.T) {
	w := newWorld()
	env, pinger, prober := w.env()
	if _, err := diag.Run(context.Background(), env, w.opts); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range prober.Requests() {
		got = append(got, fmt.Sprintf("%s %s Host:%s %s", r.Kind, r.Address, r.Host, r.Path))
	}
	want := []string{"http 10.77.0.21:80 Host:www.example.com /", "http 10.77.0.22:80 Host:www.example.com /", "http 10.77.0.23:80 Host:www.example.com /"}
	if !slices.Equal(got, want) {
		t.Errorf("probes %q, want %q", got, want)
	}
	if got, want := fmt.Sprint(pinger.Pinged()), "[10.77.0.10 10.77.0.21 10.77.0.22 10.77.0.23 10.77.0.100]"; got != want {
		t.Errorf("pinged %s, want %s", got, want)
	}
	asked := w.arp.Asked()
	if len(asked) != 1 || !slices.Contains(asked[0], vip) || !slices.Contains(asked[0], rips[2]) {
		t.Errorf("ARP asked %v, want one probe of the VIP and the real servers", asked)
	}
}

// Each fault alone: exactly the findings (ID and subject) a user would
// act on.
func TestEachFaultNamesItsSubject(t *testing.T) {
	rs2 := rips[1]
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, w *world)
		want  []idSubject
	}{
		{"real server leaks ARP for the VIP", func(t *testing.T, w *world) {
			w.arp.Hosts[vip] = append(w.arp.Hosts[vip], macOf(rips[0]))
		}, []idSubject{{"arp-vip-leak", "real server 10.77.0.21 (MAC 02:00:5e:00:00:15)"}}},
		{"one real server serves different content", func(t *testing.T, w *world) {
			w.probes[rsPort(rips[2])] = diagtest.OK("0badbeef")
		}, []idSubject{{"rs-content-differs", "real server 10.77.0.23:80"}}},
		{"one real server answers 503", func(t *testing.T, w *world) {
			w.probes[rsPort(rips[2])] = diag.ProbeResult{Status: 503, Digest: "x"}
		}, []idSubject{{"rs-http-error", "real server 10.77.0.23:80"}}},
		{"dead real server", func(t *testing.T, w *world) {
			delete(w.probes, rsPort(rs2))
			w.pings[rs2] = diag.PingResult{Sent: 3}
		}, []idSubject{{"reach-loss", "real server 10.77.0.22"}, {"rs-unreachable", "real server 10.77.0.22:80"}}},
		{"lvsd took a real server out", func(t *testing.T, w *world) {
			rs := &w.status.Services[0].RealServers[1]
			rs.Health, rs.KernelWeight, rs.Why = "down", 0, "3 of 3 failures: connect 10.77.0.22:80: connection refused"
		}, []idSubject{{"director-rs-down", "real server 10.77.0.22:80"}}},
		{"split brain", func(t *testing.T, w *world) {
			w.census = census(advert(d1, 51, 150, 0, 2400*time.Millisecond), advert(d2, 51, 100, 0, 2400*time.Millisecond))
			w.arp.Hosts[vip] = []string{macOf(d1), macOf(d2)}
		}, []idSubject{{"arp-vip-multiple", "VIP 10.77.0.100 on eth0"}, {"vrrp-split-brain", "VRID 51 (IPv4) on eth0"}}},
		{"VIP answered by the old master", func(t *testing.T, w *world) {
			w.arp.Hosts[vip] = []string{macOf(d2)}
		}, []idSubject{{"failover-vip-mac-not-master", "VIP 10.77.0.100"}, {"failover-stale-neighbour", "neighbour entry 10.77.0.100 on eth0"}}[:1]},
		{"stale neighbour entry", func(t *testing.T, w *world) {
			w.files["proc/net/arp"].Data = []byte(strings.ReplaceAll(string(w.files["proc/net/arp"].Data), macOf(d1), macOf(d2)))
		}, []idSubject{{"failover-stale-neighbour", "neighbour entry 10.77.0.100 on eth0"}}},
		{"takeover without gratuitous ARP", func(t *testing.T, w *world) {
			w.census = census(advert(d1, 51, 150, 0, 800*time.Millisecond), advert(d2, 51, 100, 1600*time.Millisecond, 2400*time.Millisecond))
			w.arp.Hosts[vip] = []string{macOf(d2)}
			w.files["proc/net/arp"].Data = []byte("IP address       HW type     Flags       HW address            Mask     Device\n")
		}, []idSubject{{"failover-no-garp", "VRRP master 10.77.0.11"}}},
		{"takeover with gratuitous ARP", func(t *testing.T, w *world) {
			w.census = census(advert(d1, 51, 150, 0, 800*time.Millisecond), advert(d2, 51, 100, 1600*time.Millisecond, 2400*time.Millisecond))
			w.arp.Hosts[vip] = []string{macOf(d2)}
			w.arp.Extra = []diag.ARPPacket{{At: t0.Add(1601 * time.Millisecond), SenderMAC: diagtest.MAC(macOf(d2)), SenderIP: vip, TargetIP: vip}}
			w.files["proc/net/arp"].Data = []byte("IP address       HW type     Flags       HW address            Mask     Device\n")
		}, nil},
		{"another cluster on our VRID", func(t *testing.T, w *world) {
			w.census = census(advert(d1, 51, 150, 0, 2400*time.Millisecond),
				advert(netip.MustParseAddr("10.77.0.40"), 51, 150, 500*time.Millisecond, 2400*time.Millisecond, netip.MustParseAddr("10.77.0.200")))
			w.config = &config.Config{VRRP: config.VRRP{Instances: []config.VRRPInstance{{Name: "VI_1", Interface: "eth0",
				VirtualRouterID: 51, VirtualAddresses: []config.VirtualAddress{{Address: vip}}}}}}
		}, []idSubject{{"vrrp-foreign-router", "VRID 51 (IPv4) on eth0, source 10.77.0.40"}, {"vrrp-vrid-clash", "VRID 51 (IPv4) on eth0"}}},
		{"VIP unreachable", func(t *testing.T, w *world) {
			w.pings[vip] = diag.PingResult{Sent: 3, Received: 1, RTTs: []time.Duration{time.Millisecond}}
		}, []idSubject{{"reach-loss", "VIP 10.77.0.100"}}},
		{"nobody holds the VIP", func(t *testing.T, w *world) {
			w.arp.Hosts[vip] = nil
		}, []idSubject{{"arp-vip-no-answer", "VIP 10.77.0.100 on eth0"}}},
		{"lvsd has no service for the VIP", func(t *testing.T, w *world) {
			w.status.Services[0].Key = "TCP 10.77.0.101:80"
			w.config = nil
		}, []idSubject{{"director-no-service", "lvsd service for 10.77.0.100:80"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			tc.setup(t, w)
			rep := w.run(t)
			if got := findingsOf(rep); !slices.Equal(got, tc.want) {
				t.Errorf("findings\n  %v\nwant\n  %v\n%s", got, tc.want, dump(t, rep))
			}
			for _, f := range rep.Findings() {
				if f.Subject == "" || len(f.Evidence) == 0 || f.Fix == "" {
					t.Errorf("finding %s lacks subject, evidence or fix", f.ID)
				}
			}
		})
	}
}

// TestChecksThatCannotRunSayWhy: without privileges or a director, the
// checks that need them say so, the others still run, and the exit code
// is 2 only when nothing ran.
func TestChecksThatCannotRunSayWhy(t *testing.T) {
	w := newWorld()
	w.status = nil
	env, _, _ := w.env()
	env.ARP = &diagtest.ARP{Err: fmt.Errorf("arp on eth0: %w", diag.ErrNotRoot)}
	env.VRRP = &diagtest.VRRP{Err: fmt.Errorf("listening for vrrp on eth0: %w", diag.ErrNotRoot)}
	rep, err := diag.Run(context.Background(), env, w.opts)
	if err != nil {
		t.Fatal(err)
	}
	got := statuses(rep)
	for _, id := range []diag.CheckID{diag.CheckDirector, diag.CheckRealServers, diag.CheckARP, diag.CheckVRRP, diag.CheckFailover} {
		if got[id] != diag.StatusCouldNotRun {
			t.Errorf("check %s: %s, want could-not-run\n%s", id, got[id], dump(t, rep))
		}
	}
	if got[diag.CheckReachability] != diag.StatusOK {
		t.Errorf("reachability did not run:\n%s", dump(t, rep))
	}
	for _, c := range rep.Checks {
		if c.Status == diag.StatusCouldNotRun && c.Reason == "" {
			t.Errorf("check %s could not run and does not say why", c.ID)
		}
	}
	if !strings.Contains(dump(t, rep), "needs root (CAP_NET_RAW)") {
		t.Errorf("the report does not say root is needed:\n%s", dump(t, rep))
	}
	if rep.ExitCode(diag.Warning) != diag.ExitClean {
		t.Errorf("exit code %d, want 0 (reachability ran clean)", rep.ExitCode(diag.Warning))
	}
	env.Pinger = &diagtest.Pinger{Err: diag.ErrNotRoot}
	rep, _ = diag.Run(context.Background(), env, w.opts)
	if rep.ExitCode(diag.Warning) != diag.ExitCouldNotRun {
		t.Errorf("nothing ran, exit code %d, want 2\n%s", rep.ExitCode(diag.Warning), dump(t, rep))
	}
}

func TestFailOn(t *testing.T) {
	w := newWorld()
	w.onDirector(t)
	w.files["proc/sys/net/ipv4/vs/expire_nodest_conn"].Data = []byte("0\n")
	rep := w.run(t)
	if fs := findingsOf(rep); len(fs) != 1 || fs[0].ID != "director-expire-nodest-conn" {
		t.Fatalf("findings %v", fs)
	}
	for sev, want := range map[diag.Severity]int{diag.Info: 1, diag.Warning: 0, diag.Critical: 0} {
		if got := rep.ExitCode(sev); got != want {
			t.Errorf("--fail-on %s: exit %d, want %d", sev, got, want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	if _, err := diag.Run(context.Background(), &diag.Env{}, diag.Options{}); err == nil || !strings.Contains(err.Error(), "--vip") {
		t.Errorf("Run without a VIP: %v", err)
	}
	if _, err := diag.Run(context.Background(), &diag.Env{}, diag.Options{VIP: vip, Probe: "ftp"}); err == nil || !strings.Contains(err.Error(), "--probe") {
		t.Errorf("Run with --probe ftp: %v", err)
	}
}
