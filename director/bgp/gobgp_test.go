//go:build !nobgp

package bgp

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppacket "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// router is an independent GoBGP speaker on loopback standing in for the
// upstream router: it listens, accepts lvsd's session and keeps what it is sent.
type router struct {
	srv  *server.BgpServer
	addr netip.Addr
	port uint16
	wg   sync.WaitGroup
}

// freePort finds a TCP port nobody listens on at addr.
func freePort(t *testing.T, addr netip.Addr) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Skipf("needs loopback address %v: %v", addr, err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func startRouter(t *testing.T, addr netip.Addr, asn uint32, neighbors map[netip.Addr]uint32, password string) *router {
	t.Helper()
	r := &router{srv: server.NewBgpServer(), addr: addr, port: freePort(t, addr)}
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.srv.Serve() }()
	t.Cleanup(r.stop)
	ctx := context.Background()
	err := r.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: "10.255.0.1", ListenPort: int32(r.port), ListenAddresses: []string{addr.String()},
	}})
	if err != nil {
		t.Fatalf("starting router: %v", err)
	}
	for n, nasn := range neighbors {
		p := apiPeer(PeerConfig{Address: n, ASN: nasn, Passive: true, Password: password})
		if err := r.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
			t.Fatalf("router: adding peer %v: %v", n, err)
		}
	}
	return r
}

func (r *router) stop() {
	r.srv.Stop()
	r.wg.Wait()
}

// routes returns the prefixes in the router's RIB, sorted.
func (r *router) routes(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, fam := range []bgppacket.Family{bgppacket.RF_IPv4_UC, bgppacket.RF_IPv6_UC} {
		err := r.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam},
			func(prefix bgppacket.NLRI, _ []*apiutil.Path) { out = append(out, prefix.String()) })
		if err != nil {
			t.Fatalf("router: listing %v paths: %v", fam, err)
		}
	}
	slices.Sort(out)
	return out
}

// eventually polls cond until it holds or the deadline passes; BGP sessions
// start after GoBGP's connect timer (about 2 s), so the deadline is generous.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	lvsdAddr   = netip.MustParseAddr("127.0.0.2")
	routerAddr = netip.MustParseAddr("127.0.0.3")
)

