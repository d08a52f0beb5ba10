// Package probes traces packets through the kernel's IPVS code with eBPF:
// which function saw each packet, which virtual service and real server
// IPVS chose, which transmit path it took, and where and why it was
// dropped.
//
// The portable part (this file, and everything without a _linux suffix)
// holds the decoded form of a trace: a Path per packet, made of Hops, and
// a Summary of a whole run. It builds on every GOOS, so lvsdiag's
// checklist can decide from paths without loading anything. Loading the
// BPF objects, attaching them and reading the ring buffer is Linux-only.
//
// Open loads the programs of bpf/trace.c (compiled by bpf2go and
// committed) with the Filter compiled in as constants, and attaches to
// each target (targets.go) with the first backend the kernel accepts:
// fentry/fexit, kprobe/kretprobe or kprobe-multi for functions, tp_btf or
// raw_tp for tracepoints. A target it cannot attach is skipped and named
// in Unseen with the hop it hides. Read returns one Event per hop; the
// caller joins them by SKB into Paths. IPVS structs are read with CO-RE
// against the ip_vs module's BTF, so one object serves Linux 6.1 and
// 6.12.
package probes

import (
	"net/netip"
	"strconv"
	"time"
)

// Forwarding is IPVS's forwarding method of a connection: the low three
// bits of ip_vs_conn.flags (IP_VS_CONN_F_FWD_MASK).
type Forwarding uint8

// The forwarding methods, with the kernel's numbers.
const (
	Masquerade  Forwarding = 0 // NAT
	LocalNode   Forwarding = 1
	Tunnel      Forwarding = 2
	DirectRoute Forwarding = 3
	Bypass      Forwarding = 4
)

// String names the method as ipvsadm does (Masq, Local, Tunnel, Route,
// Bypass).
func (f Forwarding) String() string {
	switch f {
	case Masquerade:
		return "Masq"
	case LocalNode:
		return "Local"
	case Tunnel:
		return "Tunnel"
	case DirectRoute:
		return "Route"
	case Bypass:
		return "Bypass"
	}
	return "Forwarding(" + strconv.Itoa(int(f)) + ")"
}

// Verdict is what a netfilter hook function returned for the packet.
type Verdict string

// The verdicts a hook can return that a trace reports.
const (
	VerdictNone   Verdict = ""       // not seen (no return probe on this kernel)
	VerdictAccept Verdict = "ACCEPT" // NF_ACCEPT: the packet goes on
	VerdictDrop   Verdict = "DROP"   // NF_DROP: netfilter frees it
	VerdictStolen Verdict = "STOLEN" // NF_STOLEN: IPVS took it (transmitted it)
	VerdictQueue  Verdict = "QUEUE"
	VerdictRepeat Verdict = "REPEAT"
)

// Service is a virtual service as the probe read it from ip_vs_service.
type Service struct {
	Protocol  string         // "TCP", "UDP", "SCTP"; empty for fwmark services
	Address   netip.AddrPort // VIP:port; invalid for fwmark services
	FWMark    uint32         // nonzero for fwmark services
	Scheduler string         // "rr", "wlc", ...
}

// RealServer is a destination as the probe read it from ip_vs_dest.
type RealServer struct {
	Address    netip.AddrPort
	Weight     int32
	Forwarding Forwarding
}

// Conn is an IPVS connection as the probe read it from ip_vs_conn.
type Conn struct {
	Protocol   string
	Client     netip.AddrPort // caddr:cport
	Virtual    netip.AddrPort // vaddr:vport
	RealServer netip.AddrPort // daddr:dport
	Forwarding Forwarding
	// State is the protocol state by name ("ESTABLISHED", "SYN_RECV",
	// ...), as ipvsadm -lc prints it.
	State string
	// Flags is ip_vs_conn.flags as the kernel holds it.
	Flags uint32
}

// Hop is one place in the kernel where the probe saw the packet.
type Hop struct {
	// Func is the kernel function or tracepoint ("ip_vs_in_hook",
	// "ip_vs_dr_xmit", "kfree_skb").
	Func string
	// At is when the probe fired, on the kernel's monotonic clock.
	At time.Duration
	// Hook is the netfilter hook the function ran at ("PRE_ROUTING",
	// "LOCAL_IN", "FORWARD", "LOCAL_OUT", "POST_ROUTING"); empty where
	// the function is not a hook.
	Hook string
	// Verdict is a hook's return value, when a return probe saw it.
	Verdict Verdict
	// Device is the interface the packet was on at this hop, if known.
	Device string
	// Service, RealServer and Conn are what IPVS decided here, where the
	// function's arguments or return value say it; nil otherwise.
	Service    *Service
	RealServer *RealServer
	Conn       *Conn
	// DropReason names the kernel's drop reason (enum skb_drop_reason,
	// named from the running kernel's BTF, "NETFILTER_DROP") on a drop
	// hop; DropLocation is the function that freed the packet
	// ("nf_hook_slow+0x8d").
	DropReason   string
	DropLocation string
	// Note is what IPVS decided here, for a person: "connection found
	// (ESTABLISHED)", "no connection, scheduling", "no destination".
	Note string
}

