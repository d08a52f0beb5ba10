// Package bgptest holds a recording fake of bgp.Speaker for the tests of
// the daemon and everything else that announces VIPs.
package bgptest

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/lvskit/lvskit/director/bgp"
)

// Op names a Speaker call.
type Op string

// The recorded operations.
const (
	OpAnnounce Op = "announce"
	OpWithdraw Op = "withdraw"
	OpClose    Op = "close"
)

// Call is one recorded Speaker call.
type Call struct {
	Op     Op
	Prefix netip.Prefix
	Attrs  bgp.Attributes
}

// String renders a call for test failure messages: "announce 192.0.2.1/32".
func (c Call) String() string {
	if c.Op == OpClose {
		return string(c.Op)
	}
	return fmt.Sprintf("%s %v", c.Op, c.Prefix)
}

// Speaker is a stateful fake: it records every call in order, keeps the set
// of announced prefixes as a router would see it, and can be told to fail.
type Speaker struct {
	mu        sync.Mutex
	calls     []Call
	announced map[netip.Prefix]bgp.Attributes
	peers     []bgp.PeerState
	closed    bool
	// failing makes Announce and Withdraw return this error (and change nothing).
	failing error
}

var _ bgp.Speaker = (*Speaker)(nil)

// New returns a fake speaker with the given peers.
func New(peers ...bgp.PeerState) *Speaker {
	return &Speaker{announced: map[netip.Prefix]bgp.Attributes{}, peers: peers}
}

// Announce implements bgp.Speaker.
func (s *Speaker) Announce(prefix netip.Prefix, attrs bgp.Attributes) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, Call{Op: OpAnnounce, Prefix: prefix, Attrs: attrs})
	if err := s.errLocked("announcing", prefix); err != nil {
		return err
	}
	s.announced[prefix] = attrs
	return nil
}

// Withdraw implements bgp.Speaker.
func (s *Speaker) Withdraw(prefix netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, Call{Op: OpWithdraw, Prefix: prefix})
	if err := s.errLocked("withdrawing", prefix); err != nil {
		return err
	}
	delete(s.announced, prefix)
	return nil
}

func (s *Speaker) errLocked(op string, prefix netip.Prefix) error {
	if s.closed {
		return fmt.Errorf("%s %v: %w", op, prefix, bgp.ErrClosed)
	}
	if s.failing != nil {
		return fmt.Errorf("%s %v: %w", op, prefix, s.failing)
	}
	return nil
}

// Peers implements bgp.Speaker.
func (s *Speaker) Peers() ([]bgp.PeerState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("listing bgp peers: %w", bgp.ErrClosed)
	}
	return slices.Clone(s.peers), nil
}

// Close implements bgp.Speaker; routes are gone once the speaker is closed.
func (s *Speaker) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.calls = append(s.calls, Call{Op: OpClose})
		s.closed = true
		clear(s.announced)
	}
	return nil
}

// SetPeers replaces the reported peers.
func (s *Speaker) SetPeers(peers ...bgp.PeerState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers = peers
}

// Fail makes later Announce and Withdraw calls fail with err (nil: succeed again).
func (s *Speaker) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing = err
}

// Calls returns every call so far, in order.
func (s *Speaker) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Announced returns the prefixes announced now, sorted.
func (s *Speaker) Announced() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.SortedFunc(maps.Keys(s.announced), func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
}

// Closed reports whether Close was called.
func (s *Speaker) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
