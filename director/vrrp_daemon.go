package director

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
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

// canTrack refuses tracked links where links cannot be watched.
func (r *vrrpRuntime) canTrack(v config.VRRP) error {
	if r.opts.WatchLinks == nil && slices.ContainsFunc(v.Instances, func(in config.VRRPInstance) bool { return len(in.TrackInterfaces) > 0 }) {
		return fmt.Errorf("track_interfaces: %w: links cannot be watched here", ErrNoVRRP)
	}
	return nil
}

// vrrpPlan is what a start or a reload does to the instances: the
// instances that go on with a new config, those to start and those to
// stop. Everything it needed is open; dropping it closes what it opened.
type vrrpPlan struct {
	cfg config.VRRP
	// order is every instance of cfg, kept or new, in its order.
	order []*vrrpInstance
	keep  []keptInstance
	start []*vrrpInstance
	stop  []*vrrpInstance
	// What prepare opened and added to the runtime's maps.
	transports    []*vrrpTransport
	transportKeys []transportKey
	managers      [][2]string
	announcers    []string
	closers       []io.Closer
}

// keptInstance is a running instance and what a reload makes of it.
type keptInstance struct {
	vi    *vrrpInstance
	cfg   config.VRRPInstance
	ic    vrrp.InstanceConfig
	addrs map[netip.Addr]vrrp.AddressManager
	ann   map[netip.Addr]vrrp.Announcer
}

// prepare matches next's instances with the running ones as keepalived
// does (vrrp_exist: the same interface, VRID, family, unicast or
// multicast, and for unicast the same source address; the name may
// change), and opens what new ones need. On an error nothing has
// changed.
func (r *vrrpRuntime) prepare(next config.VRRP) (*vrrpPlan, error) {
	p := &vrrpPlan{cfg: next}
	r.instMu.Lock()
	running := slices.Clone(r.instances)
	r.instMu.Unlock()
	matched := map[*vrrpInstance]bool{}
	for _, c := range next.Instances {
		ic, err := instanceConfig(c, r.opts.SourceAddress)
		if err == nil {
			err = r.openVIPs(p, c)
		}
		if err != nil {
			r.drop(p)
			return nil, err
		}
		addrs, ann := r.vipEnds(c)
		if vi := matchInstance(running, matched, ic); vi != nil {
			matched[vi] = true
			p.keep = append(p.keep, keptInstance{vi: vi, cfg: c, ic: ic, addrs: addrs, ann: ann})
			p.order = append(p.order, vi)
			continue
		}
		vi, err := r.newInstance(p, c, ic, addrs, ann)
		if err != nil {
			r.drop(p)
			return nil, err
		}
		p.start = append(p.start, vi)
		p.order = append(p.order, vi)
	}
	for _, vi := range running {
		if !matched[vi] {
			p.stop = append(p.stop, vi)
		}
	}
	return p, nil
}

// matchInstance returns the running instance ic is a new config of.
func matchInstance(running []*vrrpInstance, matched map[*vrrpInstance]bool, ic vrrp.InstanceConfig) *vrrpInstance {
	for _, vi := range running {
		rc := vi.inst.Config()
		switch {
		case matched[vi], rc.Interface != ic.Interface, rc.Router.VRID != ic.Router.VRID,
			vrrp.FamilyOf(rc.Router.PrimaryAddress) != vrrp.FamilyOf(ic.Router.PrimaryAddress),
			(len(rc.UnicastPeers) == 0) != (len(ic.UnicastPeers) == 0),
			len(ic.UnicastPeers) > 0 && rc.Router.PrimaryAddress != ic.Router.PrimaryAddress:
			continue
		}
		return vi
	}
	return nil
}

