package probes

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// The scenarios below are built from the hops the loader reports, in
// the order the kernel runs them (include/net/ip_vs.h, ip_vs_core.c):
// the shapes of a director's packets. Recorded events from the VM are
// in recorded_test.go.

var (
	tBoot   = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cli     = netip.MustParseAddrPort("10.77.0.2:40000")
	vipPort = netip.MustParseAddrPort("10.77.0.100:80")
	rs1     = netip.MustParseAddrPort("10.77.0.21:80")
	rs2     = netip.MustParseAddrPort("10.77.0.22:80")
	svcTCP  = &Service{Protocol: "TCP", Address: vipPort, Scheduler: "wlc"}
	netnsD  = uint32(4026532290)
)

const ms = time.Millisecond

// ev builds an event of skb at kernel time at (in µs from 1s).
func ev(skb uint64, atUS int, h Hop) Event {
	h.At = time.Second + time.Duration(atUS)*time.Microsecond
	return Event{SKB: skb, NetNS: netnsD, Hop: h}
}

func withTuple(e Event, src, dst netip.AddrPort, flags string) Event {
	e.Tuple = Tuple{Protocol: "TCP", Src: src, Dst: dst}
	e.TCPFlags = flags
	return e
}

func conn(rs netip.AddrPort, f Forwarding, state string) *Conn {
	return &Conn{Protocol: "TCP", Client: cli, Virtual: vipPort, RealServer: rs, Forwarding: f, State: state, Flags: uint32(f)}
}

func recv(skb uint64, at int) Event {
	return withTuple(ev(skb, at, Hop{Func: FuncReceive, Device: "eth0"}), cli, vipPort, "SYN")
}

func queue(skb uint64, at int) Event { return ev(skb, at, Hop{Func: FuncQueue, Device: "eth0"}) }

// drSYN is a new connection's first packet, scheduled to rs1 by direct
// routing.
func drSYN(skb uint64, at int, rs netip.AddrPort) []Event {
	return []Event{
		recv(skb, at),
		ev(skb, at+5, Hop{Func: FuncInHook, Hook: "LOCAL_IN", Note: "no connection, scheduling"}),
		ev(skb, at+8, Hop{Func: FuncSchedule, Service: svcTCP, RealServer: &RealServer{Address: rs, Weight: 3, Forwarding: DirectRoute}}),
		ev(skb, at+9, Hop{Func: FuncConnNew, RealServer: &RealServer{Address: rs, Weight: 3, Forwarding: DirectRoute}}),
		ev(skb, at+12, Hop{Func: FuncDRXmit, Conn: conn(rs, DirectRoute, "SYN_RECV")}),
		ev(skb, at+14, Hop{Func: FuncInHook, Hook: "LOCAL_IN", Verdict: VerdictStolen}),
		queue(skb, at+20),
	}
}

type scenario struct {
	name   string
	events []Event
	dests  map[string][]Destination // by Service.String()
	// flushAt, when set, flushes idle paths at this kernel time (µs
	// from 1s) before Close.
	flushAt int
	want    []wantPath
}

type wantPath struct {
	outcome Outcome
	why     string
	hops    int
}

