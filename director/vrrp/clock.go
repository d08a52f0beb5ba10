package vrrp

import "github.com/lvskit/lvskit/internal/clock"

// Clock is an Instance's source of time. Tests inject a fake one
// (vrrptest.Clock) and move it by hand; lvsd uses SystemClock.
type Clock = clock.Clock

// ClockTimer fires once at an absolute time.
type ClockTimer = clock.Timer

// SystemClock is the real clock.
type SystemClock = clock.System
