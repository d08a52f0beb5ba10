package director

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/lvskit/lvskit/director/bgp"
	"github.com/lvskit/lvskit/director/config"
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
	// encoded is status encoded for the status API, made at the first
	// request that needs it (encoding 10,000 services after a reload
	// takes a while, and the loop must not wait for it), and never
	// modified after.
	encoded atomic.Pointer[encodedStatus]
}

type encodedStatus struct {
	json []byte
	gen  uint64
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
}

// reset forgets every service (a config load, new health targets).
func (c *statusCache) reset() { c.list, c.spans, c.kernelAll = nil, nil, true }

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
func (d *Daemon) publish() {
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
		list[i] = &cachedStatus{status: d.buildServiceStatus(k, ke), kernel: v}
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
	if rebuilt <= eagerEncodeLimit {
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
// last published it. It does not copy the whole table per request: each
// service's status is kept as last built and rebuilt (by the loop) only
// when its health, its last check, its quorum, its config or its entry
// in the kernel changed.
func (d *Daemon) Status() Status {
	snap := d.snapshot()
	st := d.statusHead(snap)
	st.Events = d.timeline.Events()
	st.Services = make([]ServiceStatus, 0, len(snap.services))
	for _, e := range snap.services {
		st.Services = append(st.Services, e.status)
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

// encode returns e's encoding, made now if no request made it yet. Two
// requests may both encode a service; the first to store its encoding
// wins, and both serve that one.
func (c *statusCache) encode(e *cachedStatus) (*encodedStatus, error) {
	if enc := e.encoded.Load(); enc != nil {
		return enc, nil
	}
	b, err := statusapi.EncodeService(e.status)
	if err != nil {
		return nil, err
	}
	enc := &encodedStatus{json: b, gen: c.gen.Add(1)}
	if !e.encoded.CompareAndSwap(nil, enc) {
		enc = e.encoded.Load()
	}
	return enc, nil
}

// join returns sp's services joined with commas, made now from their
// encodings if no request made it yet; like encode, the first to store
// it wins.
func (c *statusCache) join(sp *statusSpan) (*encodedSpan, error) {
	if j := sp.joined.Load(); j != nil {
		return j, nil
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
	if !sp.joined.CompareAndSwap(nil, j) {
		j = sp.joined.Load()
	}
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
