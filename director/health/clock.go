package health

import "github.com/lvskit/lvskit/internal/clock"

// Clock is the Scheduler's source of time. Tests inject a fake one
// (healthtest.Clock) and move it by hand.
type Clock = clock.Clock

// Timer fires once at an absolute time.
type Timer = clock.Timer

// SystemClock is the real clock.
type SystemClock = clock.System
