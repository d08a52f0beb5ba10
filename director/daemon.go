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
	"github.com/lvskit/lvskit/internal/clock"
)

// DaemonOptions configure a Daemon. Only cmd/lvsd wires real ones; tests
// pass fakes.
type DaemonOptions struct {
	// ConfigPath is the config file, read at start and on Reload.
	ConfigPath string
	// Config, if set, is ConfigPath as already loaded with Load (lvsd
	// loads it once, to open the kernel it needs): NewDaemon uses it
	// rather than reading the file a second time, which may have
	// changed in between. Reload always reads the file.
	Config *config.Config
	// Load are the options of every config load (the kernel's
	// capabilities, to reject schedulers it lacks).
	Load config.LoadOptions
	// Client programs IPVS.
	Client ipvs.Client
	Logger *slog.Logger
	// Clock times the resyncs, retries and BGP polls and stamps events;
	// nil means the system clock. Tests pass a clocktest.Clock.
	Clock clock.Clock
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
	clock    clock.Clock
	now      func() time.Time
	rec      *reconcile.Reconciler
	sched    *health.Scheduler
	timeline *Timeline

	reloads chan chan error
	inbox   *inbox         // events posted by other goroutines
	due     deadlines      // when the loop's timers fire; the loop's own
	cmds    sync.WaitGroup // quorum commands

	// snap is what the loop last published (publish): the only part of
	// the state below that other goroutines read.
	snap atomic.Pointer[snapshot]
	// vrrp and bgp are set by the loop's goroutine (start, a reload that
	// starts VRRP); drills read them from the status API's.
	vrrp atomic.Pointer[vrrpRuntime] // nil without VRRP instances
	bgp  atomic.Pointer[bgpRuntime]  // nil without a bgp section

	// The loop's own state: only the goroutine that runs the loop (or,
	// before Run, the one that made the daemon) reads or writes it, so
	// no lock guards it.
	cfg       *config.Config
	loaded    time.Time
	reloadErr error
	desired   map[ipvs.ServiceKey]config.DesiredService
	order     []ipvs.ServiceKey
	index     map[ipvs.ServiceKey]int // position in order
	bgpKeys   []ipvs.ServiceKey       // the services announced over BGP, in order
	states    map[string]health.State // by target ID; absent: unchecked
	downs     map[string]string       // by target ID: why it is down, as the status says it
	targets   map[string]targetRef    // target ID -> its service and real server
	// results count each service's check results (shared with the
	// scheduler's callback through targets; kept across reloads).
	results     map[ipvs.ServiceKey]*atomic.Uint64
	stateAt     map[string]time.Time // when states' transition happened: a late older one is ignored
	quorum      map[ipvs.ServiceKey]bool
	dirty       map[ipvs.ServiceKey]bool
	unowned     []ipvs.ServiceKey
	unownedKeys []string // unowned as text, for the snapshots
	globalsSet  bool
	status      statusCache // each service's status as last built

	applied atomic.Bool // the first apply has been made (BGP may announce)
}