func scenarios() []scenario {
	weight0 := []Destination{{Address: rs1, Weight: 0}, {Address: rs2, Weight: 0}}
	return []scenario{
		{name: "dr-new-connection", events: drSYN(0xa1, 0, rs1),
			want: []wantPath{{OutcomeForwarded, "IPVS sent it to 10.77.0.21:80 by direct route", 7}}},
		{name: "dr-established", events: []Event{
			withTuple(ev(0xa2, 0, Hop{Func: FuncReceive, Device: "eth0"}), cli, vipPort, "ACK"),
			ev(0xa2, 4, Hop{Func: FuncInHook, Hook: "LOCAL_IN", Note: "connection found (ESTABLISHED)", Conn: conn(rs2, DirectRoute, "ESTABLISHED")}),
			ev(0xa2, 7, Hop{Func: FuncDRXmit, Conn: conn(rs2, DirectRoute, "ESTABLISHED")}),
			queue(0xa2, 11),
		}, want: []wantPath{{OutcomeForwarded, "IPVS sent it to 10.77.0.22:80 by direct route", 4}}},
		{name: "no-destination-weight-0", dests: map[string][]Destination{"TCP 10.77.0.100:80": weight0}, events: []Event{
			recv(0xb1, 0),
			ev(0xb1, 5, Hop{Func: FuncInHook, Hook: "LOCAL_IN", Note: "no connection, scheduling"}),
			ev(0xb1, 7, Hop{Func: FuncSchedulerErr, Service: svcTCP, Note: "no destination available"}),
			ev(0xb1, 8, Hop{Func: FuncLeave, Service: svcTCP}),
			ev(0xb1, 9, Hop{Func: FuncInHook, Hook: "LOCAL_IN", Verdict: VerdictDrop}),
			ev(0xb1, 10, Hop{Func: FuncDrop, DropReason: "NETFILTER_DROP", DropLocation: "nf_hook_slow+0x8d"}),
		}, want: []wantPath{{OutcomeDropped, "IPVS found no destination (all real servers of TCP 10.77.0.100:80 have weight 0)", 6}}},
		{name: "no-destination-thresholds", dests: map[string][]Destination{"TCP 10.77.0.100:80": {
			{Address: rs1, Weight: 1, UpperThreshold: 2, ActiveConns: 2}, {Address: rs2, Weight: 0}}}, events: []Event{
			recv(0xb2, 0),
			ev(0xb2, 7, Hop{Func: FuncSchedulerErr, Service: svcTCP}),
			ev(0xb2, 10, Hop{Func: FuncDrop, DropReason: "NETFILTER_DROP", DropLocation: "nf_hook_slow+0x8d"}),
		}, want: []wantPath{{OutcomeDropped, "IPVS found no destination (every real server of TCP 10.77.0.100:80 with a weight is at its upper connection threshold)", 3}}},
		{name: "no-destination-unknown-table", events: []Event{
			recv(0xb3, 0),
			ev(0xb3, 7, Hop{Func: FuncSchedulerErr, Service: svcTCP}),
			ev(0xb3, 10, Hop{Func: FuncDrop, DropReason: "NETFILTER_DROP", DropLocation: "nf_hook_slow+0x8d"}),
		}, want: []wantPath{{OutcomeDropped, "IPVS found no destination (the wlc scheduler found no real server available)", 3}}},
		{name: "no-service-local-stack", flushAt: 600_000, events: []Event{
			withTuple(ev(0xc1, 0, Hop{Func: FuncReceive, Device: "eth0"}), cli, netip.MustParseAddrPort("10.77.0.100:81"), "SYN"),
			ev(0xc1, 5, Hop{Func: FuncInHook, Hook: "LOCAL_IN", Verdict: VerdictAccept}),
			ev(0xc1, 9, Hop{Func: FuncTCPRcv}),
		}, want: []wantPath{{OutcomeLocal, "it went to the local stack: no IPVS service took TCP 10.77.0.100:81 (a packet to the VIP on a port with no service)", 3}}},
		{name: "no-service-no-socket", events: []Event{
			withTuple(ev(0xc2, 0, Hop{Func: FuncReceive, Device: "eth0"}), cli, netip.MustParseAddrPort("10.77.0.100:81"), "SYN"),
			ev(0xc2, 2, Hop{Func: FuncLocalDeliver}),
			ev(0xc2, 4, Hop{Func: FuncInHook, Hook: "LOCAL_IN"}),
			ev(0xc2, 5, Hop{Func: FuncConnInGet, Note: "no connection"}),
			ev(0xc2, 6, Hop{Func: FuncInHook, Hook: "LOCAL_IN", Verdict: VerdictAccept}),
			ev(0xc2, 9, Hop{Func: FuncDrop, DropReason: "NO_SOCKET", DropLocation: "tcp_v4_rcv+0x1d4"}),
		}, want: []wantPath{{OutcomeLocal, "it went to the local stack: no IPVS service took TCP 10.77.0.100:81 (a packet to the VIP on a port with no service); the local stack dropped it: no socket listening (NO_SOCKET) in tcp_v4_rcv", 6}}},
		{name: "nat-reply-conn-out-get", events: []Event{
			withTuple(ev(0xe2, 0, Hop{Func: FuncReceive, Device: "eth1"}), rs1, cli, "ACK"),
			ev(0xe2, 3, Hop{Func: FuncForward}),
			ev(0xe2, 4, Hop{Func: FuncOutHook, Hook: "FORWARD"}),
			ev(0xe2, 5, Hop{Func: FuncConnOutGet, Conn: conn(rs1, Masquerade, "ESTABLISHED"), Note: "reply of connection 10.77.0.2:40000 -> 10.77.0.100:80 (ESTABLISHED)"}),
			ev(0xe2, 8, Hop{Func: FuncQueue, Device: "eth0"}),
			ev(0xe2, 9, Hop{Func: FuncOutHook, Hook: "FORWARD", Verdict: VerdictAccept}),
		}, want: []wantPath{{OutcomeReply, "a NAT reply from 10.77.0.21:80 to 10.77.0.2:40000: IPVS gave it the source 10.77.0.100:80", 6}}},
		{name: "firewall-after-ipvs", events: []Event{
			recv(0xd1, 0),
			ev(0xd1, 3, Hop{Func: FuncOutHook, Hook: "LOCAL_IN", Verdict: VerdictAccept}),
			ev(0xd1, 6, Hop{Func: FuncDrop, DropReason: "NETFILTER_DROP", DropLocation: "nf_hook_slow+0x8d"}),
		}, want: []wantPath{{OutcomeDropped, "netfilter dropped it after ip_vs_out_hook (LOCAL_IN): a firewall rule", 3}}},
		{name: "rp-filter", events: []Event{
			recv(0xd2, 0),
			ev(0xd2, 2, Hop{Func: FuncDrop, DropReason: "IP_RPFILTER", DropLocation: "ip_rcv_finish_core.constprop.0+0x1b2"}),
		}, want: []wantPath{{OutcomeDropped, "the kernel dropped it: the reverse path filter (rp_filter) (IP_RPFILTER) in ip_rcv_finish_core.constprop.0", 2}}},
		{name: "socket-queue-purged", events: []Event{func() Event {
			// The reply to the director's own ping, as its raw socket held it.
			e := ev(0xd4, 0, Hop{Func: FuncDrop, DropReason: "QUEUE_PURGE", DropLocation: "inet_sock_destruct+0x5a"})
			e.Tuple = Tuple{Protocol: "ICMP", Src: netip.MustParseAddrPort("10.77.0.100:0"), Dst: netip.MustParseAddrPort("10.77.0.100:0")}
			return e
		}()}, want: []wantPath{{OutcomeUnknown, "a socket's copy of a packet, freed unread when the socket closed: QUEUE_PURGE in inet_sock_destruct; not a packet on its way through this host", 1}}},
		{name: "xmit-failed", events: append(drSYN(0xd3, 0, rs1)[:5],
			ev(0xd3, 15, Hop{Func: FuncDrop, DropReason: "NOT_SPECIFIED", DropLocation: "ip_vs_dr_xmit+0x1c4"})),
			want: []wantPath{{OutcomeDropped, "IPVS could not transmit it to 10.77.0.21:80: ip_vs_dr_xmit freed it (no route to the real server, or too big for the path)", 6}}},
		{name: "nat-reply", events: []Event{
			withTuple(ev(0xe1, 0, Hop{Func: FuncReceive, Device: "eth1"}), rs1, cli, "SYN|ACK"),
			ev(0xe1, 3, Hop{Func: FuncForward}),
			ev(0xe1, 5, Hop{Func: FuncOutHook, Hook: "FORWARD", Conn: conn(rs1, Masquerade, "SYN_RECV")}),
			ev(0xe1, 9, Hop{Func: FuncQueue, Device: "eth0"}),
		}, want: []wantPath{{OutcomeReply, "a NAT reply from 10.77.0.21:80 to 10.77.0.2:40000: IPVS gave it the source 10.77.0.100:80", 4}}},
		{name: "tunnel-reallocates", events: func() []Event {
			es := []Event{
				recv(0xf1, 0),
				ev(0xf1, 5, Hop{Func: FuncInHook, Hook: "LOCAL_IN", Note: "connection found (ESTABLISHED)", Conn: conn(rs1, Tunnel, "ESTABLISHED")}),
				ev(0xf1, 8, Hop{Func: FuncTunnelXmit, Conn: conn(rs1, Tunnel, "ESTABLISHED")}),
			}
			moved := ev(0xf2, 10, Hop{Func: "skb_realloc_headroom", Note: "copied into a new skb with room for the outer header"})
			moved.PrevSKB = 0xf1
			out := queue(0xf2, 14)
			out.Outer = &Tuple{Protocol: "IPIP", Src: netip.AddrPortFrom(netip.MustParseAddr("10.77.0.10"), 0), Dst: netip.AddrPortFrom(rs1.Addr(), 0)}
			return append(es, moved, ev(0xf1, 11, Hop{Func: FuncConsume}), out)
		}(), want: []wantPath{{OutcomeForwarded, "IPVS sent it to 10.77.0.21:80 by tunnel", 6}}},
		{name: "skb-reused-after-unseen-end", events: []Event{
			recv(0x91, 0),
			ev(0x91, 5, Hop{Func: FuncTCPRcv}),
			recv(0x91, 300),
		}, want: []wantPath{
			{OutcomeLocal, "it went to the local stack: no IPVS service took TCP 10.77.0.100:80 (a packet to the VIP on a port with no service)", 2},
			{OutcomeUnknown, "its end was not seen before the trace stopped or the path went idle", 1},
		}},
		{name: "interleaved-packets", events: interleave(drSYN(0x1, 0, rs1), drSYN(0x2, 2, rs2)), want: []wantPath{
			{OutcomeForwarded, "IPVS sent it to 10.77.0.21:80 by direct route", 7},
			{OutcomeForwarded, "IPVS sent it to 10.77.0.22:80 by direct route", 7},
		}},
	}
}

