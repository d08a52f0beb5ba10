package director

// What a service's status shows of its real servers: built from the
// config (the rows, made once per config load), the health scheduler's
// states and the reconciler's copy of the kernel (the weights).

import (
	"slices"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/reconcile"
)

// buildServiceStatus builds one service's status from the config, the
// health scheduler and the reconciler's copy of the kernel, with the
// health target ID of each of its real servers.
func (d *Daemon) buildServiceStatus(k ipvs.ServiceKey, ke *reconcile.Entry) (ss ServiceStatus, ids []string) {
	ds := d.desired[k]
	ss = ServiceStatus{Key: k.String(), Name: ds.Name, Source: ds.Source, Scheduler: ds.Service.Scheduler, InKernel: ke != nil}
	sr := d.serviceRows(k, ds)
	if ds.Quorum != nil {
		ss.Quorum = map[bool]string{true: "up", false: "down"}[d.quorum[k]]
	}
	kw := kernelWeights(ke, sr.keys, d.status.weights)
	d.status.weights = kw
	ss.RealServers = slices.Clone(sr.rows)
	for i := range ss.RealServers {
		rs, id := &ss.RealServers[i], sr.ids[i]
		down := d.states[id] == health.StateDown // downs has a why for each
		if !down {                               // as reconcile.UpWeight with d.up
			ss.UpWeight += int(rs.Weight)
		}
		rs.KernelWeight = kw[i]
		if c, ok := d.status.lookup(id); ok {
			if down {
				rs.Why = d.downs[id]
			}
			setChecks(rs, c)
		}
	}
	if ds.SorryServer != nil && kernelWeight(ke, ds.SorryServer.Key()) >= 0 {
		ss.SorryServer = ds.SorryServer.Key().String()
	}
	return ss, sr.ids
}

// serviceRows returns what k's status says of its real servers as ds,
// k's config, has them, made at its first use after a config load.
func (d *Daemon) serviceRows(k ipvs.ServiceKey, ds config.DesiredService) *serviceRows {
	if sr, ok := d.status.rows[k]; ok {
		return sr
	}
	sr := &serviceRows{}
	for _, r := range ds.RealServers {
		sr.rows = append(sr.rows, RealServerStatus{
			Address: r.Key().String(), Forwarding: r.Forwarding.String(), Weight: r.Weight,
			Health: "up", Check: describeCheck(r.HealthCheck, r.CheckTarget),
		})
		sr.keys = append(sr.keys, r.Key())
		sr.ids = append(sr.ids, targetID(ds.HealthKey(), r.Key()))
	}
	if d.status.rows == nil {
		d.status.rows = map[ipvs.ServiceKey]*serviceRows{}
	}
	d.status.rows[k] = sr
	return sr
}

// setChecks sets what rs shows of its health target's checks as c has
// them: its state and since when, its last result, and its Why (the
// loop's, kept only while the target is down).
func setChecks(rs *RealServerStatus, c health.Status) {
	rs.Health, rs.Since = c.State.String(), c.Since
	if c.Checked {
		rs.LastResult, rs.LastCheck = c.Last.Reason, c.Last.Time
	}
	if c.State != health.StateDown {
		rs.Why = ""
	}
}

// kernelWeights returns the weight the kernel has for each of keys, in
// buf, -1 for one it does not have. The kernel's copy of a service that
// lvsd wrote lists its real servers in the config's order, without
// those removed: one walk along both finds every weight. Where the
// kernel's order differs (a drifted service read back), each is looked
// up in a map: one search of the list per real server made rebuilding a
// service of 1,000 real servers quadratic (8.6 ms, 80% of it the
// searches).
func kernelWeights(e *reconcile.Entry, keys []ipvs.RealServerKey, buf []int32) []int32 {
	buf = slices.Grow(buf[:0], len(keys))[:len(keys)]
	if e == nil {
		for i := range buf {
			buf[i] = -1
		}
		return buf
	}
	j := 0
	for i, rk := range keys {
		buf[i] = -1
		if j < len(e.RealServers) && e.RealServers[j].Key() == rk {
			buf[i] = e.RealServers[j].Weight
			j++
		}
	}
	if j == len(e.RealServers) {
		return buf // every one in the kernel was found in order: the others are not there
	}
	m := make(map[ipvs.RealServerKey]int32, len(e.RealServers))
	for _, r := range e.RealServers {
		m[r.Key()] = r.Weight
	}
	for i, rk := range keys {
		if w, ok := m[rk]; ok {
			buf[i] = w
		} else {
			buf[i] = -1
		}
	}
	return buf
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
