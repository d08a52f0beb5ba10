package reconcile

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
)

// DefaultFullReadEvery is how often a resync reads the whole table over
// netlink: every tenth (every 5 minutes at the default resync_interval
// of 30s). The others read /proc/net/ip_vs and ask netlink only about the
// services whose lines changed.
const DefaultFullReadEvery = 10

// What /proc/net/ip_vs cannot show, and so only a full read finds when
// it changes behind lvsd's back: real servers' thresholds and tunnel
// settings, service flags other than persistent and one-packet (the
// scheduler flags), the one-packet flag of an IPv6 service, the
// persistence engine, a persistence timeout change smaller than a jiffy,
// and the family of a fwmark service without real servers.

// procKey is a service's identity as /proc/net/ip_vs shows it: the file
// does not print a fwmark service's family, so fwmark services are known
// by their mark alone.
type procKey struct {
	fwmark   uint32
	protocol ipvs.Protocol
	address  netip.Addr
	port     uint16
}

func procKeyOf(k ipvs.ServiceKey) procKey {
	if k.IsFWMark() {
		return procKey{fwmark: k.FWMark}
	}
	return procKey{protocol: k.Protocol, address: k.Address.Unmap(), port: k.Port}
}

// procLines is what the last resync saw in /proc/net/ip_vs, by service.
// Keys that two services share (two families of one fwmark) are left
// out: those services are read over netlink every time.
type procLines map[procKey]*ipvs.ServiceEntry

// procChanges compares a read of /proc/net/ip_vs with the lines seen at
// the last resync and the cache. It returns the cached services to read
// again over netlink (their lines changed, or vanished, or cannot be told
// apart), whether proc shows services the cache lacks (the caller then
// lists the services over netlink to learn their exact keys), and the
// lines to remember for the next resync.
func procChanges(proc ipvs.ServiceTable, seen procLines, cache Table) (reread []ipvs.ServiceKey, unknown bool, now procLines) {
	inProc := make(map[procKey]int, len(proc.Services))
	now = make(procLines, len(proc.Services))
	for i := range proc.Services {
		pk := procKeyOf(proc.Services[i].ServiceKey)
		inProc[pk]++
		now[pk] = &proc.Services[i]
	}
	inCache := make(map[procKey]int, len(cache))
	for k := range cache {
		inCache[procKeyOf(k)]++
	}
	for pk, n := range inProc {
		if n > 1 || inCache[pk] > 1 {
			delete(now, pk)
		}
		if inCache[pk] < n {
			unknown = true
		}
	}
	for k := range cache {
		pk := procKeyOf(k)
		line, last := now[pk], seen[pk]
		if line == nil || last == nil || !sameProcLine(line, last) {
			reread = append(reread, k)
		}
	}
	return reread, unknown, now
}

// sameProcLine compares what /proc/net/ip_vs shows of a service and its
// real servers, except the connection counts.
func sameProcLine(a, b *ipvs.ServiceEntry) bool {
	if a.ServiceKey != b.ServiceKey || a.Scheduler != b.Scheduler || a.Flags != b.Flags ||
		a.TimeoutJiffies != b.TimeoutJiffies || a.NetmaskBits != b.NetmaskBits ||
		len(a.RealServers) != len(b.RealServers) {
		return false
	}
	for i := range a.RealServers {
		x, y := &a.RealServers[i], &b.RealServers[i]
		if x.Address != y.Address || x.Port != y.Port || x.Forwarding != y.Forwarding || x.Weight != y.Weight {
			return false
		}
	}
	return true
}