// interleave merges event lists by time, as two CPUs' events arrive.
func interleave(a, b []Event) []Event {
	out := append(slices.Clone(a), b...)
	slices.SortStableFunc(out, func(x, y Event) int { return int(x.Hop.At - y.Hop.At) })
	return out
}

func runScenario(s scenario) ([]Path, Summary) {
	g := NewGrouper(GrouperOptions{Boot: tBoot, Destinations: func(svc Service) ([]Destination, bool) {
		d, ok := s.dests[svc.String()]
		return d, ok
	}})
	var paths []Path
	for _, e := range s.events {
		paths = append(paths, g.Add(e)...)
	}
	if s.flushAt != 0 {
		paths = append(paths, g.Flush(time.Second+time.Duration(s.flushAt)*time.Microsecond)...)
	}
	paths = append(paths, g.Close()...)
	return paths, g.Summary()
}

func TestGrouperDecidesEachPacketsOutcome(t *testing.T) {
	for _, s := range scenarios() {
		t.Run(s.name, func(t *testing.T) {
			paths, _ := runScenario(s)
			var got []wantPath
			for _, p := range paths {
				got = append(got, wantPath{p.Outcome, p.Why, len(p.Hops)})
			}
			if !slices.Equal(got, s.want) {
				t.Errorf("paths:\n got %+v\nwant %+v", got, s.want)
			}
		})
	}
}