// NewDaemon loads the config; an invalid config is an error with every
// problem listed.
func NewDaemon(opts DaemonOptions) (*Daemon, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	cfg := opts.Config
	if cfg == nil {
		var err error
		if cfg, err = config.Load(opts.ConfigPath, opts.Load); err != nil {
			return nil, err
		}
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
	opts.Metrics.registerReconcile(rec.Stats)
	d := &Daemon{
		opts:     opts,
		log:      opts.Logger,
		clock:    opts.Clock,
		now:      opts.Clock.Now,
		rec:      rec,
		timeline: NewTimeline(DefaultTimelineSize),
		reloads:  make(chan chan error),
		inbox:    newInbox(),
		states:   map[string]health.State{},
		results:  map[ipvs.ServiceKey]*atomic.Uint64{},
		downs:    map[string]string{},
		stateAt:  map[string]time.Time{},
		quorum:   map[ipvs.ServiceKey]bool{},
		dirty:    map[ipvs.ServiceKey]bool{},
	}
	hopts := opts.Health
	userTransition, userResult := hopts.OnTransition, hopts.OnResult
	hopts.Logger = opts.Logger
	hopts.OnResult = func(id string, r health.Result) {
		d.onResult(id, r)
		if userResult != nil {
			userResult(id, r)
		}
	}
	hopts.OnTransition = func(tr health.Transition) {
		d.inbox.postTransition(tr)
		if userTransition != nil {
			userTransition(tr)
		}
	}
	d.sched = health.NewScheduler(hopts)
	d.status.lookup = d.sched.Lookup
	d.setConfig(cfg)
	d.publish()
	return d, nil
}

func (d *Daemon) setConfig(cfg *config.Config) {
	d.cfg, d.loaded = cfg, d.now()
	d.status.forgetConfig()
	d.desired = map[ipvs.ServiceKey]config.DesiredService{}
	d.order = nil // a published snapshot's services follow the old order
	d.index = map[ipvs.ServiceKey]int{}
	for _, ds := range cfg.Desired() {
		d.desired[ds.Service.ServiceKey] = ds
		d.index[ds.Service.ServiceKey] = len(d.order)
		d.order = append(d.order, ds.Service.ServiceKey)
	}
	d.bgpKeys = bgpKeys(d.order, d.desired)
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
	if err := d.start(ctx); err != nil {
		return err
	}
	defer d.stopBGP() // shutdown stopped it already, unless the loop did not run
	// A stop request withdraws every BGP VIP at once, from its own
	// goroutine: the loop may be busy with a large apply.
	defer d.bgpWithdrawOnStop(ctx)()
	defer func() { // after the scheduler's stop below: a clean VRRP handover
		d.vrrp.Load().stop() // a reload may have started it
	}()

	schedCtx, stopSched := context.WithCancel(ctx)
	schedDone := make(chan error, 1)
	go func() { schedDone <- d.sched.Run(schedCtx) }()
	defer func() {
		stopSched()
		<-schedDone
		d.cmds.Wait()
	}()
	d.loop(ctx)
	return nil
}

// start is what Run does before its loop: it programs the kernel as the
// config says, starts BGP and VRRP, and sets the first deadlines. On an
// error, nothing it started is left running.
func (d *Daemon) start(ctx context.Context) (err error) {
	cfg := d.cfg
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
	d.bgp.Store(br)
	defer func() {
		if err != nil {
			d.stopBGP()
		}
	}()
	d.applied.Store(true)
	if err := d.apply(cfg); err != nil {
		return err
	}
	d.publish()
	d.bgpUpdate()
	vr, err := d.startVRRP(ctx, cfg)
	if err != nil {
		return err
	}
	d.vrrp.Store(vr)
	d.event("daemon", "", "", "started with "+d.opts.ConfigPath)
	d.notify("READY=1")

	now := d.clock.Now()
	d.due.resync = now.Add(cfg.LVSD.ResyncInterval)
	if br != nil {
		d.due.bgpPoll = now.Add(d.bgpPollInterval())
	}
	return nil
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
		d.reloadErr = err
		d.opts.Metrics.ObserveReload(d.now(), err)
		d.log.Error("config reload rejected; the running config keeps serving", "config", d.opts.ConfigPath, "err", err)
		d.event("config", "", "", "reload rejected: "+err.Error())
		return err
	}
	d.reloadErr = nil
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
	desired := slices.Collect(maps.Values(d.desired))
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
			ref.results = append(ref.results, d.resultCounter(ds.Service.ServiceKey))
			refs[id] = ref
		}
	}
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
	d.targets = refs // a new map: the published snapshot keeps the old one
	for k := range d.results {
		if _, ok := d.desired[k]; !ok {
			delete(d.results, k)
		}
	}
	if err := d.sched.Update(targets); err != nil {
		return fmt.Errorf("updating health checks: %w", err)
	}
	for id := range d.states {
		if _, ok := d.targets[id]; !ok {
			delete(d.states, id)
			delete(d.downs, id)
			delete(d.stateAt, id)
		}
	}
	table := reconcile.Table{}
	for _, k := range d.order {
		table[k] = d.expand(k)
	}
	clear(d.dirty)
	d.status.reset() // the health targets changed
	d.report(d.rec.SetDesired(d.now(), table))
	return nil
}

func (d *Daemon) resync() {
	d.status.kernelAll = true // it may have read changes back anywhere
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
		// What the reconciler's copy of the kernel changed in: the
		// services it wrote, and those whose writes failed (it reads
		// them again).
		for _, op := range res.Sent {
			d.status.invalidate([]ipvs.ServiceKey{op.Service.ServiceKey})
		}
		for _, f := range res.Failures {
			d.status.invalidate([]ipvs.ServiceKey{f.Op.Service.ServiceKey})
		}
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
		if !slices.Equal(d.unowned, res.Unowned) {
			d.log.Info("leaving IPVS services lvsd does not own", "count", len(res.Unowned))
			d.unownedKeys = make([]string, 0, len(res.Unowned)) // a new slice: snapshots hold the old one
			for _, k := range res.Unowned {
				d.unownedKeys = append(d.unownedKeys, k.String())
			}
		}
		d.unowned = res.Unowned
	}
}

func (d *Daemon) shutdown() {
	d.notify("STOPPING=1")
	d.stopBGP() // routers stop sending before IPVS goes
	if !d.cfg.LVSD.FlushOnStop {
		d.log.Info("stopping; IPVS rules stay in place (flush_on_stop is off)")
		return
	}
	res := d.rec.SetDesired(d.now(), reconcile.Table{})
	d.log.Info("stopping; removed the services lvsd owns", "writes", len(res.Sent), "failures", len(res.Failures))
}

// onResult takes a check result, from the scheduler's goroutines: it
// counts against the target's services (as last published: a target a
// reload just removed is not found), whose status then brings the
// result in when next read, and goes to the metrics. It posts nothing
// to the loop, which has nothing to do for a result that changed no
// state (the transition, if any, came before it).
func (d *Daemon) onResult(id string, r health.Result) {
	if ref, ok := d.snapshot().targets[id]; ok {
		for _, n := range ref.results {
			n.Add(1)
		}
		d.opts.Metrics.ObserveCheck(ref.serviceLabel, ref.rsLabel, r)
	}
}

// resultCounter returns the counter of k's check results, made at
// its first use and kept while k is configured.
func (d *Daemon) resultCounter(k ipvs.ServiceKey) *atomic.Uint64 {
	n, ok := d.results[k]
	if !ok {
		n = new(atomic.Uint64)
		d.results[k] = n
	}
	return n
}
