package health

import (
	"context"
	"log/slog"
	"time"
)

// The Scheduler at work: due checks started (on the event loop or a
// goroutine each), their results fed to the targets' machines and
// published, and the next rounds queued.

// dispatch starts the checks that are due and returns when the next one
// is.
func (s *Scheduler) dispatch() (time.Time, bool) { return s.dispatchAt(s.clock.Now()) }

// dispatchAt is dispatch at now, a reading of the Scheduler's clock (the
// event loop's, when the loop ticks the Scheduler on the system clock).
func (s *Scheduler) dispatchAt(now time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := now.Add(s.slack)
	for s.queue.len() > 0 && !s.queue.first().due.After(limit) {
		e := s.queue.pop()
		e.running = true
		if s.busy < s.opts.MaxConcurrent {
			s.busy++
			if s.submitLocked(e) {
				continue
			}
			e.ctx, e.cancel = context.WithCancel(s.runCtx)
			s.wg.Go(func() { s.work(e) })
		} else {
			s.pending = append(s.pending, e)
		}
	}
	if s.queue.len() == 0 {
		s.armedAt = time.Time{}
		return time.Time{}, false
	}
	s.armedAt = s.queue.first().due
	return s.armedAt, true
}

// submitLocked starts e's check on the event loop, if there is one and
// the check can run there.
func (s *Scheduler) submitLocked(e *entry) bool {
	if s.loop == nil {
		return false
	}
	t, ok := loopTargetOf(e.checker)
	if !ok {
		return false
	}
	if e.probe == nil {
		e.probe = &probe{}
	}
	e.probe.reset(t, e)
	if !s.loop.submit(e.probe) {
		return false
	}
	e.onLoop = true
	return true
}

// work runs e's check, then the waiting ones, until none waits.
func (s *Scheduler) work(e *entry) {
	for e != nil {
		s.check(e)
		s.mu.Lock()
		e = s.nextLocked()
		s.mu.Unlock()
	}
}

// nextLocked gives the slot of a check that ended to the first waiting
// check: it returns that check when it is to run on the caller's
// goroutine, nil when it went to the event loop or none waits (then the
// slot is free).
func (s *Scheduler) nextLocked() *entry {
	for len(s.pending) > 0 {
		e := s.pending[0]
		s.pending[0] = nil
		s.pending = s.pending[1:]
		if e.gone {
			e.running = false
			continue
		}
		if s.submitLocked(e) {
			return nil
		}
		e.ctx, e.cancel = context.WithCancel(s.runCtx)
		return e
	}
	s.busy--
	return nil
}

// deliver takes a batch of results from the event loop, whose clock
// read loopNow for the round that finished them.
func (s *Scheduler) deliver(batch []loopResult, loopNow time.Time) {
	notes := s.notes[:0] // only the loop's goroutine calls deliver
	var wake bool
	now := loopNow // the system clock: the loop's reading serves
	if s.slack == 0 {
		now = s.clock.Now() // an injected clock: one reading for the batch
	}
	s.mu.Lock()
	for _, lr := range batch {
		lr.e.onLoop = false
		if n, ok := s.observeLocked(lr.e, lr.r, now); ok {
			notes = append(notes, n)
			wake = wake || n.wake
		}
		if next := s.nextLocked(); next != nil {
			s.wg.Go(func() { s.work(next) })
		}
	}
	s.mu.Unlock()
	if wake {
		s.signal()
	}
	for _, n := range notes {
		s.publish(n)
	}
	clear(notes)
	s.notes = notes[:0]
}

// check runs one check of e and feeds its result to e's machine.
func (s *Scheduler) check(e *entry) {
	s.mu.Lock()
	ctx, checker := e.ctx, e.checker
	s.mu.Unlock()
	var r Result
	if ctx.Err() == nil {
		r = checker.Check(ctx)
	}

	now := s.clock.Now()
	s.mu.Lock()
	n, ok := s.observeLocked(e, r, now)
	s.mu.Unlock()
	if !ok {
		return
	}
	if n.wake {
		s.signal()
	}
	s.publish(n)
}

// notice is what a result makes the scheduler publish.
type notice struct {
	id         string
	r          Result
	transition *Transition
	wake       bool // Run must look at the queue again
}

// observeLocked feeds r, the result of e's check, to e's machine and
// queues e's next check from now. It returns false when the result is
// dropped (e removed, or Run ending).
func (s *Scheduler) observeLocked(e *entry, r Result, now time.Time) (notice, bool) {
	e.running = false
	if e.cancel != nil {
		e.cancel()
		e.ctx, e.cancel = nil, nil
	}
	if e.gone || s.runCtx.Err() != nil {
		return notice{}, false
	}
	step := e.machine.Observe(r)
	policy := e.machine.Policy()
	if step.Retry {
		e.due = now.Add(policy.RetryDelay)
	} else {
		e.due = e.round.Add(s.jitteredLocked(policy.Interval))
		if e.due.Before(now) {
			// The check ended after its next round was due (it took
			// longer than the interval, or the checker fell behind):
			// as keepalived does, the next round comes an interval
			// after it ended, skipping the missed ones. Checking again
			// at once would keep a check always in flight against a
			// server that is slow to answer, and feed an overloaded
			// checker more work.
			e.due = now.Add(s.jitteredLocked(policy.Interval))
		}
		e.round = e.due
	}
	s.queue.push(e)
	n := notice{id: e.target.ID, r: r, wake: s.armedAt.IsZero() || e.due.Before(s.armedAt)}
	if step.Transition != nil {
		t := *step.Transition
		t.Target = e.target.ID
		e.since = t.Time
		n.transition = &t
	}
	return n, true
}

