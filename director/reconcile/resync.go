package reconcile

import (
	"net/netip"

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
