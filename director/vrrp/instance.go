package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// InstanceConfig describes one VRRP instance as lvsd runs it: a virtual
// router (Config) on an interface, and how it announces its addresses.
type InstanceConfig struct {
	// Name names the instance in logs, metrics and notifications
	// (keepalived's vrrp_instance name).
	Name string
	// Interface is the link the instance advertises on and puts its
	// addresses on.
	Interface string
	// Router is the protocol configuration.
	Router Config
	// UnicastPeers, when set, replace the multicast group: each advert
	// is sent to every peer (keepalived's unicast_peer).
	UnicastPeers []netip.Addr
	// Announce governs gratuitous ARP and unsolicited NA; the zero value
	// means DefaultAnnounce.
	Announce AnnounceConfig
}

// Validate reports the first invalid setting.
func (c *InstanceConfig) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("vrrp instance: no name")
	}
	if c.Interface == "" {
		return fmt.Errorf("vrrp instance %s: no interface", c.Name)
	}
	if err := c.Router.Validate(); err != nil {
		return fmt.Errorf("vrrp instance %s: %w", c.Name, err)
	}
	fam := FamilyOf(c.Router.PrimaryAddress)
	for _, p := range c.UnicastPeers {
		if !p.IsValid() || FamilyOf(p) != fam || p.IsMulticast() {
			return fmt.Errorf("vrrp instance %s: unicast peer %q: want a unicast %s address", c.Name, p, fam)
		}
	}
	if err := c.Announce.Validate(); err != nil {
		return fmt.Errorf("vrrp instance %s: %w", c.Name, err)
	}
	return nil
}

// AddressManager puts an instance's virtual addresses on its interface
// and takes them off. NewNetlinkAddresses (Linux) is the real one.
type AddressManager interface {
	// AddAddresses adds the addresses; ones already there are not an
	// error.
	AddAddresses(addrs []netip.Addr) error
	// RemoveAddresses removes the addresses; ones not there are not an
	// error.
	RemoveAddresses(addrs []netip.Addr) error
}

// StateChange is a transition of an instance, as observers see it.
type StateChange struct {
	Instance string
	VRID     uint8
	From, To State
	Reason   string
	At       time.Time
}

