package director

import (
	"testing"
	"time"
)

// The daemon's VRRP instances are goroutines of their own, outside the
// daemon's loop, timed by the fake VRRP clock: a test moves that clock,
// and the instances post their transitions to the daemon's inbox as they
// would to its loop. A stepped daemon's test takes those posts and hands
// them to handle itself (await), so each step's writes are still exactly
// what the posted transitions caused, and it waits on the inbox, never
// polls.

// startVRRPStepped starts a stepped daemon with fv's VRRP; the instances
// stop (priority-0 adverts, addresses removed) when the test ends, as
// Run stops them after its loop.
func startVRRPStepped(t *testing.T, body string, fv *fakeVRRP, opts DaemonOptions) *stepped {
	t.Helper()
	if opts.VRRP.Listen == nil {
		opts.VRRP = fv.options()
	}
	s := startStepped(t, body, opts)
	t.Cleanup(s.stopVRRP)
	return s
}

// stopVRRP stops the VRRP instances as Run does once its loop has ended;
// a second call does nothing.
func (s *stepped) stopVRRP() {
	s.vrrp.Swap(nil).stop()
}

// await hands the daemon what its VRRP instances post, as they post it,
// until cond holds, and returns the IPVS writes those steps made. It
// fails the test if the instances post nothing for 10 s while cond does
// not hold.
func (s *stepped) await(what string, cond func() bool) []string {
	s.t.Helper()
	writes := []string{}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select { // what was posted already comes first
		case <-s.inbox.wake:
			writes = append(writes, s.stepPosted()...)
		default:
		}
		if cond() {
			return writes
		}
		select {
		case <-s.inbox.wake:
			writes = append(writes, s.stepPosted()...)
		case <-timeout.C:
			s.t.Fatalf("no post from the VRRP instances brought %s in 10s", what)
		}
	}
}

// stepPosted hands the daemon what was posted to its inbox and returns
// the IPVS writes that made.
func (s *stepped) stepPosted() []string {
	s.t.Helper()
	var writes []string
	for _, ev := range s.inbox.take() {
		writes = append(writes, s.step(ev)...)
	}
	return writes
}

// awaitPosts hands the daemon what the VRRP instances post until each of
// names has posted a transition (a name twice: two), and returns the
// IPVS writes those steps made. Unlike await's condition on the status,
// which an instance changes just before it posts, this returns only once
// the daemon has handled the posts, and once the instances' observers
// (notify commands, sync groups) have run.
func (s *stepped) awaitPosts(what string, names ...string) []string {
	s.t.Helper()
	want := map[string]int{}
	for _, n := range names {
		want[n]++
	}
	left := len(names)
	writes := []string{}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for left > 0 {
		select {
		case <-s.inbox.wake:
		case <-timeout.C:
			s.t.Fatalf("waiting for %s: %v have not posted in 10s", what, want)
		}
		for _, ev := range s.inbox.take() {
			if vc, ok := ev.(vrrpChanged); ok {
				for _, n := range vc.instances {
					if want[n] > 0 {
						want[n]--
						left--
					}
				}
			}
			writes = append(writes, s.step(ev)...)
		}
	}
	return writes
}
