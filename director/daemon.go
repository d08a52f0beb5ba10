package director

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/reconcile"
	"github.com/lvskit/lvskit/director/scripts"
)

// DaemonOptions configure a Daemon. Only cmd/lvsd wires real ones; tests
// pass fakes.
type DaemonOptions struct {
	// ConfigPath is the config file, read at start and on Reload.
	ConfigPath string
	// Load are the options of every config load (the kernel's
	// capabilities, to reject schedulers it lacks).
	Load config.LoadOptions
	// Client programs IPVS.
	Client ipvs.Client
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LoadModules loads kernel modules (modprobe) before the first write:
	// autoloading a scheduler later can deadlock IPVS. Nil skips.
	LoadModules func(names []string) error
	// WriteSysctl sets a sysctl ("net.ipv4.vs.expire_nodest_conn"). Nil
	// skips the IPVS sysctls.
	WriteSysctl func(key, value string) error
	// RunCommand runs a quorum or notify command (scripts.Program.Run).
	// Nil logs only.
	RunCommand func(ctx context.Context, p scripts.Program) error
	// Notify tells the service manager about state changes
	// ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..."). Nil skips.
	Notify func(state string)
	// Health are the health scheduler's options; the daemon sets its
	// OnTransition and calls the given OnResult and OnTransition too.
	Health health.SchedulerOptions
	// StateDir overrides the config's state_dir (tests).
	StateDir string
	// Metrics receives check results, health states, reloads and errors;
	// nil runs without metrics.
	Metrics *Metrics
	// VRRP opens what the config's VRRP instances talk to.
	VRRP VRRPOptions
	// BGP opens the speaker of the config's bgp section.
	BGP BGPOptions
}

// Daemon is lvsd's engine: it keeps the kernel's IPVS table equal to the
// config, with the weights health checks decide.
type Daemon struct {
	opts     DaemonOptions
	log      *slog.Logger
	now      func() time.Time
	rec      *reconcile.Reconciler
	sched    *health.Scheduler
	timeline *Timeline

	reloads chan chan error
	wake    chan struct{}
	cmds    sync.WaitGroup // quorum commands

	// syncMu serializes changes to the connection sync daemon.
	syncMu sync.Mutex

	mu         sync.Mutex
	cfg        *config.Config
	loaded     time.Time
	reloadErr  error
	desired    map[ipvs.ServiceKey]config.DesiredService
	order      []ipvs.ServiceKey
	states     map[string]health.State      // by target ID; absent: unchecked
	downs      map[string]health.Transition // the transition that took a target down
	targets    map[string]targetRef         // target ID -> its service and real server
	stateAt    map[string]time.Time         // when states' transition happened: a late older one is ignored
	quorum     map[ipvs.ServiceKey]bool
	dirty      map[ipvs.ServiceKey]bool
	unowned    []ipvs.ServiceKey
	globalsSet bool
	vrrp       *vrrpRuntime // nil without VRRP instances
	bgp        *bgpRuntime  // nil without a bgp section
	status     statusCache  // each service's status as last built

	applied atomic.Bool // the first apply has been made (BGP may announce)
}

// NewDaemon loads the config; an invalid config is an error with every
// problem listed.
func NewDaemon(opts DaemonOptions) (*Daemon, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg, err := config.Load(opts.ConfigPath, opts.Load)
	if err != nil {
		return nil, err
	}
	logScriptWarnings(opts.Logger, cfg)
	if w := cfg.RootScriptsWarning; w != "" {
		opts.Logger.Warn(w, "setting", "lvsd.script_user")
	}
	stateDir := opts.StateDir
	if stateDir == "" {
		stateDir = cfg.LVSD.StateDir
	}
	rec, err := reconcile.NewReconciler(reconcile.ReconcilerOptions{Client: opts.Client, Logger: opts.Logger, StateDir: stateDir})
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Now,
		rec:      rec,
		timeline: NewTimeline(DefaultTimelineSize),
		reloads:  make(chan chan error),
		wake:     make(chan struct{}, 1),
		states:   map[string]health.State{},
		downs:    map[string]health.Transition{},
		stateAt:  map[string]time.Time{},
		quorum:   map[ipvs.ServiceKey]bool{},
		dirty:    map[ipvs.ServiceKey]bool{},
	}
	hopts := opts.Health
	userTransition, userResult := hopts.OnTransition, hopts.OnResult
	hopts.Logger = opts.Logger
	hopts.OnResult = func(id string, r health.Result) {
		d.mu.Lock()
		ref, ok := d.targets[id]
		if ok {
			d.status.invalidate(ref.services) // its last result changed
		}
		d.mu.Unlock()
		if ok {
			opts.Metrics.ObserveCheck(ref.serviceLabel, ref.rsLabel, r)
		}
		if userResult != nil {
			userResult(id, r)
		}
	}
	hopts.OnTransition = func(tr health.Transition) {
		d.onTransition(tr)
		if userTransition != nil {
			userTransition(tr)
		}
	}
	d.sched = health.NewScheduler(hopts)
	d.setConfig(cfg)
	return d, nil
}

