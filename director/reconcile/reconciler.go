package reconcile

import (
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
)

// ReconcilerOptions configure a Reconciler.
type ReconcilerOptions struct {
	Client ipvs.Client
	Logger *slog.Logger
	// StateDir holds the last-applied state file; empty keeps ownership
	// in memory only (tests, lvsd plan).
	StateDir string
	// RetryMin and RetryMax bound the backoff of a service whose writes
	// failed. Defaults 1s and 1m.
	RetryMin, RetryMax time.Duration
	// FullReadEvery: every FullReadEvery-th resync (and the first)
	// reads every service and real server over netlink; the others read
	// /proc/net/ip_vs once and ask netlink only about the services whose
	// lines changed. Default DefaultFullReadEvery; 1 reads everything
	// every time.
	FullReadEvery int
}

// Result says what one reconcile did.
type Result struct {
	Sent     []Op      // ops the kernel accepted
	Failures []Failure // ops it refused, or that were skipped
	Drift    int       // owned services that differed from what lvsd last wrote
	Unowned  []ipvs.ServiceKey
	// FullRead says a resync read the whole table over netlink; Reread
	// counts the services a resync that did not read over netlink.
	FullRead bool
	Reread   int
}

// Stats are the reconciler's running totals, for metrics.
type Stats struct {
	OpsSent      map[OpKind]uint64
	OpsFailed    map[OpKind]uint64
	Resyncs      uint64
	DriftRepairs uint64
	// FullReads counts the resyncs that read the whole table over
	// netlink; ServicesReread the services the others read over netlink
	// because their /proc/net/ip_vs lines changed.
	FullReads      uint64
	ServicesReread uint64
}

type retryState struct {
	attempt int
	next    time.Time
}

// Reconciler keeps the kernel's IPVS table equal to the desired table for
// the services lvsd owns. It caches the kernel's table as of its last read
// plus the writes since, so a change to one service costs only that
// service's writes; Resync reads the kernel back to find drift. Its
// methods are safe for concurrent use.
type Reconciler struct {
	opts ReconcilerOptions
	log  *slog.Logger

	mu      sync.Mutex
	cache   Table // the kernel, as last read plus our writes since
	synced  bool  // cache has been filled from the kernel
	desired Table
	// haveDesired is false until the first SetDesired: until then
	// nothing is applied, or a restart would delete every owned service.
	haveDesired bool
	owned       map[ipvs.ServiceKey]bool
	// ownedDirty says owned changed since it was last written to disk.
	ownedDirty bool
	retry      map[ipvs.ServiceKey]*retryState
	stats      Stats
	// seen are the /proc/net/ip_vs lines of the last read; nil when
	// that read failed, which makes the next resync a full one.
	seen procLines
	// sinceFull counts the resyncs since the last full read.
	sinceFull int
	// procFailed is set once a failed /proc read has been logged.
	procFailed bool
	// versions says when each service's cached entry last changed (a
	// write, or a read that found it different), from the counter
	// version, so that readers copy only what changed (KernelEntry).
	versions map[ipvs.ServiceKey]uint64
	version  uint64
}

// NewReconciler loads the owned set from the state directory.
func NewReconciler(opts ReconcilerOptions) (*Reconciler, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = time.Minute
	}
	if opts.FullReadEvery <= 0 {
		opts.FullReadEvery = DefaultFullReadEvery
	}
	owned := map[ipvs.ServiceKey]bool{}
	if opts.StateDir != "" {
		var err error
		if owned, err = LoadOwned(opts.StateDir); err != nil {
			return nil, err
		}
	}
	return &Reconciler{
		opts:     opts,
		log:      opts.Logger,
		cache:    Table{},
		desired:  Table{},
		owned:    owned,
		retry:    map[ipvs.ServiceKey]*retryState{},
		versions: map[ipvs.ServiceKey]uint64{},
		stats:    Stats{OpsSent: map[OpKind]uint64{}, OpsFailed: map[OpKind]uint64{}},
	}, nil
}

// ReadKernel fills the cache from the kernel without writing anything:
// for lvsd plan, which only shows what it would send.
func (r *Reconciler) ReadKernel() error {
	kernel, seen, err := r.readFull()
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.replaceCacheLocked(kernel)
	r.synced, r.seen = true, seen
	r.sinceFull = 0
	return nil
}

