package probes_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvskit/lvskit/probes"
	"github.com/lvskit/lvskit/probes/probestest"
)

var (
	client = netip.MustParseAddrPort("10.77.0.2:40000")
	vip    = netip.MustParseAddrPort("10.77.0.100:80")
	rs     = netip.MustParseAddrPort("10.77.0.21:80")
)

func event(skb uint64, at time.Duration, h probes.Hop) probes.Event {
	h.At = at
	return probes.Event{SKB: skb, Hop: h, Tuple: probes.Tuple{Protocol: "TCP", Src: client, Dst: vip}}
}

// forwardedPacket is one packet IPVS sent to rs by direct routing.
func forwardedPacket(skb uint64, at time.Duration) []probes.Event {
	c := &probes.Conn{Protocol: "TCP", Client: client, Virtual: vip, RealServer: rs, Forwarding: probes.DirectRoute}
	return []probes.Event{
		event(skb, at, probes.Hop{Func: probes.FuncReceive, Device: "eth0"}),
		event(skb, at+time.Microsecond, probes.Hop{Func: probes.FuncDRXmit, Conn: c}),
		event(skb, at+2*time.Microsecond, probes.Hop{Func: probes.FuncQueue, Device: "eth0"}),
	}
}

func outcomes(ps []probes.Path) []probes.Outcome {
	var out []probes.Outcome
	for _, p := range ps {
		out = append(out, p.Outcome)
	}
	return out
}

