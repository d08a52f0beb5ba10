// Package vrrptest provides fakes for testing code that uses package
// vrrp: a Clock moved by hand, a Wire that joins fake PacketConns as one
// link, and recording AddressManager and Announcer fakes. Every fake
// records what it was asked to do, and tests can wait for a condition on
// those records without sleeping.
package vrrptest

import (
	"context"
	"fmt"
	"github.com/lvskit/lvskit/internal/clock/clocktest"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/lvskit/lvskit/director/vrrp"
)

// notifier lets waiters block until a recorder changes.
type notifier struct {
	mu      sync.Mutex
	changed chan struct{}
}

func (n *notifier) lock() {
	n.mu.Lock()
	if n.changed == nil {
		n.changed = make(chan struct{})
	}
}

// unlockChanged wakes the waiters and unlocks.
func (n *notifier) unlockChanged() {
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
}

// wait blocks until cond, called with the lock held, is true.
func (n *notifier) wait(ctx context.Context, what string, cond func() bool) error {
	for {
		n.lock()
		ok, ch := cond(), n.changed
		n.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

// Clock is a vrrp.Clock that moves only when Advance is called.
type Clock = clocktest.Clock

// NewClock returns a clock standing at start.
func NewClock(start time.Time) *Clock { return clocktest.NewClock(start) }

// Addresses is a recording vrrp.AddressManager.
type Addresses struct {
	n    notifier
	held map[netip.Addr]bool
	log  []string
}

var _ vrrp.AddressManager = (*Addresses)(nil)

// NewAddresses returns an Addresses holding nothing.
func NewAddresses() *Addresses { return &Addresses{held: map[netip.Addr]bool{}} }

// AddAddresses implements vrrp.AddressManager.
func (a *Addresses) AddAddresses(addrs []netip.Addr) error {
	a.n.lock()
	defer a.n.unlockChanged()
	for _, addr := range addrs {
		a.held[addr] = true
	}
	a.log = append(a.log, fmt.Sprintf("add %v", addrs))
	return nil
}

// RemoveAddresses implements vrrp.AddressManager.
func (a *Addresses) RemoveAddresses(addrs []netip.Addr) error {
	a.n.lock()
	defer a.n.unlockChanged()
	for _, addr := range addrs {
		delete(a.held, addr)
	}
	a.log = append(a.log, fmt.Sprintf("remove %v", addrs))
	return nil
}

// Held returns the addresses held, sorted.
func (a *Addresses) Held() []netip.Addr {
	a.n.lock()
	defer a.n.mu.Unlock()
	return a.heldLocked()
}

func (a *Addresses) heldLocked() []netip.Addr {
	out := make([]netip.Addr, 0, len(a.held))
	for addr := range a.held {
		out = append(out, addr)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Log returns the calls so far, as "add [..]" and "remove [..]".
func (a *Addresses) Log() []string {
	a.n.lock()
	defer a.n.mu.Unlock()
	return slices.Clone(a.log)
}

// WaitHeld blocks until the addresses held are exactly want (in any
// order).
func (a *Addresses) WaitHeld(ctx context.Context, want ...netip.Addr) error {
	want = slices.Clone(want)
	slices.SortFunc(want, netip.Addr.Compare)
	return a.n.wait(ctx, fmt.Sprintf("addresses %v", want), func() bool {
		return slices.Equal(a.heldLocked(), want)
	})
}

// Announcer is a recording vrrp.Announcer.
type Announcer struct {
	n      notifier
	clock  vrrp.Clock
	rounds []time.Time
}

var _ vrrp.Announcer = (*Announcer)(nil)

// NewAnnouncer returns an Announcer that stamps each round with clock's
// time.
func NewAnnouncer(clock vrrp.Clock) *Announcer { return &Announcer{clock: clock} }

// Announce implements vrrp.Announcer.
func (a *Announcer) Announce([]netip.Addr) error {
	a.n.lock()
	defer a.n.unlockChanged()
	a.rounds = append(a.rounds, a.clock.Now())
	return nil
}

// Rounds returns the time of every round so far.
func (a *Announcer) Rounds() []time.Time {
	a.n.lock()
	defer a.n.mu.Unlock()
	return slices.Clone(a.rounds)
}

// WaitRounds blocks until at least n rounds were sent.
func (a *Announcer) WaitRounds(ctx context.Context, n int) error {
	return a.n.wait(ctx, fmt.Sprintf("%d announcement rounds", n), func() bool { return len(a.rounds) >= n })
}