func startLvsd(t *testing.T, r *router, password string, log *slog.Logger) *GoBGP {
	t.Helper()
	g, err := NewGoBGP(Config{
		ASN: 65001, RouterID: netip.MustParseAddr("10.255.0.2"),
		Peers: []PeerConfig{{
			Address: routerAddr, ASN: 65000, Port: r.port, LocalAddress: lvsdAddr,
			HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Password: password,
		}},
	}, Options{Logger: log})
	if err != nil {
		t.Fatalf("NewGoBGP: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestRouterReceivesAnnouncedVIPsAndLosesThemOnWithdraw(t *testing.T) {
	const password = "s3cret-md5-key"
	r := startRouter(t, routerAddr, 65000, map[netip.Addr]uint32{lvsdAddr: 65001}, password)
	var logs bytes.Buffer
	g := startLvsd(t, r, password, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))

	v4 := HostPrefix(netip.MustParseAddr("192.0.2.10"))
	v6 := HostPrefix(netip.MustParseAddr("2001:db8::10"))
	comm, _ := ParseCommunity("65001:100")
	for _, p := range []netip.Prefix{v4, v6} {
		if err := g.Announce(p, Attributes{Communities: []Community{comm}}); err != nil {
			t.Fatalf("Announce(%v): %v", p, err)
		}
	}
	eventually(t, "the session is established", func() bool {
		ps, err := g.Peers()
		return err == nil && len(ps) == 1 && ps[0].Up()
	})
	want := []string{"192.0.2.10/32", "2001:db8::10/128"}
	eventually(t, "the router has both VIPs", func() bool { return slices.Equal(r.routes(t), want) })

	ps, _ := g.Peers()
	if ps[0].Address != routerAddr || ps[0].ASN != 65000 || ps[0].Since.IsZero() {
		t.Errorf("Peers() = %+v, want the router %v as 65000 with an up-since time", ps, routerAddr)
	}
	eventually(t, "the peer counts two advertised prefixes", func() bool {
		ps, err := g.Peers()
		return err == nil && ps[0].Advertised == 2
	})

	if err := g.Withdraw(v4); err != nil {
		t.Fatalf("Withdraw(%v): %v", v4, err)
	}
	eventually(t, "the router lost the IPv4 VIP", func() bool {
		return slices.Equal(r.routes(t), []string{"2001:db8::10/128"})
	})
	if err := g.Withdraw(v4); err != nil {
		t.Errorf("withdrawing twice: %v, want nil", err)
	}

	// Close ends the session with a notification: the router drops the rest
	// at once, not after the hold time.
	g.Close()
	eventually(t, "the router lost every route after Close", func() bool { return len(r.routes(t)) == 0 })
	if err := g.Announce(v4, Attributes{}); err == nil {
		t.Error("Announce after Close succeeded")
	}

	if strings.Contains(logs.String(), password) {
		t.Errorf("the log contains the peer's password:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "component=gobgp") {
		t.Errorf("GoBGP's records did not reach the logger passed in; log:\n%s", logs.String())
	}
}

func TestRoutesFromPeersAreNotImported(t *testing.T) {
	r := startRouter(t, routerAddr, 65000, map[netip.Addr]uint32{lvsdAddr: 65001}, "")
	g := startLvsd(t, r, "", nil)
	// The router originates a default route and a prefix toward lvsd.
	for _, p := range []string{"0.0.0.0/0", "198.51.100.0/24"} {
		nlri, _ := bgppacket.NewIPAddrPrefix(netip.MustParsePrefix(p))
		nh, _ := bgppacket.NewPathAttributeNextHop(routerAddr)
		path := &apiutil.Path{Family: bgppacket.RF_IPv4_UC, Nlri: nlri,
			Attrs: []bgppacket.PathAttributeInterface{bgppacket.NewPathAttributeOrigin(0), nh}}
		if _, err := r.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}}); err != nil {
			t.Fatalf("router: adding %s: %v", p, err)
		}
	}
	vip := HostPrefix(netip.MustParseAddr("192.0.2.20"))
	if err := g.Announce(vip, Attributes{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the router has lvsd's VIP", func() bool { return slices.Contains(r.routes(t), "192.0.2.20/32") })

	eventually(t, "lvsd received the router's two prefixes", func() bool {
		var received uint64
		g.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
			for _, af := range p.GetAfiSafis() {
				received += af.GetState().GetReceived()
			}
		})
		return received == 2
	})
	var rib []string
	g.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgppacket.RF_IPv4_UC},
		func(prefix bgppacket.NLRI, _ []*apiutil.Path) { rib = append(rib, prefix.String()) })
	if !slices.Equal(rib, []string{"192.0.2.20/32"}) {
		t.Errorf("lvsd's RIB = %v, want only its own VIP", rib)
	}
}

