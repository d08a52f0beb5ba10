package director

// What start and reloads do to the running VRRP instances: a plan of
// what to open, keep, start and stop (prepare), carried out (apply) or
// undone (drop). Like keepalived, a reload keeps every instance that
// still exists and changes it in place.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/vrrp"
)

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
	r := d.vrrp.Load()
	if r == nil {
		// VRRP starts with this reload, as it would at start.
		vr, err := d.startVRRP(context.Background(), cfg)
		if err != nil {
			return nil, err
		}
		d.vrrp.Store(vr)
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
