package probes

import (
	"context"
	"errors"
	"fmt"
	"os"
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

// A DeadlineSource is a Source whose reads can give up at a time. Collect
// then runs in its caller's goroutine alone, reading, joining and
// writing in turn with the read's deadline as its timer, instead of
// handing events from a reading goroutine to a grouping one: each
// hand-over wakes a goroutine, and in the test VM the two goroutines'
// wake-ups, sleeps and scheduling were a tenth of lvsdiag's CPU while
// it printed every packet.
type DeadlineSource interface {
	Source
	// ReadBefore is Read giving up at deadline: it then returns an
	// error wrapping os.ErrDeadlineExceeded, and may be called again.
	ReadBefore(deadline time.Time) (Event, error)
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
	// nil means every 20ms while a path is open or output waits (an idle
	// trace does not wake up). A DeadlineSource's Collect looks at Tick
	// between reads: within 100ms of a tick while no event comes.
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
}

// Collect reads src until ctx ends, Count paths were printed, or the
// source fails; it joins the events into paths, hands each to emit as it
// ends, and returns the Summary of the paths emitted. When ctx ends, an
// Ender first hands over the events produced before then. It closes src
// and waits for its reader before it returns. Paths still open at the
// end are ended and emitted too; with Count reached they are left out.
func Collect(ctx context.Context, src Source, opts CollectOptions, emit func(Path) error) (Summary, error) {
	c := &collector{opts: opts, emit: emit, g: NewGrouper(opts.Grouper)}
	c.now = opts.Now
	if c.now == nil {
		c.now = func() time.Duration { return c.lastAt + time.Since(c.lastWall) }
	}
	if ds, ok := src.(DeadlineSource); ok {
		c.alone(ctx, ds)
	} else {
		c.handOver(ctx, src)
	}
	// What was seen before the end is shown, unless the output failed
	// or --count was reached.
	if c.emitErr == nil && (opts.Count == 0 || c.emitted < opts.Count) {
		c.send(c.g.Close())
	}
	c.flush()
	if c.emitErr != nil {
		c.runErr = c.emitErr
	}
	if c.sum.ByOutcome == nil {
		c.sum = NewGrouper(GrouperOptions{}).Summary() // empty maps, not nil
	}
	c.sum.Lost, c.sum.Unseen = c.lost, c.unseen
	return c.sum, c.runErr
}

// collector is one Collect's state, shared by its two ways of reading.
type collector struct {
	opts CollectOptions
	emit func(Path) error
	g    *Grouper
	// lastAt is the latest event's time, and lastWall when it was
	// seen: now estimates the kernel's clock from them.
	lastAt   time.Duration
	lastWall time.Time
	now      func() time.Duration

	emitted         int
	unflushed       bool // paths were emitted since the last Flush
	sum             Summary
	runErr, emitErr error
	lost            uint64
	unseen          []string
}

// flushEvery is how often idle paths are ended and the output flushed
// while a path is open or output waits.
const flushEvery = 20 * time.Millisecond

// flush calls opts.Flush; false once the output failed.
func (c *collector) flush() bool {
	if c.opts.Flush == nil || c.emitErr != nil {
		return c.emitErr == nil
	}
	c.unflushed = false
	c.emitErr = c.opts.Flush()
	return c.emitErr == nil
}

// send emits ended paths; false once the output failed or Count was
// reached.
func (c *collector) send(ps []Path) bool {
	for _, p := range ps {
		if err := c.emit(p); err != nil {
			c.emitErr = err
			return false
		}
		c.unflushed = c.opts.Flush != nil
		c.sum.Add(p)
		if c.opts.ReuseHops {
			c.g.Recycle(p)
		}
		c.emitted++
		if c.opts.Count > 0 && c.emitted >= c.opts.Count {
			return false
		}
	}
	return true
}

// tick ends idle paths and flushes the output; false to stop.
func (c *collector) tick() bool {
	running := c.send(c.g.Flush(c.now()))
	return c.flush() && running
}

// due says whether a tick is needed: a path is open or output waits.
func (c *collector) due() bool { return c.g.Pending() > 0 || c.unflushed }

// readFailed ends the run on the source's error; after ctx's end (an
// Ender's io.EOF among them) the source's end is no error.
func (c *collector) readFailed(ctx context.Context, err error) {
	if ctx.Err() == nil {
		c.runErr = fmt.Errorf("reading the trace: %w", err)
	}
}

// closeSource closes src, having read what Summary needs of it.
func (c *collector) closeSource(src Source) {
	// Counted before Close: the counter goes with the tracer.
	c.lost, c.unseen = src.Lost(), append([]string(nil), src.Unseen()...)
	src.Close()
}

// pollEvery bounds how long Collect alone waits for an event before it
// looks at ctx and Abort again.
const pollEvery = 100 * time.Millisecond

// alone reads src in this goroutine: it handles each event as it is
// read, and every yieldEvery events, or when a read gives up at its
// deadline, reads the clock and looks at ctx, Abort and the tick.
func (c *collector) alone(ctx context.Context, src DeadlineSource) {
	defer c.closeSource(src)
	windowDone := ctx.Done()
	var tickAt time.Time // zero while no tick is due
	deadline := time.Now().Add(pollEvery)
	seenAt := c.lastAt // lastAt at the last look at the clock
	for n := 1; ; n++ {
		e, err := src.ReadBefore(deadline)
		switch {
		case err == nil:
			c.lastAt = max(c.lastAt, e.Hop.At)
			if !c.send(c.g.Add(e)) {
				return
			}
			if n%yieldEvery != 0 {
				continue
			}
			runtime.Gosched()
		case !errors.Is(err, os.ErrDeadlineExceeded):
			c.readFailed(ctx, err)
			return
		}
		now := time.Now()
		if c.lastAt != seenAt {
			c.lastWall, seenAt = now, c.lastAt
		}
		select {
		case <-windowDone:
			e, ok := src.(Ender)
			if !ok {
				return
			}
			e.End()
			windowDone = nil
		case <-c.opts.Abort:
			return
		case <-c.opts.Tick:
			if !c.tick() {
				return
			}
		default:
		}
		switch {
		case c.opts.Tick != nil:
		case !tickAt.IsZero() && !now.Before(tickAt):
			tickAt = time.Time{}
			if !c.tick() {
				return
			}
		}
		if tickAt.IsZero() && c.opts.Tick == nil && c.due() {
			tickAt = now.Add(flushEvery)
		}
		deadline = now.Add(pollEvery)
		if !tickAt.IsZero() && tickAt.Before(deadline) {
			deadline = tickAt
		}
	}
}

// handOver reads src in a goroutine of its own, which hands the events
// over in batches to this one, which joins and writes them: a source
// that cannot give up a read at a time needs a goroutine to wait in it.
func (c *collector) handOver(ctx context.Context, src Source) {
	tick := c.opts.Tick
	// Without opts.Tick, a timer runs while a path is open or output
	// waits for Flush: rearm starts it after an event or a flush that
	// leaves one open, and fired says it has stopped.
	armed := false
	rearm, fired := func() {}, func() {}
	if tick == nil {
		t := time.NewTimer(flushEvery)
		t.Stop()
		defer t.Stop()
		tick = t.C
		rearm = func() {
			if !armed && c.due() {
				t.Reset(flushEvery)
				armed = true
			}
		}
		fired = func() { armed = false }
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
	defer func() {
		close(stop)
		c.closeSource(src)
		<-done
	}()

	running := true
	handled := 0
	windowDone := ctx.Done()
	for running {
		select {
		case <-windowDone:
			if e, ok := src.(Ender); ok {
				e.End()
				windowDone = nil
				continue
			}
			running = false
		case <-c.opts.Abort:
			running = false
		case batch := <-events:
			c.lastWall = time.Now()
			for _, e := range batch {
				if handled++; handled%yieldEvery == 0 {
					runtime.Gosched()
				}
				c.lastAt = max(c.lastAt, e.Hop.At)
				if running = c.send(c.g.Add(e)); !running {
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
			running = c.tick()
			rearm()
		case err := <-readErr:
			c.readFailed(ctx, err)
			running = false
		}
	}
}