// Reconciler returns the daemon's reconciler (for metrics).
func (d *Daemon) Reconciler() *reconcile.Reconciler { return d.rec }

func (d *Daemon) setConfig(cfg *config.Config) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg, d.loaded = cfg, d.now()
	d.status.reset()
	d.desired = map[ipvs.ServiceKey]config.DesiredService{}
	d.order = d.order[:0]
	for _, ds := range cfg.Desired() {
		d.desired[ds.Service.ServiceKey] = ds
		d.order = append(d.order, ds.Service.ServiceKey)
	}
}

func (d *Daemon) event(kind, service, rs, msg string) {
	d.timeline.Add(Event{Time: d.now(), Kind: kind, Service: service, RealServer: rs, Message: msg})
}

func (d *Daemon) notify(state string) {
	if d.opts.Notify != nil {
		d.opts.Notify(state)
	}
}

// Run programs the kernel and keeps it so until ctx ends. It returns
// only on a fatal error (the kernel cannot be read at start) or when ctx
// ends.
func (d *Daemon) Run(ctx context.Context) error {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	if d.opts.LoadModules != nil {
		if err := d.opts.LoadModules(cfg.Modules()); err != nil {
			return fmt.Errorf("loading IPVS modules: %w", err)
		}
	}
	if err := d.rec.ReadKernel(); err != nil {
		return err
	}
	d.applyGlobals(cfg)
	br, err := d.startBGP(cfg) // before the first apply: announces nothing until it succeeds
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.bgp = br
	d.mu.Unlock()
	defer d.stopBGP() // on an error return; shutdown stops it first otherwise
	defer d.bgpWithdrawOnStop(ctx)()
	d.applied.Store(true)
	if err := d.apply(cfg); err != nil {
		return err
	}
	d.bgpUpdate()
	vr, err := d.startVRRP(ctx, cfg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.vrrp = vr
	d.mu.Unlock()
	defer func() { // after the scheduler's stop below: a clean VRRP handover
		d.mu.Lock()
		vr := d.vrrp // a reload may have started it
		d.mu.Unlock()
		vr.stop()
	}()
	d.event("daemon", "", "", "started with "+d.opts.ConfigPath)
	d.notify("READY=1")

	schedCtx, stopSched := context.WithCancel(ctx)
	schedDone := make(chan error, 1)
	go func() { schedDone <- d.sched.Run(schedCtx) }()
	defer func() {
		stopSched()
		<-schedDone
		d.cmds.Wait()
	}()

	resync := time.NewTicker(cfg.LVSD.ResyncInterval)
	defer resync.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var bgpTick <-chan time.Time
	if br != nil {
		iv := d.opts.BGP.Interval
		if iv <= 0 {
			iv = time.Second
		}
		t := time.NewTicker(iv)
		defer t.Stop()
		bgpTick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			d.shutdown()
			return nil
		case reply := <-d.reloads:
			err := d.reload()
			d.mu.Lock()
			iv := d.cfg.LVSD.ResyncInterval
			d.mu.Unlock()
			resync.Reset(iv)
			reply <- err
		case <-d.wake:
			d.applyDirty()
		case <-resync.C:
			d.resync()
		case <-retry.C:
		case <-bgpTick:
			d.bgpPollPeers()
		}
		res, next := d.rec.Retry(d.now())
		d.report(res)
		if !next.IsZero() {
			retry.Reset(max(next.Sub(d.now()), time.Millisecond))
		}
		d.bgpUpdate()
	}
}

