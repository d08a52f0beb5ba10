// Package probestest has a fake probes.Source: a trace that delivers the
// events a test gives it, then waits like a live trace until it is
// closed, and records that it was.
package probestest

import (
	"errors"
	"os"
	"sync"

	"github.com/lvskit/lvskit/probes"
)

// Source is a fake trace. Events queued with Send (or given to
// NewSource) are read in order; then Read blocks until Close or Fail.
type Source struct {
	events  chan probes.Event
	failed  chan error
	waiting chan struct{}
	closed  chan struct{}
	once    sync.Once

	mu         sync.Mutex
	LostEvents uint64
	MissedRuns uint64
	UnseenHops []string
	reads      int
}

var _ probes.BufferedSource = (*Source)(nil)

// NewSource returns a Source that will deliver events.
func NewSource(events ...probes.Event) *Source {
	s := &Source{events: make(chan probes.Event, 1024), failed: make(chan error, 1), closed: make(chan struct{}), waiting: make(chan struct{}, 1)}
	for _, e := range events {
		s.Send(e)
	}
	return s
}

// Send queues one more event (at most 1024 unread).
func (s *Source) Send(e probes.Event) { s.events <- e }

// Fail makes Read return err once the queued events are read.
func (s *Source) Fail(err error) { s.failed <- err }

// Read implements probes.Source.
func (s *Source) Read() (probes.Event, error) {
	select {
	case e := <-s.events:
		s.mu.Lock()
		s.reads++
		s.mu.Unlock()
		return e, nil
	default:
	}
	select {
	case s.waiting <- struct{}{}:
	default:
	}
	select {
	case e := <-s.events:
		s.mu.Lock()
		s.reads++
		s.mu.Unlock()
		return e, nil
	case err := <-s.failed:
		return probes.Event{}, err
	case <-s.closed:
		return probes.Event{}, errors.Join(errors.New("fake trace closed"), os.ErrClosed)
	}
}

// Buffered implements probes.BufferedSource: events are queued.
func (s *Source) Buffered() bool { return len(s.events) > 0 }

// Waiting delivers a value each time Read finds no queued event and
// starts to wait: every event sent so far was handed over.
func (s *Source) Waiting() <-chan struct{} { return s.waiting }

// Lost implements probes.Source.
func (s *Source) Lost() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.LostEvents
}

// Missed implements probes.MissCounter.
func (s *Source) Missed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.MissedRuns
}

// Unseen implements probes.Source.
func (s *Source) Unseen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.UnseenHops
}

// Close implements probes.Source.
func (s *Source) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// Closed reports whether Close was called.
func (s *Source) Closed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Reads is how many events were read.
func (s *Source) Reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}
