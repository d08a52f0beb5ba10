package health

import (
	"strings"
	"testing"
	"time"
)

// runMachine feeds results ('+' pass, '-' fail) and returns one symbol
// per result: '.' nothing, 'r' retry, 'U' or 'D' a transition to up or
// down.
func runMachine(m *Machine, results string) (string, []Transition) {
	var out strings.Builder
	var ts []Transition
	start := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, c := range results {
		r := Result{Up: c == '+', Reason: "HTTP 200 from 10.0.0.2:80", Time: start.Add(time.Duration(i) * time.Second), Duration: 10 * time.Millisecond}
		if !r.Up {
			r.Reason = "HTTP 503 from 10.0.0.2:80"
		}
		step := m.Observe(r)
		switch {
		case step.Retry && step.Transition != nil:
			out.WriteByte('!')
		case step.Retry:
			out.WriteByte('r')
		case step.Transition != nil && step.Transition.To == StateUp:
			out.WriteByte('U')
			ts = append(ts, *step.Transition)
		case step.Transition != nil:
			out.WriteByte('D')
			ts = append(ts, *step.Transition)
		default:
			out.WriteByte('.')
		}
	}
	return out.String(), ts
}

func TestMachine(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		results string
		want    string
		state   State
	}{
		{"up falls after fall failures", Policy{Initial: StateUp, Fall: 3}, "---", "..D", StateDown},
		{"a pass resets the failures", Policy{Initial: StateUp, Fall: 3}, "--+--+", "......", StateUp},
		{"down rises after rise passes", Policy{Initial: StateDown, Rise: 2}, "++", ".U", StateUp},
		{"a failure resets the passes", Policy{Initial: StateDown, Rise: 3}, "++-++-+++", "........U", StateUp},
		{"flaps both ways", Policy{Initial: StateUp, Rise: 2, Fall: 2}, "--++--", ".D.U.D", StateDown},
		{"fall 1 rise 1", Policy{Initial: StateUp, Rise: 1, Fall: 1}, "-+-+", "DUDU", StateUp},
		{"retries before a failure counts", Policy{Initial: StateUp, Fall: 1, Retry: 2}, "---", "rrD", StateDown},
		{"a pass on retry clears the round", Policy{Initial: StateUp, Fall: 1, Retry: 2}, "--+---", "rr.rrD", StateDown},
		{"retries per counted failure", Policy{Initial: StateUp, Fall: 2, Retry: 1}, "----", "r.rD", StateDown},
		{"no retries while down", Policy{Initial: StateDown, Rise: 1, Retry: 3}, "--+", "..U", StateUp},
		{"unknown: first pass decides", Policy{Rise: 5}, "+", "U", StateUp},
		{"unknown: first failure decides", Policy{Fall: 5}, "-", "D", StateDown},
		{"unknown: retries first", Policy{Retry: 1}, "--", "rD", StateDown},
		{"defaults are rise 2 fall 3", Policy{Initial: StateUp}, "---++", "..D.U", StateUp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMachine(tt.policy)
			got, _ := runMachine(m, tt.results)
			if got != tt.want {
				t.Errorf("results %s gave %s, want %s", tt.results, got, tt.want)
			}
			if m.State() != tt.state {
				t.Errorf("state %s, want %s", m.State(), tt.state)
			}
		})
	}
}

func TestMachineTransitionReasons(t *testing.T) {
	m := NewMachine(Policy{Initial: StateUp, Rise: 2, Fall: 3})
	_, ts := runMachine(m, "---++")
	if len(ts) != 2 {
		t.Fatalf("got %d transitions, want 2: %+v", len(ts), ts)
	}
	down, up := ts[0], ts[1]
	if want := "3 of 3 failures: HTTP 503 from 10.0.0.2:80"; down.Reason != want {
		t.Errorf("down reason %q, want %q", down.Reason, want)
	}
	if down.From != StateUp || down.To != StateDown {
		t.Errorf("down transition %s -> %s", down.From, down.To)
	}
	if want := time.Date(2025, 1, 1, 12, 0, 2, 10e6, time.UTC); !down.Time.Equal(want) {
		t.Errorf("down at %v, want the end of the third check, %v", down.Time, want)
	}
	if want := "2 of 2 successes: HTTP 200 from 10.0.0.2:80"; up.Reason != want {
		t.Errorf("up reason %q, want %q", up.Reason, want)
	}

	m = NewMachine(Policy{Initial: StateUp, Fall: 1, Retry: 2})
	_, ts = runMachine(m, "---")
	if want := "1 of 1 failure (each after 2 retries): HTTP 503 from 10.0.0.2:80"; len(ts) != 1 || ts[0].Reason != want {
		t.Errorf("got %+v, want one transition with reason %q", ts, want)
	}
}

func TestMachineSetPolicyKeepsState(t *testing.T) {
	m := NewMachine(Policy{Initial: StateUp, Fall: 5})
	runMachine(m, "--")
	m.SetPolicy(Policy{Fall: 3, Initial: StateDown})
	if m.State() != StateUp {
		t.Fatalf("SetPolicy changed the state to %s", m.State())
	}
	if got, _ := runMachine(m, "-"); got != "D" {
		t.Errorf("third failure after lowering fall to 3 gave %q, want a transition down", got)
	}
}
