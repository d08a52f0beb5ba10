package director

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/vrrp"
)

// VRRPOptions are how the daemon opens what its VRRP instances talk to.
// cmd/lvsd wires the Linux ones (raw sockets, netlink, AF_PACKET); tests
// pass the fakes of package vrrptest. A config with VRRP instances needs
// Listen, Addresses and Announcer.
type VRRPOptions struct {
	// Listen opens the VRRP packets of an interface and family; multicast
	// says whether to join the VRRP group (false: unicast peers only).
	// One connection serves every instance on the interface and family.
	Listen func(ifname string, family vrrp.Family, multicast bool) (vrrp.PacketConn, error)
	// Addresses returns the manager that puts virtual addresses on dev,
	// IPv4 ones with label (empty: none).
	Addresses func(dev, label string) (vrrp.AddressManager, error)
	// Announcer returns the announcer that sends gratuitous ARP and
	// unsolicited NA on dev.
	Announcer func(dev string) (vrrp.Announcer, error)
	// SourceAddress returns the address of ifname to advertise from, of
	// the family (the link-local address for IPv6), for instances
	// without source_address. Nil uses InterfaceSourceAddress.
	SourceAddress func(ifname string, family vrrp.Family) (netip.Addr, error)
	// Clock is the instances' clock; nil means vrrp.SystemClock.
	Clock vrrp.Clock
	// ShutdownTimeout bounds the clean stop (priority-0 adverts, removing
	// the addresses); default 5s.
	ShutdownTimeout time.Duration
	// WatchLinks reports the state of the named links until ctx ends:
	// each link's current state first (a missing link is down), then every
	// change. It returns when ctx ends, or an error if it cannot watch.
	// Nil leaves links untracked, which a config with track_interfaces
	// refuses.
	WatchLinks func(ctx context.Context, names []string, changed func(name string, up bool, reason string)) error
	// Scripts are the options of the track scripts' scheduler (tests set
	// a clock); the daemon sets Logger, Jitter and OnTransition.
	Scripts health.SchedulerOptions
}

// ErrNoVRRP is returned by Run when the config has VRRP instances but
// the daemon was given no way to run them (VRRPOptions unset, or a
// system without raw sockets).
var ErrNoVRRP = errors.New("vrrp is not available")

// vrrpRuntime is the daemon's running VRRP instances: it owns their
// goroutines and those of their transports. A reload changes it in place
// (reload): instances that still exist keep their state.
type vrrpRuntime struct {
	log     *slog.Logger
	host    vrrpHost
	opts    VRRPOptions
	timeout time.Duration
	runCtx  context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// instMu guards what reloads replace: the instances, their names,
	// the transports and the section running now.
	instMu     sync.Mutex
	instances  []*vrrpInstance
	byName     map[string]*vrrpInstance
	transports []*vrrpTransport
	cfg        config.VRRP

	// What is open, shared by the instances; owned by the daemon's
	// goroutine (start and reloads). Closed at stop.
	transportByKey map[transportKey]*vrrpTransport
	managers       map[[2]string]vrrp.AddressManager
	announcers     map[string]vrrp.Announcer
	closers        []io.Closer

	// postMu orders what reaches the instances: the tracking loop's
	// posts and a reload's changes never interleave.
	postMu sync.Mutex

	// Tracking: the state is owned by the track goroutine and reloads
	// (under postMu); trackMu lets the status API read it.
	updates     chan trackUpdate
	trackMu     sync.Mutex
	tracking    *trackState
	scripts     *health.Scheduler
	watchCancel context.CancelFunc
	watched     []string

	// notify runs the notify commands; groupStates are the sync groups'
	// last notified states.
	notify      notifier
	groupMu     sync.Mutex
	groupStates map[string]vrrp.State

	// clock times the drills' step-downs.
	clock vrrp.Clock
}

// vrrpHost is what the VRRP runtime tells the daemon; it holds no
// *Daemon.
type vrrpHost struct {
	// event adds to the daemon's timeline.
	event func(kind, service, rs, msg string)
	// changed posts an instance's transition to the daemon's loop (the
	// connection sync daemon may follow it).
	changed func(instance string)
}

