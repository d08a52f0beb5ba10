package director

import (
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
	gen uint64
}

type cachedStatus struct {
	status ServiceStatus
	// kernel is the version of the service's kernel entry it was built
	// from (Reconciler.KernelVersions).
	kernel uint64
	// stale says its health, last check or quorum changed since.
	stale bool
	// json is status encoded for the status API, made at the first
	// request that needs it and never modified; gen numbers it.
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

// encodedServicesLocked is serviceStatusesLocked encoded for the status
// API: only services rebuilt since the last request are encoded.
func (d *Daemon) encodedServicesLocked() ([]statusapi.EncodedService, error) {
	entries := d.refreshStatusLocked()
	out := make([]statusapi.EncodedService, 0, len(entries))
	for _, e := range entries {
		if e.json == nil {
			b, err := statusapi.EncodeService(e.status)
			if err != nil {
				return nil, err
			}
			d.status.gen++
			e.json, e.gen = b, d.status.gen
		}
		out = append(out, statusapi.EncodedService{Key: e.status.Key, JSON: e.json, Gen: e.gen})
	}
	return out, nil
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
	defer d.mu.Unlock()
	services, err := d.encodedServicesLocked()
	if err != nil {
		return statusapi.Encoded{}, err
	}
	return statusapi.Encoded{Status: d.statusHeadLocked(vrrpStatus, bgpStatus), Services: services}, nil
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