func TestTunnelPathKeepsItsHopsAcrossTheNewSKB(t *testing.T) {
	var s scenario
	for _, x := range scenarios() {
		if x.name == "tunnel-reallocates" {
			s = x
		}
	}
	paths, _ := runScenario(s)
	if len(paths) != 1 {
		t.Fatalf("%d paths, want 1: the copy is the same packet", len(paths))
	}
	p := paths[0]
	var funcs []string
	for _, h := range p.Hops {
		funcs = append(funcs, h.Func)
	}
	want := []string{FuncReceive, FuncInHook, FuncTunnelXmit, "skb_realloc_headroom", FuncConsume, FuncQueue}
	if !slices.Equal(funcs, want) {
		t.Errorf("hops %q, want %q", funcs, want)
	}
	if p.Outer == nil || p.Outer.Dst.Addr() != rs1.Addr() {
		t.Errorf("outer header %+v, want one to %s", p.Outer, rs1.Addr())
	}
	if p.Tuple.Dst != vipPort {
		t.Errorf("tuple %+v: the inner packet's", p.Tuple)
	}
}

// The hook's and the transmit function's returns fire after the
// packet was queued: they join its path, which then ends once the
// linger time has passed.
func TestEndedPathsTakeLateHopsThenEnd(t *testing.T) {
	g := NewGrouper(GrouperOptions{})
	var ended []Path
	for _, e := range drSYN(0x7, 0, rs1)[:5] {
		ended = append(ended, g.Add(e)...)
	}
	ended = append(ended, g.Add(queue(0x7, 15))...)
	ended = append(ended, g.Add(ev(0x7, 20, Hop{Func: FuncInHook, Hook: "LOCAL_IN", Verdict: VerdictStolen}))...)
	if len(ended) != 0 || g.Open() != 1 {
		t.Fatalf("within the linger time: %d ended, %d open; want 0 and 1", len(ended), g.Open())
	}
	// Another packet 6ms later: the first one's linger has passed.
	ended = g.Add(recv(0x8, 6020))
	if len(ended) != 1 || g.Open() != 1 {
		t.Fatalf("after the linger time: %d ended, %d open; want 1 and 1", len(ended), g.Open())
	}
	p := ended[0]
	if last := p.Hops[len(p.Hops)-1]; last.Verdict != VerdictStolen || p.Outcome != OutcomeForwarded {
		t.Errorf("path ends with %+v, outcome %s; want the hook's STOLEN return and forwarded", last, p.Outcome)
	}
}

// A reused skb address after an end starts a new path at once.
func TestNewPacketInAnEndedSKBStartsAPath(t *testing.T) {
	g := NewGrouper(GrouperOptions{})
	for _, e := range drSYN(0x7, 0, rs1) {
		g.Add(e)
	}
	ended := g.Add(recv(0x7, 30))
	if len(ended) != 1 || ended[0].Outcome != OutcomeForwarded || g.Open() != 1 {
		t.Errorf("%d ended (%+v), %d open; want the first packet ended and the second open", len(ended), ended, g.Open())
	}
}

