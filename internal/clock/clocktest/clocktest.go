// Package clocktest has a clock.Clock that moves only when a test says
// so: timers fire in Advance, in deadline order, so state machines driven
// by it are tested without sleeping.
package clocktest

import (
	"sync"
	"time"

	"github.com/lvskit/lvskit/internal/clock"
)

// Clock is a clock.Clock that moves only when Advance is called.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*timer]struct{}
}

var _ clock.Clock = (*Clock)(nil)

// NewClock returns a clock standing at start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, timers: map[*timer]struct{}{}}
}

// Now implements clock.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer implements clock.Clock.
func (c *Clock) NewTimer() clock.Timer {
	return &timer{clock: c, ch: make(chan time.Time, 1)}
}

// Advance moves the clock by d and fires every timer set for a time
// that is now reached.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.timers {
		if !t.at.After(c.now) {
			c.fireLocked(t)
		}
	}
}

// Next returns the earliest armed timer's deadline, or false if none is
// armed.
func (c *Clock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	for t := range c.timers {
		if next.IsZero() || t.at.Before(next) {
			next = t.at
		}
	}
	return next, !next.IsZero()
}

func (c *Clock) fireLocked(t *timer) {
	delete(c.timers, t)
	select {
	case t.ch <- c.now:
	default:
	}
}

type timer struct {
	clock *Clock
	ch    chan time.Time
	at    time.Time // guarded by clock.mu
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) ResetAt(at time.Time) {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	t.drain()
	t.at = at
	if !at.After(c.now) {
		c.fireLocked(t)
		return
	}
	c.timers[t] = struct{}{}
}

func (t *timer) Stop() {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.timers, t)
	t.drain()
}

func (t *timer) drain() {
	select {
	case <-t.ch:
	default:
	}
}
