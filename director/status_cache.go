package director

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lvskit/lvskit/director/bgp"
	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
)

// The daemon's loop owns its state; other goroutines (the status API,
// the health scheduler's result callback, the drills, a stop request's
// BGP withdrawal) read what the loop last published: an immutable
// snapshot behind an atomic pointer. The loop publishes after each event
// that may have changed something, so a reader never waits for the loop
// and never sees a half-applied change.

// snapshot is the daemon's state as its loop last published it. Nothing
// in it is modified once published; the next one shares what did not
// change (the services' statuses, their encodings, the spans of joined
// JSON).
type snapshot struct {
	cfg       *config.Config
	loaded    time.Time
	reloadErr string
	unowned   []string
	// services are every configured service's status, in config order.
	services []*cachedStatus
	// spans are services cut into runs of statusSpanSize, in order: the
	// status API writes each run's JSON, joined once, rather than each
	// service's.
	spans []*statusSpan
	// targets are the health targets by ID, for the scheduler's result
	// callback.
	targets map[string]targetRef
	// bgpVIPs are the addresses announced over BGP with their services'
	// health (Master not set: the caller adds VRRP's view).
	bgpVIPs []bgp.VIP
}

// cachedStatus is one service's status as built by the loop, shared by
// every snapshot until the service changes.
type cachedStatus struct {
	status ServiceStatus
	// kernel is the version of the service's kernel entry it was built
	// from (Reconciler.KernelVersions).
	kernel uint64
	// ids are the health target IDs of status.RealServers, in order.
	ids []string
	// results counts the service's check results as they come (the
	// scheduler's callback adds to it); built is its count when the
	// loop built status. A reader that finds more brings the real
	// servers' last checks in from the scheduler (withChecks).
	results *atomic.Uint64
	built   uint64
	// encoded is status encoded for the status API with the checks of
	// its results count, made at the first request that needs it
	// (encoding 10,000 services after a reload takes a while, and the
	// loop must not wait for it), replaced by a request that finds
	// newer results, never modified.
	encoded atomic.Pointer[encodedStatus]
}

type encodedStatus struct {
	json    []byte
	gen     uint64
	results uint64
}

// resultsNow is how many check results e's service has had.
func (e *cachedStatus) resultsNow() uint64 { return e.results.Load() }

// current is e's status with its real servers' checks as the scheduler
// has them now, if results came since the loop built it.
func (e *cachedStatus) current(lookup func(id string) (health.Status, bool)) ServiceStatus {
	if e.resultsNow() == e.built {
		return e.status
	}
	st := e.status
	st.RealServers = slices.Clone(st.RealServers)
	for i, id := range e.ids {
		if c, ok := lookup(id); ok {
			setChecks(&st.RealServers[i], c)
		}
	}
	return st
}

// statusSpanSize is how many services a span joins: about 64 KB of
// JSON at a kilobyte a service, so that a flap re-joins 64 KB and a
// request of 10,000 services writes about 160 pieces.
const statusSpanSize = 64

// eagerEncodeLimit is how many rebuilt services publish encodes (and
// joins into their spans) itself: a flap's few cost the loop little and
// spare the next request; a reload's thousands are left to the request
// that first needs them, so that the loop does not wait on them.
const eagerEncodeLimit = 256

// statusSpan is a run of consecutive services whose JSON a request
// joins once (with the commas between them) and every later request
// shares, until one of them changes and the loop makes a new span.
type statusSpan struct {
	services []*cachedStatus
	joined   atomic.Pointer[encodedSpan]
}

type encodedSpan struct {
	json     []byte
	gen      uint64
	services []statusapi.EncodedService
}

// statusCache is the loop's own bookkeeping for the next snapshot.
type statusCache struct {
	// list is the services' statuses in the daemon's config order (the
	// published snapshot's: never modified in place, replaced when one
	// changes); spans likewise.
	list  []*cachedStatus
	spans []*statusSpan
	// stale are the services whose health, last check, quorum or entry
	// in the kernel (a write) changed since their status was built.
	stale map[ipvs.ServiceKey]bool
	// kernelAll says the reconciler may have changed its copy of any
	// service (a resync, a new config): publish compares every version.
	kernelAll bool
	// versions is scratch space for the reconciler's versions.
	versions []uint64
	// gen numbers the encodings: each new one gets the next (it is not
	// reset with the entries, so a reload changes every ETag). Requests
	// add to it, from any goroutine.
	gen atomic.Uint64
	// lookup is the health scheduler's Lookup: what a request reads of
	// the checks that came after the loop built a status.
	lookup func(id string) (health.Status, bool)
	// rows are each service's real servers as far as the config says
	// them, made at the service's first use after a config load (which
	// forgets them: forgetConfig).
	rows map[ipvs.ServiceKey]*serviceRows
	// weights is scratch space for a service's kernel weights.
	weights []int32
}