// On 6.1 a NAT reply is often allocated in the skb its request was
// queued in a moment before, and the trace first sees it at
// ip_vs_conn_out_get (the receive does not match the filter): it is a
// new packet, not a late hop of the request.
func TestNATReplyInTheRequestsSKBIsANewPacket(t *testing.T) {
	g := NewGrouper(GrouperOptions{})
	var ended []Path
	for _, e := range drSYN(0x7, 0, rs1) {
		ended = append(ended, g.Add(e)...)
	}
	reply := withTuple(ev(0x7, 300, Hop{Func: FuncConnOutGet, Conn: conn(rs1, Masquerade, "ESTABLISHED")}), rs1, cli, "PSH|ACK")
	ended = append(ended, g.Add(reply)...)
	if len(ended) != 1 || g.Open() != 1 {
		t.Fatalf("%d ended, %d open; want the request ended and the reply open", len(ended), g.Open())
	}
	if p := ended[0]; p.Tuple.Dst != vipPort || p.Hops[len(p.Hops)-1].Func != FuncQueue {
		t.Errorf("the request's path: %v ending at %s, want it to end where it was queued", p.Tuple, p.Hops[len(p.Hops)-1].Func)
	}
	rest := g.Close()
	if len(rest) != 1 || rest[0].Tuple.Src != rs1 || rest[0].Hops[0].Func != FuncConnOutGet {
		t.Errorf("the reply's path: %+v, want one path from %v starting at ip_vs_conn_out_get", rest, rs1)
	}
}

func TestLingeringPathsEndOnFlush(t *testing.T) {
	g := NewGrouper(GrouperOptions{Linger: time.Millisecond})
	for _, e := range drSYN(0x7, 0, rs1) {
		g.Add(e)
	}
	if p := g.Flush(time.Second + 500*time.Microsecond); len(p) != 0 {
		t.Errorf("flushed %d paths within the linger time", len(p))
	}
	if p := g.Flush(time.Second + 2*time.Millisecond); len(p) != 1 {
		t.Errorf("flushed %d paths after the linger time, want 1", len(p))
	}
}

// Paths come out in the order their packets arrived: one that ended
// waits for an older one still open, until that one ends or goes idle.
func TestPathsEndInArrivalOrder(t *testing.T) {
	g := NewGrouper(GrouperOptions{})
	g.Add(recv(0x1, 0))                     // arrives first, its end unseen
	for _, e := range drSYN(0x2, 10, rs1) { // arrives second, transmitted
		g.Add(e)
	}
	if got := g.Flush(time.Second + 100*ms); len(got) != 0 {
		t.Fatalf("ended %d paths before the older one", len(got))
	}
	got := g.Flush(time.Second + 600*ms)
	if len(got) != 2 || got[0].Outcome != OutcomeUnknown || got[1].Outcome != OutcomeForwarded {
		t.Errorf("ended %+v, want the idle one then the forwarded one", got)
	}
}

func TestFlushEndsOnlyIdlePaths(t *testing.T) {
	g := NewGrouper(GrouperOptions{Idle: 100 * ms})
	g.Add(recv(0x10, 0))       // at 1s
	g.Add(recv(0x11, 150_000)) // at 1.15s
	if got := g.Flush(time.Second + 99*ms); len(got) != 0 {
		t.Fatalf("flushed %d paths before they were idle", len(got))
	}
	got := g.Flush(time.Second + 200*ms)
	if len(got) != 1 || got[0].Hops[0].At != time.Second {
		t.Fatalf("flushed %+v, want the first packet only", got)
	}
	if g.Open() != 1 {
		t.Errorf("%d open, want the second packet", g.Open())
	}
}

func TestSummaryCountsEndedPaths(t *testing.T) {
	g := NewGrouper(GrouperOptions{Destinations: func(Service) ([]Destination, bool) { return nil, true }})
	var evs []Event
	evs = append(evs, drSYN(1, 0, rs1)...)
	evs = append(evs, drSYN(2, 10_000, rs1)...)
	evs = append(evs, drSYN(3, 20_000, rs2)...)
	evs = append(evs, recv(4, 30_000), ev(4, 30_001, Hop{Func: FuncSchedulerErr, Service: svcTCP}),
		ev(4, 30_002, Hop{Func: FuncDrop, DropReason: "NETFILTER_DROP", DropLocation: "nf_hook_slow+0x8d"}))
	evs = append(evs, recv(5, 40_000))
	for _, e := range evs {
		g.Add(e)
	}
	open := g.Summary()
	if open.Packets != 4 {
		t.Errorf("before Close: %d packets, want the 4 ended", open.Packets)
	}
	g.Close()
	s := g.Summary()
	if s.Packets != 5 || s.ByRealServer[rs1] != 2 || s.ByRealServer[rs2] != 1 || s.ByOutcome[OutcomeUnknown] != 1 {
		t.Errorf("summary %+v", s)
	}
	why := "IPVS found no destination (TCP 10.77.0.100:80 has no real servers)"
	if s.Drops[why] != 1 || len(s.Drops) != 1 {
		t.Errorf("drops %v, want 1 %q", s.Drops, why)
	}
	// The summary is a copy: later paths do not change it.
	g.Add(recv(6, 500))
	g.Close()
	if s.Packets != 5 || s.ByOutcome[OutcomeUnknown] != 1 {
		t.Errorf("the returned summary changed: %+v", s)
	}
}