func TestWrongPasswordKeepsTheSessionDown(t *testing.T) {
	r := startRouter(t, routerAddr, 65000, map[netip.Addr]uint32{lvsdAddr: 65001}, "right")
	g := startLvsd(t, r, "wrong", nil)
	if err := g.Announce(HostPrefix(netip.MustParseAddr("192.0.2.30")), Attributes{}); err != nil {
		t.Fatal(err)
	}
	// A control: a second speaker with the right password on another
	// address gets established, so the wrong one had the same chance.
	ok, err := NewGoBGP(Config{ASN: 65001, RouterID: netip.MustParseAddr("10.255.0.3"), Peers: []PeerConfig{{
		Address: routerAddr, ASN: 65000, Port: r.port, LocalAddress: netip.MustParseAddr("127.0.0.4"), Password: "right",
	}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Close()
	if err := r.srv.AddPeer(context.Background(), &api.AddPeerRequest{Peer: apiPeer(PeerConfig{
		Address: netip.MustParseAddr("127.0.0.4"), ASN: 65001, Passive: true, Password: "right"})}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the speaker with the right password is established", func() bool {
		ps, err := ok.Peers()
		return err == nil && ps[0].Up()
	})
	ps, err := g.Peers()
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].Up() {
		t.Errorf("the session with a wrong MD5 password is %s", ps[0].State)
	}
	if got := r.routes(t); len(got) != 0 {
		t.Errorf("router has %v from a peer with a wrong password", got)
	}
}

func TestCloseStopsEveryGoroutine(t *testing.T) {
	before := gobgpGoroutines()
	r := startRouter(t, routerAddr, 65000, map[netip.Addr]uint32{lvsdAddr: 65001}, "")
	g := startLvsd(t, r, "", nil)
	eventually(t, "the session is established", func() bool {
		ps, err := g.Peers()
		return err == nil && ps[0].Up()
	})
	g.Close()
	r.stop()
	eventually(t, "GoBGP's goroutines ended", func() bool { return gobgpGoroutines() <= before })
}

func gobgpGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "osrg/gobgp") {
			n++
		}
	}
	return n
}

func TestNewGoBGPRejectsBadConfig(t *testing.T) {
	rid := netip.MustParseAddr("10.0.0.1")
	peer := PeerConfig{Address: netip.MustParseAddr("10.0.0.2"), ASN: 65000}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no asn", Config{RouterID: rid}, "asn must not be 0"},
		{"ipv6 router id", Config{ASN: 1, RouterID: netip.MustParseAddr("::1")}, "must be an IPv4 address"},
		{"listen port without address", Config{ASN: 1, RouterID: rid, ListenPort: 1179}, "needs listen addresses"},
		{"duplicate peer", Config{ASN: 1, RouterID: rid, Peers: []PeerConfig{peer, peer}}, "configured twice"},
		{"short hold time", Config{ASN: 1, RouterID: rid, Peers: []PeerConfig{{Address: peer.Address, ASN: 2, HoldTime: time.Second}}}, "at least 3s"},
		{"keepalive >= hold", Config{ASN: 1, RouterID: rid, Peers: []PeerConfig{{Address: peer.Address, ASN: 2, HoldTime: 9 * time.Second, Keepalive: 9 * time.Second}}}, "shorter than the hold time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := NewGoBGP(c.cfg, Options{})
			if err == nil {
				g.Close()
				t.Fatalf("NewGoBGP succeeded, want an error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestAnnounceRejectsPrefixesWithHostBits(t *testing.T) {
	g, err := NewGoBGP(Config{ASN: 65001, RouterID: netip.MustParseAddr("10.0.0.1")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	err = g.Announce(netip.MustParsePrefix("192.0.2.1/24"), Attributes{})
	if err == nil || !strings.Contains(err.Error(), "did you mean 192.0.2.0/24") {
		t.Errorf("Announce(192.0.2.1/24) = %v, want a host-bits error", err)
	}
	err = g.Announce(netip.MustParsePrefix("192.0.2.1/32"), Attributes{NextHop: netip.MustParseAddr("2001:db8::1")})
	if err == nil || !strings.Contains(err.Error(), "not of the prefix's family") {
		t.Errorf("Announce with an IPv6 next hop for an IPv4 prefix = %v", err)
	}
}

func TestParseCommunity(t *testing.T) {
	for in, want := range map[string]string{"65000:100": "65000:100", "0:0": "0:0", "65535:65535": "65535:65535"} {
		c, err := ParseCommunity(in)
		if err != nil || c.String() != want {
			t.Errorf("ParseCommunity(%q) = %v, %v; want %s", in, c, err, want)
		}
	}
	for _, in := range []string{"65000", "65536:1", "1:65536", "a:b", ""} {
		if _, err := ParseCommunity(in); err == nil {
			t.Errorf("ParseCommunity(%q) succeeded", in)
		}
	}
}
