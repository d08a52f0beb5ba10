package probes

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// Source is a running trace's stream of decoded events: the loader's
// tracer on Linux, recorded or constructed events in tests.
type Source interface {
	// Read blocks until the next event. After Close it returns an error
	// (wrapping os.ErrClosed for the loader's ring buffer).
	Read() (Event, error)
	// Lost is how many events the kernel could not hand over so far.
	Lost() uint64
	// Unseen lists the hops this kernel cannot show, one line each,
	// with the reason.
	Unseen() []string
	// Close stops the trace and unblocks Read.
	Close() error
}

// An Ender is a Source that can end by itself: after End, Read hands
// over the events the probes produced before End was called, then
// returns io.EOF. When ctx ends, Collect ends an Ender this way rather
// than closing it at once, so that every packet seen within a window is
// shown even when decoding lags behind the probes (a first drop waits
// for kallsyms, which takes seconds on a loaded or emulated machine).
type Ender interface {
	Source
	End()
}

// A BufferedSource is a Source that can say whether Read would return
// an event at once. Collect then hands events from its reading
// goroutine to its grouping one in batches, as far as they are
// buffered, instead of one at a time: a hand-over wakes a goroutine,
// which costs more than grouping and writing the event.
type BufferedSource interface {
	Source
	// Buffered reports whether an event is waiting that Read returns
	// without blocking.
	Buffered() bool
}

// A MissCounter is a Source that can say how many of its probes' runs
// the kernel skipped (Summary.Missed).
type MissCounter interface {
	Missed() uint64
}

// maxBatch is the most events Collect hands over at once.
const maxBatch = 256

// yieldEvery is how many events each of Collect's goroutines handles
// between yields (runtime.Gosched). The two hand batches to each other
// through a channel, so the scheduler counts them as one time slice,
// and the runtime preempts a time slice that lasts 10 ms with a signal:
// under emulation (the test VM) that cost 15-20% of a trace's CPU
// while it printed every packet, where a yield every few milliseconds
// costs well under 1%. On hardware 64 events take some 30 us.
const yieldEvery = 64

// CollectOptions configure Collect.
type CollectOptions struct {
	Grouper GrouperOptions
	// Count ends the run after this many paths; zero means no limit.
	Count int
	// Tick, when set, delivers the times at which idle paths are flushed;
	// nil means every 20ms while a path is open (an idle trace does not
	// wake up).
	Tick <-chan time.Time
	// Now is the kernel's monotonic clock (the events' clock), for
	// flushing idle paths; nil estimates it from the latest event plus
	// the wall-clock time since it arrived.
	Now func() time.Duration
	// Abort, when it closes, ends the run even while an Ender hands
	// over what it holds; nil waits for it.
	Abort <-chan struct{}
	// Flush, when set, is called at the tick after paths were emitted
	// (at most some 20ms later without opts.Tick), and before Collect
	// returns: emit may buffer its output, and write it when Flush is
	// called. While the trace is busy, its output then goes out in a few
	// large writes rather than one per burst of events, and nothing
	// waits longer than a tick once the trace is idle.
	Flush func() error
	// ReuseHops says that emit does not keep a path's Hops slice (nor
	// a part of it) after it returns: Collect then writes a later
	// path's hops into the same array, instead of allocating one per
	// packet (the bulk of what a trace printing every packet allocates,
	// which sets how often the garbage collector runs). The hops'
	// values may be kept.
	ReuseHops bool
	// KeepOpen leaves an Ender open when Collect returns: it is ended
	// (End) instead, which stops its reading without detaching, and the
	// caller closes it once it has shown the summary. Detaching waits
	// for the kernel (on 6.12 some 0.15 s per function link in the test
	// VM), and a person who pressed Ctrl-C should not wait for it to see
	// the counts. A Source that is not an Ender is closed as without it.
	KeepOpen bool
}

