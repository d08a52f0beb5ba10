package probes

import (
	"cmp"
	"fmt"
	"strings"
)

// decide says how a path ended, from its hops: a drop anywhere wins
// (where and why), then an IPVS transmit (forwarded), then a NAT reply
// IPVS handled on the way out, then the local stack; else unknown.
func decide(p *Path, opts GrouperOptions) (Outcome, string) {
	hops := p.Hops
	drop := -1
	for i, h := range hops {
		if kindOf(h) == kindDrop {
			drop = i
			break
		}
	}
	xmit := -1
	for i := len(hops) - 1; i >= 0; i-- {
		if kindOf(hops[i]) == kindXmit {
			xmit = i
			break
		}
	}
	// IPVS let the packet into the local stack, which then dropped it
	// (no socket on that port): the local stack is the answer.
	if passed := passedToLocalStack(p); passed >= 0 && xmit < 0 && (drop < 0 || drop > passed) {
		why := localWhy(p)
		if drop >= 0 {
			why += "; the local stack dropped it: " + dropText(hops[drop])
		}
		return OutcomeLocal, why
	}
	if drop >= 0 && len(hops) == 1 && socketQueuePurge(hops[0]) {
		return OutcomeUnknown, "a socket's copy of a packet, freed unread when the socket closed: " + dropText(hops[0]) + "; not a packet on its way through this host"
	}
	if drop >= 0 {
		return OutcomeDropped, dropWhy(p, hops[:drop], hops[drop], opts)
	}
	if xmit >= 0 {
		return OutcomeForwarded, forwardWhy(p, hops[xmit])
	}
	for _, h := range hops {
		if (h.Func == FuncOutHook || h.Func == FuncConnOutGet) && h.Conn != nil {
			return OutcomeReply, replyWhy(h.Conn)
		}
	}
	return OutcomeUnknown, unknownWhy(p, opts)
}

// socketQueuePurge reports whether a drop is a queue's purge
// (QUEUE_PURGE): alone on its path, it is a buffer a socket held when it
// closed (inet_sock_destruct, tcp_write_queue_purge), never seen on the
// stack's way: a raw socket's clone of a packet it did not read (the
// checklist's own ping socket), or the TCP send buffer of a connect
// that failed. A packet purged from a device's queue has hops before.
func socketQueuePurge(h Hop) bool {
	return strings.TrimPrefix(h.DropReason, "SKB_DROP_REASON_") == "QUEUE_PURGE"
}

func forwardWhy(p *Path, xmit Hop) string {
	fwd, _ := xmitForwarding(xmit.Func)
	if c := xmit.Conn; c != nil {
		fwd = c.Forwarding
	} else if p.Conn != nil {
		fwd = p.Conn.Forwarding
	}
	if fwd == LocalNode {
		return "IPVS passed it to this host's own service (local node)"
	}
	if rs := p.chosen(); rs.IsValid() {
		// Every forwarded packet's why: appended, not through fmt.
		var buf [80]byte
		b := appendAddrPort(append(buf[:0], "IPVS sent it to "...), rs)
		return string(append(append(b, " by "...), fwd.Describe()...))
	}
	return fmt.Sprintf("IPVS sent it by %s (%s); the real server was not seen", fwd.Describe(), xmit.Func)
}

func replyWhy(c *Conn) string {
	if c.Forwarding != Masquerade {
		return fmt.Sprintf("a reply of %s to %s that IPVS saw on its way out (%s)", c.RealServer, c.Client, c.Forwarding.Describe())
	}
	// Every NAT reply's why: appended, not through fmt.
	var buf [160]byte
	b := appendAddrPort(append(buf[:0], "a NAT reply from "...), c.RealServer)
	b = appendAddrPort(append(b, " to "...), c.Client)
	return string(appendAddrPort(append(b, ": IPVS gave it the source "...), c.Virtual))
}

// passedToLocalStack returns the index of the hop where the packet
// went to the local stack: past LOCAL_IN (a socket's receive function),
// or IPVS's LOCAL_IN hook letting it through without a connection (no
// service matched); -1 if it did not.
func passedToLocalStack(p *Path) int {
	if p.Conn != nil {
		return -1
	}
	for i, h := range p.Hops {
		switch {
		case kindOf(h) == kindLocal:
			return i
		case h.Func == FuncInHook && h.Hook == "LOCAL_IN" && h.Verdict == VerdictAccept:
			return i
		}
	}
	return -1
}

func localWhy(p *Path) string {
	what := "the packet"
	if p.Tuple.Protocol != "" {
		what = p.Tuple.Protocol + " " + p.Tuple.Dst.String()
	}
	return fmt.Sprintf("it went to the local stack: no IPVS service took %s (a packet to the VIP on a port with no service)", what)
}

func unknownWhy(p *Path, opts GrouperOptions) string {
	for i := len(p.Hops) - 1; i >= 0; i-- {
		h := p.Hops[i]
		if kindOf(h) != kindQueue {
			continue
		}
		first := p.Hops[0]
		if first.Func == FuncLocalOut || first.Func == FuncIP6LocalOut || first.Hook == "LOCAL_OUT" {
			return "this host's own packet, queued on " + h.Device + ": IPVS let it pass"
		}
		return "queued on " + h.Device + " without IPVS taking it"
	}
	if opts.Hidden {
		return "its end was not seen: the hops that would tell are not visible on this kernel (see the summary)"
	}
	return "its end was not seen before the trace stopped or the path went idle"
}

