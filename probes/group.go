package probes

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"time"
)

// DefaultIdle is how long a path may go without a new hop before Flush
// ends it: longer than any packet spends in one host's stack, short
// enough that a person sees the packet while the traffic still flows.
const DefaultIdle = 500 * time.Millisecond

// DefaultLinger is how long (kernel time) a path that was transmitted
// or freed stays open for the hops that report after the end: the
// return of the hook and the transmit function that sent the packet
// fire after it was queued.
const DefaultLinger = 5 * time.Millisecond

// GrouperOptions configure a Grouper.
type GrouperOptions struct {
	// Idle is how long (kernel time) a path may go without a new hop
	// before Flush ends it; zero means DefaultIdle.
	Idle time.Duration
	// Linger is how long (kernel time) an ended path takes the hops that
	// report after its end; zero means DefaultLinger.
	Linger time.Duration
	// Boot is the wall-clock time of the kernel's monotonic clock's
	// zero: a path's At is Boot plus its first hop's At, where the first
	// event has no Time.
	Boot time.Time
	// Destinations lists a service's real servers as the kernel holds
	// them, to say why IPVS found no destination ("all real servers of
	// TCP 192.168.0.100:80 have weight 0"); nil, or false, when unknown.
	Destinations func(Service) ([]Destination, bool)
	// Hidden says that some hops cannot be seen on this kernel (the
	// Summary's Unseen): a path that ends out of sight says so.
	Hidden bool
	// Since, when not zero, is when (kernel time) the tracer's last
	// probe was attached. A packet with a hop before it went through a
	// partly attached tracer: hops of its path may be missing (a first
	// packet seen only by the tracepoints attached first, or by a hook's
	// return), and a path that says less than what happened is worse
	// than none. Its path is left out, and not counted.
	Since time.Duration
}

// Destination is a real server of a virtual service as the kernel's
// table lists it (/proc/net/ip_vs).
type Destination struct {
	Address        netip.AddrPort
	Weight         int32
	UpperThreshold uint32
	ActiveConns    uint32
	InactiveConns  uint32
}

// A Grouper joins Events into Paths, one per packet, by skb address. It
// is a pure state machine: Add, Flush and Close return the paths they
// end, in the order their first hops were seen, and the clock is the
// kernel's, from the events (Flush is told the time). It is not safe
// for concurrent use.
type Grouper struct {
	opts  GrouperOptions
	open  map[uint64]*openPath
	moved map[uint64]uint64 // an skb tunnel mode replaced -> its successor
	seq   uint64
	swept time.Duration // the event time of the last sweep for ended paths
	sum   Summary
	due   []*openPath // end's list, kept between calls
	out   []Path      // the paths the last Add, Flush or Close returned
	// free holds the hop slices of ended paths handed back by Recycle,
	// for new paths.
	free [][]Hop
}

// maxFreeHops bounds the hop slices a Grouper keeps for reuse.
const maxFreeHops = 64

// pathHops is how many hops a path has room for when it opens: a
// forwarded packet has 13 to 18 (the records of testdata/, 6.1 and
// 6.12), so that its slice is allocated once, not twice (12, then 24:
// twice the bytes, which set how often the collector runs).
const pathHops = 18

type openPath struct {
	path Path
	skb  uint64
	seq  uint64
	last time.Duration
	// ended: the packet was queued to a device or freed; the path
	// lingers for late hops until Linger has passed.
	ended bool
	// early: a hop came before GrouperOptions.Since.
	early bool
	// inHook counts the hook visits the packet entered and has not
	// left (no verdict yet).
	inHook int
}

// inHookIdleFactor: a path whose packet is inside a hook goes idle after
// this many times Idle. A hook runs for microseconds, but in process
// context (the director's own connections, whose SYN ip_vs_leave answers
// with an ICMP error handled inside the hook) a stall between a hop and
// the hook's verdict split one packet into two paths at 500 ms: the first
// without an end, the second a drop with no reason (TestVMTraceCheck, 6.12
// in the VM with the host loaded). An exit never reported (the ring
// buffer full) holds the path this long.
const inHookIdleFactor = 10