// openVIPs opens the address managers and announcers c's addresses need
// that are not open yet.
func (r *vrrpRuntime) openVIPs(p *vrrpPlan, c config.VRRPInstance) error {
	for _, va := range c.VirtualAddresses {
		dev := cmpOr(va.Dev, c.Interface)
		mk := [2]string{dev, va.Label}
		if r.managers[mk] == nil {
			m, err := r.opts.Addresses(dev, va.Label)
			if err != nil {
				return fmt.Errorf("vrrp instance %s: addresses on %s: %w", c.Name, dev, err)
			}
			p.keepOpen(m)
			r.managers[mk] = m
			p.managers = append(p.managers, mk)
		}
		if r.announcers[dev] == nil {
			a, err := r.opts.Announcer(dev)
			if err != nil {
				return fmt.Errorf("vrrp instance %s: announcing on %s: %w", c.Name, dev, err)
			}
			p.keepOpen(a)
			r.announcers[dev] = a
			p.announcers = append(p.announcers, dev)
		}
	}
	return nil
}

func (p *vrrpPlan) keepOpen(v any) {
	if c, ok := v.(io.Closer); ok {
		p.closers = append(p.closers, c)
	}
}

// vipEnds maps c's addresses to their managers and announcers (open).
func (r *vrrpRuntime) vipEnds(c config.VRRPInstance) (map[netip.Addr]vrrp.AddressManager, map[netip.Addr]vrrp.Announcer) {
	addrs, ann := map[netip.Addr]vrrp.AddressManager{}, map[netip.Addr]vrrp.Announcer{}
	for _, va := range c.VirtualAddresses {
		dev := cmpOr(va.Dev, c.Interface)
		addrs[va.Address] = r.managers[[2]string{dev, va.Label}]
		ann[va.Address] = r.announcers[dev]
	}
	return addrs, ann
}

// newInstance builds an instance (not running) on its transport, opened
// if need be.
func (r *vrrpRuntime) newInstance(p *vrrpPlan, c config.VRRPInstance, ic vrrp.InstanceConfig,
	addrs map[netip.Addr]vrrp.AddressManager, ann map[netip.Addr]vrrp.Announcer) (*vrrpInstance, error) {
	fam := vrrp.FamilyOf(ic.Router.PrimaryAddress)
	key := transportKey{c.Interface, fam, len(c.UnicastPeers) == 0}
	t := r.transportByKey[key]
	if t == nil {
		conn, err := r.opts.Listen(c.Interface, fam, key.multicast)
		if err != nil {
			return nil, fmt.Errorf("vrrp instance %s: listening on %s: %w", c.Name, c.Interface, err)
		}
		p.closers = append(p.closers, conn)
		t = &vrrpTransport{c.Interface, fam, vrrp.NewTransport(conn, vrrp.TransportOptions{Logger: r.log.With("interface", c.Interface)})}
		r.transportByKey[key] = t
		p.transports = append(p.transports, t)
		p.transportKeys = append(p.transportKeys, key)
	}
	vi := &vrrpInstance{cfg: c, addrs: &vipAddresses{byAddr: addrs}, ann: &vipAnnouncer{byAddr: ann}}
	var err error
	vi.inst, err = vrrp.NewInstance(ic, vrrp.InstanceDeps{
		Transport: t.Transport,
		Addresses: vi.addrs,
		Announcer: vi.ann,
		Clock:     r.opts.Clock,
		Logger:    r.log,
		Observers: []vrrp.Observer{vrrp.ObserverFunc(func(ch vrrp.StateChange) {
			r.record(vi, ch)
			r.changed(vi, ch)
		})},
	})
	return vi, err
}

// drop undoes prepare: closes what it opened and forgets it.
func (r *vrrpRuntime) drop(p *vrrpPlan) {
	for _, k := range p.transportKeys {
		delete(r.transportByKey, k)
	}
	for _, k := range p.managers {
		delete(r.managers, k)
	}
	for _, k := range p.announcers {
		delete(r.announcers, k)
	}
	for _, c := range slices.Backward(p.closers) {
		c.Close()
	}
}

