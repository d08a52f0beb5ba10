package probestest

import (
	"net/netip"
	"time"

	"github.com/lvskit/lvskit/probes"
)

// Packet describes one packet to the VIP; its methods return the events
// the loader reports for it on a director, hop by hop in the kernel's
// order, for tests of what is built on paths.
type Packet struct {
	SKB    uint64
	At     time.Duration // the first hop's time; each next hop is 3µs later
	NetNS  uint32
	Device string // "eth0" when empty
	Client netip.AddrPort
	VIP    netip.AddrPort
	Flags  string // TCP flags, "SYN" when empty
}

func (p Packet) events(hops ...probes.Hop) []probes.Event {
	dev := p.Device
	if dev == "" {
		dev = "eth0"
	}
	flags := p.Flags
	if flags == "" {
		flags = "SYN"
	}
	var out []probes.Event
	for i, h := range hops {
		h.At = p.At + time.Duration(i)*3*time.Microsecond
		if (h.Func == probes.FuncReceive || h.Func == probes.FuncQueue) && h.Device == "" {
			h.Device = dev
		}
		e := probes.Event{SKB: p.SKB, NetNS: p.NetNS, Hop: h}
		if i == 0 {
			e.Tuple = probes.Tuple{Protocol: "TCP", Src: p.Client, Dst: p.VIP}
			e.TCPFlags = flags
		}
		out = append(out, e)
	}
	return out
}

func (p Packet) service(sched string) *probes.Service {
	return &probes.Service{Protocol: "TCP", Address: p.VIP, Scheduler: sched}
}

// Forwarded is a new connection's first packet, scheduled to rs and
// sent by f.
func (p Packet) Forwarded(rs netip.AddrPort, f probes.Forwarding, sched string) []probes.Event {
	dest := &probes.RealServer{Address: rs, Weight: 1, Forwarding: f}
	conn := &probes.Conn{Protocol: "TCP", Client: p.Client, Virtual: p.VIP, RealServer: rs, Forwarding: f, State: "SYN_RECV", Flags: uint32(f)}
	xmit := map[probes.Forwarding]string{probes.Masquerade: probes.FuncNATXmit, probes.Tunnel: probes.FuncTunnelXmit}[f]
	if xmit == "" {
		xmit = probes.FuncDRXmit
	}
	return p.events(
		probes.Hop{Func: probes.FuncReceive},
		probes.Hop{Func: probes.FuncInHook, Hook: "LOCAL_IN", Note: "no connection, scheduling"},
		probes.Hop{Func: probes.FuncSchedule, Service: p.service(sched), RealServer: dest},
		probes.Hop{Func: probes.FuncConnNew, RealServer: dest},
		probes.Hop{Func: xmit, Conn: conn},
		probes.Hop{Func: probes.FuncInHook, Hook: "LOCAL_IN", Verdict: probes.VerdictStolen},
		probes.Hop{Func: probes.FuncQueue},
	)
}

// NATReply is the real server's reply to p's client, through the
// director's FORWARD hook.
func (p Packet) NATReply(rs netip.AddrPort) []probes.Event {
	conn := &probes.Conn{Protocol: "TCP", Client: p.Client, Virtual: p.VIP, RealServer: rs, Forwarding: probes.Masquerade, State: "ESTABLISHED"}
	r := p
	r.Client, r.VIP = rs, p.Client
	r.Flags = "SYN|ACK"
	return r.events(
		probes.Hop{Func: probes.FuncReceive},
		probes.Hop{Func: probes.FuncForward},
		probes.Hop{Func: probes.FuncOutHook, Hook: "FORWARD", Conn: conn},
		probes.Hop{Func: probes.FuncQueue},
	)
}

// NoDestination is a packet IPVS drops because the scheduler found no
// real server.
func (p Packet) NoDestination(sched string) []probes.Event {
	return p.events(
		probes.Hop{Func: probes.FuncReceive},
		probes.Hop{Func: probes.FuncInHook, Hook: "LOCAL_IN", Note: "no connection, scheduling"},
		probes.Hop{Func: probes.FuncSchedulerErr, Service: p.service(sched), Note: "no destination available"},
		probes.Hop{Func: probes.FuncLeave, Service: p.service(sched)},
		probes.Hop{Func: probes.FuncInHook, Hook: "LOCAL_IN", Verdict: probes.VerdictDrop},
		probes.Hop{Func: probes.FuncDrop, DropReason: "NETFILTER_DROP", DropLocation: "nf_hook_slow+0x8d"},
	)
}

// LocalStack is a packet no IPVS service takes.
func (p Packet) LocalStack() []probes.Event {
	return p.events(
		probes.Hop{Func: probes.FuncReceive},
		probes.Hop{Func: probes.FuncInHook, Hook: "LOCAL_IN", Verdict: probes.VerdictAccept},
		probes.Hop{Func: probes.FuncTCPRcv},
		probes.Hop{Func: probes.FuncConsume},
	)
}

// KernelDrop is a packet the kernel drops before IPVS sees it.
func (p Packet) KernelDrop(reason, location string) []probes.Event {
	return p.events(
		probes.Hop{Func: probes.FuncReceive},
		probes.Hop{Func: probes.FuncDrop, DropReason: reason, DropLocation: location},
	)
}

// SocketPurge is a socket's copy of the packet freed unread when the
// socket closed: a raw socket's clone (the checklist's own ping), seen
// only at its free.
func (p Packet) SocketPurge() []probes.Event {
	return p.events(probes.Hop{Func: probes.FuncDrop, DropReason: "QUEUE_PURGE", DropLocation: "inet_sock_destruct+0x5a"})
}

// Group joins events into paths as lvsdiag trace does, ending every
// path at the end.
func Group(opts probes.GrouperOptions, packets ...[]probes.Event) []probes.Path {
	g := probes.NewGrouper(opts)
	var out []probes.Path
	for _, evs := range packets {
		for _, e := range evs {
			out = append(out, g.Add(e)...)
		}
	}
	return append(out, g.Close()...)
}
