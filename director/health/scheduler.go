package health

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of a Scheduler.
const (
	// DefaultMaxConcurrent bounds the checks running at once.
	DefaultMaxConcurrent = 1024
	// DefaultJitter is the share of an interval by which each check's
	// start moves at random, either way.
	DefaultJitter = 0.1
	// dispatchSlack: on the system clock, checks due within this much
	// of the first due one start with it, so that a thousand targets
	// checked every second wake the scheduler a few hundred times a
	// second rather than a thousand.
	dispatchSlack = 5 * time.Millisecond
)

// Target is one thing to check, usually one real server of one virtual
// service.
type Target struct {
	// ID names the target and stays the same across reloads while the
	// real server does ("TCP 192.168.0.100:80 10.0.0.2:80").
	ID string
	// Check is what to run: TCPCheck, HTTPCheck, ScriptCheck, DNSCheck.
	Check Spec
	// Policy is how often to check and how results become a state.
	Policy Policy
}

// Status is a snapshot of one target, for a status API.
type Status struct {
	ID    string
	State State
	// Since is when the target entered State; zero when it has not
	// changed since it was added.
	Since time.Time
	// Last is the last result, valid when Checked.
	Last    Result
	Checked bool
	// Successes and Failures are the consecutive passes and counted
	// failures.
	Successes, Failures int
	// NextCheck is when the next check is due; zero while one runs.
	NextCheck time.Time
	// Policy is the policy in force, defaults filled in.
	Policy Policy
}

// SchedulerOptions configure a Scheduler.
type SchedulerOptions struct {
	// Logger receives transitions (info) and results (debug); nil
	// discards them.
	Logger *slog.Logger
	// Clock times the checks; nil means SystemClock. (Each check's own
	// timeout runs on the system clock.)
	Clock Clock
	// Dialer opens the checks' connections; nil means Env's default.
	// With no Dialer, on Linux, TCP and plain HTTP checks run on one
	// event loop (non-blocking sockets and epoll) instead of a goroutine
	// each; with one, every check goes through it on its own goroutine.
	Dialer Dialer
	// NetNS, when set, is the path of a network namespace
	// (/run/netns/NAME) in which the event loop makes its checks'
	// connections (Linux only; Run fails elsewhere). Checks through a
	// Dialer, HTTPS, scripts and DNS are not affected.
	NetNS string
	// MaxConcurrent bounds the checks running at once; zero means
	// DefaultMaxConcurrent. Checks due while all slots are busy wait in
	// due order. A check holds a slot for at most its timeout.
	MaxConcurrent int
	// Jitter is the share of an interval by which each check's start
	// moves at random, either way, and a new target's first check is
	// spread at random over its first interval. Zero means
	// DefaultJitter; negative means none (first checks run at once).
	Jitter float64
	// Seed seeds the jitter; zero means a random seed.
	Seed uint64
	// OnResult, if set, receives every result, retries included (for
	// metrics). It is called from the goroutine that ran the check (the
	// event loop's, for checks run there), concurrently for different
	// targets and in order for one target; it must not block.
	OnResult func(id string, r Result)
	// OnTransition, if set, receives every change of state, called like
	// OnResult, just before OnResult is called with the result that
	// caused it. A transition may arrive for a target that an Update has
	// just removed; ignore IDs you no longer know.
	OnTransition func(Transition)
}

// Scheduler runs the checks of many targets and keeps their states. Its
// methods are safe for concurrent use.
type Scheduler struct {
	opts  SchedulerOptions
	log   *slog.Logger
	clock Clock
	env   Env

	updateMu sync.Mutex // serializes Update

	mu      sync.Mutex
	entries map[string]*entry
	queue   dueQueue
	rng     *rand.Rand
	runCtx  context.Context         // set by Run
	busy    int                     // checks running
	pending []*entry                // due, waiting for a slot
	loop    *netLoop                // the event loop, while Run runs one
	armedAt time.Time               // when Run's timer fires; zero when stopped
	slack   time.Duration           // see dispatchSlack
	ticker  atomic.Pointer[netLoop] // the event loop when it starts the due checks
	notes   []notice                // deliver's, reused

	wake chan struct{}
	wg   sync.WaitGroup
}

// entry is the scheduler's record of one target.
type entry struct {
	target  Target
	checker Checker
	machine *Machine
	since   time.Time
	due     time.Time
	round   time.Time // when the current round was due; retries do not move it
	index   int       // in queue; -1 when not queued
	running bool
	ctx     context.Context // of the running check, on a goroutine
	cancel  context.CancelFunc
	probe   *probe // the check on the event loop, reused
	onLoop  bool   // the running check is on the event loop
	gone    bool   // removed or replaced
}

// NewScheduler returns a scheduler with no targets. Add them with
// Update; start checking with Run.
func NewScheduler(opts SchedulerOptions) *Scheduler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var slack time.Duration
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
		slack = dispatchSlack
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.Jitter == 0 {
		opts.Jitter = DefaultJitter
	}
	opts.Jitter = min(opts.Jitter, 0.5)
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Scheduler{
		opts:    opts,
		log:     opts.Logger,
		clock:   opts.Clock,
		env:     Env{Dialer: opts.Dialer, Logger: opts.Logger}.withDefaults(),
		entries: map[string]*entry{},
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		wake:    make(chan struct{}, 1),
		slack:   slack,
	}
}