// apply carries out a plan: removed instances stop (a master sends
// priority 0 and drops its addresses), kept ones take their new config
// in place, new ones start; tracking follows the new section.
func (r *vrrpRuntime) apply(p *vrrpPlan) error {
	r.postMu.Lock()
	defer r.postMu.Unlock()
	r.closers = append(r.closers, p.closers...)
	r.stopInstances(p.stop)

	// Tracking: the links' states carry over, and the scripts' whose
	// command did not change (keepalived's clear_diff_script); a kept
	// instance carries what was last posted to it.
	r.trackMu.Lock()
	old := r.tracking
	nt := newTrackState(p.cfg)
	r.instMu.Lock()
	oldCfg := r.cfg
	r.instMu.Unlock()
	sameScript := sameScripts(oldCfg, p.cfg)
	for k, in := range old.inputs {
		if k[0] == "interface" || sameScript[k[1]] {
			nt.inputs[k] = in
		}
	}
	for _, k := range p.keep {
		if oti, nti := old.instance(k.vi.config().Name), nt.instance(k.cfg.Name); oti != nil && nti != nil {
			nti.priority, nti.fault, nti.steppedDown = oti.priority, oti.fault, oti.steppedDown
		}
	}
	// Drills go on through a reload, for the instances still there.
	for name, sd := range old.stepDowns {
		if nt.instance(name) != nil {
			nt.stepDowns[name] = sd
		}
	}
	posts := nt.decide()
	r.tracking = nt
	r.trackMu.Unlock()

	byName := map[string]*vrrpInstance{}
	for i, vi := range p.order {
		byName[p.cfg.Instances[i].Name] = vi
	}
	r.instMu.Lock()
	r.instances, r.byName, r.cfg = p.order, byName, p.cfg
	r.transports = append(r.transports, p.transports...)
	r.instMu.Unlock()

	for _, t := range p.transports {
		r.wg.Go(func() {
			if err := t.Run(r.runCtx); err != nil {
				r.log.Error("vrrp transport stopped", "interface", t.ifname, "family", t.family, "err", err)
				r.host.event("vrrp", "", "", fmt.Sprintf("transport on %s (%s) stopped: %v", t.ifname, t.family, err))
			}
		})
	}
	var errs []error
	for _, k := range p.keep {
		if err := r.reconfigure(k, nt, &posts); err != nil {
			errs = append(errs, err)
		}
	}
	for _, vi := range p.start {
		r.wg.Go(func() {
			if err := vi.inst.Run(r.runCtx); err != nil {
				r.log.Error("vrrp instance stopped", "instance", vi.inst.Name(), "err", err)
				r.host.event("vrrp", "", "", fmt.Sprintf("%s stopped: %v", vi.inst.Name(), err))
			}
		})
	}
	r.post(r.runCtx, posts)
	if err := r.trackScripts(p.cfg); err != nil {
		errs = append(errs, err)
	}
	r.watchLinks(nt.links())
	return errors.Join(errs...)
}

// reconfigure moves a kept instance to its new config: the addresses
// it may add are reachable first, those it drops go after. Its priority
// event, if tracking has one, rides along.
func (r *vrrpRuntime) reconfigure(k keptInstance, nt *trackState, posts *[]trackPost) error {
	k.vi.mu.Lock()
	before := k.vi.cfg
	k.vi.cfg = k.cfg
	k.vi.mu.Unlock()
	k.vi.addrs.merge(k.addrs)
	k.vi.ann.merge(k.ann)
	defer k.vi.addrs.set(k.addrs)
	defer k.vi.ann.set(k.ann)
	prio := uint8(0)
	if ti := nt.instance(k.cfg.Name); ti != nil {
		prio = ti.priority
	}
	ic := k.ic
	if ic.Announce == (vrrp.AnnounceConfig{}) {
		ic.Announce = vrrp.DefaultAnnounce
	}
	if reflect.DeepEqual(ic, k.vi.inst.Config()) {
		return nil // unchanged: tracking's priority event, if any, is posted as usual
	}
	*posts = slices.DeleteFunc(*posts, func(p trackPost) bool {
		_, isPrio := p.event.(vrrp.PriorityChanged)
		return isPrio && p.instance == k.cfg.Name
	})
	ctx, cancel := context.WithTimeout(r.runCtx, r.timeout)
	defer cancel()
	if err := k.vi.inst.Reconfigure(ctx, ic, prio); err != nil {
		return err
	}
	st := k.vi.inst.Status()
	changes := reloadChanges(before, k.cfg)
	r.log.Info("vrrp instance reloaded in place", "instance", k.cfg.Name, "state", st.State, "priority", st.Priority, "changes", changes)
	r.host.event("config", "", "", fmt.Sprintf("%s: reloaded in place, still %s: %s", k.cfg.Name, st.State, changes))
	return nil
}

