package director

import (
	"slices"
	"sync/atomic"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
)

// statusCache keeps each service's ServiceStatus as last built for the
// status API, so that a request in a table of 10,000 services rebuilds
// only those that changed rather than copying the kernel table and every
// health status. A cached status is never modified: a request shares its
// RealServers slice with the cache and with other requests. The daemon's
// mu guards it.
type statusCache struct {
	entries map[ipvs.ServiceKey]*cachedStatus
	// list is entries in the daemon's config order (d.order, which
	// changes only with a reset), walked by each request without
	// hashing 10,000 keys.
	list []*cachedStatus
	// versions is scratch space for the reconciler's versions.
	versions []uint64
	// gen numbers the encodings: each new one gets the next (it is not
	// reset with the entries, so a reload changes every ETag).
	gen atomic.Uint64
}

type cachedStatus struct {
	status ServiceStatus
	// kernel is the version of the service's kernel entry it was built
	// from (Reconciler.KernelVersions).
	kernel uint64
	// stale says its health, last check or quorum changed since.
	stale bool
	// encoded is status encoded for the status API, made at the first
	// request that needs it, outside the daemon's mu (encoding 10,000
	// services after a reload takes a while, and the daemon's loop must
	// not wait for it), and never modified.
	encoded atomic.Pointer[encodedStatus]
}

type encodedStatus struct {
	json []byte
	gen  uint64
}

// reset forgets every service (a config load).
func (c *statusCache) reset() { c.entries, c.list = nil, nil }

// invalidate marks services to be rebuilt at the next request.
func (c *statusCache) invalidate(keys []ipvs.ServiceKey) {
	for _, k := range keys {
		if e := c.entries[k]; e != nil {
			e.stale = true
		}
	}
}

// serviceStatusesLocked returns every configured service's status in
// config order, rebuilding only those that changed.
func (d *Daemon) serviceStatusesLocked() []ServiceStatus {
	out := make([]ServiceStatus, 0, len(d.order))
	for _, e := range d.refreshStatusLocked() {
		out = append(out, e.status)
	}
	return out
}

// refreshStatusLocked rebuilds the cached statuses that changed and
// returns every configured service's entry in config order (the cache's
// own list: use it under d.mu only).
func (d *Daemon) refreshStatusLocked() []*cachedStatus {
	c := &d.status
	if c.entries == nil || len(c.list) != len(d.order) {
		c.entries = make(map[ipvs.ServiceKey]*cachedStatus, len(d.order))
		c.list = make([]*cachedStatus, len(d.order))
	}
	c.versions = d.rec.KernelVersions(d.order, c.versions)
	for i, k := range d.order {
		e := c.list[i]
		if e == nil || e.stale || e.kernel != c.versions[i] {
			ke, v := d.rec.KernelEntry(k)
			e = &cachedStatus{status: d.buildServiceStatusLocked(k, ke), kernel: v}
			c.entries[k], c.list[i] = e, e
		}
	}
	return c.list
}

// EncodedStatus is Status for the status API: each service comes as
// JSON, encoded once when it changed and shared by every request after,
// so that a request at 10,000 services encodes only the services that
// changed and the rest (timeline, VRRP, BGP).
func (d *Daemon) EncodedStatus() (statusapi.Encoded, error) {
	vrrpStatus := d.vrrpStatus()
	bgpStatus := d.bgpStatus()
	d.mu.Lock()
	entries := slices.Clone(d.refreshStatusLocked())
	head := d.statusHeadLocked(vrrpStatus, bgpStatus)
	d.mu.Unlock()
	services := make([]statusapi.EncodedService, 0, len(entries))
	for _, e := range entries {
		enc, err := d.status.encode(e)
		if err != nil {
			return statusapi.Encoded{}, err
		}
		services = append(services, statusapi.EncodedService{Key: e.status.Key, JSON: enc.json, Gen: enc.gen})
	}
	return statusapi.Encoded{Status: head, Services: services}, nil
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

// statusHeadLocked is the Status without its services.
func (d *Daemon) statusHeadLocked(vrrp []VRRPStatus, bgp *statusapi.BGPStatus) Status {
	st := Status{Config: d.opts.ConfigPath, Loaded: d.loaded, Events: d.timeline.Events(), VRRP: vrrp, BGP: bgp}
	if d.reloadErr != nil {
		st.LastReloadError = d.reloadErr.Error()
	}
	for _, k := range d.unowned {
		st.Unowned = append(st.Unowned, k.String())
	}
	return st
}