func TestCollectStopsAfterCount(t *testing.T) {
	var evs []probes.Event
	for i := range 3 {
		evs = append(evs, forwardedPacket(uint64(i+1), time.Duration(i)*time.Millisecond)...)
	}
	src := probestest.NewSource(evs...)
	var got []probes.Path
	sum, err := probes.Collect(t.Context(), src, probes.CollectOptions{Count: 2}, func(p probes.Path) error {
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || sum.Packets != 2 || sum.ByRealServer[rs] != 2 {
		t.Errorf("%d paths, summary %+v; want 2 and 2", len(got), sum)
	}
	if !src.Closed() {
		t.Error("the trace was not closed")
	}
}

// A cancelled run (Ctrl-C, --duration) still prints the packets it saw
// whose end it had not seen.
func TestCollectEndsOpenPathsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	evs := append(forwardedPacket(1, 0), event(9, time.Millisecond, probes.Hop{Func: probes.FuncReceive, Device: "eth0"}))
	src := probestest.NewSource(evs...)
	var got []probes.Path
	sum, err := probes.Collect(ctx, src, probes.CollectOptions{}, func(p probes.Path) error {
		got = append(got, p)
		cancel() // after the first ended path
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []probes.Outcome{probes.OutcomeForwarded, probes.OutcomeUnknown}; !slices.Equal(outcomes(got), want) {
		t.Errorf("outcomes %v, want %v", outcomes(got), want)
	}
	if sum.Packets != 2 || sum.ByOutcome[probes.OutcomeUnknown] != 1 {
		t.Errorf("summary %+v", sum)
	}
}

func TestCollectFlushesIdlePathsOnTick(t *testing.T) {
	tick := make(chan time.Time)
	evs := append([]probes.Event{event(9, time.Second, probes.Hop{Func: probes.FuncReceive, Device: "eth0"})},
		forwardedPacket(1, time.Second+time.Millisecond)...)
	src := probestest.NewSource(evs...)
	// Each tick's time comes before the tick, so the flush sees it.
	nows := make(chan time.Duration, 1)
	go func() {
		<-src.Waiting()                          // every event was handed over
		nows <- time.Second + 2*time.Millisecond // the forwarded packet still lingers
		tick <- time.Time{}
		nows <- 2 * time.Second // both are idle now
		tick <- time.Time{}
	}()
	var got []probes.Path
	flushes := 0
	opts := probes.CollectOptions{Count: 2, Tick: tick, Now: func() time.Duration { flushes++; return <-nows }}
	_, err := probes.Collect(t.Context(), src, opts, func(p probes.Path) error {
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []probes.Outcome{probes.OutcomeUnknown, probes.OutcomeForwarded}; !slices.Equal(outcomes(got), want) {
		t.Errorf("outcomes %v, want %v (both ended by the second tick)", outcomes(got), want)
	}
	if flushes != 2 {
		t.Errorf("flushed %d times, want 2", flushes)
	}
}

func TestCollectReturnsTheTracesError(t *testing.T) {
	src := probestest.NewSource(forwardedPacket(1, 0)...)
	boom := errors.New("ring buffer: boom")
	src.Fail(boom)
	n := 0
	_, err := probes.Collect(t.Context(), src, probes.CollectOptions{}, func(probes.Path) error { n++; return nil })
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want one wrapping %v", err, boom)
	}
	if n != 1 {
		t.Errorf("%d paths shown, want the 1 seen before the error", n)
	}
}

func TestCollectStopsWhenOutputFails(t *testing.T) {
	src := probestest.NewSource(append(forwardedPacket(1, 0), forwardedPacket(2, time.Millisecond)...)...)
	broken := errors.New("write /dev/stdout: broken pipe")
	n := 0
	_, err := probes.Collect(t.Context(), src, probes.CollectOptions{}, func(probes.Path) error { n++; return broken })
	if !errors.Is(err, broken) || n != 1 {
		t.Errorf("%d writes, error %v; want 1 and %v", n, err, broken)
	}
}

func TestCollectReportsLostEventsAndHiddenHops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	src := probestest.NewSource(forwardedPacket(1, 0)...)
	src.LostEvents = 7
	src.MissedRuns = 2
	src.UnseenHops = []string{"ip_vs_conn_new: no kprobes"}
	sum, err := probes.Collect(ctx, src, probes.CollectOptions{}, func(probes.Path) error { cancel(); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if sum.Lost != 7 || sum.Missed != 2 || !slices.Equal(sum.Unseen, src.UnseenHops) {
		t.Errorf("summary %+v", sum)
	}
	var text bytes.Buffer
	if err := probes.WriteSummaryText(&text, sum, probes.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := "events lost: 7 (the ring buffer was full: some paths lack hops), probe runs skipped: 2 (a probe fired on a CPU where it was already running: some paths lack hops)\n"; !strings.Contains(text.String(), want) {
		t.Errorf("the summary lacks %q:\n%s", want, text.String())
	}
}

// Without a Tick, the timer Collect starts for an open path flushes it
// once idle, before the run ends.
func TestCollectFlushesIdlePathsWithItsOwnTimer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	src := probestest.NewSource(event(9, time.Second, probes.Hop{Func: probes.FuncReceive, Device: "eth0"}))
	opts := probes.CollectOptions{Now: func() time.Duration { return time.Hour }}
	flushed := false
	_, err := probes.Collect(ctx, src, opts, func(p probes.Path) error {
		flushed = ctx.Err() == nil
		cancel()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !flushed {
		t.Error("the idle path was ended only when the run ended: no timer flushed it")
	}
}

// laggingSource is a trace whose decoding lags behind the probes: it
// hands nothing over until End, then what it held, then io.EOF; like
// the loader's ring buffer when the first drop waits for kallsyms.
type laggingSource struct {
	held  []probes.Event
	ended chan struct{}
	abort chan struct{} // closed by Close
}

func newLaggingSource(evs ...probes.Event) *laggingSource {
	return &laggingSource{held: evs, ended: make(chan struct{}), abort: make(chan struct{})}
}

func (s *laggingSource) Read() (probes.Event, error) {
	select {
	case <-s.ended:
	case <-s.abort:
		return probes.Event{}, os.ErrClosed
	}
	if len(s.held) == 0 {
		return probes.Event{}, io.EOF
	}
	e := s.held[0]
	s.held = s.held[1:]
	return e, nil
}

func (s *laggingSource) End() {
	if s.ended != nil {
		close(s.ended)
	}
}
func (s *laggingSource) Lost() uint64     { return 0 }
func (s *laggingSource) Unseen() []string { return nil }
func (s *laggingSource) Close() error     { close(s.abort); return nil }

// A window's end (the checklist's --listen, --duration) still shows the
// packets the probes saw within it, however late they are decoded.
func TestCollectShowsWhatTheWindowSawAfterItEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the window is over before anything was decoded
	src := newLaggingSource(append(forwardedPacket(1, 0), forwardedPacket(2, time.Millisecond)...)...)
	var got []probes.Path
	sum, err := probes.Collect(ctx, src, probes.CollectOptions{}, func(p probes.Path) error {
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []probes.Outcome{probes.OutcomeForwarded, probes.OutcomeForwarded}; !slices.Equal(outcomes(got), want) || sum.Packets != 2 {
		t.Errorf("outcomes %v, %d packets; want %v", outcomes(got), sum.Packets, want)
	}
}

// keptSource is an Ender that hands over its events, then waits for
// End; it counts the calls to End and Close.
type keptSource struct {
	events       chan probes.Event
	ended        chan struct{}
	once         sync.Once
	ends, closes atomic.Int32
}

func newKeptSource(evs ...probes.Event) *keptSource {
	s := &keptSource{events: make(chan probes.Event, len(evs)), ended: make(chan struct{})}
	for _, e := range evs {
		s.events <- e
	}
	return s
}

func (s *keptSource) Read() (probes.Event, error) {
	select {
	case e := <-s.events:
		return e, nil
	default:
	}
	<-s.ended
	return probes.Event{}, io.EOF
}

func (s *keptSource) End() {
	s.ends.Add(1)
	s.once.Do(func() { close(s.ended) })
}
func (s *keptSource) Lost() uint64     { return 0 }
func (s *keptSource) Unseen() []string { return nil }
func (s *keptSource) Close() error {
	s.closes.Add(1)
	s.once.Do(func() { close(s.ended) })
	return nil
}

// With KeepOpen an Ender is ended, not closed, whether its window
// ended (End once, not twice) or Count was reached: the caller shows the
// summary, then detaches.
func TestCollectKeepOpenEndsInsteadOfClosing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window bool
		count  int
		want   int
	}{{"window over", true, 0, 2}, {"count reached", false, 1, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			src := newKeptSource(append(forwardedPacket(1, 0), forwardedPacket(2, time.Millisecond)...)...)
			n := 0
			sum, err := probes.Collect(ctx, src, probes.CollectOptions{Count: tc.count, KeepOpen: true}, func(probes.Path) error {
				if n++; tc.window && n == 1 {
					cancel() // the window ends while the trace runs
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if src.closes.Load() != 0 || src.ends.Load() != 1 {
				t.Errorf("closed %d times, ended %d times; want 0 and 1", src.closes.Load(), src.ends.Load())
			}
			if n != tc.want || sum.Packets != tc.want {
				t.Errorf("%d paths, %d in the summary; want %d", n, sum.Packets, tc.want)
			}
		})
	}
}

// Abort ends the run even while the source is still handing over.
func TestCollectAbortEndsTheHandover(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	abort := make(chan struct{})
	close(abort)
	src := &laggingSource{held: forwardedPacket(1, 0), ended: make(chan struct{}), abort: make(chan struct{})}
	// End does not release anything: the handover never finishes.
	src.ended = nil
	n := 0
	_, err := probes.Collect(ctx, src, probes.CollectOptions{Abort: abort}, func(probes.Path) error { n++; return nil })
	if err != nil || n != 0 {
		t.Errorf("%d paths, error %v; want none and no error", n, err)
	}
}

// What the tracer had buffered is handled as one burst, whose paths are
// written out together (Flush), and a burst's output is not held back
// while the trace waits for the next one.
func TestCollectFlushesEachBurstOnce(t *testing.T) {
	var evs []probes.Event
	for i := range 3 {
		evs = append(evs, forwardedPacket(uint64(i+1), time.Duration(i)*time.Millisecond)...)
	}
	src := probestest.NewSource(evs...)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var written, pending int
	flushed := make(chan int)
	done := make(chan error, 1)
	go func() {
		_, err := probes.Collect(ctx, src, probes.CollectOptions{Flush: func() error {
			if pending > 0 {
				written += pending
				pending = 0
				flushed <- written
			}
			return nil
		}}, func(probes.Path) error {
			pending++
			return nil
		})
		done <- err
	}()
	if n := <-flushed; n != 3 {
		t.Errorf("the first flush wrote %d paths, want the burst's 3 at once", n)
	}
	for _, e := range forwardedPacket(4, time.Second) {
		src.Send(e)
	}
	if n := <-flushed; n != 4 {
		t.Errorf("after one more packet, %d paths written, want 4", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Bursts that come faster than the tick are written out together at
// the tick (one Flush, one write of lvsdiag's output), not one write per
// burst: a busy trace's output costs a write per tick.
func TestCollectFlushesBurstsOncePerTick(t *testing.T) {
	src := probestest.NewSource(forwardedPacket(1, 0)...)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tick := make(chan time.Time)
	emitted := make(chan int)
	flushes := make(chan int, 10)
	written, pending := 0, 0
	done := make(chan error, 1)
	go func() {
		_, err := probes.Collect(ctx, src, probes.CollectOptions{
			Tick: tick,
			Now:  func() time.Duration { return time.Hour },
			Flush: func() error {
				if pending > 0 {
					written += pending
					pending = 0
					flushes <- written
				}
				return nil
			},
		}, func(probes.Path) error {
			pending++
			emitted <- pending
			return nil
		})
		done <- err
	}()
	// Each later packet ends the one before (its linger is over): two
	// paths emitted, in two bursts, and nothing written yet.
	for i := range 2 {
		for _, e := range forwardedPacket(uint64(i+2), time.Duration(i+1)*time.Second) {
			src.Send(e)
		}
		if n := <-emitted; n != i+1 {
			t.Fatalf("%d paths emitted, want %d", n, i+1)
		}
	}
	select {
	case n := <-flushes:
		t.Fatalf("%d paths written before the tick, want them held until it", n)
	default:
	}
	tick <- time.Now()
	<-emitted // the last packet's path, idle at the tick
	if n := <-flushes; n != 3 {
		t.Errorf("the tick wrote %d paths, want the 3 emitted", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
