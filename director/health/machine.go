package health

import (
	"fmt"
	"time"
)

// Defaults of a Policy.
const (
	DefaultInterval = 5 * time.Second
	DefaultRise     = 2
	DefaultFall     = 3
)

// Policy is how a target's results become its state, and how often it
// is checked.
type Policy struct {
	// Interval is the time between the starts of two checks; zero means
	// DefaultInterval. The Scheduler jitters it.
	Interval time.Duration
	// Rise is how many consecutive passing checks bring a down target
	// up; zero means DefaultRise.
	Rise int
	// Fall is how many consecutive failing checks take an up target
	// down; zero means DefaultFall.
	Fall int
	// Retry is how many times a failed check is run again, RetryDelay
	// apart, before it counts as one failure (keepalived's retry and
	// delay_before_retry). Retries happen only while the target is not
	// down: a failure of a down target changes nothing worth retrying.
	Retry int
	// RetryDelay is the pause before a retry; zero retries at once.
	RetryDelay time.Duration
	// Initial is the state before any check. StateUnknown means the
	// first counted result decides: a pass brings the target up, a
	// failure takes it down, each in one step.
	Initial State
}

func (p Policy) withDefaults() Policy {
	if p.Interval <= 0 {
		p.Interval = DefaultInterval
	}
	if p.Rise <= 0 {
		p.Rise = DefaultRise
	}
	if p.Fall <= 0 {
		p.Fall = DefaultFall
	}
	p.Retry = max(p.Retry, 0)
	p.RetryDelay = max(p.RetryDelay, 0)
	return p
}

// Transition is a change of a target's state.
type Transition struct {
	// Target is the target's ID (empty when a Machine is used alone).
	Target string
	From   State
	To     State
	// Reason says why, with the result that tipped it: "3 of 3
	// failures: HTTP 503 from 10.0.0.2:80".
	Reason string
	// Result is the check result that tipped it.
	Result Result
	// Time is when that check ended.
	Time time.Time
}

// Step is what a Machine decided after one result.
type Step struct {
	// Retry asks for the check to run again after the policy's
	// RetryDelay; the result was not counted.
	Retry bool
	// Transition is the change of state, or nil.
	Transition *Transition
}

// Machine is the rise/fall state machine of one target. It is pure: its
// state changes only by Observe, and it reads no clock. It is not safe
// for concurrent use.
type Machine struct {
	policy    Policy
	state     State
	successes int // consecutive passes
	failures  int // consecutive counted failures
	retries   int // retries spent on the current failing round
	last      Result
	checked   bool
}

// NewMachine returns a machine in the policy's initial state.
func NewMachine(p Policy) *Machine {
	p = p.withDefaults()
	return &Machine{policy: p, state: p.Initial}
}

// State is the current state.
func (m *Machine) State() State { return m.state }

// Policy is the policy in force, with defaults filled in.
func (m *Machine) Policy() Policy { return m.policy }

// Counts returns the consecutive passes and counted failures so far.
func (m *Machine) Counts() (successes, failures int) { return m.successes, m.failures }

// Last returns the last result observed and whether there was one.
func (m *Machine) Last() (Result, bool) { return m.last, m.checked }

// SetPolicy changes the thresholds and timing and keeps the state and
// counters (a reload that kept the check). Counters past a lowered
// threshold take effect at the next result.
func (m *Machine) SetPolicy(p Policy) {
	m.policy = p.withDefaults()
}

// Observe feeds one result and returns what to do.
func (m *Machine) Observe(r Result) Step {
	m.last, m.checked = r, true
	if r.Up {
		m.retries, m.failures = 0, 0
		m.successes++
		switch {
		case m.state == StateUnknown:
			return m.move(StateUp, r, "first check passed")
		case m.state == StateDown && m.successes >= m.policy.Rise:
			return m.move(StateUp, r, fmt.Sprintf("%d of %d %s", m.successes, m.policy.Rise, plural(m.policy.Rise, "success", "successes")))
		}
		return Step{}
	}
	if m.state != StateDown && m.retries < m.policy.Retry {
		m.retries++
		return Step{Retry: true}
	}
	m.retries, m.successes = 0, 0
	m.failures++
	switch {
	case m.state == StateUnknown:
		return m.move(StateDown, r, "first check failed"+m.retryNote())
	case m.state == StateUp && m.failures >= m.policy.Fall:
		return m.move(StateDown, r, fmt.Sprintf("%d of %d %s%s", m.failures, m.policy.Fall, plural(m.policy.Fall, "failure", "failures"), m.retryNote()))
	}
	return Step{}
}

func (m *Machine) retryNote() string {
	if m.policy.Retry == 0 {
		return ""
	}
	return fmt.Sprintf(" (each after %d %s)", m.policy.Retry, plural(m.policy.Retry, "retry", "retries"))
}

func (m *Machine) move(to State, r Result, why string) Step {
	t := &Transition{From: m.state, To: to, Reason: why + ": " + r.Reason, Result: r, Time: r.Time.Add(r.Duration)}
	m.state = to
	return Step{Transition: t}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