// serviceRows is what a service's status says of its real servers that
// only a config load changes: their rows with address, forwarding,
// weight and check described (Health "up", as an unchecked one shows),
// their keys and their health target IDs. A transition rebuilds its
// service from these instead of formatting every real server's strings
// again (a service of 1,000 did, on each of a failing rack's 1,000
// transitions). Never modified once made: ids is shared with the
// statuses built from it.
type serviceRows struct {
	rows []RealServerStatus
	keys []ipvs.RealServerKey
	ids  []string
}

// reset forgets every service (a config load, new health targets).
func (c *statusCache) reset() { c.list, c.spans, c.kernelAll = nil, nil, true }

// forgetConfig forgets what was made of the config (a config load).
func (c *statusCache) forgetConfig() {
	c.reset()
	c.rows = nil
}

// invalidate marks services to be rebuilt at the next publish.
func (c *statusCache) invalidate(keys []ipvs.ServiceKey) {
	if c.stale == nil {
		c.stale = map[ipvs.ServiceKey]bool{}
	}
	for _, k := range keys {
		c.stale[k] = true
	}
}

// snapshot returns what the loop last published.
func (d *Daemon) snapshot() *snapshot { return d.snap.Load() }

// publish makes the loop's state the snapshot readers see, rebuilding
// only the services that changed since the last one. Only the loop (or,
// before Run, the goroutine that owns the daemon) calls it.
func (d *Daemon) publish() { d.publishWith(publishOptions{}) }

type publishOptions struct {
	// EncodeLater leaves the encoding of a few rebuilt services to the
	// request that first needs it, as for a reload's thousands: for a
	// snapshot the loop replaces a moment later (the health a
	// transition shows before its write), whose encoding no request
	// would likely read.
	EncodeLater bool
}

// publishWith is publish with opts.
func (d *Daemon) publishWith(opts publishOptions) {
	c := &d.status
	if len(c.list) != len(d.order) {
		c.list, c.spans = make([]*cachedStatus, len(d.order)), nil
		c.kernelAll = true
	}
	list, shared := c.list, c.spans != nil // shared: a published snapshot holds list
	changed := map[int]bool{}              // spans with a rebuilt service
	rebuilt := 0
	rebuild := func(i int, k ipvs.ServiceKey) {
		if shared {
			list, shared = append([]*cachedStatus(nil), list...), false // the published one stays as it is
		}
		ke, v := d.rec.KernelEntry(k)
		n := d.resultCounter(k)
		built := n.Load() // before reading the scheduler: a result meanwhile makes it stale
		st, ids := d.buildServiceStatus(k, ke)
		list[i] = &cachedStatus{status: st, kernel: v, ids: ids, results: n, built: built}
		changed[i/statusSpanSize] = true
		rebuilt++
	}
	if c.kernelAll {
		c.versions = d.rec.KernelVersions(d.order, c.versions)
		for i, k := range d.order {
			if e := list[i]; e == nil || e.kernel != c.versions[i] || c.stale[k] {
				rebuild(i, k)
			}
		}
	} else {
		for k := range c.stale { // a flap's few, not a pass over 10,000
			if i, ok := d.index[k]; ok {
				rebuild(i, k)
			}
		}
	}
	clear(c.stale)
	c.kernelAll = false
	spans := c.spans
	if spans == nil {
		spans = make([]*statusSpan, 0, (len(list)+statusSpanSize-1)/statusSpanSize)
		for i := 0; i < len(list); i += statusSpanSize {
			spans = append(spans, &statusSpan{services: list[i:min(i+statusSpanSize, len(list))]})
		}
	} else if len(changed) > 0 {
		spans = append([]*statusSpan(nil), spans...)
		for s := range changed {
			i := s * statusSpanSize
			spans[s] = &statusSpan{services: list[i:min(i+statusSpanSize, len(list))]}
		}
	}
	c.list, c.spans = list, spans
	if rebuilt <= eagerEncodeLimit && !opts.EncodeLater {
		for s := range changed {
			c.join(spans[s]) // an error is the request's to report
		}
	}
	snap := &snapshot{cfg: d.cfg, loaded: d.loaded, unowned: d.unownedKeys, services: list, spans: spans, targets: d.targets, bgpVIPs: d.bgpVIPs()}
	if d.reloadErr != nil {
		snap.reloadErr = d.reloadErr.Error()
	}
	d.snap.Store(snap)
}