type vrrpTransport struct {
	ifname string
	family vrrp.Family
	*vrrp.Transport
}

type vrrpInstance struct {
	inst  *vrrp.Instance
	addrs *vipAddresses
	ann   *vipAnnouncer

	mu          sync.Mutex
	cfg         config.VRRPInstance // a reload may replace it
	since       time.Time
	reason      string
	masterSince time.Time
}

// config returns the instance's section as last loaded.
func (vi *vrrpInstance) config() config.VRRPInstance {
	vi.mu.Lock()
	defer vi.mu.Unlock()
	return vi.cfg
}

type transportKey struct {
	ifname    string
	family    vrrp.Family
	multicast bool
}

// startVRRP opens and starts the config's VRRP instances; nil when there
// are none. The instances run until stop, whatever happens to ctx: a
// clean stop needs them to send their priority-0 adverts.
func (d *Daemon) startVRRP(ctx context.Context, cfg *config.Config) (*vrrpRuntime, error) {
	if len(cfg.VRRP.Instances) == 0 {
		return nil, nil
	}
	o := d.opts.VRRP
	if o.Listen == nil || o.Addresses == nil || o.Announcer == nil {
		return nil, fmt.Errorf("starting %d vrrp instances: %w", len(cfg.VRRP.Instances), ErrNoVRRP)
	}
	if o.SourceAddress == nil {
		o.SourceAddress = InterfaceSourceAddress
	}
	if o.Clock == nil {
		o.Clock = vrrp.SystemClock{}
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 5 * time.Second
	}
	r := &vrrpRuntime{
		log: d.log, opts: o, timeout: o.ShutdownTimeout,
		host:           vrrpHost{event: d.event, changed: d.inbox.postVRRP},
		byName:         map[string]*vrrpInstance{},
		transportByKey: map[transportKey]*vrrpTransport{},
		managers:       map[[2]string]vrrp.AddressManager{},
		announcers:     map[string]vrrp.Announcer{},
		updates:        make(chan trackUpdate, 64),
		tracking:       newTrackState(config.VRRP{}),
		notify:         notifier{run: d.opts.RunCommand, log: d.log, event: d.event},
		groupStates:    map[string]vrrp.State{},
	}
	if err := r.canTrack(cfg.VRRP); err != nil {
		return nil, err
	}
	plan, err := r.prepare(cfg.VRRP)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.runCtx, r.cancel, r.clock = runCtx, cancel, o.Clock
	r.wg.Go(func() { r.track(runCtx) })
	if err := r.apply(plan); err != nil {
		cancel()
		r.wg.Wait()
		r.closeAll()
		return nil, err
	}
	d.opts.Metrics.registerVRRP(r.metricsSnapshot)
	d.log.Info("vrrp started", "instances", len(cfg.VRRP.Instances))
	return r, nil
}

// watchLinks watches links, unless it already does exactly those: a new
// watcher reports each link's state first.
func (r *vrrpRuntime) watchLinks(links []string) {
	if r.opts.WatchLinks == nil || r.watchCancel != nil && slices.Equal(links, r.watched) {
		return
	}
	if r.watchCancel != nil {
		r.watchCancel() // the old watcher ends on its own; stop waits for it
	}
	ctx, cancel := context.WithCancel(r.runCtx)
	r.watchCancel, r.watched = cancel, links
	watch := r.opts.WatchLinks
	r.wg.Go(func() {
		err := watch(ctx, links, func(name string, up bool, reason string) {
			r.update(ctx, trackUpdate{kind: "interface", name: name, trackInput: trackInput{known: true, up: up, reason: reason}})
		})
		if err != nil && ctx.Err() == nil {
			r.log.Error("watching tracked links stopped", "err", err)
			r.host.event("vrrp", "", "", fmt.Sprintf("watching tracked links stopped: %v", err))
		}
	})
}

