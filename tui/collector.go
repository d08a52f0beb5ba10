package tui

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Collector takes snapshots from a Source on a ticker, off the UI
// goroutine, and hands each one, as a Frame, to Publish. A tick that
// comes while a collection still runs is skipped, not queued: a slow
// kernel read never piles up work. Refresh (a changed filter or page)
// runs once more after the current collection instead.
type Collector struct {
	opts   CollectorOptions
	model  Model // only the collecting goroutine touches it
	kick   chan struct{}
	busy   atomic.Bool
	again  atomic.Bool
	paused atomic.Bool
	query  atomic.Pointer[ConnQuery]

	skipped   atomic.Int64
	collected atomic.Int64
	wg        sync.WaitGroup
}

// CollectorOptions configure a Collector.
type CollectorOptions struct {
	Source   Source
	Interval time.Duration // default 2s
	// Tick, when set, replaces the ticker (tests drive it).
	Tick <-chan time.Time
	// Publish receives each frame, or the error of a failed collection,
	// on the collecting goroutine.
	Publish func(*Frame, error)
	Logger  *slog.Logger
}

// NewCollector returns a collector; Run starts it.
func NewCollector(opts CollectorOptions) *Collector {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Collector{opts: opts, kick: make(chan struct{}, 1)}
	c.query.Store(&ConnQuery{})
	return c
}

// Run collects at once, then on every tick, until ctx ends; it returns
// after the collection in flight, if any, has finished.
func (c *Collector) Run(ctx context.Context) {
	tick := c.opts.Tick
	if tick == nil {
		t := time.NewTicker(c.opts.Interval)
		defer t.Stop()
		tick = t.C
	}
	defer c.wg.Wait()
	c.start(ctx, true)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if !c.paused.Load() {
				c.start(ctx, false)
			}
		case <-c.kick:
			c.start(ctx, true)
		}
	}
}

// Refresh asks for a collection now; while one runs, for one more right
// after it. Safe from any goroutine; it never blocks.
func (c *Collector) Refresh() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// SetQuery changes the connection-table page later collections include,
// and refreshes.
func (c *Collector) SetQuery(q ConnQuery) {
	c.query.Store(&q)
	c.Refresh()
}

// SetPaused stops (or resumes) collecting on ticks; Refresh still works.
func (c *Collector) SetPaused(p bool) { c.paused.Store(p) }

// Skipped counts ticks skipped because a collection was running.
func (c *Collector) Skipped() int64 { return c.skipped.Load() }

// Collected counts collections finished.
func (c *Collector) Collected() int64 { return c.collected.Load() }

func (c *Collector) start(ctx context.Context, forced bool) {
	if !c.busy.CompareAndSwap(false, true) {
		if forced {
			c.again.Store(true)
		} else {
			c.skipped.Add(1)
			c.opts.Logger.Debug("refresh skipped: the last one still runs")
		}
		return
	}
	c.wg.Go(func() {
		for {
			c.collect(ctx)
			c.busy.Store(false)
			if !c.again.Swap(false) || ctx.Err() != nil || !c.busy.CompareAndSwap(false, true) {
				return
			}
		}
	})
}

func (c *Collector) collect(ctx context.Context) {
	start := time.Now()
	s, err := c.opts.Source.Collect(ctx, *c.query.Load())
	c.collected.Add(1)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		c.opts.Logger.Warn("collecting a snapshot", "source", c.opts.Source.String(), "err", err)
		c.opts.Publish(nil, err)
		return
	}
	c.opts.Logger.Debug("snapshot", "services", len(s.Services), "entries", s.ConnEntries, "took", time.Since(start))
	c.opts.Publish(c.model.Update(s), nil)
}
