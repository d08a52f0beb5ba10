package director

import (
	"slices"
	"sync"

	"github.com/lvskit/lvskit/director/statusapi"
)

// The status API's types live in director/statusapi, so that lvstop and
// lvsdiag read them without importing the daemon.
type (
	Status           = statusapi.Status
	ServiceStatus    = statusapi.ServiceStatus
	RealServerStatus = statusapi.RealServerStatus
	VRRPStatus       = statusapi.VRRPStatus
	Event            = statusapi.Event
)

// DefaultTimelineSize is how many events the timeline keeps.
const DefaultTimelineSize = 1000

// Timeline keeps the most recent events in a ring. It is safe for
// concurrent use: the loop is not its only writer (quorum and notify
// commands, drills and a stop request's BGP withdrawal add events from
// their own goroutines), so its lock stays.
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