// NewGrouper returns a Grouper with no open paths.
func NewGrouper(opts GrouperOptions) *Grouper {
	if opts.Idle <= 0 {
		opts.Idle = DefaultIdle
	}
	if opts.Linger <= 0 {
		opts.Linger = DefaultLinger
	}
	return &Grouper{
		opts: opts, open: map[uint64]*openPath{}, moved: map[uint64]uint64{},
		sum: Summary{ByOutcome: map[Outcome]int{}, ByRealServer: map[netip.AddrPort]int{}, Drops: map[string]int{}},
	}
}

// Add joins e to its packet's path and returns the paths that ended
// by the time of e: those transmitted or freed more than Linger before
// it, and an older packet's whose skb address the kernel reused. The
// slice returned by Add, Flush or Close is the Grouper's: it holds the
// paths until the next call (the paths themselves are the caller's).
func (g *Grouper) Add(e Event) []Path {
	done := g.results()
	defer func() { g.out = done }()
	// Sweeping sorts the open paths: a few times per linger time, not
	// per event.
	if e.Hop.At-g.swept >= g.opts.Linger/4 {
		g.swept = e.Hop.At
		done = g.end(done, func(op *openPath) bool { return op.ended && op.skb != e.SKB && e.Hop.At-op.last > g.opts.Linger })
	}
	if e.PrevSKB != 0 && e.PrevSKB != e.SKB {
		// Tunnel mode copied the packet into a new skb: the path follows.
		if op := g.open[e.PrevSKB]; op != nil {
			if stale := g.open[e.SKB]; stale != nil {
				done = g.finish(done, stale)
			}
			delete(g.open, e.PrevSKB)
			op.skb = e.SKB
			g.open[e.SKB] = op
			g.moved[e.PrevSKB] = e.SKB
		}
	}
	if g.open[e.SKB] == nil {
		if to, ok := g.moved[e.SKB]; ok {
			// The replaced skb, freed after the copy: a hop of the path
			// that moved on, not the end of it.
			if op := g.open[to]; op != nil {
				g.append(op, e)
			}
			if k := kindOf(e.Hop); k == kindFree || k == kindDrop {
				delete(g.moved, e.SKB)
			}
			return done
		}
	}
	op := g.open[e.SKB]
	if op != nil && (op.ended && !lateHop(e) || !op.ended && reused(op, e)) {
		done = g.finish(done, op)
		op = nil
	}
	if op == nil {
		g.seq++
		op = &openPath{skb: e.SKB, seq: g.seq, path: Path{NetNS: e.NetNS, Device: e.Hop.Device, Hops: g.newHops()}}
		switch {
		case !e.Time.IsZero():
			op.path.At = e.Time
		case !g.opts.Boot.IsZero():
			op.path.At = g.opts.Boot.Add(e.Hop.At)
		}
		g.open[e.SKB] = op
	}
	g.append(op, e)
	if !op.ended && ends(op.path.Hops) {
		op.ended = true
	}
	return done
}

// newHops returns an empty slice for a path's hops: one handed back by
// Recycle, or a new one with room for a forwarded packet's hops.
func (g *Grouper) newHops() []Hop {
	if n := len(g.free); n > 0 {
		h := g.free[n-1]
		g.free[n-1] = nil
		g.free = g.free[:n-1]
		return h
	}
	return make([]Hop, 0, pathHops)
}

// Recycle hands back the hops of a path this Grouper ended, once
// nothing reads p.Hops any more: a later path's hops are written into
// the same array. The hops' values (strings, and the Service, RealServer
// and Conn they point to) are not changed; only the slice is reused.
func (g *Grouper) Recycle(p Path) {
	if cap(p.Hops) == 0 || cap(p.Hops) > 4*pathHops || len(g.free) >= maxFreeHops {
		return
	}
	clear(p.Hops) // what the old hops point to is not kept alive
	g.free = append(g.free, p.Hops[:0])
}

