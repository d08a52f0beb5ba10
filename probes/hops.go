package probes

import (
	"strconv"
	"strings"
)

// The kernel functions and tracepoints a trace reports as Hop.Func. The
// loader names hops with these; the Grouper decides a path's outcome
// from them. Names are the kernel's: a function's symbol, or a
// tracepoint's event name.
const (
	// IPVS's netfilter hooks and its steps.
	FuncInHook        = "ip_vs_in_hook"
	FuncOutHook       = "ip_vs_out_hook"
	FuncForwardICMP   = "ip_vs_forward_icmp"
	FuncConnInGet     = "ip_vs_conn_in_get"
	FuncConnOutGet    = "ip_vs_conn_out_get"
	FuncSchedule      = "ip_vs_schedule"
	FuncConnNew       = "ip_vs_conn_new"
	FuncSchedulerErr  = "ip_vs_scheduler_err"
	FuncLeave         = "ip_vs_leave"
	FuncNATXmit       = "ip_vs_nat_xmit"
	FuncDRXmit        = "ip_vs_dr_xmit"
	FuncTunnelXmit    = "ip_vs_tunnel_xmit"
	FuncTunnelXmitV6  = "ip_vs_tunnel_xmit_v6"
	FuncNATXmitV6     = "ip_vs_nat_xmit_v6"
	FuncDRXmitV6      = "ip_vs_dr_xmit_v6"
	FuncBypassXmit    = "ip_vs_bypass_xmit"
	FuncBypassXmitV6  = "ip_vs_bypass_xmit_v6"
	FuncNullXmit      = "ip_vs_null_xmit"
	FuncICMPXmit      = "ip_vs_icmp_xmit"
	FuncICMPXmitV6    = "ip_vs_icmp_xmit_v6"
	FuncTCPConnSched  = "tcp_conn_schedule"
	FuncUDPConnSched  = "udp_conn_schedule"
	FuncSCTPConnSched = "sctp_conn_schedule"

	// The generic path (tracepoints and stack functions).
	FuncReceive      = "netif_receive_skb" // tracepoint net:netif_receive_skb
	FuncIPRcv        = "ip_rcv"
	FuncIPv6Rcv      = "ipv6_rcv"
	FuncForward      = "ip_forward"
	FuncLocalDeliver = "ip_local_deliver"
	FuncDeliverDone  = "ip_local_deliver_finish"
	FuncTCPRcv       = "tcp_v4_rcv"
	FuncTCPv6Rcv     = "tcp_v6_rcv"
	FuncUDPRcv       = "udp_rcv"
	FuncUDPv6Rcv     = "udpv6_rcv"
	FuncOutput       = "ip_output"
	FuncLocalOut     = "ip_local_out"
	FuncIP6LocalOut  = "ip6_local_out"
	FuncQueue        = "net_dev_queue" // tracepoint net:net_dev_queue
	FuncDevXmit      = "net_dev_xmit"  // tracepoint net:net_dev_xmit
	FuncDevQueueXmit = "__dev_queue_xmit"
	FuncDrop         = "kfree_skb"   // tracepoint skb:kfree_skb
	FuncConsume      = "consume_skb" // tracepoint skb:consume_skb
)

// hopKind is what a hop means for the packet's fate.
type hopKind int

const (
	kindOther    hopKind = iota
	kindReceive          // entered this namespace's stack from a device
	kindHook             // an IPVS netfilter hook
	kindSchedule         // IPVS chose a real server or made a connection
	kindNoDest           // IPVS found no destination
	kindXmit             // IPVS transmitted it (an ip_vs_*_xmit)
	kindLocal            // the local stack took it, past LOCAL_IN
	kindQueue            // queued to a device: transmitted
	kindDrop             // freed as a drop
	kindFree             // freed after use (consumed)
)

func kindOf(h Hop) hopKind {
	switch h.Func {
	case FuncReceive, FuncIPRcv, FuncIPv6Rcv:
		return kindReceive
	case FuncInHook, FuncOutHook, FuncForwardICMP:
		return kindHook
	case FuncSchedule, FuncConnNew:
		return kindSchedule
	case FuncSchedulerErr, FuncLeave:
		return kindNoDest
	case FuncDeliverDone, FuncTCPRcv, FuncTCPv6Rcv, FuncUDPRcv, FuncUDPv6Rcv:
		return kindLocal
	case FuncQueue, FuncDevXmit, FuncDevQueueXmit:
		return kindQueue
	case FuncDrop:
		if consumedReason(h.DropReason) {
			return kindFree
		}
		return kindDrop
	case FuncConsume:
		return kindFree
	}
	if strings.HasPrefix(h.Func, "ip_vs_") && strings.HasSuffix(strings.TrimSuffix(h.Func, "_v6"), "_xmit") {
		return kindXmit
	}
	return kindOther
}

// consumedReason reports whether a kfree_skb reason means the packet
// was used up rather than dropped (6.1's kfree_skb tracepoint also fires
// for consumed packets).
func consumedReason(r string) bool {
	r = strings.TrimPrefix(r, "SKB_DROP_REASON_")
	return r == "SKB_CONSUMED" || r == "CONSUMED"
}

// xmitForwarding is the forwarding method an xmit function implies, for
// hops that carry no connection.
func xmitForwarding(fn string) (Forwarding, bool) {
	switch strings.TrimSuffix(fn, "_v6") {
	case FuncNATXmit:
		return Masquerade, true
	case FuncDRXmit:
		return DirectRoute, true
	case FuncTunnelXmit:
		return Tunnel, true
	case FuncBypassXmit:
		return Bypass, true
	case FuncNullXmit:
		return LocalNode, true
	}
	return 0, false
}

// Describe names the method for a sentence: "direct route", "NAT",
// "tunnel", "bypass", "local node".
func (f Forwarding) Describe() string {
	switch f {
	case Masquerade:
		return "NAT"
	case LocalNode:
		return "local node"
	case Tunnel:
		return "tunnel"
	case DirectRoute:
		return "direct route"
	case Bypass:
		return "bypass"
	}
	return f.String()
}

// String formats a service as ipvsadm lists it: "TCP 192.168.0.100:80",
// "FWM 5".
func (s Service) String() string {
	if s.FWMark != 0 {
		return "FWM " + strconv.FormatUint(uint64(s.FWMark), 10)
	}
	p := s.Protocol
	if p == "" {
		p = "IP"
	}
	return p + " " + s.Address.String()
}
