package probes

import (
	"context"
	"fmt"
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
}

// Collect reads src until ctx ends, Count paths were printed, or the
// source fails; it joins the events into paths, hands each to emit as it
// ends, and returns the Summary of the paths emitted. When ctx ends, an
// Ender first hands over the events produced before then. It closes src
// and waits for its reader before it returns. Paths still open at the
// end are ended and emitted too; with Count reached they are left out.
func Collect(ctx context.Context, src Source, opts CollectOptions, emit func(Path) error) (Summary, error) {
	g := NewGrouper(opts.Grouper)
	tick := opts.Tick
	// Without opts.Tick, a timer runs while a path is open: rearm starts
	// it after an event or a flush that leaves one open, and fired says
	// it has stopped.
	armed := false
	rearm, fired := func() {}, func() {}
	if tick == nil {
		const every = 20 * time.Millisecond
		t := time.NewTimer(every)
		t.Stop()
		defer t.Stop()
		tick = t.C
		rearm = func() {
			if !armed && g.Pending() > 0 {
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

	events := make(chan Event)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			e, err := src.Read()
			if err != nil {
				readErr <- err
				return
			}
			select {
			case events <- e:
			case <-stop:
				return
			}
		}
	}()
	var lost uint64
	var unseen []string
	finish := func() {
		close(stop)
		// Counted before Close: the counter goes with the tracer.
		lost, unseen = src.Lost(), append([]string(nil), src.Unseen()...)
		src.Close()
		<-done
	}

	emitted := 0
	var sum Summary
	var runErr, emitErr error
	send := func(ps []Path) bool {
		for _, p := range ps {
			if err := emit(p); err != nil {
				emitErr = err
				return false
			}
			sum.Add(p)
			emitted++
			if opts.Count > 0 && emitted >= opts.Count {
				return false
			}
		}
		return true
	}
	running := true
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
		case <-opts.Abort:
			running = false
		case e := <-events:
			lastAt, lastWall = max(lastAt, e.Hop.At), time.Now()
			running = send(g.Add(e))
			rearm()
		case <-tick:
			fired()
			running = send(g.Flush(now()))
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
	if emitErr != nil {
		runErr = emitErr
	}
	if sum.ByOutcome == nil {
		sum = NewGrouper(GrouperOptions{}).Summary() // empty maps, not nil
	}
	sum.Lost, sum.Unseen = lost, unseen
	return sum, runErr
}
