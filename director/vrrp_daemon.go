package director

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
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
// goroutines and those of their transports.
type vrrpRuntime struct {
	log        *slog.Logger
	instances  []*vrrpInstance
	byName     map[string]*vrrpInstance
	transports []*vrrpTransport
	closers    []io.Closer
	timeout    time.Duration
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	// cfg is the section the instances started with; applied is it with
	// the priorities reloads have changed since.
	cfg       config.VRRP
	appliedMu sync.Mutex
	applied   config.VRRP

	// Tracking: the state is owned by the track goroutine; trackMu lets
	// the status API read it.
	updates  chan trackUpdate
	trackMu  sync.Mutex
	tracking *trackState
	scripts  *health.Scheduler

	// notify runs the notify commands; groupStates are the sync groups'
	// last notified states.
	notify      notifier
	groupMu     sync.Mutex
	groupStates map[string]vrrp.State

	// syncKick tells the sync daemon's follower that the instance it
	// follows (ipvs.sync_daemon.vrrp_instance) changed state.
	syncKick chan struct{}

	// clock times the drills' step-downs; runCtx ends with the runtime.
	clock  vrrp.Clock
	runCtx context.Context
}

type vrrpTransport struct {
	ifname string
	family vrrp.Family
	*vrrp.Transport
}

type vrrpInstance struct {
	cfg  config.VRRPInstance
	inst *vrrp.Instance

	mu          sync.Mutex
	since       time.Time
	reason      string
	masterSince time.Time
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
		log: d.log, timeout: o.ShutdownTimeout, cfg: cfg.VRRP, applied: cfg.VRRP,
		byName:      map[string]*vrrpInstance{},
		updates:     make(chan trackUpdate, 64),
		tracking:    newTrackState(cfg.VRRP),
		notify:      notifier{run: d.opts.RunCommand, log: d.log, event: d.event},
		groupStates: map[string]vrrp.State{},
		syncKick:    make(chan struct{}, 1),
	}
	if o.WatchLinks == nil && slices.ContainsFunc(cfg.VRRP.Instances, func(in config.VRRPInstance) bool { return len(in.TrackInterfaces) > 0 }) {
		return nil, fmt.Errorf("track_interfaces: %w: links cannot be watched here", ErrNoVRRP)
	}
	if err := r.open(d, o, cfg.VRRP.Instances); err != nil {
		r.closeAll()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel, r.clock, r.runCtx = cancel, o.Clock, runCtx
	r.wg.Go(func() { r.track(runCtx) })
	if o.WatchLinks != nil {
		links := r.tracking.links()
		r.wg.Go(func() {
			err := o.WatchLinks(runCtx, links, func(name string, up bool, reason string) {
				r.update(runCtx, trackUpdate{kind: "interface", name: name, trackInput: trackInput{known: true, up: up, reason: reason}})
			})
			if err != nil && runCtx.Err() == nil {
				d.log.Error("watching tracked links stopped", "err", err)
				d.event("vrrp", "", "", fmt.Sprintf("watching tracked links stopped: %v", err))
			}
		})
	}
	if targets := scriptTargets(cfg.VRRP); len(targets) > 0 {
		so := o.Scripts
		so.Logger = d.log.With("vrrp", "track_script")
		so.Jitter = -1 // first runs at once: the result counts before Master_Down_Interval
		so.OnTransition = func(tr health.Transition) {
			if u, ok := scriptChanged(tr); ok {
				r.update(runCtx, u)
			}
		}
		r.scripts = health.NewScheduler(so)
		if err := r.scripts.Update(targets); err != nil {
			cancel()
			r.wg.Wait()
			r.closeAll()
			return nil, fmt.Errorf("vrrp scripts: %w", err)
		}
		r.wg.Go(func() { r.scripts.Run(runCtx) })
	}
	r.wg.Go(func() { d.followSyncDaemon(runCtx, r.syncKick) })
	for _, t := range r.transports {
		r.wg.Go(func() {
			if err := t.Run(runCtx); err != nil {
				d.log.Error("vrrp transport stopped", "interface", t.ifname, "family", t.family, "err", err)
				d.event("vrrp", "", "", fmt.Sprintf("transport on %s (%s) stopped: %v", t.ifname, t.family, err))
			}
		})
	}
	for _, in := range r.instances {
		r.wg.Go(func() {
			if err := in.inst.Run(runCtx); err != nil {
				d.log.Error("vrrp instance stopped", "instance", in.cfg.Name, "err", err)
				d.event("vrrp", "", "", fmt.Sprintf("%s stopped: %v", in.cfg.Name, err))
			}
		})
	}
	d.opts.Metrics.registerVRRP(r.metricsSnapshot)
	d.log.Info("vrrp started", "instances", len(r.instances))
	return r, nil
}