// Observer is told of every transition of an instance: the hook for
// notify scripts, sync groups, the IPVS sync daemon's role, metrics and
// the status API's timeline.
type Observer interface {
	// StateChanged is called on the instance's goroutine, after the
	// transition's actions were carried out. It must not block: hand
	// slow work to another goroutine.
	StateChanged(StateChange)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(StateChange)

// StateChanged implements Observer.
func (f ObserverFunc) StateChanged(c StateChange) { f(c) }

// InstanceDeps are what an Instance talks to.
type InstanceDeps struct {
	// Transport is the interface's transport of the router's family.
	Transport *Transport
	Addresses AddressManager
	Announcer Announcer
	Clock     Clock
	Logger    *slog.Logger
	Observers []Observer
}

// InstanceStats counts an instance's protocol events. Adverts the
// transport dropped are in its TransportStats.
type InstanceStats struct {
	AdvertsReceived      uint64
	AdvertsSent          uint64
	PriorityZeroReceived uint64
	PriorityZeroSent     uint64
	BecameMaster         uint64
	// Discarded by the checks of RFC 3768/5798 section 7.1 that need
	// the configuration.
	AuthErrors     uint64
	IntervalErrors uint64
	VersionErrors  uint64
	VRIDErrors     uint64
	OwnAdverts     uint64
	OtherDiscarded uint64
	// AddressMismatch: processed adverts listing other addresses.
	AddressMismatch uint64
	// Failures to carry out actions.
	SendErrors     uint64
	AddressErrors  uint64
	AnnounceRounds uint64
	AnnounceErrors uint64
}

type instanceCounters struct {
	advertsReceived, advertsSent, priorityZeroReceived, priorityZeroSent, becameMaster atomic.Uint64
	authErrors, intervalErrors, versionErrors, vridErrors, ownAdverts, otherDiscarded  atomic.Uint64
	addressMismatch, sendErrors, addressErrors, announceRounds, announceErrors         atomic.Uint64
}

// Instance runs one virtual router: a goroutine (Run) owns its Machine
// and feeds it received adverts, timers and requests, and carries out
// its actions through the transport, the address manager and the
// announcer.
type Instance struct {
	cfg       InstanceConfig
	m         *Machine
	transport *Transport
	addrs     AddressManager
	announcer Announcer
	clock     Clock
	baseLog   *slog.Logger
	log       *slog.Logger
	observers []Observer
	dsts      []netip.Addr

	events   chan Event
	reconf   chan reconfigureRequest
	shutdown chan struct{}
	done     chan struct{}
	started  atomic.Bool

	mu     sync.Mutex
	status Status
	stats  instanceCounters

	// Owned by the Run goroutine.
	timers   map[Timer]ClockTimer
	announce announceSchedule
	annTimer ClockTimer
}

// NewInstance returns an instance in the Initialize state; Run starts it.
func NewInstance(cfg InstanceConfig, deps InstanceDeps) (*Instance, error) {
	if cfg.Announce == (AnnounceConfig{}) {
		cfg.Announce = DefaultAnnounce
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Transport == nil || deps.Addresses == nil || deps.Announcer == nil || deps.Clock == nil {
		return nil, fmt.Errorf("vrrp instance %s: transport, addresses, announcer and clock are required", cfg.Name)
	}
	m, err := NewMachine(cfg.Router)
	if err != nil {
		return nil, fmt.Errorf("vrrp instance %s: %w", cfg.Name, err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.UnicastPeers = slices.Clone(cfg.UnicastPeers)
	dsts := cfg.UnicastPeers
	if len(dsts) == 0 {
		dsts = []netip.Addr{FamilyOf(cfg.Router.PrimaryAddress).Group()}
	}
	return &Instance{
		cfg:       cfg,
		m:         m,
		transport: deps.Transport,
		addrs:     deps.Addresses,
		announcer: deps.Announcer,
		clock:     deps.Clock,
		baseLog:   log,
		log:       log.With("instance", cfg.Name, "vrid", cfg.Router.VRID),
		observers: slices.Clone(deps.Observers),
		dsts:      dsts,
		events:    make(chan Event, 16),
		reconf:    make(chan reconfigureRequest),
		shutdown:  make(chan struct{}),
		done:      make(chan struct{}),
		status:    m.Status(),
		announce:  announceSchedule{cfg: cfg.Announce},
	}, nil
}

// Name returns the instance's name.
func (in *Instance) Name() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cfg.Name
}

// Config returns the configuration the instance runs with.
func (in *Instance) Config() InstanceConfig {
	in.mu.Lock()
	defer in.mu.Unlock()
	c := in.cfg
	c.UnicastPeers = slices.Clone(c.UnicastPeers)
	c.Router.Addresses = slices.Clone(c.Router.Addresses)
	return c
}

type reconfigureRequest struct {
	cfg      InstanceConfig
	priority uint8
	done     chan struct{}
}

// Reconfigure applies a reloaded configuration to the running instance
// without restarting it: the state machine keeps its state (see
// Reconfigured for what a master and a backup do), and the unicast
// peers, the announcement settings and the name take effect at once.
// priority is the effective priority to run with (0: the configured
// one). The interface, the VRID, the address family and whether the
// instance is unicast or multicast are its identity: a config that
// changes one of them is refused (stop this instance and start another).
// Reconfigure returns once the change is applied, or when ctx is done.
func (in *Instance) Reconfigure(ctx context.Context, cfg InstanceConfig, priority uint8) error {
	if cfg.Announce == (AnnounceConfig{}) {
		cfg.Announce = DefaultAnnounce
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	cur := in.Config()
	what := ""
	switch {
	case cfg.Interface != cur.Interface:
		what = fmt.Sprintf("interface %s -> %s", cur.Interface, cfg.Interface)
	case cfg.Router.VRID != cur.Router.VRID:
		what = fmt.Sprintf("vrid %d -> %d", cur.Router.VRID, cfg.Router.VRID)
	case FamilyOf(cfg.Router.PrimaryAddress) != FamilyOf(cur.Router.PrimaryAddress):
		what = fmt.Sprintf("family %s -> %s", FamilyOf(cur.Router.PrimaryAddress), FamilyOf(cfg.Router.PrimaryAddress))
	case (len(cfg.UnicastPeers) == 0) != (len(cur.UnicastPeers) == 0):
		what = "unicast <-> multicast"
	}
	if what != "" {
		return fmt.Errorf("vrrp instance %s: reconfiguring: %s needs a new instance", cur.Name, what)
	}
	cfg.UnicastPeers = slices.Clone(cfg.UnicastPeers)
	cfg.Router.Addresses = slices.Clone(cfg.Router.Addresses)
	req := reconfigureRequest{cfg: cfg, priority: priority, done: make(chan struct{})}
	select {
	case in.reconf <- req:
	case <-in.done:
		return fmt.Errorf("vrrp instance %s: reconfiguring: instance stopped", cur.Name)
	case <-ctx.Done():
		return fmt.Errorf("vrrp instance %s: reconfiguring: %w", cur.Name, ctx.Err())
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("vrrp instance %s: waiting for the reconfiguration: %w", cur.Name, ctx.Err())
	}
}

// reconfigure is Reconfigure on the Run goroutine.
func (in *Instance) reconfigure(req reconfigureRequest) {
	defer close(req.done)
	in.mu.Lock()
	in.cfg = req.cfg
	in.mu.Unlock()
	in.dsts = req.cfg.UnicastPeers
	if len(in.dsts) == 0 {
		in.dsts = []netip.Addr{FamilyOf(req.cfg.Router.PrimaryAddress).Group()}
	}
	in.announce.cfg = req.cfg.Announce
	in.log = in.baseLog.With("instance", req.cfg.Name, "vrid", req.cfg.Router.VRID)
	in.log.Info("vrrp instance reconfigured", "state", in.m.State(), "priority", req.cfg.Router.Priority,
		"advert_interval", req.cfg.Router.AdvertInterval, "vip", req.cfg.Router.Addresses)
	in.step(Reconfigured{Config: req.cfg.Router, Priority: req.priority})
}

// Status returns a snapshot of the state machine.
func (in *Instance) Status() Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.status
}

// Stats returns the counters.
func (in *Instance) Stats() InstanceStats {
	s := &in.stats
	return InstanceStats{
		AdvertsReceived: s.advertsReceived.Load(), AdvertsSent: s.advertsSent.Load(),
		PriorityZeroReceived: s.priorityZeroReceived.Load(), PriorityZeroSent: s.priorityZeroSent.Load(),
		BecameMaster: s.becameMaster.Load(), AuthErrors: s.authErrors.Load(),
		IntervalErrors: s.intervalErrors.Load(), VersionErrors: s.versionErrors.Load(),
		VRIDErrors: s.vridErrors.Load(), OwnAdverts: s.ownAdverts.Load(),
		OtherDiscarded: s.otherDiscarded.Load(), AddressMismatch: s.addressMismatch.Load(),
		SendErrors: s.sendErrors.Load(), AddressErrors: s.addressErrors.Load(),
		AnnounceRounds: s.announceRounds.Load(), AnnounceErrors: s.announceErrors.Load(),
	}
}

// Done is closed when Run has returned.
func (in *Instance) Done() <-chan struct{} { return in.done }

// Post hands the machine a tracking event: PriorityChanged,
// FaultDetected, FaultCleared (the hooks for track_interface,
// track_script and sync groups) or StepDown (a drill). It waits for room in the queue until ctx
// is done.
func (in *Instance) Post(ctx context.Context, ev Event) error {
	switch ev.(type) {
	case PriorityChanged, FaultDetected, FaultCleared, StepDown:
	default:
		return fmt.Errorf("vrrp instance %s: posting %T: only priority, fault and step-down events may be posted", in.Name(), ev)
	}
	select {
	case in.events <- ev:
		return nil
	case <-in.done:
		return fmt.Errorf("vrrp instance %s: posting %T: instance stopped", in.Name(), ev)
	case <-ctx.Done():
		return fmt.Errorf("vrrp instance %s: posting %T: %w", in.Name(), ev, ctx.Err())
	}
}

// Shutdown stops the instance cleanly: a master sends its priority-0
// advert (so a backup takes over after Skew_Time) and removes its
// addresses; then Run returns nil. Shutdown waits for that until ctx is
// done.
func (in *Instance) Shutdown(ctx context.Context) error {
	select {
	case in.shutdown <- struct{}{}:
	case <-in.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("vrrp instance %s: shutting down: %w", in.Name(), ctx.Err())
	}
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("vrrp instance %s: waiting for shutdown: %w", in.Name(), ctx.Err())
	}
}

// Run starts the protocol and runs it until Shutdown (then it returns
// nil) or until ctx is done. When ctx is done Run returns at once without
// a word on the network and leaving the addresses in place, as if the
// process had been killed: use Shutdown for a clean handover. Run may be
// called once.
func (in *Instance) Run(ctx context.Context) error {
	if !in.started.CompareAndSwap(false, true) {
		return fmt.Errorf("vrrp instance %s: already started", in.cfg.Name)
	}
	defer close(in.done)
	sub, err := in.transport.Subscribe(in.cfg.Router.VRID)
	if err != nil {
		return fmt.Errorf("vrrp instance %s: %w", in.cfg.Name, err)
	}
	defer sub.Close()
	in.timers = map[Timer]ClockTimer{AdverTimer: in.clock.NewTimer(), MasterDownTimer: in.clock.NewTimer()}
	in.annTimer = in.clock.NewTimer()
	defer func() {
		for _, t := range in.timers {
			t.Stop()
		}
		in.annTimer.Stop()
	}()

	in.log.Info("vrrp instance starting", "interface", in.cfg.Interface,
		"priority", in.cfg.Router.Priority, "version", in.cfg.Router.Version)
	in.step(Startup{})
	for {
		select {
		case <-ctx.Done():
			in.log.Info("vrrp instance abandoned", "state", in.m.State())
			return nil
		case <-in.shutdown:
			in.step(Shutdown{})
			in.log.Info("vrrp instance stopped")
			return nil
		case ev := <-sub.C():
			in.received(ev)
		case <-in.timers[AdverTimer].C():
			in.step(TimerExpired{Timer: AdverTimer})
		case <-in.timers[MasterDownTimer].C():
			in.step(TimerExpired{Timer: MasterDownTimer})
		case <-in.annTimer.C():
			in.announceDue()
		case ev := <-in.events:
			in.step(ev)
		case req := <-in.reconf:
			in.reconfigure(req)
		}
	}
}

func (in *Instance) received(ev AdvertReceived) {
	in.stats.advertsReceived.Add(1)
	if ev.Advert.Priority == 0 {
		in.stats.priorityZeroReceived.Add(1)
	}
	in.step(ev)
}

// publishStatus makes the machine's state the one Status returns.
func (in *Instance) publishStatus() {
	in.mu.Lock()
	in.status = in.m.Status()
	in.mu.Unlock()
}

// step feeds the machine one event and carries out its actions.
func (in *Instance) step(ev Event) {
	now := in.clock.Now()
	acts := in.m.Step(now, ev)
	var changes []StateChange
	for _, a := range acts {
		if _, adds := a.(AddAddresses); adds {
			// Whoever sees the VIP on the interface finds the status
			// saying master: published before the addresses are added,
			// and (below) only once they are gone on the way down.
			in.publishStatus()
		}
		if c, ok := in.do(now, a); ok {
			changes = append(changes, c)
		}
	}
	in.publishStatus()
	for _, c := range changes {
		for _, o := range in.observers {
			o.StateChanged(c)
		}
	}
}

// do carries out one action; a transition is returned for the observers.
func (in *Instance) do(now time.Time, a Action) (StateChange, bool) {
	switch a := a.(type) {
	case SendAdvert:
		if err := in.transport.Send(&a.Advert, in.cfg.Router.PrimaryAddress, in.dsts); err != nil {
			in.stats.sendErrors.Add(1)
			in.log.Warn("sending vrrp advert", "err", err)
			break
		}
		in.stats.advertsSent.Add(1)
		if a.Advert.Priority == 0 {
			in.stats.priorityZeroSent.Add(1)
		}
	case AddAddresses:
		if err := in.addrs.AddAddresses(a.Addresses); err != nil {
			in.stats.addressErrors.Add(1)
			in.log.Error("adding virtual addresses", "vip", a.Addresses, "err", err)
		}
	case RemoveAddresses:
		if !a.Partial {
			in.announce.stop()
			in.annTimer.Stop()
		}
		if err := in.addrs.RemoveAddresses(a.Addresses); err != nil {
			in.stats.addressErrors.Add(1)
			in.log.Error("removing virtual addresses", "vip", a.Addresses, "err", err)
		}
	case Announce:
		in.log.Debug("announcing virtual addresses", "vip", a.Addresses, "reason", a.Reason)
		in.announce.start(now)
		in.announceDue()
	case ArmTimer:
		in.timers[a.Timer].ResetAt(a.At)
	case StopTimer:
		in.timers[a.Timer].Stop()
	case StateChanged:
		if a.To == Master {
			in.stats.becameMaster.Add(1)
		}
		in.log.Info("vrrp state changed", "from", a.From, "state", a.To, "reason", a.Reason)
		return StateChange{Instance: in.cfg.Name, VRID: in.cfg.Router.VRID, From: a.From, To: a.To, Reason: a.Reason, At: now}, true
	case Discarded:
		in.countDiscarded(a.Err)
		in.log.Debug("discarded vrrp advert", "src", a.Src, "err", a.Err)
	case Misconfigured:
		in.stats.addressMismatch.Add(1)
		in.log.Warn("vrrp peers disagree", "src", a.Src, "err", a.Err)
	}
	return StateChange{}, false
}

func (in *Instance) countDiscarded(err error) {
	s := &in.stats
	switch {
	case errors.Is(err, ErrAuth):
		s.authErrors.Add(1)
	case errors.Is(err, ErrInterval):
		s.intervalErrors.Add(1)
	case errors.Is(err, ErrBadVersion):
		s.versionErrors.Add(1)
	case errors.Is(err, ErrVRID):
		s.vridErrors.Add(1)
	case errors.Is(err, ErrOwnAdvert):
		s.ownAdverts.Add(1)
	default:
		s.otherDiscarded.Add(1)
	}
}

// announceDue sends the announcement rounds that are due and re-arms the
// announce timer.
func (in *Instance) announceDue() {
	now := in.clock.Now()
	rounds, next := in.announce.due(now)
	for range rounds {
		in.stats.announceRounds.Add(1)
		if err := in.announcer.Announce(in.cfg.Router.Addresses); err != nil {
			in.stats.announceErrors.Add(1)
			in.log.Warn("announcing virtual addresses", "err", err)
		}
	}
	if next.IsZero() {
		in.annTimer.Stop()
		return
	}
	in.annTimer.ResetAt(next)
}
