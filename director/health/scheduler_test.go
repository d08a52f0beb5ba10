package health_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/health/healthtest"
)

var epoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// harness runs a Scheduler on a fake clock and fake checkers, and
// collects what it publishes.
type harness struct {
	t           *testing.T
	clock       *healthtest.Clock
	fakes       *healthtest.Registry
	s           *health.Scheduler
	results     chan idResult
	transitions chan health.Transition
	stop        func()
}

type idResult struct {
	id string
	r  health.Result
}

func newHarness(t *testing.T, opts health.SchedulerOptions) *harness {
	h := &harness{
		t:           t,
		clock:       healthtest.NewClock(epoch),
		fakes:       healthtest.NewRegistry(),
		results:     make(chan idResult, 4096),
		transitions: make(chan health.Transition, 4096),
	}
	opts.Clock = h.clock
	if opts.Jitter == 0 {
		opts.Jitter = -1 // none, unless the test asks
	}
	opts.OnResult = func(id string, r health.Result) { h.results <- idResult{id, r} }
	opts.OnTransition = func(tr health.Transition) { h.transitions <- tr }
	h.s = health.NewScheduler(opts)
	return h
}

func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.s.Run(ctx) }()
	h.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			h.t.Fatal("Run did not return within 10s of its context's cancel")
		}
	}
	h.t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
		}
	})
}

func (h *harness) update(targets ...health.Target) {
	h.t.Helper()
	if err := h.s.Update(targets); err != nil {
		h.t.Fatal(err)
	}
}

// target is a target checked by the fake checker named id.
func (h *harness) target(id string, p health.Policy) health.Target {
	return health.Target{ID: id, Check: h.fakes.Spec(id), Policy: p}
}

// result waits for the next published result.
func (h *harness) result() idResult {
	h.t.Helper()
	select {
	case r := <-h.results:
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("no result published within 10s")
	}
	return idResult{}
}

// transition waits for the next published transition.
func (h *harness) transition() health.Transition {
	h.t.Helper()
	select {
	case tr := <-h.transitions:
		return tr
	case <-time.After(10 * time.Second):
		h.t.Fatal("no transition published within 10s")
	}
	return health.Transition{}
}

// noTransition checks that none of the results received so far caused
// a transition (OnTransition is called before OnResult).
func (h *harness) noTransition() {
	h.t.Helper()
	select {
	case tr := <-h.transitions:
		h.t.Errorf("unexpected transition %+v", tr)
	default:
	}
}

func (h *harness) status(id string) health.Status {
	h.t.Helper()
	st, ok := h.s.Lookup(id)
	if !ok {
		h.t.Fatalf("target %s unknown", id)
	}
	return st
}

func pass(reason string) health.Result { return health.Result{Up: true, Reason: reason, Time: epoch} }
func fail(reason string) health.Result {
	return health.Result{Reason: reason, Err: errors.New(reason), Time: epoch}
}

func TestSchedulerRiseAndFall(t *testing.T) {
	h := newHarness(t, health.SchedulerOptions{})
	h.update(h.target("rs1", health.Policy{Interval: time.Second, Rise: 2, Fall: 2, Initial: health.StateUp}))
	fake := h.fakes.Checker("rs1")
	fake.Give(fail("HTTP 503 from 10.0.0.2:80"), fail("HTTP 503 from 10.0.0.2:80"), pass("HTTP 200 from 10.0.0.2:80"), pass("HTTP 200 from 10.0.0.2:80"))
	h.run()

	// The first check runs at once (no jitter), the next ones every
	// second of the fake clock.
	if r := h.result(); r.id != "rs1" || r.r.Up {
		t.Fatalf("first result %+v", r)
	}
	if st := h.status("rs1"); st.State != health.StateUp || st.Failures != 1 || !st.NextCheck.Equal(epoch.Add(time.Second)) {
		t.Fatalf("after one failure: %+v", st)
	}
	h.clock.Advance(time.Second)
	h.result()
	tr := h.transition()
	if tr.Target != "rs1" || tr.From != health.StateUp || tr.To != health.StateDown || tr.Reason != "2 of 2 failures: HTTP 503 from 10.0.0.2:80" {
		t.Errorf("transition %+v", tr)
	}
	h.clock.Advance(time.Second)
	h.result()
	h.noTransition()
	h.clock.Advance(time.Second)
	h.result()
	if tr := h.transition(); tr.To != health.StateUp || tr.Reason != "2 of 2 successes: HTTP 200 from 10.0.0.2:80" {
		t.Errorf("transition %+v", tr)
	}
	st := h.status("rs1")
	if st.State != health.StateUp || st.Successes != 2 || !st.Checked || st.Last.Reason != "HTTP 200 from 10.0.0.2:80" {
		t.Errorf("final status %+v", st)
	}
}