// open builds the transports and instances.
func (r *vrrpRuntime) open(d *Daemon, o VRRPOptions, cfgs []config.VRRPInstance) error {
	transports := map[transportKey]*vrrpTransport{}
	managers := map[[2]string]vrrp.AddressManager{}
	announcers := map[string]vrrp.Announcer{}
	keep := func(v any) {
		if c, ok := v.(io.Closer); ok {
			r.closers = append(r.closers, c)
		}
	}
	for _, c := range cfgs {
		ic, err := instanceConfig(c, o.SourceAddress)
		if err != nil {
			return err
		}
		fam := vrrp.FamilyOf(ic.Router.PrimaryAddress)
		key := transportKey{c.Interface, fam, len(c.UnicastPeers) == 0}
		t := transports[key]
		if t == nil {
			conn, err := o.Listen(c.Interface, fam, key.multicast)
			if err != nil {
				return fmt.Errorf("vrrp instance %s: listening on %s: %w", c.Name, c.Interface, err)
			}
			r.closers = append(r.closers, conn)
			t = &vrrpTransport{c.Interface, fam, vrrp.NewTransport(conn, vrrp.TransportOptions{Logger: d.log.With("interface", c.Interface)})}
			transports[key] = t
			r.transports = append(r.transports, t)
		}
		addrs := &vipAddresses{byAddr: map[netip.Addr]vrrp.AddressManager{}}
		ann := &vipAnnouncer{byAddr: map[netip.Addr]vrrp.Announcer{}}
		for _, va := range c.VirtualAddresses {
			dev := cmpOr(va.Dev, c.Interface)
			mk := [2]string{dev, va.Label}
			m := managers[mk]
			if m == nil {
				if m, err = o.Addresses(dev, va.Label); err != nil {
					return fmt.Errorf("vrrp instance %s: addresses on %s: %w", c.Name, dev, err)
				}
				keep(m)
				managers[mk] = m
			}
			addrs.byAddr[va.Address] = m
			a := announcers[dev]
			if a == nil {
				if a, err = o.Announcer(dev); err != nil {
					return fmt.Errorf("vrrp instance %s: announcing on %s: %w", c.Name, dev, err)
				}
				keep(a)
				announcers[dev] = a
			}
			ann.byAddr[va.Address] = a
		}
		vi := &vrrpInstance{cfg: c}
		vi.inst, err = vrrp.NewInstance(ic, vrrp.InstanceDeps{
			Transport: t.Transport,
			Addresses: addrs,
			Announcer: ann,
			Clock:     o.Clock,
			Logger:    d.log,
			Observers: []vrrp.Observer{vrrp.ObserverFunc(func(ch vrrp.StateChange) {
				d.vrrpChanged(vi, ch)
				r.changed(d, vi, ch)
			})},
		})
		if err != nil {
			return err
		}
		r.instances = append(r.instances, vi)
		r.byName[c.Name] = vi
	}
	return nil
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

// vrrpChanged is every instance's observer: timeline, log and metrics.
func (d *Daemon) vrrpChanged(vi *vrrpInstance, ch vrrp.StateChange) {
	vi.mu.Lock()
	vi.since, vi.reason = ch.At, ch.Reason
	switch {
	case ch.To == vrrp.Master:
		vi.masterSince = ch.At
	case ch.From == vrrp.Master:
		vi.masterSince = time.Time{}
	}
	vi.mu.Unlock()
	msg := fmt.Sprintf("%s (vrid %d on %s): %s -> %s", ch.Instance, ch.VRID, vi.cfg.Interface, ch.From, ch.To)
	if ch.Reason != "" {
		msg += ": " + ch.Reason
	}
	d.event("vrrp", "", "", msg)
}

// stop shuts the instances down cleanly (a master sends priority 0 and
// removes its addresses), then stops the transports and waits for every
// goroutine.
func (r *vrrpRuntime) stop() {
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, in := range r.instances {
		wg.Go(func() {
			if err := in.inst.Shutdown(ctx); err != nil {
				r.log.Error("stopping vrrp instance", "instance", in.cfg.Name, "err", err)
			}
		})
	}
	wg.Wait()
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
	out := make([]VRRPStatus, 0, len(r.instances))
	for _, in := range r.instances {
		s := in.inst.Status()
		stats := in.inst.Stats()
		vs := VRRPStatus{
			Name: in.cfg.Name, VRID: uint8(in.cfg.VirtualRouterID), Interface: in.cfg.Interface,
			Version: in.cfg.Version, State: s.State.String(),
			Priority: s.Priority, ConfiguredPriority: r.configuredPriority(in.cfg.Name),
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
		vs.Fault, vs.Tracking = r.tracking.status(in.cfg.Name)
		r.trackMu.Unlock()
		if s.State != vrrp.Fault {
			vs.Fault = ""
		}
		if g := r.cfg.SyncGroupOf(in.cfg.Name); g != nil {
			vs.SyncGroup = g.Name
		}
		vs.SteppedDownUntil, vs.NoPreempt = r.steppedDownUntil(in.cfg.Name), !in.cfg.PreemptMode()
		for _, va := range in.cfg.VirtualAddresses {
			vs.VIPs = append(vs.VIPs, va.Address.String())
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

// vrrpReloaded applies what a reload can change in the running VRRP
// instances: their priorities (lowering a director's priority and
// reloading is how a master is drained). Any other VRRP change waits for
// a restart, and the log and timeline say so.
func (d *Daemon) vrrpReloaded(cfg *config.Config) {
	d.mu.Lock()
	r := d.vrrp
	d.mu.Unlock()
	running := config.VRRP{}
	if r != nil {
		r.appliedMu.Lock()
		defer r.appliedMu.Unlock()
		running = r.applied
	}
	if len(running.Instances) == 0 && len(cfg.VRRP.Instances) == 0 || reflect.DeepEqual(running, cfg.VRRP) {
		return
	}
	if r != nil {
		if changed, ok := priorityChanges(running, cfg.VRRP); ok {
			for name, p := range changed {
				msg := fmt.Sprintf("%s: configured priority %d -> %d", name, r.configuredPriority(name), p)
				d.log.Info("vrrp priority reloaded", "instance", name, "priority", p)
				d.event("config", "", "", msg)
				r.update(context.Background(), trackUpdate{kind: "priority", name: name, priority: uint8(p)})
			}
			r.applied = cfg.VRRP
			return
		}
	}
	d.log.Warn("the vrrp section changed beyond priorities: restart lvsd to apply it; the running instances keep their settings")
	d.event("config", "", "", "vrrp changes beyond priorities need a restart; the running instances keep their settings")
}

// priorityChanges returns the instances whose priority alone changed;
// false when anything else differs, or an instance becomes or stops
// being the address owner (255), which the state machine fixes at start.
func priorityChanges(running, next config.VRRP) (map[string]int, bool) {
	if len(running.Instances) != len(next.Instances) {
		return nil, false
	}
	out := map[string]int{}
	a, b := running, next
	a.Instances, b.Instances = slices.Clone(a.Instances), slices.Clone(b.Instances)
	for i := range a.Instances {
		pa, pb := a.Instances[i].Priority, b.Instances[i].Priority
		if pa != pb {
			if pa == 255 || pb == 255 {
				return nil, false
			}
			out[a.Instances[i].Name] = pb
		}
		b.Instances[i].Priority = pa
	}
	return out, reflect.DeepEqual(a, b)
}

// vipAddresses sends each address to the manager of its device and
// label.
type vipAddresses struct {
	byAddr map[netip.Addr]vrrp.AddressManager
}

func (v *vipAddresses) group(addrs []netip.Addr) ([]vrrp.AddressManager, map[vrrp.AddressManager][]netip.Addr) {
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
	byAddr map[netip.Addr]vrrp.Announcer
}

// Announce implements vrrp.Announcer.
func (v *vipAnnouncer) Announce(addrs []netip.Addr) error {
	var order []vrrp.Announcer
	groups := map[vrrp.Announcer][]netip.Addr{}
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