// Resync reads the kernel back, counts owned services that drifted from
// what lvsd last wrote, and applies the difference. Before the first
// SetDesired it only reads.
//
// Most resyncs read /proc/net/ip_vs once and read over netlink only the
// services whose lines changed since the last resync (or that it cannot
// tell apart); every FullReadEvery-th reads the whole table over
// netlink, which finds what the file does not show (the list above).
func (r *Reconciler) Resync(now time.Time) (Result, error) {
	r.mu.Lock()
	full := !r.synced || r.seen == nil || r.sinceFull+1 >= r.opts.FullReadEvery
	r.mu.Unlock()
	if full {
		return r.resyncFull(now)
	}
	reread, seen, procOK, err := r.changedServices()
	if !procOK {
		return r.resyncFull(now)
	}
	if err != nil {
		return Result{}, err
	}
	entries := make([]*Entry, len(reread))
	for i, k := range reread {
		if entries[i], err = readEntry(r.opts.Client, k); err != nil {
			return Result{}, fmt.Errorf("reading IPVS service %v: %w", k, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Resyncs++
	r.stats.ServicesReread += uint64(len(reread))
	r.sinceFull++
	r.seen, r.procFailed = seen, false
	return r.repairLocked(now, reread, entries), nil
}

// changedServices reads /proc/net/ip_vs and returns the services to read
// again over netlink: those whose line changed since the last resync,
// and, when the table holds services the cache lacks, those (listed over
// netlink: only it knows a fwmark service's family). procOK is false
// when /proc cannot be read: then only a full read over netlink will do.
func (r *Reconciler) changedServices() (reread []ipvs.ServiceKey, seen procLines, procOK bool, err error) {
	proc, err := r.opts.Client.ServiceTable()
	if err != nil {
		r.mu.Lock()
		if !r.procFailed {
			r.log.Warn("reading /proc/net/ip_vs failed; resyncs read the whole table over netlink until it works", "err", err)
			r.procFailed = true
		}
		r.seen = nil
		r.mu.Unlock()
		return nil, nil, false, nil
	}
	r.mu.Lock()
	reread, unknown, seen := procChanges(proc, r.seen, r.cache)
	known := make(map[ipvs.ServiceKey]bool, len(reread))
	for _, k := range reread {
		known[k] = true
	}
	if unknown {
		for k := range r.cache {
			known[k] = true
		}
	}
	r.mu.Unlock()
	if !unknown {
		return reread, seen, true, nil
	}
	svcs, err := r.opts.Client.Services()
	if err != nil {
		return nil, nil, true, fmt.Errorf("listing the kernel's IPVS services: %w", err)
	}
	for _, s := range svcs {
		if !known[s.ServiceKey] {
			reread = append(reread, s.ServiceKey)
		}
	}
	return reread, seen, true, nil
}

// repairLocked takes the services read again into the cache, counting
// as drift every owned one that changed, and writes what differs from the
// desired table among them and the services waiting for a retry.
func (r *Reconciler) repairLocked(now time.Time, reread []ipvs.ServiceKey, entries []*Entry) Result {
	drift := 0
	for i, k := range reread {
		if r.owned[k] && !sameEntry(r.cache[k], entries[i]) {
			drift++
			r.log.Warn("IPVS service changed behind lvsd's back; repairing", "service", k.String())
		}
		if !sameEntry(r.cache[k], entries[i]) {
			r.bumpLocked(k)
		}
		if entries[i] == nil {
			delete(r.cache, k)
		} else {
			r.cache[k] = entries[i]
		}
	}
	if !r.haveDesired {
		return Result{Reread: len(reread)}
	}
	// Only the services read again can differ from what is desired:
	// every other one is as lvsd last wrote it, or waits for a retry.
	keys := slices.Clone(reread)
	for k := range r.retry {
		keys = append(keys, k)
	}
	res := r.applyLocked(now, r.diffKeysLocked(keys))
	res.Drift, res.Reread = drift, len(reread)
	r.stats.DriftRepairs += uint64(drift)
	return res
}

// diffKeysLocked is Diff(r.desired, r.cache, r.owned) restricted to
// keys, with the unowned services of the whole cache.
func (r *Reconciler) diffKeysLocked(keys []ipvs.ServiceKey) Plan {
	slices.SortFunc(keys, CompareKeys)
	keys = slices.Compact(keys)
	var plan Plan
	var removals []Op
	for _, k := range keys {
		switch {
		case r.desired[k] != nil:
			plan.Ops = appendServiceDiff(plan.Ops, r.desired[k], r.cache[k])
		case r.cache[k] != nil && r.owned[k]:
			removals = appendServiceDiff(removals, nil, r.cache[k])
		}
	}
	plan.Ops = append(plan.Ops, removals...)
	for k := range r.cache {
		if r.desired[k] == nil && !r.owned[k] {
			plan.Unowned = append(plan.Unowned, k)
		}
	}
	slices.SortFunc(plan.Unowned, CompareKeys)
	return plan
}

// resyncFull reads /proc/net/ip_vs (the lines the next resyncs compare
// with) and then the whole table over netlink.
func (r *Reconciler) resyncFull(now time.Time) (Result, error) {
	kernel, seen, err := r.readFull()
	if err != nil {
		return Result{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Resyncs++
	r.stats.FullReads++
	r.sinceFull = 0
	drift := 0
	if r.synced {
		for k := range r.owned {
			if !sameEntry(r.cache[k], kernel[k]) {
				drift++
				r.log.Warn("IPVS service changed behind lvsd's back; repairing", "service", k.String())
			}
		}
	}
	r.replaceCacheLocked(kernel)
	r.synced, r.seen = true, seen
	return r.finishResyncLocked(now, drift, Result{FullRead: true}), nil
}

func (r *Reconciler) finishResyncLocked(now time.Time, drift int, read Result) Result {
	if !r.haveDesired {
		return read
	}
	res := r.applyLocked(now, Diff(r.desired, r.cache, r.owned))
	res.Drift, res.FullRead, res.Reread = drift, read.FullRead, read.Reread
	r.stats.DriftRepairs += uint64(drift)
	return res
}

// readFull reads /proc/net/ip_vs first (nil lines when it cannot), then
// every service and real server over netlink: a change between the two
// reads shows as a changed line at the next resync.
func (r *Reconciler) readFull() (Table, procLines, error) {
	var seen procLines
	if proc, err := r.opts.Client.ServiceTable(); err == nil {
		_, _, seen = procChanges(proc, nil, nil)
	}
	kernel, err := ReadTable(r.opts.Client)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the kernel's IPVS table: %w", err)
	}
	return kernel, seen, nil
}