func (g *Grouper) append(op *openPath, e Event) {
	p := &op.path
	h := e.Hop
	switch en := &e.Entry; {
	case en.Func == "":
		p.Hops = append(p.Hops, h)
	case en.Func != h.Func:
		// The hook h ran inside: its entry came with h.
		p.Hops = insertByTime(p.Hops, Hop{Func: en.Func, At: en.At, Hook: en.Hook, Device: h.Device})
		p.Hops = append(p.Hops, h)
	default:
		// A hook's whole visit, at its entry's time.
		p.Hops = insertByTime(p.Hops, h)
	}
	op.last = max(op.last, h.At)
	if e.Entry.Func != "" { // an event carries only a hook's entry
		op.inHook++
	}
	if kindOf(h) == kindHook && h.Verdict != "" && op.inHook > 0 {
		op.inHook--
	}
	if h.At < g.opts.Since || e.Entry.Func != "" && e.Entry.At < g.opts.Since {
		op.early = true
	}
	if p.Device == "" {
		p.Device = h.Device
	}
	if p.Tuple.Protocol == "" && e.Tuple.Protocol != "" {
		p.Tuple, p.TCPFlags = e.Tuple, e.TCPFlags
	}
	if p.Outer == nil && e.Outer != nil {
		o := *e.Outer
		p.Outer = &o
	}
	if h.Service != nil {
		p.Service = h.Service
	}
	if h.RealServer != nil {
		p.RealServer = h.RealServer
	}
	if h.Conn != nil {
		p.Conn = h.Conn
	}
}

// insertByTime appends h to hops, or puts it before the hops that came
// later: a hook's entry travels with the next event from inside it,
// which may come after the events of a hook nested in it (under a
// transmitter the probes do not see), and a hook's whole visit is one
// event at its exit.
func insertByTime(hops []Hop, h Hop) []Hop {
	i := len(hops)
	for i > 0 && hops[i-1].At > h.At {
		i--
	}
	return slices.Insert(hops, i, h)
}

// lateHop reports whether a hop can still belong to a packet that was
// queued or freed: a hook's or transmitter's return, a second queue
// event, a free or a drop after queueing (a qdisc's). Any other hop in
// the same skb is a new packet in a reused address: on 6.1 the real
// server's reply to a NAT service is often allocated where the
// request's skb was, and its first traced hop is ip_vs_conn_out_get,
// not a receive. An event that carries a hook's entry enters the hook:
// never late.
func lateHop(e Event) bool {
	if e.Entry.Func != "" {
		return false
	}
	h := e.Hop
	switch kindOf(h) {
	case kindQueue, kindFree, kindDrop:
		return true
	case kindHook:
		return h.Verdict != ""
	}
	return false
}

// reused reports whether e is a new packet in an skb whose old packet's
// end went unseen: a second arrival from the same device in the same
// namespace.
func reused(op *openPath, e Event) bool {
	if e.Hop.Func != FuncReceive {
		return false
	}
	for _, h := range op.path.Hops {
		if h.Func == FuncReceive && h.Device == e.Hop.Device && op.path.NetNS == e.NetNS {
			return true
		}
	}
	return false
}

// ends reports whether the last hop ends the packet's path in this
// host: queued to a device, or freed. The old skb tunnel mode frees
// after copying the packet is not the end.
func ends(hops []Hop) bool {
	switch kindOf(hops[len(hops)-1]) {
	case kindQueue, kindDrop:
		return true
	case kindFree:
		for i := len(hops) - 2; i >= 0; i-- {
			switch k := kindOf(hops[i]); {
			case k == kindQueue:
				return true
			case k == kindXmit:
				f, _ := xmitForwarding(hops[i].Func)
				return f != Tunnel
			}
		}
		return true
	}
	return false
}

