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
	// encoded are the events encoded for the status API (EncodeEvent),
	// made once when added rather than once per request; nil where the
	// encoding failed (never, for these types).
	encoded [][]byte
	next    int
	full    bool
}

// NewTimeline returns a timeline keeping size events.
func NewTimeline(size int) *Timeline {
	if size <= 0 {
		size = DefaultTimelineSize
	}
	return &Timeline{events: make([]Event, size), encoded: make([][]byte, size)}
}

// Add records an event.
func (t *Timeline) Add(e Event) {
	enc, _ := statusapi.EncodeEvent(e) // outside the lock
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events[t.next], t.encoded[t.next] = e, enc
	t.next = (t.next + 1) % len(t.events)
	if t.next == 0 {
		t.full = true
	}
}

// Events returns the events, oldest first.
func (t *Timeline) Events() []Event {
	evs, _ := t.EncodedEvents()
	return evs
}

// EncodedEvents returns the events, oldest first, and their encodings
// for Encoded.EventsJSON (nil if one could not be encoded).
func (t *Timeline) EncodedEvents() ([]Event, [][]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	evs, enc := ring(t.events, t.next, t.full), ring(t.encoded, t.next, t.full)
	if slices.ContainsFunc(enc, func(b []byte) bool { return b == nil }) {
		enc = nil
	}
	return evs, enc
}

// ring is a copy of a ring's items, oldest first.
func ring[T any](items []T, next int, full bool) []T {
	if !full {
		return slices.Clone(items[:next])
	}
	return append(slices.Clone(items[next:]), items[:next]...)
}
