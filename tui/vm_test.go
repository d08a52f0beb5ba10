//go:build vmtest

// Kernel-VM tier: real IPVS with traffic. Run with
//
//	make build && go test -tags vmtest -run '^TestVM' -exec $PWD/scripts/vm/run ./tui/
package tui

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/lab"
)

func vmRun(t *testing.T, h *lab.Host, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := h.Run(ctx, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// ipvsadmServers parses ipvsadm -Ln: "SERVICE -> RS" to "FWD WEIGHT ACTIVE INACT".
func ipvsadmServers(out string) map[string]string {
	m := map[string]string{}
	svc := ""
	for l := range strings.Lines(out) {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && (f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP"):
			svc = f[0] + " " + f[1]
			m[svc] = "service"
		case len(f) == 6 && f[0] == "->" && svc != "":
			m[svc+" -> "+f[1]] = strings.Join(f[2:], " ")
		}
	}
	return m
}

// ipvsadmStates counts ipvsadm -lcn's entries: "PRO VIP -> RS STATE".
func ipvsadmStates(out string) map[string]int {
	m := map[string]int{}
	for l := range strings.Lines(out) {
		f := strings.Fields(l)
		if len(f) != 6 || f[0] == "pro" {
			continue
		}
		m[f[0]+" "+f[4]+" -> "+f[5]+" "+f[2]]++
	}
	return m
}

// lvstopServers and lvstopStates put lvstop's JSON in the same shapes.
func lvstopServers(r Report) map[string]string {
	m := map[string]string{}
	for _, s := range r.Services {
		m[s.Key] = "service"
		for _, rs := range s.RealServers {
			ap := netip.AddrPortFrom(netip.MustParseAddr(rs.Address), rs.Port)
			m[s.Key+" -> "+ap.String()] = fmt.Sprintf("%s %d %d %d", rs.Forwarding, rs.Weight, rs.ActiveConns, rs.InactiveConns)
		}
	}
	return m
}

func lvstopStates(r Report) map[string]int {
	m := map[string]int{}
	for _, s := range r.Services {
		for _, rs := range s.RealServers {
			ap := netip.AddrPortFrom(netip.MustParseAddr(rs.Address), rs.Port)
			for st, n := range rs.States {
				m[s.Key+" -> "+ap.String()+" "+st] += n
			}
		}
	}
	return m
}

// TestVMLvstopMatchesIpvsadm runs real traffic through a director (NAT,
// DR, and a DR real server that never answers, so its entries pile up in
// SYN_RECV) and checks that lvstop --once shows the services,
// ActiveConn/InActConn and connection states that ipvsadm -Ln and -lcn
// show at the same moment.
func TestVMLvstopMatchesIpvsadm(t *testing.T) {
	bin, err := filepath.Abs(filepath.Join("..", "bin", "lvstop"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("needs bin/lvstop: run make build first (%v)", err)
	}
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	client := l.AddHost("client", "10.77.0.2/24")
	dir := l.AddHost("director", "10.77.0.10/24", "10.78.0.1/24")
	natVIP := netip.MustParseAddrPort("10.77.0.100:80")
	drVIP := netip.MustParseAddrPort("10.77.0.200:80")
	deadVIP := netip.MustParseAddrPort("10.77.0.201:80")
	for _, v := range []netip.AddrPort{natVIP, drVIP, deadVIP} {
		dir.AddAddr(lab.HostInterface, v.Addr().String()+"/32")
	}
	dir.EnableForwarding()
	for _, k := range []string{"all", "default", lab.HostInterface} {
		dir.SetSysctl("net.ipv4.conf."+k+".send_redirects", "0")
	}
	serve := func(h *lab.Host) {
		ln, err := h.Listen("tcp", ":80")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, h.Name) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	var nat, dr []netip.Addr
	for i, name := range []string{"nat1", "nat2"} {
		a := netip.AddrFrom4([4]byte{10, 78, 0, byte(11 + i)})
		h := l.AddHost(name, a.String()+"/24")
		h.SetDefaultRoute(netip.MustParseAddr("10.78.0.1"))
		serve(h)
		nat = append(nat, a)
	}
	for i, name := range []string{"dr1", "dr2"} {
		a := netip.AddrFrom4([4]byte{10, 77, 0, byte(21 + i)})
		h := l.AddHost(name, a.String()+"/24")
		h.ConfigureDRRealServer(drVIP.Addr().String())
		serve(h)
		dr = append(dr, a)
	}
	// A DR real server without the VIP on lo drops what the director
	// sends it: the director's entries stay in SYN_RECV.
	dead := netip.MustParseAddr("10.77.0.31")
	l.AddHost("dead", dead.String()+"/24")

	c, err := ipvs.New(ipvs.Options{NetNS: dir.NetNSPath()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	add := func(vip netip.AddrPort, fwd ipvs.Forwarding, weights map[netip.Addr]int32) {
		key := ipvs.TCPKey(vip)
		if err := c.AddService(ipvs.Service{ServiceKey: key, Scheduler: "rr"}); err != nil {
			t.Fatal(err)
		}
		for a, w := range weights {
			if err := c.AddRealServer(key, ipvs.RealServer{Address: a, Port: 80, Forwarding: fwd, Weight: w}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(natVIP, ipvs.Masquerade, map[netip.Addr]int32{nat[0]: 1, nat[1]: 1})
	add(drVIP, ipvs.DirectRoute, map[netip.Addr]int32{dr[0]: 1, dr[1]: 1})
	add(deadVIP, ipvs.DirectRoute, map[netip.Addr]int32{dead: 1})

	// Traffic: keep-alive connections held open, some closed.
	var open []net.Conn
	get := func(vip netip.AddrPort) net.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := client.DialContext(ctx, "tcp", vip.String())
		if err != nil {
			t.Fatalf("connecting to %v: %v", vip, err)
		}
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", vip.Addr())
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading the answer from %v: %v", vip, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return conn
	}
	for range 4 {
		open = append(open, get(natVIP), get(drVIP))
	}
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for _, c := range open[:3] {
		c.Close() // FIN_WAIT, then TIME_WAIT on the director
	}
	open = open[3:]
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if c, err := client.DialContext(ctx, "tcp", deadVIP.String()); err == nil {
				c.Close()
			}
		})
	}
	wg.Wait()

	// Take ipvsadm, lvstop, ipvsadm: when both ipvsadm readings agree,
	// lvstop read the same table.
	var (
		report          Report
		states          map[string]int
		wantSvc, gotSvc map[string]string
		text            string
		agreed          bool
	)
	for try := 0; try < 5 && !agreed; try++ {
		ln1, lc1 := vmRun(t, dir, "ipvsadm", "-Ln"), vmRun(t, dir, "ipvsadm", "-lcn")
		js := vmRun(t, dir, bin, "--once", "--output", "json")
		text = vmRun(t, dir, bin, "--once")
		ln2, lc2 := vmRun(t, dir, "ipvsadm", "-Ln"), vmRun(t, dir, "ipvsadm", "-lcn")
		if ln1 != ln2 || !maps.Equal(ipvsadmStates(lc1), ipvsadmStates(lc2)) {
			t.Logf("the table moved while lvstop read it; again")
			continue
		}
		agreed = true
		if err := json.Unmarshal([]byte(js), &report); err != nil {
			t.Fatalf("lvstop --output json: %v\n%s", err, js)
		}
		wantSvc, gotSvc = ipvsadmServers(ln1), lvstopServers(report)
		states = ipvsadmStates(lc1)
		t.Logf("ipvsadm -Ln:\n%s\nipvsadm -lcn:\n%s", ln1, lc1)
	}
	if !agreed {
		t.Fatal("the table never held still between two ipvsadm readings")
	}
	t.Logf("lvstop --once:\n%s", text)

	if !maps.Equal(wantSvc, gotSvc) {
		keys := slices.Sorted(maps.Keys(wantSvc))
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(gotSvc)) {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			fmt.Fprintf(&b, "%-45s ipvsadm %-22q lvstop %q\n", k, wantSvc[k], gotSvc[k])
		}
		t.Errorf("services and real servers (FWD WEIGHT ACTIVE INACT) differ:\n%s", b.String())
	}
	if got := lvstopStates(report); !maps.Equal(states, got) {
		t.Errorf("connection states differ:\nipvsadm -lcn: %v\nlvstop:       %v", states, got)
	}
	// The states the traffic made are there.
	var est, closing, synRecv int
	for k, n := range states {
		switch {
		case strings.HasSuffix(k, " ESTABLISHED"):
			est += n
		case strings.HasSuffix(k, " TIME_WAIT"), strings.HasSuffix(k, " FIN_WAIT"), strings.HasSuffix(k, " CLOSE_WAIT"), strings.HasSuffix(k, " CLOSE"):
			closing += n
		case strings.HasSuffix(k, " SYN_RECV"):
			synRecv += n
		}
	}
	if est != 5 || closing < 3 || synRecv < SynRecvMin {
		t.Errorf("states: %d ESTABLISHED (want 5), %d closing (want >= 3), %d SYN_RECV (want >= %d)", est, closing, synRecv, SynRecvMin)
	}
	// The dead real server stands out, in JSON and in the text.
	for _, s := range report.Services {
		if s.Key != "TCP "+deadVIP.String() {
			continue
		}
		if len(s.RealServers) != 1 || !slices.Contains(s.RealServers[0].Alerts, "syn_recv_pileup") {
			t.Errorf("%s: %+v, want the syn_recv_pileup alert", s.Key, s.RealServers)
		}
	}
	if !strings.Contains(text, "SYN_RECV pile-up") {
		t.Errorf("the text output does not point at the SYN_RECV pile-up:\n%s", text)
	}
}