// replaceCacheLocked puts a full read in place of the cache, bumping the
// versions of the services it finds different.
func (r *Reconciler) replaceCacheLocked(kernel Table) {
	for k, e := range r.cache {
		if !sameEntry(e, kernel[k]) {
			r.bumpLocked(k)
		}
	}
	for k := range kernel {
		if r.cache[k] == nil {
			r.bumpLocked(k)
		}
	}
	r.cache = kernel
}

func (r *Reconciler) bumpLocked(k ipvs.ServiceKey) {
	r.version++
	r.versions[k] = r.version
}

// SetDesired replaces the desired table (a config load or reload) and
// applies the difference against the cache. Call Resync first so the
// cache holds the kernel.
func (r *Reconciler) SetDesired(now time.Time, desired Table) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.desired, r.haveDesired = desired.Clone(), true
	res := r.applyLocked(now, Diff(r.desired, r.cache, r.owned))
	// Owned: what is desired, plus what is still in the kernel from an
	// earlier ownership (a removal that failed is retried).
	for k := range r.desired {
		r.own(k)
	}
	for k := range r.owned {
		if r.desired[k] == nil && r.cache[k] == nil {
			r.disown(k)
		}
	}
	r.saveOwnedLocked()
	return res
}

// SetService changes one desired service (a health transition) and
// applies only that service's writes. A nil entry removes it.
func (r *Reconciler) SetService(now time.Time, k ipvs.ServiceKey, e *Entry) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e == nil {
		delete(r.desired, k)
	} else {
		r.desired[k] = &Entry{Service: e.Service, RealServers: append([]ipvs.RealServer(nil), e.RealServers...)}
	}
	return r.applyLocked(now, Plan{Ops: DiffService(r.desired[k], r.cache[k])})
}

// Plan returns the writes a desired table needs against the cache,
// without sending them.
func (r *Reconciler) Plan(desired Table) Plan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Diff(desired, r.cache, r.owned)
}

// Retry re-applies the services whose writes failed and whose backoff has
// passed. It returns when the next retry is due (zero if none).
func (r *Reconciler) Retry(now time.Time) (Result, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var plan Plan
	// In key order, as Diff writes: the same failures give the same
	// writes in the same order.
	for _, k := range slices.SortedFunc(maps.Keys(r.retry), CompareKeys) {
		st := r.retry[k]
		if now.Before(st.next) {
			continue
		}
		if !r.owned[k] && r.desired[k] == nil {
			delete(r.retry, k)
			continue
		}
		plan.Ops = append(plan.Ops, DiffService(r.desired[k], r.cache[k])...)
	}
	res := r.applyLocked(now, plan)
	return res, r.nextRetryLocked()
}

func (r *Reconciler) nextRetryLocked() time.Time {
	var next time.Time
	for _, st := range r.retry {
		if next.IsZero() || st.next.Before(next) {
			next = st.next
		}
	}
	return next
}

// Stats returns a copy of the running totals.
func (r *Reconciler) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{
		OpsSent: maps.Clone(r.stats.OpsSent), OpsFailed: maps.Clone(r.stats.OpsFailed),
		Resyncs: r.stats.Resyncs, DriftRepairs: r.stats.DriftRepairs,
		FullReads: r.stats.FullReads, ServicesReread: r.stats.ServicesReread,
	}
}

// Owned returns the services lvsd owns.
func (r *Reconciler) Owned() map[ipvs.ServiceKey]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.owned)
}

// Kernel returns lvsd's copy of the kernel's table. It copies the whole
// table: to follow a large table, use KernelVersions and KernelEntry.
func (r *Reconciler) Kernel() Table {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cache.Clone()
}

// KernelVersions fills out[i] with the version of keys[i]'s entry in
// lvsd's copy of the kernel: it changes whenever the entry does (0: never
// seen). It appends to out[:0] and returns it.
func (r *Reconciler) KernelVersions(keys []ipvs.ServiceKey, out []uint64) []uint64 {
	out = out[:0]
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		out = append(out, r.versions[k])
	}
	return out
}