// Tuple is a packet's addresses, ports and protocol.
type Tuple struct {
	Protocol string // "TCP", "UDP", "SCTP", "ICMP", "ICMPv6"
	Src, Dst netip.AddrPort
}

// Outcome is how a packet's path ended.
type Outcome string

// The outcomes of a path.
const (
	// OutcomeForwarded: IPVS transmitted it to a real server.
	OutcomeForwarded Outcome = "forwarded"
	// OutcomeLocal: it went to the local stack (no IPVS service took it).
	OutcomeLocal Outcome = "local"
	// OutcomeDropped: the kernel freed it as a drop.
	OutcomeDropped Outcome = "dropped"
	// OutcomeReply: a reply IPVS handled on its way back (NAT).
	OutcomeReply Outcome = "reply"
	// OutcomeUnknown: the trace ended, or the hops that would tell
	// could not be seen on this kernel.
	OutcomeUnknown Outcome = "unknown"
)

// Path is one packet's way through the kernel, hops in time order.
type Path struct {
	// At is the first hop's time on the wall clock.
	At time.Time
	// NetNS is the network namespace's inode number.
	NetNS uint32
	// Device is where the packet was first seen.
	Device string
	Tuple  Tuple
	// TCPFlags are the packet's TCP flags ("SYN", "ACK", "FIN|ACK");
	// empty for other protocols.
	TCPFlags string
	// Outer is the outer header of a tunnelled packet, when the probe
	// saw it encapsulated.
	Outer *Tuple
	Hops  []Hop
	// Outcome and Why say how the path ended: for a drop, where and why
	// ("IPVS found no destination: all real servers of TCP
	// 192.168.0.100:80 have weight 0").
	Outcome Outcome
	Why     string
	// Service, RealServer and Conn are what IPVS decided for the packet
	// over the whole path (the last hop that said), nil if it did not.
	Service    *Service
	RealServer *RealServer
	Conn       *Conn
}

// Summary counts a whole run.
type Summary struct {
	Packets int
	// ByOutcome counts packets per outcome.
	ByOutcome map[Outcome]int
	// ByRealServer counts forwarded packets per real server.
	ByRealServer map[netip.AddrPort]int
	// Drops counts dropped packets per reason (Path.Why).
	Drops map[string]int
	// Lost is how many events the kernel could not hand over (ring
	// buffer full); never hidden.
	Lost uint64
	// Missed is how many times the kernel skipped one of the tracer's
	// programs because it was already running on that CPU (a softirq's
	// packet interrupting the program at work on a process's own): hops
	// no event reports; never hidden.
	Missed uint64
	// Unseen lists the hops this kernel cannot show and why, one line
	// each ("ip_vs_conn_new: kprobes are not available: the chosen real
	// server's connection is not shown").
	Unseen []string
}

// Event is one hop as the probe reported it, decoded, before hops are
// joined into paths. The loader produces Events; a Grouper joins them by
// SKB into Paths.
type Event struct {
	// SKB is the sk_buff's address: one packet, one path. Where the
	// kernel replaced the skb (tunnel mode's skb_realloc_headroom), the
	// probe that saw it reports the old one in PrevSKB and the new one
	// in SKB.
	SKB, PrevSKB uint64
	// CPU is the CPU the probe ran on.
	CPU uint32
	// Time is when the probe fired on the wall clock (Hop.At is the
	// same moment on the kernel's monotonic clock).
	Time time.Time
	// NetNS is the network namespace's inode number.
	NetNS uint32
	// Hop is what was seen here.
	Hop Hop
	// Tuple and TCPFlags are decoded from the headers the probe copied,
	// when it copied them (Tuple.Protocol is empty otherwise); Outer is
	// the outer header of an encapsulated packet.
	Tuple    Tuple
	TCPFlags string
	Outer    *Tuple
	// Entry is set (its Func is not empty) when the probe sent the
	// entry of a netfilter hook with this event rather than in an event
	// of its own. Where Entry.Func is another function than Hop.Func,
	// Hop happened inside that hook, whose entry comes before Hop in the
	// path. Where it is Hop.Func, Hop is the hook's own: its whole visit
	// (entry time and verdict, nothing inside it traced), or its entry.
	Entry HookEntry
}

// HookEntry is where and when the packet entered an IPVS netfilter
// hook.
type HookEntry struct {
	Func string        // the hook function ("ip_vs_in_hook")
	Hook string        // the netfilter hook ("LOCAL_IN")
	At   time.Duration // the kernel's monotonic clock
}

// Filter selects the packets to trace. It is compiled into the BPF
// programs as constants: a packet that does not match costs one early
// comparison and no map write. Zero fields match everything.
type Filter struct {
	// VIP and Port match the packet's destination on the way in and its
	// source on the way back (NAT replies), and the connection's virtual
	// address inside IPVS.
	VIP  netip.Addr
	Port uint16
	// Client matches the client's address (the source on the way in).
	Client netip.Prefix
	// RealServer matches the real server IPVS chose, or the source of a
	// NAT reply.
	RealServer netip.Addr
	// Protocol is "tcp", "udp", "sctp" or empty for all.
	Protocol string
	// NetNS is a network namespace's inode number; zero for all.
	NetNS uint32
	// Interface is an interface's index; zero for all.
	Interface int
}
