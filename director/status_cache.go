package director

import "github.com/lvskit/lvskit/director/ipvs"

// statusCache keeps each service's ServiceStatus as last built for the
// status API, so that a request in a table of 10,000 services rebuilds
// only those that changed rather than copying the kernel table and every
// health status. A cached status is never modified: a request shares its
// RealServers slice with the cache and with other requests. The daemon's
// mu guards it.
type statusCache struct {
	entries map[ipvs.ServiceKey]*cachedStatus
	// versions is scratch space for the reconciler's versions.
	versions []uint64
}

type cachedStatus struct {
	status ServiceStatus
	// kernel is the version of the service's kernel entry it was built
	// from (Reconciler.KernelVersions).
	kernel uint64
	// stale says its health, last check or quorum changed since.
	stale bool
}

// reset forgets every service (a config load).
func (c *statusCache) reset() { c.entries = nil }

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
	c := &d.status
	if c.entries == nil {
		c.entries = make(map[ipvs.ServiceKey]*cachedStatus, len(d.order))
	}
	c.versions = d.rec.KernelVersions(d.order, c.versions)
	out := make([]ServiceStatus, 0, len(d.order))
	for i, k := range d.order {
		e := c.entries[k]
		if e == nil || e.stale || e.kernel != c.versions[i] {
			ke, v := d.rec.KernelEntry(k)
			e = &cachedStatus{status: d.buildServiceStatusLocked(k, ke), kernel: v}
			c.entries[k] = e
		}
		out = append(out, e.status)
	}
	return out
}
