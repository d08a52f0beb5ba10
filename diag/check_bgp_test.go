package diag

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/statusapi"
)

func TestBGPFindings(t *testing.T) {
	vip := netip.MustParseAddr("192.168.0.100")
	since := time.Date(2026, 12, 5, 12, 0, 3, 0, time.UTC)
	peers := func(up ...bool) []statusapi.BGPPeerStatus {
		var out []statusapi.BGPPeerStatus
		for i, u := range up {
			st := "established"
			if !u {
				st = "active"
			}
			out = append(out, statusapi.BGPPeerStatus{Address: "10.0.0." + string(rune('1'+i)), ASN: 65000, State: st, Up: u})
		}
		return out
	}
	announced := []statusapi.BGPVIPStatus{{Address: "192.168.0.100", Prefix: "192.168.0.100/32", Announced: true, Reason: "every service at or above the high watermark 0%", Since: since}}
	withdrawn := []statusapi.BGPVIPStatus{{Address: "192.168.0.100", Prefix: "192.168.0.100/32", Reason: "TCP 192.168.0.100:80 has no real server up", Since: since}}
	cases := []struct {
		name     string
		bgp      statusapi.BGPStatus
		findings []string // ID: first evidence
		note     string
	}{
		{"announced to an established peer", statusapi.BGPStatus{ASN: 65001, Phase: "running", Peers: peers(true), VIPs: announced},
			nil, "192.168.0.100/32 announced to 10.0.0.1 since 12:00:03"},
		{"withdrawn says why", statusapi.BGPStatus{ASN: 65001, Phase: "running", Peers: peers(true), VIPs: withdrawn},
			[]string{"bgp-vip-withdrawn: withdrawn since 12:00:03: TCP 192.168.0.100:80 has no real server up"}, "peers up: 10.0.0.1; down: none"},
		{"withdrawn by a drill", statusapi.BGPStatus{ASN: 65001, Phase: "running", Peers: peers(true), VIPs: []statusapi.BGPVIPStatus{{Address: "192.168.0.100", Prefix: "192.168.0.100/32", Reason: "withdrawn by a drill until 12:01:03 (status API)", Since: since, DrillUntil: since.Add(time.Minute)}}},
			[]string{"bgp-vip-drill: withdrawn by a failover drill until 12:01:03 (lvsdiag drill, or a POST to lvsd's socket)"}, "peers up: 10.0.0.1"},
		{"a peer down", statusapi.BGPStatus{ASN: 65001, Phase: "running", Peers: peers(true, false), VIPs: announced},
			[]string{"bgp-peer-down: session with 10.0.0.2 (as 65000) is active, not established"}, "down: 10.0.0.2"},
		{"announced to nobody", statusapi.BGPStatus{ASN: 65001, Phase: "running", Peers: peers(false), VIPs: announced},
			[]string{"bgp-peer-down: session with 10.0.0.1 (as 65000) is active, not established", "bgp-vip-unheard: announced, but to no established peer: no router knows this director has it"}, ""},
		{"not a BGP VIP", statusapi.BGPStatus{ASN: 65001, Phase: "running", Peers: peers(true)},
			nil, "192.168.0.100 is not announced over BGP by this director"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			notes, fs := bgpFindings(bgpFacts{VIP: vip, BGP: &c.bgp})
			var got []string
			for _, f := range fs {
				got = append(got, f.ID+": "+f.Evidence[0])
			}
			if strings.Join(got, "\n") != strings.Join(c.findings, "\n") {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.findings, "\n"))
			}
			if !strings.Contains(strings.Join(notes, "\n"), c.note) {
				t.Errorf("notes %q lack %q", notes, c.note)
			}
		})
	}
}