// Reload reads the config again. A bad config is rejected with its
// errors and the running one keeps serving.
func (d *Daemon) Reload(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case d.reloads <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Daemon) reload() error {
	d.notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(time.Now().UnixMicro(), 10))
	defer d.notify("READY=1")
	cfg, err := config.Load(d.opts.ConfigPath, d.opts.Load)
	if err == nil && d.opts.LoadModules != nil {
		err = d.opts.LoadModules(cfg.Modules())
	}
	var vrrpReloaded func()
	if err == nil {
		vrrpReloaded, err = d.vrrpPrepareReload(cfg)
	}
	if err != nil {
		d.mu.Lock()
		d.reloadErr = err
		d.mu.Unlock()
		d.opts.Metrics.ObserveReload(d.now(), err)
		d.log.Error("config reload rejected; the running config keeps serving", "config", d.opts.ConfigPath, "err", err)
		d.event("config", "", "", "reload rejected: "+err.Error())
		return err
	}
	d.mu.Lock()
	d.reloadErr = nil
	d.mu.Unlock()
	logScriptWarnings(d.log, cfg)
	d.setConfig(cfg)
	vrrpReloaded()
	d.bgpReloaded(cfg)
	d.applyGlobals(cfg)
	if err := d.apply(cfg); err != nil {
		d.event("config", "", "", "reload: "+err.Error())
		return err
	}
	d.opts.Metrics.ObserveReload(d.now(), nil)
	d.log.Info("config reloaded", "config", d.opts.ConfigPath, "services", len(cfg.VirtualServices))
	d.event("config", "", "", "reloaded")
	return nil
}

// logScriptWarnings logs, at every start and reload, the scripts that
// run although others could change them (insecure_scripts) and that
// scripts run as root for want of a script user.
func logScriptWarnings(log *slog.Logger, cfg *config.Config) {
	for _, w := range cfg.ScriptWarnings {
		log.Warn(w, "config", cfg.Files[0])
	}
}

// apply updates the health targets and the whole desired table.
func (d *Daemon) apply(cfg *config.Config) error {
	d.mu.Lock()
	desired := slices.Collect(maps.Values(d.desired))
	d.mu.Unlock()
	targets, err := healthTargets(desired)
	if err != nil {
		return err
	}
	// Know every target before the scheduler can report on it.
	refs := map[string]targetRef{}
	for _, ds := range desired {
		for _, r := range ds.RealServers {
			id := targetID(ds.HealthKey(), r.Key())
			ref, ok := refs[id]
			if !ok {
				ref = newTargetRef(ds.HealthKey(), r.Key())
			}
			ref.services = append(ref.services, ds.Service.ServiceKey)
			refs[id] = ref
		}
	}
	d.mu.Lock()
	for id, ref := range d.targets {
		if _, ok := refs[id]; !ok {
			d.opts.Metrics.ForgetRealServer(ref.service.String(), ref.rs.String())
		}
	}
	for _, t := range targets {
		if _, ok := d.targets[t.ID]; !ok {
			ref := refs[t.ID]
			d.opts.Metrics.SetHealth(ref.service.String(), ref.rs.String(), health.StateUnknown)
		}
	}
	d.targets = refs
	d.mu.Unlock()
	if err := d.sched.Update(targets); err != nil {
		return fmt.Errorf("updating health checks: %w", err)
	}
	d.mu.Lock()
	for id := range d.states {
		if _, ok := d.targets[id]; !ok {
			delete(d.states, id)
			delete(d.downs, id)
			delete(d.stateAt, id)
		}
	}
	table := reconcile.Table{}
	for _, k := range d.order {
		table[k] = d.expandLocked(k)
	}
	clear(d.dirty)
	d.status.reset() // the health targets changed
	d.mu.Unlock()
	d.report(d.rec.SetDesired(d.now(), table))
	return nil
}