// list returns the running instances.
func (r *vrrpRuntime) list() []*vrrpInstance {
	r.instMu.Lock()
	defer r.instMu.Unlock()
	return r.instances
}

// named returns the running instance of that name, or nil.
func (r *vrrpRuntime) named(name string) *vrrpInstance {
	r.instMu.Lock()
	defer r.instMu.Unlock()
	return r.byName[name]
}

// section returns the VRRP section running now.
func (r *vrrpRuntime) section() config.VRRP {
	r.instMu.Lock()
	defer r.instMu.Unlock()
	return r.cfg
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// record is every instance's observer: its status and the timeline.
func (r *vrrpRuntime) record(vi *vrrpInstance, ch vrrp.StateChange) {
	vi.mu.Lock()
	vi.since, vi.reason = ch.At, ch.Reason
	switch {
	case ch.To == vrrp.Master:
		vi.masterSince = ch.At
	case ch.From == vrrp.Master:
		vi.masterSince = time.Time{}
	}
	iface := vi.cfg.Interface
	vi.mu.Unlock()
	msg := fmt.Sprintf("%s (vrid %d on %s): %s -> %s", ch.Instance, ch.VRID, iface, ch.From, ch.To)
	if ch.Reason != "" {
		msg += ": " + ch.Reason
	}
	r.host.event("vrrp", "", "", msg)
}

// stop shuts the instances down cleanly (a master sends priority 0 and
// removes its addresses), then stops the transports and waits for every
// goroutine.
func (r *vrrpRuntime) stop() {
	if r == nil {
		return
	}
	r.postMu.Lock()
	instances := r.list()
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, in := range instances {
		wg.Go(func() {
			if err := in.inst.Shutdown(ctx); err != nil {
				r.log.Error("stopping vrrp instance", "instance", in.inst.Name(), "err", err)
			}
		})
	}
	wg.Wait()
	r.postMu.Unlock()
	r.cancel()
	r.wg.Wait()
	r.closeAll()
	r.stopped()
	r.notify.wait()
	r.log.Info("vrrp stopped")
}

func (r *vrrpRuntime) closeAll() {
	for _, c := range slices.Backward(r.closers) {
		c.Close()
	}
	r.closers = nil
}

func (r *vrrpRuntime) status() []VRRPStatus {
	if r == nil {
		return nil
	}
	instances := r.list()
	section := r.section()
	out := make([]VRRPStatus, 0, len(instances))
	for _, in := range instances {
		c := in.config()
		s := in.inst.Status()
		stats := in.inst.Stats()
		vs := VRRPStatus{
			Name: c.Name, VRID: uint8(c.VirtualRouterID), Interface: c.Interface,
			Version: c.Version, State: s.State.String(),
			Priority: s.Priority, ConfiguredPriority: r.configuredPriority(c.Name),
			MasterPriority:  s.MasterPriority,
			AdvertsSent:     stats.AdvertsSent,
			AdvertsReceived: stats.AdvertsReceived,
			BecameMaster:    stats.BecameMaster,
			VIPs:            []string{},
		}
		if s.Master.IsValid() {
			vs.Master = s.Master.String()
		}
		in.mu.Lock()
		vs.Since, vs.Reason, vs.MasterSince = in.since, in.reason, in.masterSince
		in.mu.Unlock()
		r.trackMu.Lock()
		vs.Fault, vs.Tracking = r.tracking.status(c.Name)
		r.trackMu.Unlock()
		if s.State != vrrp.Fault {
			vs.Fault = ""
		}
		if g := section.SyncGroupOf(c.Name); g != nil {
			vs.SyncGroup = g.Name
		}
		vs.SteppedDownUntil, vs.NoPreempt = r.steppedDownUntil(c.Name), !c.PreemptMode()
		for _, a := range in.inst.Config().Router.Addresses {
			vs.VIPs = append(vs.VIPs, a.String())
		}
		out = append(out, vs)
	}
	return out
}

// vrrpStatus is the VRRP part of Status.
func (d *Daemon) vrrpStatus() []VRRPStatus {
	return d.vrrp.Load().status()
}