// Status returns a snapshot for the status API, as the daemon's loop
// last published it, with each real server's last check as the health
// scheduler has it now. It does not copy the whole table per request:
// each service's status is kept as last built and rebuilt (by the loop)
// only when its health, its quorum, its config or its entry in the
// kernel changed; a service whose real servers were checked since is
// brought up to date with the scheduler's last results.
func (d *Daemon) Status() Status {
	snap := d.snapshot()
	st := d.statusHead(snap)
	st.Events = d.timeline.Events()
	st.Services = make([]ServiceStatus, 0, len(snap.services))
	for _, e := range snap.services {
		st.Services = append(st.Services, e.current(d.status.lookup))
	}
	return st
}

// EncodedStatus is Status for the status API: each service comes as
// JSON, encoded once when it changed and shared by every request after,
// and runs of services come joined, so that a request at 10,000
// services encodes only the services that changed and the rest
// (timeline, VRRP, BGP). It takes no lock the daemon's loop holds.
func (d *Daemon) EncodedStatus() (statusapi.Encoded, error) {
	snap := d.snapshot()
	e := statusapi.Encoded{Status: d.statusHead(snap), Spans: make([]statusapi.EncodedSpan, 0, len(snap.spans))}
	e.Status.Events, e.EventsJSON = d.timeline.EncodedEvents()
	for _, sp := range snap.spans {
		j, err := d.status.join(sp)
		if err != nil {
			return statusapi.Encoded{}, err
		}
		e.Spans = append(e.Spans, statusapi.EncodedSpan{JSON: j.json, Gen: j.gen, Services: j.services})
	}
	return e, nil
}

// encode returns e's encoding with its service's checks as of now,
// made now if no request made it for these results yet. Two requests
// may both encode a service; the one with the newer results is kept
// (of two with the same, the first stored), and a request serves what
// it made or a newer one.
func (c *statusCache) encode(e *cachedStatus) (*encodedStatus, error) {
	r := e.resultsNow() // before reading the scheduler, as in publish
	old := e.encoded.Load()
	if old != nil && old.results == r {
		return old, nil
	}
	var st ServiceStatus
	if r == e.built {
		st = e.status
	} else {
		st = e.current(c.lookup)
	}
	b, err := statusapi.EncodeService(st)
	if err != nil {
		return nil, err
	}
	enc := &encodedStatus{json: b, gen: c.gen.Add(1), results: r}
	for !e.encoded.CompareAndSwap(old, enc) {
		if old = e.encoded.Load(); old != nil && old.results >= r {
			return old, nil
		}
	}
	return enc, nil
}

// fresh says whether j, sp's joined encoding, is of its services'
// encodings as of their results now: no service was checked since.
func (sp *statusSpan) fresh(j *encodedSpan) bool {
	for i, s := range sp.services {
		enc := s.encoded.Load()
		if enc == nil || enc.results != s.resultsNow() || enc.gen != j.services[i].Gen {
			return false
		}
	}
	return true
}

// join returns sp's services joined with commas, as of their checks
// now: made again from their encodings if one of them was checked since
// the last join (or none was made yet).
func (c *statusCache) join(sp *statusSpan) (*encodedSpan, error) {
	old := sp.joined.Load()
	if old != nil && sp.fresh(old) {
		return old, nil
	}
	services := make([]statusapi.EncodedService, len(sp.services))
	n := len(services)
	for i, s := range sp.services {
		enc, err := c.encode(s)
		if err != nil {
			return nil, err
		}
		services[i] = statusapi.EncodedService{Key: s.status.Key, JSON: enc.json, Gen: enc.gen}
		n += len(enc.json)
	}
	b := make([]byte, 0, n)
	for i, s := range services {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, s.JSON...)
	}
	j := &encodedSpan{json: b, gen: c.gen.Add(1), services: services}
	sp.joined.CompareAndSwap(old, j) // if another request stored one meanwhile, the next checks that one
	return j, nil
}

// statusHead is the Status without its services and events: snap's
// part, and VRRP and BGP as their owners have them now.
func (d *Daemon) statusHead(snap *snapshot) Status {
	return Status{
		Config: d.opts.ConfigPath, Loaded: snap.loaded, LastReloadError: snap.reloadErr, Unowned: snap.unowned,
		VRRP: d.vrrpStatus(), BGP: d.bgpStatus(),
	}
}

// bgpKeys are the services announced over BGP, in config order; set with
// the config.
func bgpKeys(order []ipvs.ServiceKey, desired map[ipvs.ServiceKey]config.DesiredService) []ipvs.ServiceKey {
	var keys []ipvs.ServiceKey
	for _, k := range order {
		if desired[k].Announce.OverBGP() && k.Address != (netip.Addr{}) {
			keys = append(keys, k)
		}
	}
	return keys
}
