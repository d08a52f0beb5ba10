package director

// Health results into weights: a transition marks the services of its
// real server dirty, and the loop expands only those again (quiescing or
// removing a real server that is down), running the quorum commands when
// a service's up weight crosses its quorum.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/reconcile"
)

// up says whether a real server takes traffic: unchecked or not yet
// checked counts as up (keepalived's default), down only after fall
// failures. Its callers ask for the service's real servers in config
// order, one pass or more: each is found at the next place of the
// service's rows, whose target IDs are made once per config, and one
// asked out of order has its ID made.
func (d *Daemon) up(k ipvs.ServiceKey) func(ipvs.RealServerKey) bool {
	ds, ok := d.desired[k]
	if !ok {
		return func(rk ipvs.RealServerKey) bool {
			return d.states[targetID(k, rk)] != health.StateDown
		}
	}
	sr, next := d.serviceRows(k, ds), 0
	return func(rk ipvs.RealServerKey) bool {
		var id string
		if next < len(sr.keys) && sr.keys[next] == rk {
			id = sr.ids[next]
			next = (next + 1) % len(sr.keys)
		} else {
			id = targetID(ds.HealthKey(), rk) // a group's services share their checks
		}
		return d.states[id] != health.StateDown
	}
}

func (d *Daemon) expand(k ipvs.ServiceKey) *reconcile.Entry {
	ds := d.desired[k]
	up := d.up(k)
	d.checkQuorum(ds, up)
	return reconcile.Expand(ds, up)
}

func (d *Daemon) checkQuorum(ds config.DesiredService, up func(ipvs.RealServerKey) bool) {
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
	// results are services' check result counters, in the same order.
	results []*atomic.Uint64
	// The metrics' labels of service and rs, made once rather than for
	// every check result.
	serviceLabel, rsLabel string
}

func newTargetRef(k ipvs.ServiceKey, rk ipvs.RealServerKey) targetRef {
	return targetRef{service: k, rs: rk, serviceLabel: k.String(), rsLabel: rk.String()}
}

func (d *Daemon) onTransition(tr health.Transition) {
	ref, found := d.targets[tr.Target]
	if found && tr.Time.Before(d.stateAt[tr.Target]) {
		// Delivered after a later transition of the same target (the
		// scheduler publishes outside its lock): the later one stands.
		d.log.Debug("ignoring a health transition older than the target's state", "target", tr.Target, "from", tr.From, "to", tr.To, "at", tr.Time)
		return
	}
	if found {
		d.states[tr.Target] = tr.To
		d.stateAt[tr.Target] = tr.Time
		if tr.To == health.StateDown {
			// "2 of 2 failures: HTTP 503 from 10.0.0.2:80 at 12:00:03",
			// made once, not at each rebuild of the status
			d.downs[tr.Target] = tr.Reason + " at " + tr.Time.Format("15:04:05")
		} else {
			delete(d.downs, tr.Target)
		}
		for _, k := range ref.services {
			d.dirty[k] = true
		}
		d.status.invalidate(ref.services)
		d.opts.Metrics.SetHealth(ref.service.String(), ref.rs.String(), tr.To)
	}
	if !found {
		return // a target a reload just removed
	}
	d.log.Info("real server "+tr.To.String(), "service", ref.service.String(), "rs", ref.rs.String(), "reason", tr.Reason)
	d.event("check", ref.service.String(), ref.rs.String(), fmt.Sprintf("%v -> %v: %s", tr.From, tr.To, tr.Reason))
}

// applyDirty re-expands the services whose health changed and writes only
// their differences.
func (d *Daemon) applyDirty() {
	keys := slices.SortedFunc(maps.Keys(d.dirty), reconcile.CompareKeys)
	clear(d.dirty)
	entries := make([]*reconcile.Entry, len(keys))
	for i, k := range keys {
		if _, ok := d.desired[k]; ok {
			entries[i] = d.expand(k)
		}
	}
	for i, k := range keys {
		if entries[i] != nil {
			d.report(d.rec.SetService(d.now(), k, entries[i]))
		}
	}
}
