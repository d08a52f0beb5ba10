package director

import (
	"slices"
	"sync"
	"time"
)

// Status is what lvsd publishes about itself: the status API serves it as
// JSON, lvstop and lvsdiag read it. It is a snapshot: nothing in it
// changes after Daemon.Status returns it.
type Status struct {
	// Config is the file the running config came from; Loaded is when.
	Config string    `json:"config"`
	Loaded time.Time `json:"loaded"`
	// LastReloadError is the error of the last rejected reload, if any:
	// the running config kept serving.
	LastReloadError string          `json:"last_reload_error,omitempty"`
	Services        []ServiceStatus `json:"services"`
	// Unowned are kernel services lvsd does not own and leaves alone.
	Unowned []string `json:"unowned,omitempty"`
	// VRRP are the VRRP instances, in config order; empty without.
	VRRP []VRRPStatus `json:"vrrp,omitempty"`
	// Events are the most recent events, oldest first.
	Events []Event `json:"events"`
}

// ServiceStatus is one virtual service lvsd owns.
type ServiceStatus struct {
	Key       string `json:"key"` // "TCP 192.168.0.100:80", "FWM 1"
	Name      string `json:"name,omitempty"`
	Source    string `json:"source"` // file:line of its config
	Scheduler string `json:"scheduler"`
	// InKernel is false while lvsd could not install the service.
	InKernel    bool               `json:"in_kernel"`
	RealServers []RealServerStatus `json:"real_servers"`
	// SorryServer is set while the sorry server is installed.
	SorryServer string `json:"sorry_server,omitempty"`
	// Quorum is "up", "down" or "" without a quorum; UpWeight is the sum
	// of the weights of the real servers that are up.
	Quorum   string `json:"quorum,omitempty"`
	UpWeight int    `json:"up_weight"`
}

// RealServerStatus is one configured real server.
type RealServerStatus struct {
	Address    string `json:"address"` // "10.0.0.2:80"
	Forwarding string `json:"forwarding"`
	// Weight is the configured weight; KernelWeight what the kernel has
	// now (0 when quiesced), -1 when it is not in the kernel (removed).
	Weight       int32 `json:"weight"`
	KernelWeight int32 `json:"kernel_weight"`
	// Health is "up", "down" or "unknown" (not checked yet); a real
	// server without a check is always "up".
	Health string    `json:"health"`
	Since  time.Time `json:"since,omitzero"`
	// Check describes the check ("http GET /healthz on 10.0.0.2:80").
	Check string `json:"check,omitempty"`
	// LastResult is the last check's result: "HTTP 503 from
	// 10.0.0.2:80"; LastCheck when it ran.
	LastResult string    `json:"last_result,omitempty"`
	LastCheck  time.Time `json:"last_check,omitzero"`
	// Why explains a real server that is out: "HTTP 503 from 10.0.0.2:80
	// at 12:00:03, 3 of 3 failures".
	Why string `json:"why,omitempty"`
}

// Event is one entry of the timeline.
type Event struct {
	Time time.Time `json:"time"`
	// Kind is "check" (a health transition), "ipvs" (a kernel write or
	// its failure), "drift", "config" (a load or a rejected reload),
	// "quorum", "vrrp" (a VRRP transition) or "daemon".
	Kind       string `json:"kind"`
	Service    string `json:"service,omitempty"`
	RealServer string `json:"real_server,omitempty"`
	Message    string `json:"message"`
}

// DefaultTimelineSize is how many events the timeline keeps.
const DefaultTimelineSize = 1000

// Timeline keeps the most recent events in a ring. It is safe for
// concurrent use.
type Timeline struct {
	mu     sync.Mutex
	events []Event
	next   int
	full   bool
}

// NewTimeline returns a timeline keeping size events.
func NewTimeline(size int) *Timeline {
	if size <= 0 {
		size = DefaultTimelineSize
	}
	return &Timeline{events: make([]Event, size)}
}

// Add records an event.
func (t *Timeline) Add(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events[t.next] = e
	t.next = (t.next + 1) % len(t.events)
	if t.next == 0 {
		t.full = true
	}
}

// Events returns the events, oldest first.
func (t *Timeline) Events() []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.full {
		return slices.Clone(t.events[:t.next])
	}
	return append(slices.Clone(t.events[t.next:]), t.events[:t.next]...)
}
