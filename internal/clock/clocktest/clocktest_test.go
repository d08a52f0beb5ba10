package clocktest

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func fired(t *testing.T, c <-chan time.Time) (time.Time, bool) {
	t.Helper()
	select {
	case at := <-c:
		return at, true
	default:
		return time.Time{}, false
	}
}

func TestTimersFireOnlyWhenTheClockReachesThem(t *testing.T) {
	c := NewClock(t0)
	a, b := c.NewTimer(), c.NewTimer()
	a.ResetAt(t0.Add(2 * time.Second))
	b.ResetAt(t0.Add(5 * time.Second))
	if next, ok := c.Next(); !ok || !next.Equal(t0.Add(2*time.Second)) {
		t.Errorf("Next() = %v, %v; want t0+2s", next, ok)
	}
	c.Advance(time.Second)
	if _, ok := fired(t, a.C()); ok {
		t.Error("timer fired before its time")
	}
	c.Advance(time.Second)
	if at, ok := fired(t, a.C()); !ok || !at.Equal(t0.Add(2*time.Second)) {
		t.Errorf("timer a: fired %v at %v, want at t0+2s", ok, at)
	}
	b.Stop()
	c.Advance(10 * time.Second)
	if _, ok := fired(t, b.C()); ok {
		t.Error("a stopped timer fired")
	}
	if !c.Now().Equal(t0.Add(12 * time.Second)) {
		t.Errorf("Now() = %v, want t0+12s", c.Now())
	}
}

func TestResetToThePastFiresAtOnceAndDropsTheOldValue(t *testing.T) {
	c := NewClock(t0)
	tm := c.NewTimer()
	tm.ResetAt(t0.Add(time.Second))
	c.Advance(time.Second) // fires, value not received
	tm.ResetAt(t0.Add(-time.Minute))
	at, ok := fired(t, tm.C())
	if !ok || at.Before(t0) {
		t.Errorf("after ResetAt in the past: fired %v at %v; want at once, with the new setting", ok, at)
	}
	if _, ok := fired(t, tm.C()); ok {
		t.Error("an earlier setting's value was delivered after ResetAt")
	}
}