// KernelEntry returns a copy of one service in lvsd's copy of the
// kernel (nil when absent) and its version.
func (r *Reconciler) KernelEntry(k ipvs.ServiceKey) (*Entry, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.cache[k]
	if e != nil {
		e = &Entry{Service: e.Service, RealServers: slices.Clone(e.RealServers)}
	}
	return e, r.versions[k]
}

// applyLocked sends a plan, records failures for retry, re-reads the
// services whose writes failed (the cache was wrong about them), and
// updates the ownership of the services the plan touched. Its cost is in
// the size of the plan, not of the table: a health transition in a table
// of 10,000 services touches one.
func (r *Reconciler) applyLocked(now time.Time, plan Plan) Result {
	res := Result{Unowned: plan.Unowned}
	// A service lvsd is about to write is owned before the first write,
	// so a crash halfway leaves it owned and the restart finishes the job.
	for _, op := range plan.Ops {
		r.own(op.Service.ServiceKey)
	}
	r.saveOwnedLocked()

	failures := Apply(r.opts.Client, plan.Ops, r.cache)
	for _, op := range plan.Ops {
		r.bumpLocked(op.Service.ServiceKey)
	}
	failedKeys := map[ipvs.ServiceKey]bool{}
	for _, f := range failures {
		failedKeys[f.Op.Service.ServiceKey] = true
		r.stats.OpsFailed[f.Op.Kind]++
		if f.Err != ErrSkipped {
			r.log.Error("IPVS write failed", "op", f.Op.Kind.String(), "service", f.Op.Service.ServiceKey.String(),
				"rs", f.Op.RealServerString(), "err", f.Err)
		}
	}
	for _, op := range plan.Ops {
		k := op.Service.ServiceKey
		if failedKeys[k] {
			continue
		}
		res.Sent = append(res.Sent, op)
		r.stats.OpsSent[op.Kind]++
		delete(r.retry, k)
	}
	for k := range failedKeys {
		e, err := readEntry(r.opts.Client, k)
		if err != nil {
			r.log.Error("re-reading a service after a failed write", "service", k.String(), "err", err)
		} else if e == nil {
			delete(r.cache, k)
		} else {
			r.cache[k] = e
		}
		st := r.retry[k]
		if st == nil {
			st = &retryState{}
			r.retry[k] = st
		}
		backoff := min(r.opts.RetryMin<<min(st.attempt, 16), r.opts.RetryMax)
		st.attempt++
		st.next = now.Add(backoff)
	}
	res.Failures = failures

	// A service removed from both the desired table and the kernel is
	// no longer owned.
	for _, op := range plan.Ops {
		if k := op.Service.ServiceKey; r.desired[k] == nil && r.cache[k] == nil {
			r.disown(k)
		}
	}
	r.saveOwnedLocked()
	return res
}

func (r *Reconciler) own(k ipvs.ServiceKey) {
	if !r.owned[k] {
		r.owned[k], r.ownedDirty = true, true
	}
}

func (r *Reconciler) disown(k ipvs.ServiceKey) {
	if r.owned[k] {
		delete(r.owned, k)
		r.ownedDirty = true
	}
}

func (r *Reconciler) saveOwnedLocked() {
	if r.opts.StateDir == "" || !r.ownedDirty {
		return
	}
	if err := SaveOwned(r.opts.StateDir, r.owned); err != nil {
		r.log.Error("saving the owned-services state", "err", err)
		return
	}
	r.ownedDirty = false
}

// RealServerString names the op's real server; empty for a service op.
func (op Op) RealServerString() string {
	if op.Kind < AddRealServer {
		return ""
	}
	return op.RealServer.Key().String()
}

func sameEntry(a, b *Entry) bool {
	if a == nil || b == nil {
		return a == b
	}
	if !sameService(a.Service, b.Service) || len(a.RealServers) != len(b.RealServers) {
		return false
	}
	bs := make(map[ipvs.RealServerKey]ipvs.RealServer, len(b.RealServers))
	for _, r := range b.RealServers {
		bs[r.Key()] = r
	}
	for _, r := range a.RealServers {
		o, ok := bs[r.Key()]
		if !ok || !sameRealServer(r, o) {
			return false
		}
	}
	return true
}