func TestSchedulerRetry(t *testing.T) {
	h := newHarness(t, health.SchedulerOptions{})
	h.update(h.target("rs1", health.Policy{Interval: 10 * time.Second, Fall: 1, Retry: 2, RetryDelay: 500 * time.Millisecond, Initial: health.StateUp}))
	fake := h.fakes.Checker("rs1")
	fake.Give(fail("timeout"), fail("timeout"), fail("timeout"))
	h.run()
	h.result()
	for i := 0; i < 2; i++ {
		if st := h.status("rs1"); st.State != health.StateUp || !st.NextCheck.Equal(h.clock.Now().Add(500*time.Millisecond)) {
			t.Fatalf("after failure %d: %+v, want a retry in 500ms", i+1, st)
		}
		h.clock.Advance(500 * time.Millisecond)
		h.result()
	}
	if tr := h.transition(); tr.To != health.StateDown || tr.Reason != "1 of 1 failure (each after 2 retries): timeout" {
		t.Errorf("transition %+v", tr)
	}
	if st := h.status("rs1"); !st.NextCheck.Equal(epoch.Add(10 * time.Second)) {
		t.Errorf("after the counted failure the next check is at %v, want the interval's %v", st.NextCheck, epoch.Add(10*time.Second))
	}
}

// TestSchedulerSlowCheckWaitsAnIntervalAfterIt: a check that ends after
// its next round was due (here 3s into a 1s interval) is followed by the
// next round one interval after it ended, as in keepalived, not at once;
// a prompt check keeps the rounds on their schedule.
func TestSchedulerSlowCheckWaitsAnIntervalAfterIt(t *testing.T) {
	h := newHarness(t, health.SchedulerOptions{})
	h.update(h.target("rs1", health.Policy{Interval: time.Second, Fall: 3, Initial: health.StateUp}))
	fake := h.fakes.Checker("rs1")
	h.run()
	select {
	case <-fake.Calls():
	case <-time.After(10 * time.Second):
		t.Fatal("the first check did not start")
	}
	h.clock.Advance(3 * time.Second)
	fake.Give(fail("timeout after 3s"))
	h.result()
	if st := h.status("rs1"); !st.NextCheck.Equal(epoch.Add(4 * time.Second)) {
		t.Errorf("after a 3s check the next one is due at %v, want one interval after it ended (%v)", st.NextCheck, epoch.Add(4*time.Second))
	}
	fake.Give(pass("ok"))
	h.clock.Advance(time.Second)
	h.result()
	if st := h.status("rs1"); !st.NextCheck.Equal(epoch.Add(5 * time.Second)) {
		t.Errorf("after a prompt check the next one is due at %v, want %v", st.NextCheck, epoch.Add(5*time.Second))
	}
}