// finish ends op's path and appends it to out, unless a hop of it came
// before the tracer was attached (GrouperOptions.Since).
func (g *Grouper) finish(out []Path, op *openPath) []Path {
	delete(g.open, op.skb)
	for from, to := range g.moved {
		if to == op.skb {
			delete(g.moved, from)
		}
	}
	p := op.path
	if op.early {
		g.Recycle(p)
		return out
	}
	p.Outcome, p.Why = decide(&p, g.opts)
	g.count(p)
	return append(out, p)
}

func (g *Grouper) count(p Path) { g.sum.Add(p) }

// Add counts one ended path.
func (s *Summary) Add(p Path) {
	if s.ByOutcome == nil {
		s.ByOutcome = map[Outcome]int{}
	}
	if s.ByRealServer == nil {
		s.ByRealServer = map[netip.AddrPort]int{}
	}
	if s.Drops == nil {
		s.Drops = map[string]int{}
	}
	s.Packets++
	s.ByOutcome[p.Outcome]++
	switch p.Outcome {
	case OutcomeForwarded:
		if rs := p.chosen(); rs.IsValid() {
			s.ByRealServer[rs]++
		}
	case OutcomeDropped:
		s.Drops[p.Why]++
	}
}

// chosen is the real server the packet went to, if the trace saw it.
func (p *Path) chosen() netip.AddrPort {
	if p.Conn != nil && p.Conn.RealServer.IsValid() {
		return p.Conn.RealServer
	}
	if p.RealServer != nil {
		return p.RealServer.Address
	}
	return netip.AddrPort{}
}

// Flush ends the paths that have had no hop for the idle time at now
// (the kernel's monotonic clock), and the ended ones past their linger,
// and returns them.
func (g *Grouper) Flush(now time.Duration) []Path {
	g.out = g.end(g.results(), func(op *openPath) bool {
		idle := g.opts.Idle
		if op.inHook > 0 && !op.ended {
			idle *= inHookIdleFactor
		}
		return now-op.last >= idle || op.ended && now-op.last > g.opts.Linger
	})
	return g.out
}

// results empties the slice the last call returned, for the next
// call's paths: the paths it held are not kept alive by it.
func (g *Grouper) results() []Path {
	if cap(g.out) > maxKeptResults {
		g.out = nil
		return nil
	}
	clear(g.out)
	return g.out[:0]
}

// maxKeptResults bounds the result slice kept between calls: a Close of
// thousands of paths must not pin them.
const maxKeptResults = 64

// Pending is how many paths are open: started and not yet ended by Add,
// Flush or Close.
func (g *Grouper) Pending() int { return len(g.open) }

// Close ends every open path, at the end of a trace.
func (g *Grouper) Close() []Path {
	g.out = g.end(g.results(), func(*openPath) bool { return true })
	return g.out
}

// Open is the number of paths not ended yet.
func (g *Grouper) Open() int { return len(g.open) }

// end finishes the due paths in the order they started, up to the
// first path that started earlier and is not due yet: paths come out in
// the order the packets arrived (a packet waits at most Idle for an
// older one whose end is not seen).
func (g *Grouper) end(out []Path, due func(*openPath) bool) []Path {
	ops := g.due[:0]
	for _, op := range g.open {
		ops = append(ops, op)
	}
	defer func() { clear(ops); g.due = ops[:0] }() // no finished path kept alive
	slices.SortFunc(ops, func(a, b *openPath) int {
		return cmp.Or(cmp.Compare(a.path.Hops[0].At, b.path.Hops[0].At), cmp.Compare(a.seq, b.seq))
	})
	for _, op := range ops {
		if !due(op) {
			break
		}
		out = g.finish(out, op)
	}
	return out
}

// Summary counts the paths ended so far. Lost and Unseen are the
// loader's to fill in.
func (g *Grouper) Summary() Summary {
	s := g.sum
	s.ByOutcome = maps.Clone(g.sum.ByOutcome)
	s.ByRealServer = maps.Clone(g.sum.ByRealServer)
	s.Drops = maps.Clone(g.sum.Drops)
	return s
}
