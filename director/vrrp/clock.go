package vrrp

import "time"

// Clock is an Instance's source of time. Tests inject a fake one
// (vrrptest.Clock) and move it by hand; lvsd uses SystemClock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a stopped timer.
	NewTimer() ClockTimer
}

// ClockTimer fires once at an absolute time. Absolute times keep a fake clock
// free of races: a timer set for a time already past fires at once.
type ClockTimer interface {
	// C delivers the time when the timer fires.
	C() <-chan time.Time
	// ResetAt stops the timer and sets it to fire at t, at once if t is
	// not in the future. No value from an earlier setting is delivered
	// after ResetAt returns.
	ResetAt(t time.Time)
	// Stop stops the timer; no value is delivered after Stop returns.
	Stop()
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer implements Clock.
func (SystemClock) NewTimer() ClockTimer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return systemTimer{t}
}

// systemTimer relies on Go 1.23 timers: Stop and Reset discard a value
// not yet received. Deadlines from SystemClock.Now carry the monotonic
// clock, so time.Until is immune to wall-clock steps.
type systemTimer struct{ t *time.Timer }

func (s systemTimer) C() <-chan time.Time { return s.t.C }
func (s systemTimer) ResetAt(t time.Time) { s.t.Reset(time.Until(t)) }
func (s systemTimer) Stop()               { s.t.Stop() }