// reloadChanges says what a reload changed in an instance.
func reloadChanges(a, b config.VRRPInstance) string {
	var out []string
	if a.Name != b.Name {
		out = append(out, fmt.Sprintf("renamed from %s", a.Name))
	}
	if a.Priority != b.Priority {
		out = append(out, fmt.Sprintf("configured priority %d -> %d", a.Priority, b.Priority))
	}
	if a.AdvertInterval != b.AdvertInterval {
		out = append(out, fmt.Sprintf("advert interval %s -> %s", a.AdvertInterval, b.AdvertInterval))
	}
	has := func(list []config.VirtualAddress, addr netip.Addr) bool {
		return slices.ContainsFunc(list, func(va config.VirtualAddress) bool { return va.Address == addr })
	}
	for _, va := range b.VirtualAddresses {
		if !has(a.VirtualAddresses, va.Address) {
			out = append(out, "+"+va.Address.String())
		}
	}
	for _, va := range a.VirtualAddresses {
		if !has(b.VirtualAddresses, va.Address) {
			out = append(out, "-"+va.Address.String())
		}
	}
	if len(out) == 0 {
		return "settings changed"
	}
	return strings.Join(out, ", ")
}

// stopInstances shuts instances down cleanly, at once, and runs their
// stop commands.
func (r *vrrpRuntime) stopInstances(vis []*vrrpInstance) {
	if len(vis) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, vi := range vis {
		wg.Go(func() {
			if err := vi.inst.Shutdown(ctx); err != nil {
				r.log.Error("stopping vrrp instance", "instance", vi.inst.Name(), "err", err)
			}
		})
	}
	wg.Wait()
	for _, vi := range vis {
		c := vi.config()
		r.notify.fire(c.Notify, "INSTANCE", c.Name, vrrp.Initialize, 0)
	}
}

// sameScripts names the scripts whose check is the same in both
// sections: their last result still holds.
func sameScripts(a, b config.VRRP) map[string]bool {
	old := map[string]health.Target{}
	for _, t := range scriptTargets(a) {
		old[t.ID] = t
	}
	out := map[string]bool{}
	for _, t := range scriptTargets(b) {
		if o, ok := old[t.ID]; ok && reflect.DeepEqual(o.Check, t.Check) {
			out[strings.TrimPrefix(t.ID, scriptTargetPrefix)] = true
		}
	}
	return out
}