// Update makes targets the set of targets. A target whose ID and Check
// are unchanged keeps its state, counters and schedule, and takes the
// new Policy; a new target, or one whose Check changed, starts in its
// policy's initial state; a target not listed is removed and its running
// check canceled. If any target is invalid (empty or duplicate ID, a
// check that does not build), Update changes nothing and returns every
// error found. The scheduler keeps the targets: do not modify the slices
// in their checks afterwards.
func (s *Scheduler) Update(targets []Target) error {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()

	s.mu.Lock()
	current := make(map[string]Spec, len(s.entries))
	for id, e := range s.entries {
		current[id] = e.target.Check
	}
	s.mu.Unlock()

	var errs []error
	seen := make(map[string]bool, len(targets))
	built := make(map[string]Checker)
	for _, t := range targets {
		switch {
		case t.ID == "":
			errs = append(errs, errors.New("health target with an empty ID"))
			continue
		case seen[t.ID]:
			errs = append(errs, fmt.Errorf("health target %s listed twice", t.ID))
			continue
		case t.Check == nil:
			errs = append(errs, fmt.Errorf("health target %s: no check given", t.ID))
			continue
		}
		seen[t.ID] = true
		if old, ok := current[t.ID]; ok && reflect.DeepEqual(old, t.Check) {
			continue
		}
		c, err := t.Check.NewChecker(s.env)
		if err != nil {
			errs = append(errs, fmt.Errorf("health target %s: %w", t.ID, err))
			continue
		}
		built[t.ID] = c
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	s.mu.Lock()
	now := s.clock.Now()
	for id, e := range s.entries {
		if !seen[id] {
			s.removeLocked(e)
			s.log.Info("health target removed", "target", id)
		}
	}
	for _, t := range targets {
		if c, ok := built[t.ID]; ok {
			if old := s.entries[t.ID]; old != nil {
				s.removeLocked(old)
			}
			e := &entry{target: t, checker: c, machine: NewMachine(t.Policy), index: -1}
			e.due = now.Add(s.firstDelayLocked(e.machine.Policy().Interval))
			e.round = e.due
			s.entries[t.ID] = e
			s.queue.push(e)
			continue
		}
		e := s.entries[t.ID]
		oldInterval := e.machine.Policy().Interval
		e.target = t
		e.machine.SetPolicy(t.Policy)
		if iv := e.machine.Policy().Interval; iv != oldInterval && e.index >= 0 {
			e.due = now.Add(s.firstDelayLocked(iv))
			e.round = e.due
			s.queue.fix(e)
		}
	}
	s.mu.Unlock()
	s.signal()
	return nil
}

// removeLocked forgets e and cancels its running check.
func (s *Scheduler) removeLocked(e *entry) {
	e.gone = true
	if e.index >= 0 {
		s.queue.remove(e)
	}
	if e.onLoop {
		s.loop.cancel(e.probe)
	} else if e.cancel != nil {
		e.cancel()
	}
	delete(s.entries, e.target.ID)
}

// Run checks the targets until ctx is done, then cancels the running
// checks, waits for them and returns nil. Run may be called once.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.runCtx != nil {
		s.mu.Unlock()
		return errors.New("health scheduler: Run called twice")
	}
	s.runCtx = ctx
	s.mu.Unlock()

	loop, err := startNetLoop(netLoopOptions{NetNS: s.opts.NetNS, Deliver: s.deliver})
	switch {
	case err == nil:
		s.mu.Lock()
		s.loop = loop
		s.mu.Unlock()
	case s.opts.NetNS != "":
		return fmt.Errorf("health scheduler: %w", err)
	case !errors.Is(err, errNoNetLoop):
		s.log.Warn("health checks run on a goroutine each", "err", err)
	}

	timer := s.clock.NewTimer()
	defer s.shutdown(timer)
	if loop != nil && s.slack > 0 {
		// On the system clock the event loop also starts the due
		// checks: its epoll_wait sleeps until the next deadline or due
		// check, whichever is first, and Run has nothing to do.
		s.ticker.Store(loop)
		loop.tickWith(s.dispatchAt)
		select {
		case <-ctx.Done():
			return nil
		case <-loop.ended():
			s.ticker.Store(nil) // its epoll broke: back to Run's timer
		}
	}
	for {
		if next, ok := s.dispatch(); ok {
			timer.ResetAt(next)
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C():
		case <-s.wake:
		}
	}
}

func (s *Scheduler) shutdown(timer Timer) {
	timer.Stop()
	s.mu.Lock()
	s.pending = nil
	loop := s.loop
	s.mu.Unlock()
	if loop != nil {
		loop.stop() // after which it delivers nothing more
		s.ticker.Store(nil)
	}
	s.wg.Wait()
}

// Status returns a snapshot of every target, sorted by ID.
func (s *Scheduler) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e.status())
	}
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Lookup returns the status of the target id.
func (s *Scheduler) Lookup(id string) (Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok {
		return Status{}, false
	}
	return e.status(), true
}

func (e *entry) status() Status {
	st := Status{ID: e.target.ID, State: e.machine.State(), Since: e.since, Policy: e.machine.Policy()}
	st.Last, st.Checked = e.machine.Last()
	st.Successes, st.Failures = e.machine.Counts()
	if e.index >= 0 {
		st.NextCheck = e.due
	}
	return st
}