func TestHiddenHopsAreNamedInAnUnknownOutcome(t *testing.T) {
	g := NewGrouper(GrouperOptions{Hidden: true})
	g.Add(recv(1, 0))
	p := g.Close()
	if len(p) != 1 || p[0].Outcome != OutcomeUnknown || !strings.Contains(p[0].Why, "not visible on this kernel") {
		t.Errorf("%+v", p)
	}
}

func TestDropReasonsConsumedAreNotDrops(t *testing.T) {
	g := NewGrouper(GrouperOptions{})
	g.Add(recv(1, 0))
	g.Add(ev(1, 3, Hop{Func: FuncTCPRcv}))
	g.Add(ev(1, 5, Hop{Func: FuncDrop, DropReason: "SKB_CONSUMED"}))
	p := g.Flush(time.Second + 10*time.Millisecond)
	if len(p) != 1 || p[0].Outcome != OutcomeLocal {
		t.Errorf("a consumed packet: %+v", p)
	}
}

// With ReuseHops, Collect writes later paths' hops into the arrays of
// paths it has emitted, and prints exactly what it prints without; and
// without it, paths that emit keeps stay as they were printed. Every
// recorded set of both kernels, replayed as many packets.
func TestCollectReusesHopsOnlyWhenAsked(t *testing.T) {
	never := make(chan time.Time) // no idle flush: the paths end as the replay says
	for _, k := range kernels {
		for _, name := range []string{"dr", "nat", "tun", "weight0", "noservice"} {
			evs := recorded(t, k, name)
			run := func(reuse bool) (string, []Path, int) {
				var out bytes.Buffer
				jw := NewJSONWriter(&out)
				var kept []Path
				arrays := map[*Hop]bool{}
				src := &replaySource{evs: evs, n: 20 * len(evs)}
				_, err := Collect(t.Context(), src, CollectOptions{ReuseHops: reuse, Tick: never}, func(p Path) error {
					if !reuse {
						kept = append(kept, p)
					}
					arrays[&p.Hops[0]] = true
					return jw.WritePath(p)
				})
				if !errors.Is(err, errReplayDone) {
					t.Fatalf("%s %s: %v, want the replay's end", k, name, err)
				}
				return out.String(), kept, len(arrays)
			}
			plain, kept, fresh := run(false)
			reused, _, arrays := run(true)
			if reused != plain {
				t.Errorf("%s %s: the paths printed with ReuseHops differ from those without", k, name)
			}
			if fresh != len(kept) || arrays > fresh/4 {
				t.Errorf("%s %s: %d paths in %d arrays without ReuseHops, %d with it; want one each, then a few", k, name, len(kept), fresh, arrays)
			}
			var again bytes.Buffer
			jw := NewJSONWriter(&again)
			for _, p := range kept {
				if err := jw.WritePath(p); err != nil {
					t.Fatal(err)
				}
			}
			if again.String() != plain {
				t.Errorf("%s %s: paths kept by emit changed after it returned", k, name)
			}
		}
	}
}

// entered returns e carrying the entry of hook fn at hook, atUS (µs
// from 1s), as the probe sends a hook's entry with the first event from
// inside the hook, or with the hook's own exit.
func entered(e Event, fn, hook string, atUS int) Event {
	e.Entry = HookEntry{Func: fn, Hook: hook, At: time.Second + time.Duration(atUS)*time.Microsecond}
	if e.Hop.Func == fn {
		e.Hop.At = e.Entry.At
	}
	return e
}

