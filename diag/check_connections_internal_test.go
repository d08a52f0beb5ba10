package diag

import (
	"net/netip"
	"testing"

	"github.com/lvskit/lvskit/director/ipvs"
)

func TestConnectionsFindings(t *testing.T) {
	svc := ipvs.TCPKey(netip.AddrPortFrom(tVIP, 80))
	other := ipvs.TCPKey(netip.MustParseAddrPort("10.9.0.101:80"))
	rs1, rs2, gone := netip.MustParseAddrPort("10.9.0.21:80"), netip.MustParseAddrPort("10.9.0.22:80"), netip.MustParseAddrPort("10.9.0.29:80")
	rsKey := func(ap netip.AddrPort) ipvs.RealServerKey {
		return ipvs.RealServerKey{Address: ap.Addr(), Port: ap.Port()}
	}
	table := func(groups map[ipvs.ConnGroup]int) *ipvs.ConnSummary {
		s := ipvs.NewConnSummary()
		for g, n := range groups {
			s.Groups[g] = n
			s.Entries += n
		}
		return s
	}
	view := func(weight2 int32, health2 string) *directorView {
		return &directorView{IPVS: true, RealServers: []rsView{
			{Service: svc.String(), Address: rs1, Forwarding: "Route", Weight: 1},
			{Service: svc.String(), Address: rs2, Forwarding: "Route", Weight: weight2, Health: health2, Why: "connection refused"},
		}}
	}
	for _, tc := range []struct {
		name   string
		view   *directorView
		groups map[ipvs.ConnGroup]int
		ids    []string
		notes  []string
	}{
		{"healthy spread", view(1, "up"), map[ipvs.ConnGroup]int{
			{Service: svc, RealServer: rsKey(rs1), State: ipvs.StateEstablished}:   3,
			{Service: svc, RealServer: rsKey(rs2), State: ipvs.StateEstablished}:   2,
			{Service: other, RealServer: rsKey(rs2), State: ipvs.StateEstablished}: 7,
		}, nil, []string{"12 entries in the connection table, 5 for 10.9.0.100:80", "10.9.0.21:80: 3 ESTABLISHED, 0 SYN_RECV"}},
		{"SYN_RECV piles up on one real server", view(1, "up"), map[ipvs.ConnGroup]int{
			{Service: svc, RealServer: rsKey(rs1), State: ipvs.StateEstablished}: 3,
			{Service: svc, RealServer: rsKey(rs2), State: ipvs.StateSynRecv}:     6,
		}, []string{"conn-syn-recv real server 10.9.0.22:80"}, nil},
		{"a few SYN_RECV are normal", view(1, "up"), map[ipvs.ConnGroup]int{
			{Service: svc, RealServer: rsKey(rs2), State: ipvs.StateSynRecv}: 4,
		}, nil, nil},
		{"quiesced with established connections and templates", view(0, "up"), map[ipvs.ConnGroup]int{
			{Service: svc, RealServer: rsKey(rs2), State: ipvs.StateEstablished}: 2,
			{Service: svc, RealServer: rsKey(rs2), Template: true}:               1,
		}, []string{"conn-template-dead real server 10.9.0.22:80", "conn-quiesced-active real server 10.9.0.22:80"}, nil},
		{"templates pin clients to a real server lvsd says is down", view(1, "down"), map[ipvs.ConnGroup]int{
			{Service: svc, RealServer: rsKey(rs2), Template: true}: 4,
		}, []string{"conn-template-dead real server 10.9.0.22:80"}, nil},
		{"templates pin clients to a server no longer in the service", view(1, "up"), map[ipvs.ConnGroup]int{
			{Service: svc, RealServer: rsKey(gone), Template: true}: 2,
		}, []string{"conn-template-dead real server 10.9.0.29:80"}, nil},
		{"an unknown server's templates without any source of real servers", &directorView{}, map[ipvs.ConnGroup]int{
			{Service: svc, RealServer: rsKey(gone), Template: true}: 2,
		}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := connectionsFindings(connectionsFacts{target: tTarget, View: tc.view, Conns: table(tc.groups)})
			checkOutcome(t, o, "", tc.ids, tc.notes...)
		})
	}
}

func TestIPVSAdmServiceArguments(t *testing.T) {
	for key, want := range map[string]string{
		"TCP 10.0.0.1:80":      "-t 10.0.0.1:80",
		"UDP 10.0.0.1:53":      "-u 10.0.0.1:53",
		"SCTP 10.0.0.1:9":      "--sctp-service 10.0.0.1:9",
		"TCP [2001:db8::1]:80": "-t [2001:db8::1]:80",
		"FWM 7":                "-f 7",
		"FWM 7 IPv6":           "-f 7",
	} {
		if got := ipvsadmService(key); got != want {
			t.Errorf("ipvsadmService(%q) = %q, want %q", key, got, want)
		}
	}
}