// TestSchedulerReload: Update keeps the state of targets whose check did
// not change, resets those whose check changed, adds and removes others,
// and cancels a removed target's running check.
func TestSchedulerReload(t *testing.T) {
	h := newHarness(t, health.SchedulerOptions{})
	fall1 := health.Policy{Interval: time.Second, Fall: 1, Initial: health.StateUp}
	h.update(h.target("kept", fall1), h.target("changed", fall1), h.target("removed", fall1))
	h.fakes.Checker("kept").Give(fail("down"))
	h.fakes.Checker("changed").Give(fail("down"))
	h.run()
	for range 2 {
		h.result()
		h.transition()
	}
	// "removed" is still running its first check (no result given).
	removed := h.fakes.Checker("removed")
	<-removed.Calls()

	changed := health.Target{ID: "changed", Check: h.fakes.Spec("changed-v2"), Policy: fall1}
	h.update(h.target("kept", health.Policy{Interval: time.Second, Fall: 5, Rise: 3, Initial: health.StateUp}), changed, h.target("added", fall1))

	select {
	case <-removed.Canceled():
	case <-time.After(10 * time.Second):
		t.Fatal("the removed target's running check was not canceled")
	}
	if _, ok := h.s.Lookup("removed"); ok {
		t.Error("removed target still listed")
	}
	if st := h.status("kept"); st.State != health.StateDown || st.Failures != 1 || st.Policy.Rise != 3 || st.Policy.Fall != 5 {
		t.Errorf("kept target lost its state or did not take the new policy: %+v", st)
	}
	if st := h.status("changed"); st.State != health.StateUp || st.Checked {
		t.Errorf("changed target kept its old state: %+v", st)
	}
	if st := h.status("added"); st.State != health.StateUp || st.Checked {
		t.Errorf("added target: %+v", st)
	}
	var ids []string
	for _, st := range h.s.Status() {
		ids = append(ids, st.ID)
	}
	if got := strings.Join(ids, ","); got != "added,changed,kept" {
		t.Errorf("targets %s", got)
	}
	// The new check of "changed" runs (at once: it is new), the old one
	// never again.
	<-h.fakes.Checker("changed-v2").Calls()
	<-h.fakes.Checker("added").Calls()
}

func TestSchedulerUpdateRejectsBadTargets(t *testing.T) {
	h := newHarness(t, health.SchedulerOptions{})
	h.update(h.target("a", health.Policy{}))
	err := h.s.Update([]health.Target{
		h.target("b", health.Policy{}),
		h.target("b", health.Policy{}),
		{ID: "", Check: h.fakes.Spec("x")},
		{ID: "nocheck"},
		{ID: "bad", Check: health.HTTPCheck{Path: "nope"}},
	})
	for _, want := range []string{"health target b listed twice", "empty ID", "health target nocheck: no check given", "health target bad: http check of invalid AddrPort"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to mention %q", err, want)
		}
	}
	if st := h.s.Status(); len(st) != 1 || st[0].ID != "a" {
		t.Errorf("a rejected Update changed the targets: %+v", st)
	}
}

func TestSchedulerJitter(t *testing.T) {
	h := newHarness(t, health.SchedulerOptions{Jitter: 0.1, Seed: 42})
	var targets []health.Target
	for i := range 1000 {
		targets = append(targets, h.target(fmt.Sprintf("rs%04d", i), health.Policy{Interval: time.Second}))
	}
	h.update(targets...)
	// First checks spread over the first interval.
	var buckets [10]int
	for _, st := range h.s.Status() {
		d := st.NextCheck.Sub(epoch)
		if d < 0 || d >= time.Second {
			t.Fatalf("first check of %s at +%v, want within the first interval", st.ID, d)
		}
		buckets[d/(100*time.Millisecond)]++
	}
	for i, n := range buckets {
		if n < 50 || n > 150 {
			t.Errorf("%d of 1000 first checks in [%dms, %dms): not spread", n, i*100, (i+1)*100)
		}
	}

	// Later checks come every interval, give or take 10%.
	h.update(h.target("one", health.Policy{Interval: time.Second}))
	fake := h.fakes.Checker("one")
	h.run()
	prev := h.status("one").NextCheck
	for range 50 {
		fake.Give(pass("ok"))
		h.clock.Advance(prev.Sub(h.clock.Now()))
		for r := h.result(); r.id != "one"; r = h.result() {
		}
		next := h.status("one").NextCheck
		if gap := next.Sub(prev); gap < 900*time.Millisecond || gap > 1100*time.Millisecond {
			t.Fatalf("checks %v apart, want 1s ± 10%%", gap)
		}
		prev = next
	}
}

