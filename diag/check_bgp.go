package diag

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvskit/lvskit/director/statusapi"
)

// bgpFacts is what lvsd's status API says about its BGP speaker, and the
// VIP asked about.
type bgpFacts struct {
	VIP netip.Addr
	BGP *statusapi.BGPStatus
}

// bgpFindings says whether this director announces the VIP over BGP (and
// why not), and which peers are down: a withdrawn VIP gets no traffic from
// the routers, a VIP announced to no established peer neither.
func bgpFindings(f bgpFacts) (notes []string, findings []Finding) {
	b := f.BGP
	var up, down []string
	for _, p := range b.Peers {
		if p.Up {
			up = append(up, p.Address)
			continue
		}
		down = append(down, p.Address)
		findings = append(findings, Finding{ID: "bgp-peer-down", Severity: Warning, Subject: "BGP peer " + p.Address,
			Evidence: []string{fmt.Sprintf("session with %s (as %d) is %s, not established", p.Address, p.ASN, p.State)},
			Fix: fmt.Sprintf("On the router %s: is this director a neighbour there, with its address, its AS and the same password?\n"+
				"From the director: nc -vz %s 179 (a firewall may drop BGP); lvsd's log says why the session ends.", p.Address, p.Address)})
	}
	notes = append(notes, fmt.Sprintf("BGP as %d (%s): peers up: %s; down: %s", b.ASN, b.Phase, listOrNone(up), listOrNone(down)))
	var vip *statusapi.BGPVIPStatus
	for i := range b.VIPs {
		if a, err := netip.ParseAddr(b.VIPs[i].Address); err == nil && a == f.VIP {
			vip = &b.VIPs[i]
		}
	}
	switch {
	case vip == nil:
		notes = append(notes, fmt.Sprintf("%s is not announced over BGP by this director (its services are not written with announce: bgp)", f.VIP))
	case !vip.Announced && !vip.DrillUntil.IsZero():
		findings = append(findings, Finding{ID: "bgp-vip-drill", Severity: Warning, Subject: "VIP " + vip.Prefix,
			Evidence: []string{fmt.Sprintf("withdrawn by a failover drill until %s (lvsdiag drill, or a POST to lvsd's socket)", vip.DrillUntil.Format("15:04:05")), "the routers send this director no traffic for it meanwhile"},
			Fix: "It is announced again by itself at that time, if healthy. To end the drill now, on the director:\n" +
				"curl --unix-socket /run/lvsd/status.sock -X DELETE http://lvsd/bgp/" + vip.Address + "/withdraw"})
	case !vip.Announced:
		findings = append(findings, Finding{ID: "bgp-vip-withdrawn", Severity: Critical, Subject: "VIP " + vip.Prefix,
			Evidence: []string{fmt.Sprintf("withdrawn since %s: %s", vip.Since.Format("15:04:05"), vip.Reason), "the routers send this director no traffic for it"},
			Fix:      "Fix what the reason names (lvsdiag's real-server checks show which servers are down); lvsd announces it again by itself."})
	case len(up) == 0:
		findings = append(findings, Finding{ID: "bgp-vip-unheard", Severity: Critical, Subject: "VIP " + vip.Prefix,
			Evidence: []string{"announced, but to no established peer: no router knows this director has it"},
			Fix:      "Bring a BGP session up (see the bgp-peer-down findings)."})
	default:
		notes = append(notes, fmt.Sprintf("%s announced to %s since %s: %s", vip.Prefix, strings.Join(up, ", "), vip.Since.Format("15:04:05"), vip.Reason))
	}
	return notes, findings
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