// trackScripts makes the scripts the section tracks the scheduler's
// targets, starting the scheduler the first time there are any.
func (r *vrrpRuntime) trackScripts(v config.VRRP) error {
	targets := scriptTargets(v)
	if r.scripts == nil {
		if len(targets) == 0 {
			return nil
		}
		so := r.opts.Scripts
		so.Logger = r.log.With("vrrp", "track_script")
		so.Jitter = -1 // first runs at once: the result counts before Master_Down_Interval
		ctx := r.runCtx
		so.OnTransition = func(tr health.Transition) {
			if u, ok := scriptChanged(tr); ok {
				r.update(ctx, u)
			}
		}
		r.scripts = health.NewScheduler(so)
		if err := r.scripts.Update(targets); err != nil {
			r.scripts = nil
			return fmt.Errorf("vrrp scripts: %w", err)
		}
		sc := r.scripts
		r.wg.Go(func() { sc.Run(ctx) })
		return nil
	}
	if err := r.scripts.Update(targets); err != nil {
		return fmt.Errorf("vrrp scripts: %w", err)
	}
	return nil
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

// instanceConfig turns a config instance into the vrrp package's.
func instanceConfig(c config.VRRPInstance, source func(string, vrrp.Family) (netip.Addr, error)) (vrrp.InstanceConfig, error) {
	fam := vrrp.IPv4
	if c.IsIPv6() {
		fam = vrrp.IPv6
	}
	src := c.SourceAddress
	if !src.IsValid() {
		var err error
		if src, err = source(c.Interface, fam); err != nil {
			return vrrp.InstanceConfig{}, fmt.Errorf("vrrp instance %s: finding the source address on %s: %w", c.Name, c.Interface, err)
		}
	}
	ic := vrrp.InstanceConfig{
		Name:      c.Name,
		Interface: c.Interface,
		Router: vrrp.Config{
			VRID:           uint8(c.VirtualRouterID),
			Version:        vrrp.Version(c.Version),
			Priority:       uint8(c.Priority),
			AdvertInterval: c.AdvertInterval,
			PrimaryAddress: src,
			NoPreempt:      !c.PreemptMode(),
			PreemptDelay:   c.PreemptDelay,
			AcceptMode:     true, // the VIPs carry IPVS services
			Password:       c.Password(),
		},
		UnicastPeers: slices.Clone(c.UnicastPeers),
		Announce: vrrp.AnnounceConfig{
			Repeat: c.GARP.Repeat, Interval: c.GARP.Interval, Delay: c.GARP.Delay,
			Refresh: c.GARP.Refresh, RefreshRepeat: c.GARP.RefreshRepeat,
		},
	}
	for _, va := range c.VirtualAddresses {
		ic.Router.Addresses = append(ic.Router.Addresses, va.Address)
	}
	return ic, ic.Validate()
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
	d.mu.Lock()
	r := d.vrrp
	d.mu.Unlock()
	return r.status()
}

// vrrpPrepareReload readies the VRRP part of a reload and returns what
// applies it once the new config is in place. Like keepalived, a reload
// keeps the state of every instance that still exists (the same
// interface, VRID, family and unicast or multicast): it takes its new
// priority, interval, addresses, peers, tracking and notify commands in
// place; new instances start; removed ones stop as at shutdown (a master
// sends priority 0). An error (an interface that cannot be opened, a
// source address that cannot be found) rejects the reload before
// anything changed.
func (d *Daemon) vrrpPrepareReload(cfg *config.Config) (func(), error) {
	d.mu.Lock()
	r := d.vrrp
	d.mu.Unlock()
	if r == nil {
		// VRRP starts with this reload, as it would at start.
		vr, err := d.startVRRP(context.Background(), cfg)
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		d.vrrp = vr
		d.mu.Unlock()
		return func() {}, nil
	}
	if reflect.DeepEqual(r.section(), cfg.VRRP) {
		return func() {}, nil
	}
	if err := r.canTrack(cfg.VRRP); err != nil {
		return nil, err
	}
	plan, err := r.prepare(cfg.VRRP)
	if err != nil {
		return nil, err
	}
	return func() {
		if len(plan.stop) > 0 || len(plan.start) > 0 {
			d.event("config", "", "", fmt.Sprintf("vrrp: %d instances kept, %d started, %d stopped", len(plan.keep), len(plan.start), len(plan.stop)))
		}
		if err := r.apply(plan); err != nil {
			d.log.Error("vrrp reload", "err", err)
			d.event("config", "", "", "vrrp reload: "+err.Error())
		}
	}, nil
}

// vipAddresses sends each address to the manager of its device and
// label. A reload changes the map while the instance runs.
type vipAddresses struct {
	mu     sync.Mutex
	byAddr map[netip.Addr]vrrp.AddressManager
}

// merge adds m's addresses (a reload's, before the instance takes them).
func (v *vipAddresses) merge(m map[netip.Addr]vrrp.AddressManager) {
	v.mu.Lock()
	defer v.mu.Unlock()
	maps.Copy(v.byAddr, m)
}

// set makes m the addresses (a reload's, once the instance dropped the
// others).
func (v *vipAddresses) set(m map[netip.Addr]vrrp.AddressManager) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.byAddr = maps.Clone(m)
}