// TestSchedulerBoundedConcurrency: with one slot, a due check waits for
// the running one; with spare slots, hung checks do not stop a healthy
// target's checks.
func TestSchedulerBoundedConcurrency(t *testing.T) {
	h := newHarness(t, health.SchedulerOptions{MaxConcurrent: 1})
	h.update(h.target("a", health.Policy{Interval: time.Second}), h.target("b", health.Policy{Interval: time.Second}))
	h.run()
	a, b := h.fakes.Checker("a"), h.fakes.Checker("b")
	<-a.Calls() // "a" sorts first among targets due at the same time
	if len(b.Calls()) != 0 || b.Active() != 0 {
		t.Fatal("b's check started while a's held the only slot")
	}
	a.Give(pass("ok"))
	<-b.Calls()
	b.Give(pass("ok"))

	h2 := newHarness(t, health.SchedulerOptions{MaxConcurrent: 4})
	var targets []health.Target
	for i := range 3 {
		targets = append(targets, h2.target(fmt.Sprintf("hung%d", i), health.Policy{Interval: time.Second}))
	}
	h2.update(append(targets, h2.target("healthy", health.Policy{Interval: time.Second}))...)
	healthy := h2.fakes.Checker("healthy")
	h2.run()
	for i := range 3 {
		<-h2.fakes.Checker(fmt.Sprintf("hung%d", i)).Calls()
	}
	for round := range 5 {
		healthy.Give(pass("ok"))
		if r := h2.result(); r.id != "healthy" {
			t.Fatalf("round %d: result from %s", round, r.id)
		}
		h2.clock.Advance(time.Second)
	}
	for i := range 3 {
		if n := h2.fakes.Checker(fmt.Sprintf("hung%d", i)).Active(); n != 1 {
			t.Errorf("hung%d has %d checks running, want its one hung check", i, n)
		}
	}
}

func TestSchedulerStopWaitsForChecks(t *testing.T) {
	h := newHarness(t, health.SchedulerOptions{MaxConcurrent: 2})
	var targets []health.Target
	for i := range 5 {
		targets = append(targets, h.target(fmt.Sprintf("hung%d", i), health.Policy{}))
	}
	h.update(targets...)
	h.run()
	<-h.fakes.Checker("hung0").Calls()
	<-h.fakes.Checker("hung1").Calls()
	h.stop()
	h.stop = nil
	for i := range 5 {
		if n := h.fakes.Checker(fmt.Sprintf("hung%d", i)).Active(); n != 0 {
			t.Errorf("hung%d: %d checks still running after Run returned", i, n)
		}
	}
	if err := h.s.Run(context.Background()); err == nil {
		t.Error("a second Run was accepted")
	}
}

// TestSchedulerHostileNeighbours runs real checks on the real clock:
// many servers that never answer, with long timeouts, next to a healthy
// one checked every 50ms. The healthy one's results keep coming while
// the hung checks wait for their 30s deadlines, and stopping cancels the
// hung checks rather than waiting for them: both are orders of events
// (no hung check has a result yet), not bounds in seconds.
func TestSchedulerHostileNeighbours(t *testing.T) {
	healthyResults := make(chan health.Result, 100)
	var hungResults atomic.Int32
	s := health.NewScheduler(health.SchedulerOptions{
		MaxConcurrent: 64,
		OnResult: func(id string, r health.Result) {
			if id != "healthy" {
				hungResults.Add(1)
				return
			}
			select {
			case healthyResults <- r:
			default:
			}
		},
	})
	var targets []health.Target
	for i := range 30 {
		srv := newServer(t, silent)
		targets = append(targets, health.Target{
			ID:     fmt.Sprintf("silent%02d", i),
			Check:  health.HTTPCheck{Address: srv.Addr(), Timeout: 30 * time.Second},
			Policy: health.Policy{Interval: 50 * time.Millisecond},
		})
	}
	ok := newServer(t, respond("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"))
	targets = append(targets, health.Target{
		ID:     "healthy",
		Check:  health.HTTPCheck{Address: ok.Addr(), Timeout: time.Second},
		Policy: health.Policy{Interval: 50 * time.Millisecond},
	})
	if err := s.Update(targets); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for i := range 10 {
		r := <-healthyResults
		if !r.Up {
			t.Errorf("healthy check %d failed: %s", i, r.Reason)
		}
	}
	if n := hungResults.Load(); n != 0 {
		t.Errorf("%d hung checks ended before 10 healthy results came: the healthy checks waited behind them", n)
	}
	cancel()
	<-done
	if n := hungResults.Load(); n != 0 {
		t.Errorf("%d hung checks reported a result before Run returned: their 30s timeouts were waited for, not canceled", n)
	}
}
