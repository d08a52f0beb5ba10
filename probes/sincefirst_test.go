package probes

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// appendSinceFirst writes what strconv writes for the milliseconds
// rounded to 3 decimals, the text output's hop times before it
// formatted them with integers: around every rounding edge, at ties,
// at large and negative durations, and at random ones.
func TestAppendSinceFirstAsStrconv(t *testing.T) {
	oracle := func(d time.Duration) string {
		n := "+" + strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
		for len(n) < 10 {
			n = " " + n
		}
		return n
	}
	var ds []time.Duration
	for _, base := range []time.Duration{0, time.Microsecond, 999 * time.Microsecond, time.Millisecond, 999999 * time.Microsecond,
		time.Second, 12345678 * time.Microsecond, time.Hour, 1<<50 - 1000, 1 << 50, 1 << 53, 1<<63 - 1000} {
		for _, off := range []time.Duration{-501, -500, -499, -1, 0, 1, 499, 500, 501, 999, 1000, 1001} {
			ds = append(ds, base+off)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		ds = append(ds, time.Duration(r.Int64N(int64(10*time.Second))), time.Duration(r.Int64N(1<<52)))
	}
	for _, d := range ds {
		if got, want := string(appendSinceFirst(nil, d)), oracle(d); got != want {
			t.Errorf("appendSinceFirst(%d) = %q, want %q", int64(d), got, want)
		}
	}
}