// publish logs a result and hands it to the callbacks.
func (s *Scheduler) publish(n notice) {
	if t := n.transition; t != nil {
		s.log.Info("health transition", "target", n.id, "from", t.From, "to", t.To, "reason", t.Reason)
		if s.opts.OnTransition != nil {
			s.opts.OnTransition(*t)
		}
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("health check", "target", n.id, "up", n.r.Up, "reason", n.r.Reason, "duration", n.r.Duration)
	}
	if s.opts.OnResult != nil {
		s.opts.OnResult(n.id, n.r)
	}
}

// signal wakes Run to look at the queue again.
func (s *Scheduler) signal() {
	if l := s.ticker.Load(); l != nil {
		l.wake()
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// firstDelayLocked spreads new targets over their first interval.
func (s *Scheduler) firstDelayLocked(interval time.Duration) time.Duration {
	if s.opts.Jitter < 0 {
		return 0
	}
	return time.Duration(s.rng.Int64N(int64(interval)))
}

// jitteredLocked is interval moved at random by up to Jitter of it.
func (s *Scheduler) jitteredLocked(interval time.Duration) time.Duration {
	if s.opts.Jitter < 0 {
		return interval
	}
	f := 1 + s.opts.Jitter*(2*s.rng.Float64()-1)
	return time.Duration(float64(interval) * f)
}

// dueQueue is a min-heap of entries by due time, then ID. Each item
// holds its entry's due time as a number, so that the heap's
// comparisons read the queue's own array rather than a thousand entries
// scattered on the heap (with container/heap, its Less was the
// scheduler's costliest function in a profile of 1,000 HTTP checks).
type dueQueue struct {
	items    []dueItem
	epoch    time.Time // the time the keys count from: the first due time queued
	hasEpoch bool
}

type dueItem struct {
	key int64 // e.due - epoch, in nanoseconds (monotonic when the clock has it)
	e   *entry
}

func (q *dueQueue) len() int { return len(q.items) }

// first is the entry due first; the queue must not be empty.
func (q *dueQueue) first() *entry { return q.items[0].e }

// key is e's due time as the queue orders it.
func (q *dueQueue) key(e *entry) int64 {
	if !q.hasEpoch {
		q.epoch, q.hasEpoch = e.due, true
	}
	return int64(e.due.Sub(q.epoch))
}

func (q *dueQueue) less(i, j int) bool {
	a, b := &q.items[i], &q.items[j]
	if a.key != b.key {
		return a.key < b.key
	}
	return a.e.target.ID < b.e.target.ID
}

func (q *dueQueue) swap(i, j int) {
	q.items[i], q.items[j] = q.items[j], q.items[i]
	q.items[i].e.index, q.items[j].e.index = i, j
}

// push queues e by its due time.
func (q *dueQueue) push(e *entry) {
	e.index = len(q.items)
	q.items = append(q.items, dueItem{key: q.key(e), e: e})
	q.up(e.index)
}

// pop takes the entry due first out of the queue.
func (q *dueQueue) pop() *entry {
	e := q.items[0].e
	q.remove(e)
	return e
}

// remove takes e, which is queued, out of the queue.
func (q *dueQueue) remove(e *entry) {
	i, last := e.index, len(q.items)-1
	if i != last {
		q.swap(i, last)
	}
	q.items[last] = dueItem{}
	q.items = q.items[:last]
	e.index = -1
	if i != last {
		q.fixAt(i)
	}
}

// fix moves e, which is queued, to its place after its due time changed.
func (q *dueQueue) fix(e *entry) {
	q.items[e.index].key = q.key(e)
	q.fixAt(e.index)
}

func (q *dueQueue) fixAt(i int) {
	if !q.down(i) {
		q.up(i)
	}
}

func (q *dueQueue) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !q.less(j, i) {
			break
		}
		q.swap(i, j)
		j = i
	}
}

// down moves the item at i down to its place; true if it moved.
func (q *dueQueue) down(i0 int) bool {
	i, n := i0, len(q.items)
	for {
		j := 2*i + 1
		if j >= n {
			break
		}
		if r := j + 1; r < n && q.less(r, j) {
			j = r
		}
		if !q.less(j, i) {
			break
		}
		q.swap(i, j)
		i = j
	}
	return i > i0
}