// A hook's entry comes with the first event from inside it, and a hook
// that did nothing else is one event: the path shows the entry before
// that event, and the hook that did nothing as one hop with its
// verdict, as the hops were before events carried entries.
func TestHookEntriesCarriedByEventsAreHopsOfTheirOwn(t *testing.T) {
	c := conn(rs1, DirectRoute, "ESTABLISHED")
	g := NewGrouper(GrouperOptions{})
	events := []Event{
		recv(0x5, 0),
		entered(ev(0x5, 9, Hop{Func: FuncOutHook, Hook: "LOCAL_IN", Verdict: VerdictAccept}), FuncOutHook, "LOCAL_IN", 3),
		entered(ev(0x5, 14, Hop{Func: FuncConnInGet, Conn: c, Note: "connection found (ESTABLISHED)"}), FuncInHook, "LOCAL_IN", 11),
		ev(0x5, 16, Hop{Func: FuncDRXmit, Conn: c}),
		queue(0x5, 20),
	}
	for _, e := range events {
		if ended := g.Add(e); len(ended) != 0 {
			t.Fatalf("a path ended early: %+v", ended)
		}
	}
	paths := g.Close()
	if len(paths) != 1 {
		t.Fatalf("%d paths, want 1", len(paths))
	}
	type hop struct {
		fn, hook string
		verdict  Verdict
		atUS     int
	}
	var got []hop
	for _, h := range paths[0].Hops {
		got = append(got, hop{h.Func, h.Hook, h.Verdict, int((h.At - time.Second) / time.Microsecond)})
	}
	want := []hop{
		{FuncReceive, "", "", 0},
		{FuncOutHook, "LOCAL_IN", VerdictAccept, 3},
		{FuncInHook, "LOCAL_IN", "", 11},
		{FuncConnInGet, "", "", 14},
		{FuncDRXmit, "", "", 16},
		{FuncQueue, "", "", 20},
	}
	if !slices.Equal(got, want) {
		t.Errorf("hops\n%+v\nwant\n%+v", got, want)
	}
	if p := paths[0]; p.Outcome != OutcomeForwarded || p.Hops[2].Device != "" && p.Hops[2].Device != p.Hops[3].Device {
		t.Errorf("outcome %s, entry device %q", p.Outcome, p.Hops[2].Device)
	}
}

// A hook's whole visit, one event with its verdict, in the skb of a
// packet queued a moment before is a new packet entering the hook, not
// the old packet's late return from it (which carries no entry).
func TestHookVisitInAnEndedSKBStartsAPath(t *testing.T) {
	g := NewGrouper(GrouperOptions{})
	for _, e := range drSYN(0x7, 0, rs1) {
		g.Add(e)
	}
	late := ev(0x7, 25, Hop{Func: FuncInHook, Hook: "LOCAL_IN", Verdict: VerdictStolen})
	if ended := g.Add(late); len(ended) != 0 {
		t.Fatalf("a hook's return after the queue ended the path: %+v", ended)
	}
	visit := entered(ev(0x7, 40, Hop{Func: FuncOutHook, Hook: "LOCAL_OUT", Verdict: VerdictAccept}), FuncOutHook, "LOCAL_OUT", 30)
	ended := g.Add(visit)
	if len(ended) != 1 || ended[0].Hops[len(ended[0].Hops)-1].Verdict != VerdictStolen {
		t.Fatalf("ended %+v; want the first packet, ending with its STOLEN return", ended)
	}
	rest := g.Close()
	if len(rest) != 1 || len(rest[0].Hops) != 1 || rest[0].Hops[0].Func != FuncOutHook || rest[0].Hops[0].At != time.Second+30*time.Microsecond {
		t.Errorf("the new packet's path: %+v, want one hop: ip_vs_out_hook at its entry", rest)
	}
}

// A hook's entry that waits for an event from inside it past the
// events of a hook nested in it (a transmitter the probes do not see
// between them) takes its place by time.
func TestHookEntriesTakeTheirPlaceByTime(t *testing.T) {
	g := NewGrouper(GrouperOptions{})
	for _, e := range []Event{
		recv(0x6, 0),
		entered(ev(0x6, 12, Hop{Func: FuncOutHook, Hook: "LOCAL_OUT", Verdict: VerdictAccept}), FuncOutHook, "LOCAL_OUT", 10),
		entered(ev(0x6, 15, Hop{Func: FuncOutput}), FuncInHook, "LOCAL_IN", 5),
		queue(0x6, 20),
	} {
		g.Add(e)
	}
	paths := g.Close()
	if len(paths) != 1 {
		t.Fatalf("%d paths, want 1", len(paths))
	}
	var got []string
	for _, h := range paths[0].Hops {
		got = append(got, h.Func+" "+h.Hook)
	}
	want := []string{FuncReceive + " ", FuncInHook + " LOCAL_IN", FuncOutHook + " LOCAL_OUT", FuncOutput + " ", FuncQueue + " "}
	if !slices.Equal(got, want) {
		t.Errorf("hops %q, want %q", got, want)
	}
}

