package diag

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/probes"
	"github.com/lvskit/lvskit/probes/probestest"
)

var (
	trVIP    = netip.MustParseAddrPort("10.77.0.100:80")
	trClient = netip.MustParseAddrPort("10.77.0.2:40000")
	trRS1    = netip.MustParseAddrPort("10.77.0.21:80")
	trRS2    = netip.MustParseAddrPort("10.77.0.22:80")
)

func pkt(skb uint64) probestest.Packet {
	return probestest.Packet{SKB: skb, At: time.Duration(skb) * time.Millisecond, Client: trClient, VIP: trVIP}
}

func weights(ws ...int32) probes.GrouperOptions {
	return probes.GrouperOptions{Destinations: func(probes.Service) ([]probes.Destination, bool) {
		var ds []probes.Destination
		for i, w := range ws {
			ds = append(ds, probes.Destination{Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 77, 0, byte(21 + i)}), 80), Weight: w})
		}
		return ds, true
	}}
}

func facts(opts probes.GrouperOptions, packets ...[]probes.Event) traceFacts {
	paths := probestest.Group(opts, packets...)
	var sum probes.Summary
	for _, p := range paths {
		sum.Add(p)
	}
	return traceFacts{VIP: trVIP.Addr(), Port: trVIP.Port(), Window: 2500 * time.Millisecond, Paths: paths, Sum: sum, Probed: true}
}

