// Package healthtest provides fakes for testing code that uses package
// health: a Clock moved by hand and a Checker whose results the test
// chooses.
package healthtest

import (
	"context"
	"github.com/lvskit/lvskit/internal/clock/clocktest"
	"sync"
	"time"

	"github.com/lvskit/lvskit/director/health"
)

// Clock is a health.Clock that moves only when Advance is called.
type Clock = clocktest.Clock

// NewClock returns a clock standing at start.
func NewClock(start time.Time) *Clock { return clocktest.NewClock(start) }

// Checker is a health.Checker that returns the results a test gives it,
// in order, one per Check; with none queued, Check blocks until one is
// given or ctx is done.
type Checker struct {
	results  chan health.Result
	calls    chan struct{}
	canceled chan struct{}
	mu       sync.Mutex
	active   int
}

// NewChecker returns a checker with no results queued.
func NewChecker() *Checker {
	return &Checker{
		results:  make(chan health.Result, 1024),
		calls:    make(chan struct{}, 1024),
		canceled: make(chan struct{}, 1024),
	}
}

// Give queues results for the next checks.
func (f *Checker) Give(rs ...health.Result) {
	for _, r := range rs {
		f.results <- r
	}
}

// Calls delivers one value each time Check starts.
func (f *Checker) Calls() <-chan struct{} { return f.calls }

// Canceled delivers one value each time a Check ends because its
// context was done.
func (f *Checker) Canceled() <-chan struct{} { return f.canceled }

// Active returns how many Checks are running.
func (f *Checker) Active() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

// Check implements health.Checker.
func (f *Checker) Check(ctx context.Context) health.Result {
	f.mu.Lock()
	f.active++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}()
	f.calls <- struct{}{}
	select {
	case r := <-f.results:
		return r
	case <-ctx.Done():
		f.canceled <- struct{}{}
		return health.Result{Reason: "canceled", Err: health.ErrCanceled}
	}
}

// Spec is a health.Spec that builds its Checker: register checkers by
// name with Register, and give targets Spec{Name: name}.
type Spec struct {
	Name     string
	registry *Registry
}

// Registry maps Spec names to fake checkers.
type Registry struct {
	mu       sync.Mutex
	checkers map[string]*Checker
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{checkers: map[string]*Checker{}} }

// Spec returns the spec of the checker registered as name, creating the
// checker if needed.
func (r *Registry) Spec(name string) Spec {
	r.Checker(name)
	return Spec{Name: name, registry: r}
}

// Checker returns the checker registered as name, creating it if needed.
func (r *Registry) Checker(name string) *Checker {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.checkers[name]
	if !ok {
		c = NewChecker()
		r.checkers[name] = c
	}
	return c
}

// NewChecker implements health.Spec.
func (s Spec) NewChecker(health.Env) (health.Checker, error) {
	return s.registry.Checker(s.Name), nil
}
