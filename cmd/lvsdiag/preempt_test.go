package main

import (
	"slices"
	"testing"
)

// lvsdiag trace turns the runtime's signal preemption off, keeping the
// user's other GODEBUG settings, and leaves a user's own choice alone.
func TestTraceRunsWithoutSignalPreemption(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want []string // nil: no exec
	}{
		{[]string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=asyncpreemptoff=1"}},
		{[]string{"GODEBUG=madvdontneed=0", "HOME=/root"}, []string{"HOME=/root", "GODEBUG=madvdontneed=0,asyncpreemptoff=1"}},
		{[]string{"GODEBUG="}, []string{"GODEBUG=asyncpreemptoff=1"}},
		{[]string{"GODEBUG=asyncpreemptoff=0"}, nil},
		{[]string{"GODEBUG=gctrace=1,asyncpreemptoff=1"}, nil},
	} {
		got, ok := withoutSignalPreemption(c.env)
		switch {
		case c.want == nil && ok:
			t.Errorf("%q: changed to %q, want it left alone", c.env, got)
		case c.want != nil && (!ok || !slices.Equal(got, c.want)):
			t.Errorf("%q: %q (exec %v), want %q", c.env, got, ok, c.want)
		}
	}
}
