package tui

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

var labTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// labTree lays the /proc files captured from a 6.12 kernel's lab out as
// a saved root: DIR/proc/net/ip_vs*.
func labTree(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	net := filepath.Join(root, "proc", "net")
	if err := os.MkdirAll(net, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join("..", "director", "ipvs", "testdata", "proc", "lab")
	for _, name := range []string{"ip_vs", "ip_vs_conn", "ip_vs_stats"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(net, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func labSource(t testing.TB) *ProcSource {
	t.Helper()
	p, err := NewProcSource(labTree(t))
	if err != nil {
		t.Fatal(err)
	}
	p.Clock = fixedClock(labTime)
	return p
}

// connLine writes one IPv4 entry of /proc/net/ip_vs_conn as the kernel does.
func connLine(proto string, client, vip, rs netip.AddrPort, state string, expires int) string {
	h := func(ap netip.AddrPort) string {
		b := ap.Addr().As4()
		return fmt.Sprintf("%02X%02X%02X%02X %04X", b[0], b[1], b[2], b[3], ap.Port())
	}
	return fmt.Sprintf("%s %s %s %s %-11s %7d\n", proto, h(client), h(vip), h(rs), state, expires)
}

const connHeader = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"

var (
	webVIP = netip.MustParseAddrPort("192.168.0.100:80")
	rsOK   = netip.MustParseAddrPort("10.0.0.11:80")
	rsSYN  = netip.MustParseAddrPort("10.0.0.12:80")
	rsZero = netip.MustParseAddrPort("10.0.0.13:80")
)

// incidentKernel is a kernel (the ipvstest fake plus a /proc root) in the
// middle of an incident: one real server piles up SYN_RECV, one has
// weight 0 and still connections.
type incidentKernel struct {
	fake *ipvstest.Fake
	src  *KernelSource
	root string
	now  time.Time
}

func newIncidentKernel(t testing.TB) *incidentKernel {
	t.Helper()
	f := ipvstest.New()
	key := ipvs.TCPKey(webVIP)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.AddService(ipvs.Service{ServiceKey: key, Scheduler: "wlc"}))
	dns := ipvs.UDPKey(netip.MustParseAddrPort("192.168.0.53:53"))
	must(f.AddService(ipvs.Service{ServiceKey: dns, Scheduler: "rr"}))
	for _, rs := range []struct {
		ap netip.AddrPort
		w  int32
	}{{rsOK, 1}, {rsSYN, 1}, {rsZero, 0}} {
		must(f.AddRealServer(key, ipvs.RealServer{Address: rs.ap.Addr(), Port: rs.ap.Port(), Forwarding: ipvs.DirectRoute, Weight: rs.w}))
	}
	must(f.AddRealServer(dns, ipvs.RealServer{Address: netip.MustParseAddr("10.0.0.21"), Port: 53, Forwarding: ipvs.Masquerade, Weight: 1}))
	k := &incidentKernel{fake: f, root: t.TempDir(), now: labTime}
	must(os.MkdirAll(filepath.Join(k.root, "proc", "net"), 0o755))
	k.src = &KernelSource{Client: f, Proc: ProcFiles{Dir: k.root}, Director: "lb1", Clock: func() time.Time { return k.now }}
	k.set(t, 0)
	return k
}

// set writes the counters and connection table of step n (0 or 1).
func (k *incidentKernel) set(t testing.TB, n int) {
	t.Helper()
	key := ipvs.TCPKey(webVIP)
	st := func(conns uint64) ipvs.Stats {
		return ipvs.Stats{Conns: conns, PacketsIn: conns * 10, BytesIn: conns * 1000, CPS: conns / 10, PPSIn: conns, BPSIn: conns * 100}
	}
	k.fake.SetCounters(key, ipvs.RealServerKey{Address: rsOK.Addr(), Port: 80}, uint32(3+n), 2, st(uint64(50+10*n)))
	k.fake.SetCounters(key, ipvs.RealServerKey{Address: rsSYN.Addr(), Port: 80}, uint32(12+4*n), 0, st(uint64(40+10*n)))
	k.fake.SetCounters(key, ipvs.RealServerKey{Address: rsZero.Addr(), Port: 80}, 2, uint32(1+n), st(30))
	var b strings.Builder
	b.WriteString(connHeader)
	client := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), uint16(40000+i))
	}
	i := 1
	add := func(rs netip.AddrPort, state string, count, expires int) {
		for range count {
			b.WriteString(connLine("TCP", client(i), webVIP, rs, state, expires))
			i++
		}
	}
	add(rsOK, "ESTABLISHED", 3+n, 890)
	add(rsOK, "TIME_WAIT", 2, 110)
	add(rsSYN, "SYN_RECV", 12+4*n, 55)
	add(rsZero, "ESTABLISHED", 2, 700)
	add(rsZero, "FIN_WAIT", 1+n, 100)
	b.WriteString(connLine("UDP", client(200), netip.MustParseAddrPort("192.168.0.53:53"), netip.MustParseAddrPort("10.0.0.21:53"), "UDP", 290))
	if err := os.WriteFile(filepath.Join(k.root, "proc", "net", "ip_vs_conn"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	stats := fmt.Sprintf("   Total Incoming Outgoing         Incoming         Outgoing\n   Conns  Packets  Packets            Bytes            Bytes\n%8X %8X %8X %16X %16X\n\n Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n%8X %8X %8X %16X %16X\n",
		120+20*n, 1200+200*n, 900, 120000, 90000, 12+2*n, 120, 90, 12000, 9000)
	if err := os.WriteFile(filepath.Join(k.root, "proc", "net", "ip_vs_stats"), []byte(stats), 0o644); err != nil {
		t.Fatal(err)
	}
}

// levels lists the cells of a table that stand out, for golden files.
func levels(tb Table) string {
	var b strings.Builder
	name := map[Level]string{Warn: "warn", Alert: "ALERT"}
	for i, r := range tb.Rows {
		for j, c := range r {
			if n, ok := name[c.Level]; ok && j < len(tb.Header) {
				fmt.Fprintf(&b, "row %d %s=%q: %s\n", i+1, tb.Header[j].Text, c.Text, n)
			}
		}
	}
	return b.String()
}