// dropWhy says where and why a packet was dropped; before are the hops
// before the drop.
func dropWhy(p *Path, before []Hop, drop Hop, opts GrouperOptions) string {
	for _, h := range before {
		if kindOf(h) == kindNoDest {
			svc := h.Service
			if svc == nil {
				svc = p.Service
			}
			return noDestWhy(svc, opts)
		}
	}
	loc := locationFunc(drop.DropLocation)
	reason := strings.TrimPrefix(drop.DropReason, "SKB_DROP_REASON_")
	if reason == "NETFILTER_DROP" || loc == "nf_hook_slow" {
		for i := len(before) - 1; i >= 0; i-- {
			h := before[i]
			if kindOf(h) != kindHook {
				continue
			}
			at := h.Func
			if h.Hook != "" {
				at += " (" + h.Hook + ")"
			}
			if h.Verdict == VerdictDrop {
				return "IPVS dropped it in " + at
			}
			return "netfilter dropped it after " + at + ": a firewall rule"
		}
		return "netfilter dropped it: a firewall rule"
	}
	if strings.HasPrefix(loc, "ip_vs_") && strings.HasSuffix(strings.TrimSuffix(loc, "_v6"), "_xmit") {
		to := ""
		if rs := p.chosen(); rs.IsValid() {
			to = " to " + rs.String()
		}
		return fmt.Sprintf("IPVS could not transmit it%s: %s freed it (no route to the real server, or too big for the path)", to, loc)
	}
	return "the kernel dropped it: " + dropText(drop)
}

// dropText is a drop hop's reason and place: "the reverse path filter
// (rp_filter) (IP_RPFILTER) in ip_rcv_finish_core".
func dropText(drop Hop) string {
	reason := strings.TrimPrefix(drop.DropReason, "SKB_DROP_REASON_")
	loc := locationFunc(drop.DropLocation)
	var parts []string
	if reason != "" {
		parts = append(parts, reasonText(reason))
	}
	if loc != "" {
		parts = append(parts, "in "+loc)
	}
	if len(parts) == 0 {
		return "no reason given"
	}
	return strings.Join(parts, " ")
}

// noDestWhy explains ip_vs_scheduler_err: from the service's real
// servers as the kernel lists them, when known.
func noDestWhy(svc *Service, opts GrouperOptions) string {
	if svc == nil {
		return "IPVS found no destination (the scheduler found no real server available)"
	}
	var dests []Destination
	known := false
	if opts.Destinations != nil {
		dests, known = opts.Destinations(*svc)
	}
	detail := fmt.Sprintf("the %s scheduler found no real server available", cmp.Or(svc.Scheduler, "service's"))
	if known {
		var weighted, full int
		for _, d := range dests {
			if d.Weight > 0 {
				weighted++
				if d.UpperThreshold > 0 && d.ActiveConns+d.InactiveConns >= d.UpperThreshold {
					full++
				}
			}
		}
		switch {
		case len(dests) == 0:
			detail = svc.String() + " has no real servers"
		case weighted == 0:
			detail = "all real servers of " + svc.String() + " have weight 0"
		case full == weighted:
			detail = "every real server of " + svc.String() + " with a weight is at its upper connection threshold"
		}
	}
	return "IPVS found no destination (" + detail + ")"
}

// locationFunc is the function of a drop location ("nf_hook_slow+0x8d"
// -> "nf_hook_slow").
func locationFunc(loc string) string {
	f, _, _ := strings.Cut(loc, "+")
	return f
}

// reasonGloss names the drop reasons an on-call engineer meets on a
// director in words.
var reasonGloss = map[string]string{
	"IP_RPFILTER":          "the reverse path filter (rp_filter)",
	"IP_NOROUTE":           "no route",
	"IP_INADDRERRORS":      "an invalid destination address",
	"IP_INHDR":             "a bad IP header",
	"OTHERHOST":            "not addressed to this host",
	"NO_SOCKET":            "no socket listening",
	"NETFILTER_DROP":       "netfilter",
	"PKT_TOO_SMALL":        "a truncated packet",
	"TCP_CSUM":             "a bad TCP checksum",
	"UDP_CSUM":             "a bad UDP checksum",
	"QDISC_DROP":           "the queueing discipline",
	"NEIGH_FAILED":         "no neighbour (ARP/ND failed)",
	"NEIGH_QUEUEFULL":      "the neighbour queue was full",
	"TC_INGRESS":           "a tc ingress filter",
	"TC_EGRESS":            "a tc egress filter",
	"PKT_TOO_BIG":          "too big for the path's MTU",
	"IP_OUTNOROUTES":       "no route out",
	"SOCKET_RCVBUFF":       "the socket's receive buffer was full",
	"SOCKET_FILTER":        "a socket filter",
	"TCP_INVALID_SEQUENCE": "a TCP segment out of the window",
	"NOT_SPECIFIED":        "no reason given",
}

func reasonText(r string) string {
	if g, ok := reasonGloss[r]; ok && r != "NOT_SPECIFIED" {
		return g + " (" + r + ")"
	}
	return r
}
