// Package clock is the source of time that lvskit's state machines are
// driven by: the real clock in production, clocktest.Clock in tests.
package clock

import "time"

// Clock is a source of time. Tests inject clocktest.Clock and move it by
// hand.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a stopped timer.
	NewTimer() Timer
}

// Timer fires once at an absolute time. Absolute times keep a fake clock
// free of races: a timer set for a time already past fires at once.
type Timer interface {
	// C delivers the time when the timer fires.
	C() <-chan time.Time
	// ResetAt stops the timer and sets it to fire at t, at once if t is
	// not in the future. No value from an earlier setting is delivered
	// after ResetAt returns.
	ResetAt(t time.Time)
	// Stop stops the timer; no value is delivered after Stop returns.
	Stop()
}

// System is the real clock.
type System struct{}

// Now implements Clock.
func (System) Now() time.Time { return time.Now() }

// NewTimer implements Clock.
func (System) NewTimer() Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return systemTimer{t}
}

// systemTimer relies on Go 1.23 timers: Stop and Reset discard a value
// not yet received. Deadlines from System.Now carry the monotonic clock,
// so time.Until is immune to wall-clock steps.
type systemTimer struct{ t *time.Timer }

func (s systemTimer) C() <-chan time.Time { return s.t.C }
func (s systemTimer) ResetAt(t time.Time) { s.t.Reset(time.Until(t)) }
func (s systemTimer) Stop()               { s.t.Stop() }
