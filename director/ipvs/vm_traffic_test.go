//go:build vmtest

package ipvs_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/lab"
)

// serveName runs an HTTP server on h:80 that answers with the host's name.
func serveName(t *testing.T, h *lab.Host) {
	t.Helper()
	ln, err := h.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, h.Name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// held is a client connection kept open after one request.
type held struct {
	conn   net.Conn
	client netip.AddrPort
	server string // the real server's name, from the body
}

// get opens a keep-alive connection from client to vip and asks who serves it.
func get(t *testing.T, client *lab.Host, vip netip.AddrPort) held {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, "tcp", vip.String())
	if err != nil {
		t.Fatalf("connecting to %v: %v", vip, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", vip.Addr())
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer from %v: %v", vip, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return held{conn: c, client: netip.MustParseAddrPort(c.LocalAddr().String()), server: string(body)}
}

// connTable reads the director's /proc/net/ip_vs_conn through our parser.
func connTable(t *testing.T, dir *lab.Host) []ipvs.Connection {
	t.Helper()
	conns, err := ipvs.ParseConnections(strings.NewReader(run(t, dir, "cat", "/proc/net/ip_vs_conn")))
	if err != nil {
		t.Fatalf("parsing /proc/net/ip_vs_conn: %v", err)
	}
	return conns
}

func findConn(conns []ipvs.Connection, client netip.AddrPort) (ipvs.Connection, bool) {
	i := slices.IndexFunc(conns, func(c ipvs.Connection) bool { return c.Client == client && !c.Template })
	if i < 0 {
		return ipvs.Connection{}, false
	}
	return conns[i], true
}

// TestVMTraffic sends real connections from a client namespace through a
// director to real servers over a masquerade service and a direct-route
// service, and checks the kernel's connection table as our parser reads it:
// the right client, VIP and real server, ESTABLISHED while open, then
// FIN_WAIT or TIME_WAIT once closed. Counters and ActiveConns are checked
// through Client.
func TestVMTraffic(t *testing.T) {
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	client := l.AddHost("client", "10.77.0.2/24")
	dir := l.AddHost("director", "10.77.0.10/24", "10.78.0.1/24")
	natVIP := netip.MustParseAddrPort("10.77.0.100:80")
	drVIP := netip.MustParseAddrPort("10.77.0.200:80")
	dir.AddAddr(lab.HostInterface, natVIP.Addr().String()+"/32")
	dir.AddAddr(lab.HostInterface, drVIP.Addr().String()+"/32")
	dir.EnableForwarding()
	for _, k := range []string{"all", "default", lab.HostInterface} {
		dir.SetSysctl("net.ipv4.conf."+k+".send_redirects", "0")
	}

	// NAT real servers live on their own subnet and route back through
	// the director; DR real servers share the client's LAN with the VIP
	// on lo.
	nat := map[string]netip.Addr{}
	dr := map[string]netip.Addr{}
	for i, name := range []string{"nat1", "nat2"} {
		a := netip.AddrFrom4([4]byte{10, 78, 0, byte(11 + i)})
		h := l.AddHost(name, a.String()+"/24")
		h.SetDefaultRoute(netip.MustParseAddr("10.78.0.1"))
		serveName(t, h)
		nat[name] = a
	}
	for i, name := range []string{"dr1", "dr2"} {
		a := netip.AddrFrom4([4]byte{10, 77, 0, byte(21 + i)})
		h := l.AddHost(name, a.String()+"/24")
		h.ConfigureDRRealServer(drVIP.Addr().String())
		serveName(t, h)
		dr[name] = a
	}

	c, err := ipvs.New(ipvs.Options{NetNS: dir.NetNSPath()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	natKey, drKey := ipvs.TCPKey(natVIP), ipvs.TCPKey(drVIP)
	for key, rss := range map[ipvs.ServiceKey]map[string]netip.Addr{natKey: nat, drKey: dr} {
		if err := c.AddService(ipvs.Service{ServiceKey: key, Scheduler: "rr"}); err != nil {
			t.Fatal(err)
		}
		fwd := ipvs.Masquerade
		if key == drKey {
			fwd = ipvs.DirectRoute
		}
		for _, a := range rss {
			if err := c.AddRealServer(key, ipvs.RealServer{Address: a, Port: 80, Forwarding: fwd, Weight: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}

	type expect struct {
		held
		vip netip.AddrPort
		rip netip.Addr
	}
	var open []expect
	for _, svc := range []struct {
		vip netip.AddrPort
		rss map[string]netip.Addr
	}{{natVIP, nat}, {drVIP, dr}} {
		served := map[string]int{}
		for range 4 {
			h := get(t, client, svc.vip)
			rip, ok := svc.rss[h.server]
			if !ok {
				t.Fatalf("%v answered by %q, not one of its real servers", svc.vip, h.server)
			}
			served[h.server]++
			open = append(open, expect{held: h, vip: svc.vip, rip: rip})
		}
		for name := range svc.rss {
			if served[name] != 2 {
				t.Errorf("rr over %v: %v, want 2 connections on each real server", svc.vip, served)
			}
		}
	}

	conns := connTable(t, dir)
	for _, e := range open {
		got, ok := findConn(conns, e.client)
		switch {
		case !ok:
			t.Errorf("no entry for client %v in the connection table", e.client)
		case got.Protocol != ipvs.TCP || got.Virtual != e.vip || got.RealServer != netip.AddrPortFrom(e.rip, 80):
			t.Errorf("entry for %v: %v %v -> %v, want TCP %v -> %v:80", e.client, got.Protocol, got.Virtual, got.RealServer, e.vip, e.rip)
		case got.State != ipvs.StateEstablished:
			t.Errorf("entry for %v is %v while open, want ESTABLISHED", e.client, got.State)
		}
	}
	crossCheckIPVSADM(t, dir, conns)

	for _, key := range []ipvs.ServiceKey{natKey, drKey} {
		rss, err := c.RealServers(key)
		if err != nil {
			t.Fatal(err)
		}
		var active uint32
		for _, r := range rss {
			active += r.ActiveConns
		}
		if active != 4 {
			t.Errorf("%v: ActiveConns sum %d, want 4", key, active)
		}
		// Since Linux 6.2 the estimator kthreads fold the per-CPU
		// counters into what netlink reports every 2 s: wait for them.
		svc := waitStats(t, c, key, func(st ipvs.Stats) bool { return st.Conns == 4 && st.PacketsIn > 0 && st.BytesIn > 0 })
		if svc.Stats.Conns != 4 || svc.Stats.PacketsIn == 0 || svc.Stats.BytesIn == 0 {
			t.Errorf("%v stats %+v, want 4 conns and packets in", key, svc.Stats)
		}
		rss, _ = c.RealServers(key)
		for _, r := range rss {
			if r.Stats.Conns != 2 {
				t.Errorf("%v -> %v: Stats.Conns = %d, want 2", key, r.Key(), r.Stats.Conns)
			}
		}
	}
	if err := c.ZeroService(natKey); err != nil {
		t.Fatal(err)
	}
	if svc, _ := c.Service(natKey); svc.Stats.Conns != 0 {
		t.Errorf("after ZeroService: Conns = %d", svc.Stats.Conns)
	}

	// Close every connection: the kernel's entries must leave ESTABLISHED
	// for FIN_WAIT or TIME_WAIT.
	for _, e := range open {
		e.conn.Close()
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		conns = connTable(t, dir)
		var pending []string
		for _, e := range open {
			got, ok := findConn(conns, e.client)
			if !ok || (got.State != ipvs.StateFinWait && got.State != ipvs.StateTimeWait) {
				pending = append(pending, fmt.Sprintf("%v via %v: %v", e.client, e.vip, got.State))
			}
		}
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections not in FIN_WAIT/TIME_WAIT after close:\n%s", strings.Join(pending, "\n"))
		}
		time.Sleep(100 * time.Millisecond) // polling the kernel's table, not waiting blind
	}
	for _, e := range open {
		got, _ := findConn(conns, e.client)
		t.Logf("%v via %v -> %v: %v, expires in %v", e.client, e.vip, got.RealServer, got.State, got.Expires)
	}
}

// crossCheckIPVSADM compares our parse of the table with ipvsadm -lcn, the
// independent reader, taken right after.
func crossCheckIPVSADM(t *testing.T, dir *lab.Host, conns []ipvs.Connection) {
	t.Helper()
	var ours, theirs []string
	for _, c := range conns {
		if !c.Template {
			ours = append(ours, fmt.Sprintf("%v %v %v %v %v", c.Protocol, c.State, c.Client, c.Virtual, c.RealServer))
		}
	}
	// "TCP  14:59  ESTABLISHED 10.77.0.2:41234 10.77.0.100:80     10.78.0.11:80"
	for line := range strings.Lines(run(t, dir, "ipvsadm", "-lcn")) {
		f := strings.Fields(line)
		if len(f) != 6 || f[0] == "pro" || f[0] == "IPVS" {
			continue
		}
		theirs = append(theirs, fmt.Sprintf("%s %s %s %s %s", f[0], f[2], f[3], f[4], f[5]))
	}
	slices.Sort(ours)
	slices.Sort(theirs)
	if !slices.Equal(ours, theirs) {
		t.Errorf("connection table differs from ipvsadm -lcn:\nours:   %q\nipvsadm: %q", ours, theirs)
	}
}

// waitStats polls a service's counters until ok or 10 s pass, and returns
// the last read.
func waitStats(t *testing.T, c ipvs.Client, key ipvs.ServiceKey, ok func(ipvs.Stats) bool) ipvs.Service {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		svc, err := c.Service(key)
		if err != nil {
			t.Fatal(err)
		}
		if ok(svc.Stats) || time.Now().After(deadline) {
			return svc
		}
		time.Sleep(100 * time.Millisecond) // polling the kernel's counters
	}
}