// up says whether a real server takes traffic: unchecked or not yet
// checked counts as up (keepalived's default), down only after fall
// failures.
func (d *Daemon) upLocked(k ipvs.ServiceKey) func(ipvs.RealServerKey) bool {
	hk := k
	if ds, ok := d.desired[k]; ok {
		hk = ds.HealthKey() // a group's services share their checks
	}
	return func(rk ipvs.RealServerKey) bool {
		return d.states[targetID(hk, rk)] != health.StateDown
	}
}

func (d *Daemon) expandLocked(k ipvs.ServiceKey) *reconcile.Entry {
	ds := d.desired[k]
	up := d.upLocked(k)
	d.checkQuorumLocked(ds, up)
	return reconcile.Expand(ds, up)
}

func (d *Daemon) checkQuorumLocked(ds config.DesiredService, up func(ipvs.RealServerKey) bool) {
	q := ds.Quorum
	if q == nil {
		return
	}
	k := ds.Service.ServiceKey
	w := reconcile.UpWeight(ds, up)
	was, known := d.quorum[k]
	now := was
	switch {
	case !known:
		now = w >= q.Weight
	case was && w < q.Weight-q.Hysteresis:
		now = false
	case !was && w >= q.Weight+q.Hysteresis:
		now = true
	}
	d.quorum[k] = now
	if known && now == was {
		return
	}
	d.status.invalidate([]ipvs.ServiceKey{k})
	prog, what := q.Run(false), "lost"
	if now {
		prog, what = q.Run(true), "gained"
	}
	argv := prog.Args
	msg := fmt.Sprintf("quorum %s: up weight %d, quorum %d±%d", what, w, q.Weight, q.Hysteresis)
	d.log.Warn(msg, "service", k.String())
	d.event("quorum", k.String(), "", msg)
	if len(argv) > 0 && d.opts.RunCommand != nil {
		d.cmds.Add(1)
		go func() {
			defer d.cmds.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := d.opts.RunCommand(ctx, prog); err != nil {
				d.log.Error("quorum command failed", "service", k.String(), "command", argv, "err", err)
				d.event("quorum", k.String(), "", fmt.Sprintf("command %q failed: %v", argv, err))
			}
		}()
	}
}

type targetRef struct {
	service ipvs.ServiceKey // the HealthKey the check runs under
	rs      ipvs.RealServerKey
	// services are the services whose real server this is: one, or
	// every service of a group.
	services []ipvs.ServiceKey
	// The metrics' labels of service and rs, made once rather than for
	// every check result.
	serviceLabel, rsLabel string
}

func newTargetRef(k ipvs.ServiceKey, rk ipvs.RealServerKey) targetRef {
	return targetRef{service: k, rs: rk, serviceLabel: k.String(), rsLabel: rk.String()}
}