// A packet the tracer saw in part, while its probes were still being
// attached, has no path: what it would show is not what happened (a
// SYN seen from IPVS's return on would read as a drop in the hook). The
// packets after it have theirs, and only they are counted.
func TestGrouperLeavesOutPacketsFromBeforeAttach(t *testing.T) {
	since := time.Second + 10*time.Microsecond // attached 10µs after 1s
	g := NewGrouper(GrouperOptions{Boot: tBoot, Since: since})
	var got []Path
	// Seen only from the hook's return on, past Since: its receive and
	// the hook's entry came before.
	partial := drSYN(1, 0, rs1)[5:]
	partial[0] = withTuple(partial[0], cli, vipPort, "SYN")
	partial = append([]Event{ev(1, 2, Hop{Func: FuncLocalDeliver})}, partial...)
	whole := drSYN(2, 30, rs2)
	for _, e := range append(partial, whole...) {
		got = append(got, g.Add(e)...)
	}
	got = append(got, g.Close()...)
	if len(got) != 1 {
		t.Fatalf("%d paths, want only the packet after attach: %+v", len(got), got)
	}
	if p := got[0]; p.Outcome != OutcomeForwarded || p.RealServer == nil || p.RealServer.Address != rs2 {
		t.Errorf("path %+v, want the second packet, forwarded to %s", p, rs2)
	}
	if s := g.Summary(); s.Packets != 1 || s.ByRealServer[rs2] != 1 || s.ByRealServer[rs1] != 0 {
		t.Errorf("summary %+v, want 1 packet, to %s", s, rs2)
	}
	// Without Since, the same events give both paths.
	g = NewGrouper(GrouperOptions{Boot: tBoot})
	got = nil
	for _, e := range append(partial, whole...) {
		got = append(got, g.Add(e)...)
	}
	if got = append(got, g.Close()...); len(got) != 2 {
		t.Errorf("%d paths without Since, want 2", len(got))
	}
}

// A packet inside a hook is not idle while the hook runs: the
// director's own SYN, dropped in ip_vs_in_hook at LOCAL_OUT, stalled
// for more than Idle between ip_vs_leave and the hook's verdict, and
// came out as two paths (one without an end, one a drop with no
// reason). Only ten times Idle ends such a path.
func TestPacketInsideAHookWaitsForItsVerdict(t *testing.T) {
	const idle = 500 * ms
	g := NewGrouper(GrouperOptions{Idle: idle, Destinations: func(Service) ([]Destination, bool) { return nil, true }})
	local := netip.MustParseAddrPort("10.77.0.100:56566")
	for _, e := range []Event{
		withTuple(entered(ev(0x9, 4, Hop{Func: FuncConnInGet, Note: "no connection"}), FuncInHook, "LOCAL_OUT", 1), local, vipPort, "SYN"),
		ev(0x9, 8, Hop{Func: FuncSchedulerErr, Service: svcTCP}),
		ev(0x9, 10, Hop{Func: FuncLeave, Service: svcTCP}),
	} {
		g.Add(e)
	}
	// The hook's verdict comes 600ms later.
	if p := g.Flush(time.Second + 600*ms); len(p) != 0 {
		t.Fatalf("the packet's path ended inside the hook: %s %q", p[0].Outcome, p[0].Why)
	}
	g.Add(ev(0x9, 600_010, Hop{Func: FuncInHook, Hook: "LOCAL_OUT", Verdict: VerdictDrop}))
	g.Add(ev(0x9, 600_020, Hop{Func: FuncDrop, DropReason: "NETFILTER_DROP", DropLocation: "nf_hook_slow+0x8d"}))
	paths := slices.Clone(g.Flush(time.Second + 700*ms))
	paths = append(paths, g.Close()...)
	if len(paths) != 1 || paths[0].Outcome != OutcomeDropped || paths[0].Why != "IPVS found no destination (TCP 10.77.0.100:80 has no real servers)" {
		for _, p := range paths {
			t.Logf("%s: %q, %d hops", p.Outcome, p.Why, len(p.Hops))
		}
		t.Fatalf("%d paths, want one dropped for no destination", len(paths))
	}

	// A verdict that never comes (its event lost) ends the path at ten
	// times Idle.
	g.Add(withTuple(entered(ev(0xa, 1_000_000, Hop{Func: FuncConnInGet, Note: "no connection"}), FuncInHook, "LOCAL_IN", 999_990), cli, vipPort, "SYN"))
	if p := g.Flush(2*time.Second + 10*idle - ms); len(p) != 0 {
		t.Errorf("ended before ten times Idle: %d paths", len(p))
	}
	if p := g.Flush(2*time.Second + 10*idle); len(p) != 1 || p[0].Outcome != OutcomeUnknown {
		t.Errorf("at ten times Idle: %d paths, want one unknown", len(p))
	}
}