// Collect reads src until ctx ends, Count paths were printed, or the
// source fails; it joins the events into paths, hands each to emit as it
// ends, and returns the Summary of the paths emitted. When ctx ends, an
// Ender first hands over the events produced before then. It closes src
// (or, with KeepOpen, ends it) and waits for its reader before it
// returns. Paths still open at the end are ended and emitted too; with
// Count reached they are left out.
func Collect(ctx context.Context, src Source, opts CollectOptions, emit func(Path) error) (Summary, error) {
	g := NewGrouper(opts.Grouper)
	tick := opts.Tick
	// Without opts.Tick, a timer runs while a path is open or output
	// waits for Flush: rearm starts it after an event or a flush that
	// leaves one open, and fired says it has stopped.
	armed := false
	unflushed := false // paths were emitted since the last Flush
	rearm, fired := func() {}, func() {}
	if tick == nil {
		const every = 20 * time.Millisecond
		t := time.NewTimer(every)
		t.Stop()
		defer t.Stop()
		tick = t.C
		rearm = func() {
			if !armed && (g.Pending() > 0 || unflushed) {
				t.Reset(every)
				armed = true
			}
		}
		fired = func() { armed = false }
	}
	var lastAt time.Duration
	var lastWall time.Time
	now := opts.Now
	if now == nil {
		now = func() time.Duration { return lastAt + time.Since(lastWall) }
	}

	// The reader hands over batches of events; the grouper hands the
	// slices back to be filled again.
	events := make(chan []Event)
	free := make(chan []Event, 2)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	done := make(chan struct{})
	buffered, _ := src.(BufferedSource)
	go func() {
		defer close(done)
		var batch []Event
		for n := 1; ; n++ {
			if n%yieldEvery == 0 {
				runtime.Gosched()
			}
			if batch == nil {
				select {
				case batch = <-free:
				default:
					batch = make([]Event, 0, maxBatch)
				}
			}
			e, err := src.Read()
			if err == nil {
				batch = append(batch, e)
				if len(batch) < maxBatch && buffered != nil && buffered.Buffered() {
					continue
				}
			}
			if len(batch) > 0 {
				select {
				case events <- batch:
					batch = nil
				case <-stop:
					return
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	var lost, missed uint64
	var unseen []string
	ended := false // an Ender's End was called
	finish := func() {
		close(stop)
		// Counted before Close: the counter goes with the tracer.
		lost, unseen = src.Lost(), append([]string(nil), src.Unseen()...)
		if m, ok := src.(MissCounter); ok {
			missed = m.Missed()
		}
		if e, ok := src.(Ender); ok && opts.KeepOpen {
			if !ended {
				e.End()
			}
		} else {
			src.Close()
		}
		<-done
	}

	emitted := 0
	var sum Summary
	var runErr, emitErr error
	flush := func() bool {
		if opts.Flush == nil || emitErr != nil {
			return emitErr == nil
		}
		unflushed = false
		emitErr = opts.Flush()
		return emitErr == nil
	}
	send := func(ps []Path) bool {
		for _, p := range ps {
			if err := emit(p); err != nil {
				emitErr = err
				return false
			}
			unflushed = opts.Flush != nil
			sum.Add(p)
			if opts.ReuseHops {
				g.Recycle(p)
			}
			emitted++
			if opts.Count > 0 && emitted >= opts.Count {
				return false
			}
		}
		return true
	}
	running := true
	handled := 0
	windowDone := ctx.Done()
	for running {
		select {
		case <-windowDone:
			if e, ok := src.(Ender); ok {
				e.End()
				ended = true
				windowDone = nil
				continue
			}
			running = false
		case <-opts.Abort:
			running = false
		case batch := <-events:
			lastWall = time.Now()
			for _, e := range batch {
				if handled++; handled%yieldEvery == 0 {
					runtime.Gosched()
				}
				lastAt = max(lastAt, e.Hop.At)
				if running = send(g.Add(e)); !running {
					break
				}
			}
			clear(batch) // the events' paths and connections are not kept alive by it
			select {
			case free <- batch[:0]:
			default:
			}
			rearm()
		case <-tick:
			fired()
			running = send(g.Flush(now()))
			running = flush() && running
			rearm()
		case err := <-readErr:
			// After ctx's end (an Ender's io.EOF among them) the
			// source's end is no error.
			if ctx.Err() == nil {
				runErr = fmt.Errorf("reading the trace: %w", err)
			}
			running = false
		}
	}
	finish()
	// What was seen before the end is shown, unless the output failed
	// or --count was reached.
	if emitErr == nil && (opts.Count == 0 || emitted < opts.Count) {
		send(g.Close())
	}
	flush()
	if emitErr != nil {
		runErr = emitErr
	}
	if sum.ByOutcome == nil {
		sum = NewGrouper(GrouperOptions{}).Summary() // empty maps, not nil
	}
	sum.Lost, sum.Missed, sum.Unseen = lost, missed, unseen
	return sum, runErr
}
