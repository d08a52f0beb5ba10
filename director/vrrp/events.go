package vrrp

// What Machine.Step takes (events) and returns (actions).

import (
	"fmt"
	"net/netip"
	"time"
)

// Timer names one of the protocol's two timers.
type Timer uint8

const (
	// AdverTimer fires when a master must send its next advert.
	AdverTimer Timer = iota + 1
	// MasterDownTimer fires when a backup has heard no usable advert for
	// Master_Down_Interval and takes over.
	MasterDownTimer
)

func (t Timer) String() string {
	switch t {
	case AdverTimer:
		return "adver-timer"
	case MasterDownTimer:
		return "master-down-timer"
	}
	return fmt.Sprintf("timer-%d", uint8(t))
}

// Event is an input to Machine.Step: one of Startup, Shutdown,
// AdvertReceived, TimerExpired, PriorityChanged, FaultDetected,
// FaultCleared, Reconfigured and StepDown.
type Event interface{ isEvent() }

// Startup starts the protocol (Initialize -> Backup, or Master for the
// address owner).
type Startup struct{}

// Shutdown stops the protocol; a master first sends a priority-0 advert so
// a backup takes over after Skew_Time instead of Master_Down_Interval.
type Shutdown struct{}

// AdvertReceived is an advertisement decoded by Unmarshal. The transport
// has already checked the IP hop limit (HopLimit) and the checksum; the
// Machine checks the rest of RFC 3768/5798 section 7.1.
type AdvertReceived struct {
	// Src is the IP source address: the sender's primary address.
	Src    netip.Addr
	Advert Advertisement
}

// TimerExpired reports that a timer armed by an ArmTimer action fired.
// Stale reports (the timer was re-armed or stopped since) are harmless.
type TimerExpired struct{ Timer Timer }

// PriorityChanged sets this router's priority, for example when a tracked
// check lowers it. It is clamped to 1..254; the address owner keeps 255.
type PriorityChanged struct{ Priority uint8 }

// FaultDetected puts the router in the Fault state (keepalived's FAULT):
// a master steps down with a priority-0 advert and drops the addresses.
type FaultDetected struct{ Reason string }

// FaultCleared ends the Fault state; the router starts again as after
// Startup.
type FaultCleared struct{}

// Reconfigured applies a reloaded configuration in place, keeping the
// state, as keepalived keeps an instance's state across a reload (its
// vrrp_daemon.c reload path with clear_diff_vrrp and restore_vrrp_state):
//   - a master stays master: it drops the addresses no longer listed,
//     adds the new ones and announces them all if any were added (no
//     announcement otherwise), sends an advert at once with what changed
//     (priority, interval, addresses) and advertises at the new interval
//     from then on;
//   - a backup stays backup and waits a whole Master_Down_Interval of the
//     new settings from now (keepalived re-arms it too); a version 3
//     backup keeps the interval it learnt from the master;
//   - a router that becomes the address owner (priority 255) takes over
//     at once; one that stops being it stays master until a peer with a
//     higher priority preempts it;
//   - a router in fault or not started only takes the settings.
//
// Config must be valid and keep the VRID and the address family; a
// config that does not is ignored (Instance.Reconfigure refuses it with
// an error). Priority is the effective priority to run with (tracking
// may move it from Config.Priority); 0 means Config.Priority.
type Reconfigured struct {
	Config   Config
	Priority uint8
}

// StepDown hands the addresses over on purpose (a failover drill): a
// master sends a priority-0 advert, drops the addresses and becomes a
// backup, so a backup takes over after Skew_Time. Unlike FaultDetected
// the router stays a backup that takes the addresses again if no master
// advertises. Lower its priority first (PriorityChanged) to keep it from
// preempting back. Other states ignore it.
type StepDown struct{ Reason string }

func (Startup) isEvent() {}

func (Shutdown) isEvent() {}

func (AdvertReceived) isEvent() {}

func (TimerExpired) isEvent() {}

func (PriorityChanged) isEvent() {}

func (FaultDetected) isEvent() {}

func (FaultCleared) isEvent() {}

func (Reconfigured) isEvent() {}

func (StepDown) isEvent() {}

// Action is an output of Machine.Step that the caller carries out, in
// order: SendAdvert, AddAddresses, RemoveAddresses, Announce, ArmTimer,
// StopTimer, StateChanged, Discarded or Misconfigured.
type Action interface{ isAction() }

// SendAdvert asks the transport to send Advert to the multicast group (or
// the unicast peers) from the primary address, with HopLimit.
type SendAdvert struct{ Advert Advertisement }

// AddAddresses asks for the virtual addresses to be added to the
// interface. Accept false means the router is neither address owner nor in
// accept mode: packets addressed to them must be dropped (RFC 5798 6.4.3).
type AddAddresses struct {
	Addresses []netip.Addr
	Accept    bool
}

// RemoveAddresses asks for the virtual addresses to be removed; removing
// an address that is not there is not an error. Partial means the router
// stays master with its other addresses (a reload dropped these): their
// announcements go on.
type RemoveAddresses struct {
	Addresses []netip.Addr
	Partial   bool
}

// Announce asks for gratuitous ARP (IPv4) or unsolicited neighbour
// advertisements with the router flag (IPv6) for the addresses, so hosts
// and switches send their traffic here.
type Announce struct {
	Addresses []netip.Addr
	Reason    string
}

// ArmTimer asks for Timer to fire at At (replacing an earlier arming);
// report it with TimerExpired.
type ArmTimer struct {
	Timer Timer
	At    time.Time
}

// StopTimer asks for Timer to be cancelled.
type StopTimer struct{ Timer Timer }

// StateChanged reports a transition, for logs, notifications, metrics and
// the IPVS sync daemon role.
type StateChanged struct {
	From, To State
	Reason   string
}

// Discarded reports a received advert dropped by the checks of section
// 7.1; Err wraps one of the package's sentinel errors.
type Discarded struct {
	Src netip.Addr
	Err error
}

// Misconfigured reports an advert that was processed but shows the peers
// disagree (Err wraps ErrAddressMismatch).
type Misconfigured struct {
	Src netip.Addr
	Err error
}

func (SendAdvert) isAction() {}

func (AddAddresses) isAction() {}

func (RemoveAddresses) isAction() {}

func (Announce) isAction() {}

func (ArmTimer) isAction() {}

func (StopTimer) isAction() {}

func (StateChanged) isAction() {}

func (Discarded) isAction() {}

func (Misconfigured) isAction() {}