func (v *vipAddresses) group(addrs []netip.Addr) ([]vrrp.AddressManager, map[vrrp.AddressManager][]netip.Addr) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var order []vrrp.AddressManager
	groups := map[vrrp.AddressManager][]netip.Addr{}
	for _, a := range addrs {
		m := v.byAddr[a]
		if m == nil {
			continue
		}
		if _, ok := groups[m]; !ok {
			order = append(order, m)
		}
		groups[m] = append(groups[m], a)
	}
	return order, groups
}

// AddAddresses implements vrrp.AddressManager.
func (v *vipAddresses) AddAddresses(addrs []netip.Addr) error {
	order, groups := v.group(addrs)
	var errs []error
	for _, m := range order {
		errs = append(errs, m.AddAddresses(groups[m]))
	}
	return errors.Join(errs...)
}

// RemoveAddresses implements vrrp.AddressManager.
func (v *vipAddresses) RemoveAddresses(addrs []netip.Addr) error {
	order, groups := v.group(addrs)
	var errs []error
	for _, m := range order {
		errs = append(errs, m.RemoveAddresses(groups[m]))
	}
	return errors.Join(errs...)
}

// vipAnnouncer announces each address on its device.
type vipAnnouncer struct {
	mu     sync.Mutex
	byAddr map[netip.Addr]vrrp.Announcer
}

func (v *vipAnnouncer) merge(m map[netip.Addr]vrrp.Announcer) {
	v.mu.Lock()
	defer v.mu.Unlock()
	maps.Copy(v.byAddr, m)
}

func (v *vipAnnouncer) set(m map[netip.Addr]vrrp.Announcer) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.byAddr = maps.Clone(m)
}

// Announce implements vrrp.Announcer.
func (v *vipAnnouncer) Announce(addrs []netip.Addr) error {
	var order []vrrp.Announcer
	groups := map[vrrp.Announcer][]netip.Addr{}
	v.mu.Lock()
	for _, a := range addrs {
		an := v.byAddr[a]
		if an == nil {
			continue
		}
		if _, ok := groups[an]; !ok {
			order = append(order, an)
		}
		groups[an] = append(groups[an], a)
	}
	v.mu.Unlock()
	var errs []error
	for _, an := range order {
		errs = append(errs, an.Announce(groups[an]))
	}
	return errors.Join(errs...)
}

// InterfaceSourceAddress returns the address of ifname that VRRP adverts
// of the family go out from: for IPv6 its link-local address; for IPv4
// its first address with a prefix shorter than /32 (virtual addresses are
// /32 host addresses), else its first IPv4 address.
func InterfaceSourceAddress(ifname string, family vrrp.Family) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	var fallback netip.Addr
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, bits := ipn.Mask.Size()
		switch {
		case family == vrrp.IPv6 && ip.Is6() && ip.IsLinkLocalUnicast():
			return ip, nil
		case family == vrrp.IPv4 && ip.Is4() && ones < bits:
			return ip, nil
		case family == vrrp.IPv4 && ip.Is4() && !fallback.IsValid():
			fallback = ip
		}
	}
	if fallback.IsValid() {
		return fallback, nil
	}
	what := "IPv4 address"
	if family == vrrp.IPv6 {
		what = "IPv6 link-local address"
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no %s: write source_address", ifname, what)
}