func TestTraceFindings(t *testing.T) {
	nat := facts(probes.GrouperOptions{}, pkt(1).Forwarded(trRS1, probes.Masquerade, "rr"), pkt(2).Forwarded(trRS2, probes.Masquerade, "rr"), pkt(3).NATReply(trRS1))
	nat.NAT = []netip.AddrPort{trRS1, trRS2}
	// The director answering a ping to its VIP (the reachability check's)
	// while the trace runs is no finding.
	ping := facts(probes.GrouperOptions{}, pkt(1).Forwarded(trRS1, probes.DirectRoute, "rr"), pkt(2).LocalStack())
	ping.Paths[1].Tuple = probes.Tuple{Protocol: "ICMP", Src: netip.AddrPortFrom(trVIP.Addr(), 0), Dst: netip.AddrPortFrom(trVIP.Addr(), 0)}
	for _, tc := range []struct {
		name  string
		facts traceFacts
		want  []string // "id | subject"
		// evidence and fix must contain these
		evidence, fix string
	}{
		{name: "healthy direct routing", facts: facts(probes.GrouperOptions{}, pkt(1).Forwarded(trRS1, probes.DirectRoute, "wlc"), pkt(2).Forwarded(trRS2, probes.DirectRoute, "wlc"))},
		{name: "all weights 0", facts: facts(weights(0, 0), pkt(1).NoDestination("wlc"), pkt(2).NoDestination("wlc")),
			want:     []string{"trace-no-destination | IPVS service TCP 10.77.0.100:80"},
			evidence: "2 of 2 traced packets: IPVS found no destination (all real servers of TCP 10.77.0.100:80 have weight 0)",
			fix:      "ipvsadm -e --tcp-service 10.77.0.100:80 -r REAL_SERVER -w 1"},
		{name: "no real servers", facts: facts(weights(), pkt(1).NoDestination("rr")),
			want: []string{"trace-no-destination | IPVS service TCP 10.77.0.100:80"}, evidence: "has no real servers", fix: "ipvsadm -a --tcp-service 10.77.0.100:80"},
		{name: "no service: local stack", facts: facts(probes.GrouperOptions{}, pkt(1).LocalStack()),
			want:     []string{"trace-local-stack | packets to 10.77.0.100:80"},
			evidence: "TCP 10.77.0.2:40000 -> 10.77.0.100:80 [SYN]: netif_receive_skb -> ip_vs_in_hook -> tcp_v4_rcv -> consume_skb => local",
			fix:      "ipvsadm -A --tcp-service 10.77.0.100:80 -s wlc"},
		{name: "a ping to the VIP goes to the local stack", facts: ping},
		// A reply to the checklist's own ping, queued on its raw socket
		// and freed when the socket closed, is no drop on the way.
		{name: "the checklist's socket closes with a reply unread", facts: facts(probes.GrouperOptions{}, pkt(1).Forwarded(trRS1, probes.DirectRoute, "rr"), pkt(2).SocketPurge())},
		{name: "rp_filter", facts: facts(probes.GrouperOptions{}, pkt(1).KernelDrop("IP_RPFILTER", "ip_rcv_finish_core+0x1b2")),
			want: []string{"trace-kernel-dropped | packets to 10.77.0.100:80"}, evidence: "the reverse path filter (rp_filter)", fix: "rp_filter=2"},
		{name: "firewall", facts: facts(probes.GrouperOptions{}, pkt(1).KernelDrop("NETFILTER_DROP", "nf_hook_slow+0x8d")),
			want: []string{"trace-netfilter-dropped | firewall on the director"}, evidence: "netfilter dropped it: a firewall rule", fix: "nft list ruleset"},
		{name: "NAT reply missing from one real server", facts: nat,
			want:     []string{"trace-nat-no-reply | NAT replies from 10.77.0.22:80"},
			evidence: "1 packet sent by NAT to 10.77.0.22:80; no reply from it passed ip_vs_out_hook within 2.5s",
			fix:      "ip route show default"},
		{name: "nothing seen", facts: traceFacts{VIP: trVIP.Addr(), Port: 80, Window: time.Second, Probed: true, ProbeErr: errors.New("i/o timeout"),
			Sum: probes.Summary{Unseen: []string{"ip_vs_in_hook: no fentry"}}},
			want: []string{"trace-no-packets | packets to 10.77.0.100:80"}, evidence: "the connection: i/o timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := traceFindings(tc.facts)
			var got []string
			var all strings.Builder
			for _, f := range o.findings {
				got = append(got, f.ID+" | "+f.Subject)
				all.WriteString(strings.Join(f.Evidence, "\n") + "\n" + f.Fix + "\n")
				if f.Severity < Warning || f.Fix == "" || len(f.Evidence) == 0 {
					t.Errorf("%s: severity %s, %d evidence lines, fix %q", f.ID, f.Severity, len(f.Evidence), f.Fix)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("findings %q, want %q\nnotes:\n%s", got, tc.want, strings.Join(o.notes, "\n"))
			}
			for _, want := range []string{tc.evidence, tc.fix} {
				if !strings.Contains(all.String(), want) {
					t.Errorf("evidence and fix lack %q:\n%s", want, all.String())
				}
			}
		})
	}
}

func TestTraceNotesShowWhatPassed(t *testing.T) {
	f := facts(probes.GrouperOptions{}, pkt(1).Forwarded(trRS1, probes.DirectRoute, "wlc"), pkt(2).Forwarded(trRS1, probes.DirectRoute, "wlc"))
	f.Sum.Lost, f.Sum.Missed = 2, 1
	notes := traceFindings(f).notes
	for _, want := range []string{
		"traced for up to 2.5s while lvsdiag connected to 10.77.0.100:80 from this host",
		"2 packets traced, 2 forwarded; to 10.77.0.21:80 2",
		"2 events lost (the ring buffer was full): some paths lack hops",
		"1 probe run skipped (a probe fired on a CPU where it was already running): some paths lack hops",
		"TCP 10.77.0.2:40000 -> 10.77.0.100:80 [SYN]: netif_receive_skb -> ip_vs_in_hook -> ip_vs_schedule -> ip_vs_conn_new -> ip_vs_dr_xmit -> ip_vs_in_hook -> net_dev_queue => forwarded: IPVS sent it to 10.77.0.21:80 by direct route",
	} {
		if !slices.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, strings.Join(notes, "\n"))
		}
	}
}
