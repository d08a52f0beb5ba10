package vrrp

import (
	"crypto/subtle"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// State is the protocol state of a virtual router.
type State uint8

const (
	// Initialize: not started, or shut down. Holds no addresses.
	Initialize State = iota
	// Backup: watches the master's adverts; holds no addresses.
	Backup
	// Master: holds the virtual addresses and advertises.
	Master
	// Fault: a tracked interface or check has failed; the router takes no
	// part in the protocol and holds no addresses until FaultCleared.
	Fault
)

func (s State) String() string {
	switch s {
	case Initialize:
		return "initialize"
	case Backup:
		return "backup"
	case Master:
		return "master"
	case Fault:
		return "fault"
	}
	return fmt.Sprintf("state-%d", uint8(s))
}

// Status is a snapshot of a Machine for status APIs.
type Status struct {
	State State
	// Priority is the current (effective) priority.
	Priority uint8
	// Master is the address of the current master as far as this router
	// knows (its own address when it is master), or the zero Addr.
	Master         netip.Addr
	MasterPriority uint8
	// MasterAdverInterval is the master's advert interval (version 3
	// backups adopt the master's); MasterDownInterval derives from it.
	MasterAdverInterval time.Duration
	MasterDownInterval  time.Duration
	// Fault is the reason of the current fault, or empty.
	Fault string
	// AdverDeadline and MasterDownDeadline are the armed timers (zero when
	// not armed).
	AdverDeadline, MasterDownDeadline time.Time
}

// Machine is the VRRP state machine of RFC 5798 section 6.4 for one
// virtual router (RFC 3768 section 6.4 for version 2), with a Fault state.
// It does no I/O and reads no clock: Step takes the time and returns the
// actions to carry out, so the same events always give the same actions.
// A Machine is not safe for concurrent use; one goroutine owns it.
//
// Where the RFCs leave room, it follows keepalived's fixes for failures
// seen in the field:
//   - A master that receives a lower-priority advert (two masters, after a
//     partition heals) answers with an advert and re-announces the
//     addresses: the other master's gratuitous ARPs may have moved the
//     traffic away (keepalived issue #166).
//   - A master that yields to a higher-priority advert sends one last
//     advert first, so the winner sees the conflict and re-announces even
//     if it never heard the loser before (keepalived's
//     higher_prio_send_advert).
//   - An advert whose virtual addresses differ from ours is reported
//     (Misconfigured) but processed; dropping it, as the RFCs ask, turns a
//     rolling configuration change into two masters.
type Machine struct {
	cfg      Config
	primary  netip.Addr
	state    State
	priority uint8

	masterAdverInterval time.Duration
	master              netip.Addr
	masterPriority      uint8

	adverAt, downAt time.Time
	// preemptAt is when a delayed preemption may start (zero: no delay
	// running).
	preemptAt time.Time
	// takeover is the reason the master-down timer will give if it fires.
	takeover string

	faulty      bool
	faultReason string
}

// NewMachine returns a Machine in the Initialize state; step it with
// Startup to begin.
func NewMachine(cfg Config) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Addresses = slices.Clone(cfg.Addresses)
	return &Machine{
		cfg:                 cfg,
		primary:             cfg.PrimaryAddress.WithZone(""),
		priority:            cfg.Priority,
		masterAdverInterval: cfg.AdvertInterval,
	}, nil
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Status returns a snapshot of the machine.
func (m *Machine) Status() Status {
	return Status{
		State:               m.state,
		Priority:            m.priority,
		Master:              m.master,
		MasterPriority:      m.masterPriority,
		MasterAdverInterval: m.masterAdverInterval,
		MasterDownInterval:  m.MasterDownInterval(),
		Fault:               m.faultReason,
		AdverDeadline:       m.adverAt,
		MasterDownDeadline:  m.downAt,
	}
}

// SkewTime is how much later than a higher-priority backup this one takes
// over: (256 - Priority) / 256 seconds for version 2 (RFC 3768), and
// ((256 - Priority) * Master_Adver_Interval) / 256 for version 3 (RFC
// 5798), computed exactly rather than in whole centiseconds so adjacent
// priorities never tie.
func (m *Machine) SkewTime() time.Duration {
	base := time.Second
	if m.cfg.Version == Version3 {
		base = m.masterAdverInterval
	}
	return time.Duration(256-int(m.priority)) * base / 256
}

// MasterDownInterval is how long a backup waits without an advert before
// taking over: 3 * Master_Adver_Interval + Skew_Time.
func (m *Machine) MasterDownInterval() time.Duration {
	return 3*m.masterAdverInterval + m.SkewTime()
}

// Step feeds one event at time now and returns the actions to carry out,
// in order. now must not go backwards between calls.
func (m *Machine) Step(now time.Time, ev Event) []Action {
	switch ev := ev.(type) {
	case Startup:
		if m.state != Initialize {
			return nil
		}
		return m.start(now, "startup")
	case Shutdown:
		return m.shutdown()
	case AdvertReceived:
		return m.receive(now, ev.Src, &ev.Advert)
	case TimerExpired:
		return m.expire(now, ev.Timer)
	case PriorityChanged:
		return m.setPriority(now, ev.Priority)
	case FaultDetected:
		return m.fault(ev.Reason)
	case FaultCleared:
		return m.clearFault(now)
	case Reconfigured:
		return m.reconfigure(now, ev)
	case StepDown:
		return m.stepDown(now, ev.Reason)
	}
	return nil
}

// reconfigure is Reconfigured.
func (m *Machine) reconfigure(now time.Time, ev Reconfigured) []Action {
	cfg := ev.Config
	if cfg.Validate() != nil || cfg.VRID != m.cfg.VRID || FamilyOf(cfg.PrimaryAddress) != FamilyOf(m.primary) {
		return nil
	}
	cfg.Addresses = slices.Clone(cfg.Addresses)
	old := m.cfg
	m.cfg = cfg
	m.primary = cfg.PrimaryAddress.WithZone("")
	m.priority = cfg.Priority
	if ev.Priority != 0 && cfg.Priority != 255 {
		m.priority = min(max(ev.Priority, 1), 254)
	}
	if cfg.PreemptDelay != old.PreemptDelay || cfg.NoPreempt {
		m.preemptAt = time.Time{}
	}
	switch m.state {
	case Master:
		return m.reconfigureMaster(now, old)
	case Backup:
		if cfg.Priority == 255 {
			acts := []Action{StopTimer{Timer: MasterDownTimer}}
			return append(acts, m.becomeMaster(now, "reload made this router the address owner (priority 255)")...)
		}
		if cfg.Version != Version3 || cfg.Version != old.Version || !m.master.IsValid() {
			m.masterAdverInterval = cfg.AdvertInterval
		}
		m.downAt = now.Add(m.MasterDownInterval())
		return []Action{ArmTimer{Timer: MasterDownTimer, At: m.downAt}}
	case Initialize:
		m.masterAdverInterval = cfg.AdvertInterval
	}
	return nil
}

// reconfigureMaster moves a master to a reloaded config without leaving
// Master: the address changes, one advert now, the timer at the new
// interval.
func (m *Machine) reconfigureMaster(now time.Time, old Config) []Action {
	var acts []Action
	var removed, added []netip.Addr
	for _, a := range old.Addresses {
		if !slices.Contains(m.cfg.Addresses, a) {
			removed = append(removed, a)
		}
	}
	for _, a := range m.cfg.Addresses {
		if !slices.Contains(old.Addresses, a) {
			added = append(added, a)
		}
	}
	if len(removed) > 0 {
		acts = append(acts, RemoveAddresses{Addresses: removed, Partial: true})
	}
	if len(added) > 0 {
		acts = append(acts, AddAddresses{Addresses: added, Accept: m.cfg.Priority == 255 || m.cfg.AcceptMode})
	}
	if len(added) > 0 {
		acts = append(acts, Announce{Addresses: m.addresses(), Reason: "reload added addresses"})
	}
	m.masterAdverInterval = m.cfg.AdvertInterval
	m.master, m.masterPriority = m.primary, m.priority
	m.adverAt = now.Add(m.cfg.AdvertInterval)
	return append(acts, m.advert(m.priority), ArmTimer{Timer: AdverTimer, At: m.adverAt})
}

// stepDown leaves Master for Backup with a priority-0 advert.
func (m *Machine) stepDown(now time.Time, reason string) []Action {
	if m.state != Master {
		return nil
	}
	acts := m.leaveMaster(0)
	m.master, m.masterPriority = netip.Addr{}, 0
	return append(acts, m.becomeBackup(now, "stepped down: "+reason, m.cfg.AdvertInterval)...)
}

// start leaves Initialize or Fault: RFC 5798 6.4.1.
func (m *Machine) start(now time.Time, reason string) []Action {
	from := m.state
	if m.faulty {
		m.state = Fault
		return []Action{StateChanged{From: from, To: Fault, Reason: "fault: " + m.faultReason}}
	}
	if m.cfg.Priority == 255 {
		return m.becomeMaster(now, reason+" as address owner (priority 255)")
	}
	var acts []Action
	if from == Initialize {
		// Addresses left behind by a crashed predecessor must go: a
		// backup must not answer for them.
		acts = append(acts, RemoveAddresses{Addresses: m.addresses()})
	}
	m.master, m.masterPriority = netip.Addr{}, 0
	return append(acts, m.becomeBackup(now, reason, m.cfg.AdvertInterval)...)
}

func (m *Machine) becomeMaster(now time.Time, reason string) []Action {
	from := m.state
	m.state = Master
	m.masterAdverInterval = m.cfg.AdvertInterval
	m.master, m.masterPriority = m.primary, m.priority
	m.downAt, m.preemptAt, m.takeover = time.Time{}, time.Time{}, ""
	m.adverAt = now.Add(m.cfg.AdvertInterval)
	return []Action{
		// The advert goes first so an old master drops the addresses
		// before our gratuitous ARPs.
		m.advert(m.priority),
		StateChanged{From: from, To: Master, Reason: reason},
		AddAddresses{Addresses: m.addresses(), Accept: m.cfg.Priority == 255 || m.cfg.AcceptMode},
		Announce{Addresses: m.addresses(), Reason: "became master"},
		ArmTimer{Timer: AdverTimer, At: m.adverAt},
	}
}

func (m *Machine) becomeBackup(now time.Time, reason string, masterAdverInterval time.Duration) []Action {
	from := m.state
	m.state = Backup
	m.masterAdverInterval = masterAdverInterval
	m.adverAt, m.preemptAt = time.Time{}, time.Time{}
	m.takeover = "no advertisement from a master"
	m.downAt = now.Add(m.MasterDownInterval())
	return []Action{
		StateChanged{From: from, To: Backup, Reason: reason},
		ArmTimer{Timer: MasterDownTimer, At: m.downAt},
	}
}

// leaveMaster is the common part of a master giving up: stop advertising
// and drop the addresses.
func (m *Machine) leaveMaster(lastAdvertPriority uint8) []Action {
	m.adverAt = time.Time{}
	return []Action{
		StopTimer{Timer: AdverTimer},
		m.advert(lastAdvertPriority),
		RemoveAddresses{Addresses: m.addresses()},
	}
}

// exit returns the actions that take the machine out of Master (a
// priority-0 advert, addresses removed) or Backup (its timer stopped).
func (m *Machine) exit() []Action {
	switch m.state {
	case Master:
		return m.leaveMaster(0)
	case Backup:
		return []Action{StopTimer{Timer: MasterDownTimer}}
	}
	return nil
}

func (m *Machine) shutdown() []Action {
	if m.state == Initialize {
		return nil
	}
	acts := m.exit()
	from := m.state
	m.reset()
	return append(acts, StateChanged{From: from, To: Initialize, Reason: "shutdown"})
}

// reset forgets the peers and timers on leaving the protocol.
func (m *Machine) reset() {
	m.state = Initialize
	m.adverAt, m.downAt, m.preemptAt = time.Time{}, time.Time{}, time.Time{}
	m.master, m.masterPriority, m.takeover = netip.Addr{}, 0, ""
	m.masterAdverInterval = m.cfg.AdvertInterval
}

func (m *Machine) expire(now time.Time, t Timer) []Action {
	var deadline time.Time
	switch {
	case t == AdverTimer && m.state == Master:
		deadline = m.adverAt
	case t == MasterDownTimer && m.state == Backup:
		deadline = m.downAt
	}
	if deadline.IsZero() {
		return nil // stopped, or left over from another state
	}
	if now.Before(deadline) {
		// Re-armed since the caller's timer was set: keep waiting.
		return []Action{ArmTimer{Timer: t, At: deadline}}
	}
	if t == MasterDownTimer {
		return m.becomeMaster(now, m.takeover)
	}
	m.adverAt = now.Add(m.cfg.AdvertInterval)
	return []Action{m.advert(m.priority), ArmTimer{Timer: AdverTimer, At: m.adverAt}}
}

func (m *Machine) receive(now time.Time, src netip.Addr, a *Advertisement) []Action {
	if m.state != Backup && m.state != Master {
		return nil
	}
	src = src.WithZone("")
	if err := m.check(src, a); err != nil {
		return []Action{Discarded{Src: src, Err: fmt.Errorf("advert from %s: %w", src, err)}}
	}
	var acts []Action
	if !sameSet(a.Addresses, m.cfg.Addresses) {
		acts = append(acts, Misconfigured{Src: src, Err: fmt.Errorf("advert from %s lists %v, vrid %d here has %v: %w",
			src, a.Addresses, m.cfg.VRID, m.cfg.Addresses, ErrAddressMismatch)})
	}
	if m.state == Backup {
		return append(acts, m.backupReceive(now, src, a)...)
	}
	return append(acts, m.masterReceive(now, src, a)...)
}

// check applies the receive checks of RFC 3768/5798 section 7.1 that the
// codec cannot: they need the local configuration.
func (m *Machine) check(src netip.Addr, a *Advertisement) error {
	switch {
	case !src.IsValid() || src.Is4() != m.primary.Is4():
		return fmt.Errorf("source %s, virtual router is %s: %w", src, family(m.primary), ErrAddressFamily)
	case src == m.primary:
		return ErrOwnAdvert
	case a.Version != m.cfg.Version:
		return fmt.Errorf("version %d, vrid %d runs version %d: %w", a.Version, m.cfg.VRID, m.cfg.Version, ErrBadVersion)
	case a.VRID != m.cfg.VRID:
		return fmt.Errorf("vrid %d, expected %d: %w", a.VRID, m.cfg.VRID, ErrVRID)
	case a.Interval <= 0:
		return fmt.Errorf("interval %s: %w", a.Interval, ErrInterval)
	}
	if m.cfg.Version == Version2 {
		authType, authData := m.cfg.authFields()
		switch {
		case a.AuthType != authType:
			return fmt.Errorf("auth type %s, expected %s: %w", a.AuthType, authType, ErrAuth)
		case authType == AuthSimple && subtle.ConstantTimeCompare(a.AuthData[:], authData[:]) != 1:
			return fmt.Errorf("wrong password: %w", ErrAuth)
		case a.Interval != m.cfg.AdvertInterval:
			// RFC 3768 7.1: version 2 intervals must match.
			return fmt.Errorf("interval %s, configured %s: %w", a.Interval, m.cfg.AdvertInterval, ErrInterval)
		}
	}
	return nil
}

// backupReceive is RFC 5798 6.4.2 (420)-(465), with keepalived's
// preempt_delay.
func (m *Machine) backupReceive(now time.Time, src netip.Addr, a *Advertisement) []Action {
	if a.Priority == 0 {
		m.takeover = fmt.Sprintf("master %s stepped down (priority 0)", src)
		m.downAt = now.Add(m.SkewTime())
		return []Action{ArmTimer{Timer: MasterDownTimer, At: m.downAt}}
	}
	higherOrEqual := a.Priority >= m.priority
	accept := higherOrEqual || m.cfg.NoPreempt
	if !accept && m.cfg.PreemptDelay > 0 {
		if m.preemptAt.IsZero() {
			m.preemptAt = now.Add(m.cfg.PreemptDelay)
		}
		accept = now.Before(m.preemptAt)
	}
	if higherOrEqual {
		m.preemptAt = time.Time{}
	}
	if !accept {
		// Discarded: the master-down timer runs out and we take over.
		m.takeover = fmt.Sprintf("preempting %s (priority %d, ours %d)", src, a.Priority, m.priority)
		return nil
	}
	interval := m.cfg.AdvertInterval
	if m.cfg.Version == Version3 {
		interval = a.Interval // RFC 5798 (440): adopt the master's interval
	}
	m.masterAdverInterval = interval
	m.master, m.masterPriority = src, a.Priority
	m.takeover = fmt.Sprintf("no advertisement from master %s for %s", src, m.MasterDownInterval())
	m.downAt = now.Add(m.MasterDownInterval())
	return []Action{ArmTimer{Timer: MasterDownTimer, At: m.downAt}}
}

// masterReceive is RFC 5798 6.4.3 (700)-(785), plus the recovery from two
// masters described on Machine.
func (m *Machine) masterReceive(now time.Time, src netip.Addr, a *Advertisement) []Action {
	if a.Priority == 0 {
		m.adverAt = now.Add(m.cfg.AdvertInterval)
		return []Action{m.advert(m.priority), ArmTimer{Timer: AdverTimer, At: m.adverAt}}
	}
	if a.Priority > m.priority || a.Priority == m.priority && src.Compare(m.primary) > 0 {
		interval := m.cfg.AdvertInterval
		if m.cfg.Version == Version3 {
			interval = a.Interval
		}
		reason := fmt.Sprintf("advert from %s with priority %d, ours %d", src, a.Priority, m.priority)
		if a.Priority == m.priority {
			reason = fmt.Sprintf("advert from %s with equal priority %d and a higher address", src, a.Priority)
		}
		acts := m.leaveMaster(m.priority)
		m.master, m.masterPriority = src, a.Priority
		acts = append(acts, m.becomeBackup(now, reason, interval)...)
		m.takeover = fmt.Sprintf("no advertisement from master %s for %s", src, m.MasterDownInterval())
		return acts
	}
	// Another master with lower priority: it will yield to our advert, but
	// its gratuitous ARPs may have pulled the traffic: take it back.
	m.adverAt = now.Add(m.cfg.AdvertInterval)
	return []Action{
		m.advert(m.priority),
		Announce{Addresses: m.addresses(), Reason: fmt.Sprintf(
			"lower-priority master %s (priority %d) seen: reclaiming the addresses after two masters", src, a.Priority)},
		ArmTimer{Timer: AdverTimer, At: m.adverAt},
	}
}

func (m *Machine) setPriority(now time.Time, p uint8) []Action {
	if m.cfg.Priority == 255 {
		return nil // the address owner's priority is fixed
	}
	p = min(max(p, 1), 254)
	if p == m.priority {
		return nil
	}
	m.priority = p
	if m.state != Master {
		return nil
	}
	// Tell the backups now rather than at the next interval.
	m.masterPriority = p
	m.adverAt = now.Add(m.cfg.AdvertInterval)
	return []Action{m.advert(m.priority), ArmTimer{Timer: AdverTimer, At: m.adverAt}}
}

func (m *Machine) fault(reason string) []Action {
	m.faulty, m.faultReason = true, reason
	if m.state == Initialize || m.state == Fault {
		return nil // Startup will enter Fault; a new reason just replaces the old
	}
	acts := m.exit()
	from := m.state
	m.reset()
	m.state = Fault
	return append(acts, StateChanged{From: from, To: Fault, Reason: "fault: " + reason})
}

func (m *Machine) clearFault(now time.Time) []Action {
	if !m.faulty {
		return nil
	}
	m.faulty, m.faultReason = false, ""
	if m.state != Fault {
		return nil
	}
	return m.start(now, "fault cleared")
}

func (m *Machine) advert(priority uint8) Action {
	authType, authData := m.cfg.authFields()
	if m.cfg.Version != Version2 {
		authType, authData = AuthNone, [8]byte{}
	}
	return SendAdvert{Advert: Advertisement{
		Version:   m.cfg.Version,
		VRID:      m.cfg.VRID,
		Priority:  priority,
		Interval:  m.cfg.AdvertInterval,
		Addresses: m.addresses(),
		AuthType:  authType,
		AuthData:  authData,
	}}
}

// addresses returns a copy the caller may keep.
func (m *Machine) addresses() []netip.Addr { return slices.Clone(m.cfg.Addresses) }

// sameSet reports whether a and b hold the same addresses in any order.
func sameSet(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.Addr.Compare)
	slices.SortFunc(b, netip.Addr.Compare)
	return slices.Equal(a, b)
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