func (d *Daemon) onTransition(tr health.Transition) {
	d.mu.Lock()
	ref, found := d.targets[tr.Target]
	if found && tr.Time.Before(d.stateAt[tr.Target]) {
		// Delivered after a later transition of the same target (the
		// scheduler publishes outside its lock): the later one stands.
		d.mu.Unlock()
		d.log.Debug("ignoring a health transition older than the target's state", "target", tr.Target, "from", tr.From, "to", tr.To, "at", tr.Time)
		return
	}
	if found {
		d.states[tr.Target] = tr.To
		d.stateAt[tr.Target] = tr.Time
		if tr.To == health.StateDown {
			d.downs[tr.Target] = tr
		} else {
			delete(d.downs, tr.Target)
		}
		for _, k := range ref.services {
			d.dirty[k] = true
		}
		d.status.invalidate(ref.services)
		d.opts.Metrics.SetHealth(ref.service.String(), ref.rs.String(), tr.To)
	}
	d.mu.Unlock()
	if !found {
		return // a target a reload just removed
	}
	d.log.Info("real server "+tr.To.String(), "service", ref.service.String(), "rs", ref.rs.String(), "reason", tr.Reason)
	d.event("check", ref.service.String(), ref.rs.String(), fmt.Sprintf("%v -> %v: %s", tr.From, tr.To, tr.Reason))
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// applyDirty re-expands the services whose health changed and writes only
// their differences.
func (d *Daemon) applyDirty() {
	d.mu.Lock()
	keys := slices.SortedFunc(maps.Keys(d.dirty), reconcile.CompareKeys)
	clear(d.dirty)
	entries := make([]*reconcile.Entry, len(keys))
	for i, k := range keys {
		if _, ok := d.desired[k]; ok {
			entries[i] = d.expandLocked(k)
		}
	}
	d.mu.Unlock()
	for i, k := range keys {
		if entries[i] != nil {
			d.report(d.rec.SetService(d.now(), k, entries[i]))
		}
	}
}

func (d *Daemon) resync() {
	res, err := d.rec.Resync(d.now())
	if err != nil {
		d.log.Error("resync", "err", err)
		d.event("ipvs", "", "", "resync failed: "+err.Error())
		d.bgpObserve(reconcile.Result{}, err)
		return
	}
	if res.Drift > 0 {
		d.event("drift", "", "", fmt.Sprintf("%d owned services changed behind lvsd's back; repaired", res.Drift))
	}
	d.report(res)
}

func (d *Daemon) report(res reconcile.Result) {
	if len(res.Sent)+len(res.Failures) > 0 {
		counts := map[reconcile.OpKind]int{}
		for _, op := range res.Sent {
			counts[op.Kind]++
		}
		attrs := []any{"sent", len(res.Sent), "failed", len(res.Failures)}
		for _, k := range []reconcile.OpKind{reconcile.AddService, reconcile.UpdateService, reconcile.DeleteService, reconcile.AddRealServer, reconcile.UpdateRealServer, reconcile.DeleteRealServer} {
			if counts[k] > 0 {
				attrs = append(attrs, k.String(), counts[k])
			}
		}
		d.log.Info("IPVS writes", attrs...)
	}
	for _, op := range res.Sent {
		d.log.Debug("IPVS write", "op", op.String())
		d.event("ipvs", op.Service.ServiceKey.String(), op.RealServerString(), op.String())
	}
	for _, f := range res.Failures {
		if f.Err != reconcile.ErrSkipped {
			d.opts.Metrics.CountError("ipvs")
			d.event("ipvs", f.Op.Service.ServiceKey.String(), f.Op.RealServerString(), "failed: "+f.Error())
		}
	}
	d.bgpObserve(res, nil)
	if len(res.Unowned) > 0 {
		d.mu.Lock()
		if !slices.Equal(d.unowned, res.Unowned) {
			d.log.Info("leaving IPVS services lvsd does not own", "count", len(res.Unowned))
		}
		d.unowned = res.Unowned
		d.mu.Unlock()
	}
}

// applyGlobals sets the IPVS timeouts, sysctls and sync daemons. Failures
// are logged: traffic can flow without them.
func (d *Daemon) applyGlobals(cfg *config.Config) {
	g := &cfg.IPVS
	if t := g.KernelTimeouts(); t != (ipvs.Timeouts{}) {
		if err := d.opts.Client.SetTimeouts(t); err != nil {
			d.log.Error("setting IPVS timeouts", "err", err)
		}
	}
	if d.opts.WriteSysctl != nil {
		set := func(key, value string) {
			if err := d.opts.WriteSysctl("net.ipv4.vs."+key, value); err != nil {
				d.log.Error("setting sysctl", "key", "net.ipv4.vs."+key, "err", err)
			}
		}
		b := map[bool]string{false: "0", true: "1"}
		if g.ExpireNodestConn != nil {
			set("expire_nodest_conn", b[*g.ExpireNodestConn])
		}
		if g.ExpireQuiescentTemplate != nil {
			set("expire_quiescent_template", b[*g.ExpireQuiescentTemplate])
		}
		if g.SloppyTCP != nil {
			set("sloppy_tcp", b[*g.SloppyTCP])
		}
		if g.ConnReuseMode != nil {
			set("conn_reuse_mode", strconv.Itoa(*g.ConnReuseMode))
		}
		if g.SyncThreshold != nil {
			set("sync_threshold", fmt.Sprintf("%d %d", g.SyncThreshold.Threshold, g.SyncThreshold.Period))
		}
	}
	if sd := g.SyncDaemon; sd != nil && sd.VRRPInstance != "" {
		d.syncMu.Lock()
		role := d.followedSyncRole(sd.VRRPInstance)
		if err := d.ensureSyncDaemon(g.SyncDaemonAs(role)); err != nil {
			d.log.Error("sync daemon", "err", err)
		}
		d.syncMu.Unlock()
		return
	}
	want := g.KernelSyncDaemons()
	if len(want) == 0 {
		return
	}
	running, err := d.opts.Client.SyncDaemons()
	if err != nil {
		d.log.Error("listing sync daemons", "err", err)
		return
	}
	for _, w := range want {
		i := slices.IndexFunc(running, func(r ipvs.SyncDaemon) bool { return r.Role == w.Role })
		if i >= 0 && running[i].Interface == w.Interface && running[i].SyncID == w.SyncID {
			continue
		}
		if i >= 0 {
			if err := d.opts.Client.StopSyncDaemon(w.Role); err != nil {
				d.log.Error("stopping sync daemon", "err", err)
				continue
			}
		}
		if err := d.opts.Client.StartSyncDaemon(w); err != nil {
			d.log.Error("starting sync daemon", "err", err)
		}
	}
}

func (d *Daemon) shutdown() {
	d.notify("STOPPING=1")
	d.stopBGP() // routers stop sending before IPVS goes
	d.mu.Lock()
	flush := d.cfg.LVSD.FlushOnStop
	d.mu.Unlock()
	if !flush {
		d.log.Info("stopping; IPVS rules stay in place (flush_on_stop is off)")
		return
	}
	res := d.rec.SetDesired(d.now(), reconcile.Table{})
	d.log.Info("stopping; removed the services lvsd owns", "writes", len(res.Sent), "failures", len(res.Failures))
}

// Status returns a snapshot for the status API. It does not copy the
// whole table per request: each service's status is kept as last built
// and rebuilt only when its health, its last check, its quorum, its
// config or its entry in the kernel changed since (statusCache).
func (d *Daemon) Status() Status {
	vrrpStatus := d.vrrpStatus()
	bgpStatus := d.bgpStatus()
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.statusHeadLocked(vrrpStatus, bgpStatus)
	st.Services = d.serviceStatusesLocked()
	return st
}

// buildServiceStatusLocked builds one service's status from the config,
// the health scheduler and the reconciler's copy of the kernel.
func (d *Daemon) buildServiceStatusLocked(k ipvs.ServiceKey, ke *reconcile.Entry) ServiceStatus {
	ds := d.desired[k]
	ss := ServiceStatus{Key: k.String(), Name: ds.Name, Source: ds.Source, Scheduler: ds.Service.Scheduler, InKernel: ke != nil}
	up := d.upLocked(k)
	ss.UpWeight = reconcile.UpWeight(ds, up)
	if ds.Quorum != nil {
		ss.Quorum = map[bool]string{true: "up", false: "down"}[d.quorum[k]]
	}
	for _, r := range ds.RealServers {
		rs := RealServerStatus{
			Address: r.Key().String(), Forwarding: r.Forwarding.String(), Weight: r.Weight,
			KernelWeight: kernelWeight(ke, r.Key()), Health: "up",
			Check: describeCheck(r.HealthCheck, r.CheckTarget),
		}
		id := targetID(ds.HealthKey(), r.Key())
		if c, ok := d.sched.Lookup(id); ok {
			rs.Health, rs.Since = c.State.String(), c.Since
			if c.Checked {
				rs.LastResult, rs.LastCheck = c.Last.Reason, c.Last.Time
			}
			if tr, ok := d.downs[id]; ok && c.State == health.StateDown {
				// "2 of 2 failures: HTTP 503 from 10.0.0.2:80 at 12:00:03"
				rs.Why = tr.Reason + " at " + tr.Time.Format("15:04:05")
			}
		}
		ss.RealServers = append(ss.RealServers, rs)
	}
	if ds.SorryServer != nil && kernelWeight(ke, ds.SorryServer.Key()) >= 0 {
		ss.SorryServer = ds.SorryServer.Key().String()
	}
	return ss
}

func kernelWeight(e *reconcile.Entry, rk ipvs.RealServerKey) int32 {
	if e == nil {
		return -1
	}
	for _, r := range e.RealServers {
		if r.Key() == rk {
			return r.Weight
		}
	}
	return -1
}
