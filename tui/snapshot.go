// Package tui is lvstop: a live terminal view of IPVS.
//
// The shape is source -> snapshot -> model -> render -> view. A Source
// (the local kernel, a saved /proc tree, a remote lvsd's status API)
// produces an immutable Snapshot; a Collector takes one on a ticker, off
// the UI goroutine, skipping a tick while the last collection still runs;
// a Model turns snapshots into Frames with deltas and a short history;
// pure render functions turn a Frame into rows (tested with golden
// files); the views of App apply rows only inside QueueUpdateDraw. Batch
// mode (lvstop --once) prints the same rows as text or JSON.
package tui

import (
	"net/netip"
	"slices"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
)

// Snapshot is what a Source saw at one moment. Nothing in it changes
// after Collect returns it.
type Snapshot struct {
	Taken    time.Time
	Source   string // what it was read from: "kernel", "/var/tmp/incident (saved /proc tree)", ...
	Director string // the director's host name, when known

	Info     ipvs.Info
	HaveInfo bool
	// Totals are the counters and rates of IPVS as a whole
	// (/proc/net/ip_vs_stats); HaveTotals is false when the source has none.
	Totals     ipvs.Stats
	HaveTotals bool

	Services []Service

	// The connection table, aggregated: every entry counts, templates
	// included. HaveConns is false when the source has no table (lvsd).
	HaveConns     bool
	ConnEntries   int
	ConnTemplates int
	ByState       map[ipvs.ProtocolState]int

	// Conns is one page of the connection table, filtered and sorted as
	// the ConnQuery passed to Collect asked; nil when it asked for none.
	Conns *ConnPage

	// VRRP is the state of lvsd's VRRP instances (with --lvsd).
	VRRP []statusapi.VRRPStatus
	// BGP is lvsd's BGP speaker and what it announces (with --lvsd, when
	// lvsd has a bgp section).
	BGP *statusapi.BGPStatus
	// HaveHealth is set when health and VRRP came from lvsd.
	HaveHealth bool

	// Warnings are problems that left part of the snapshot empty.
	Warnings []string
}

// Service is a virtual service with its real servers.
type Service struct {
	ipvs.Service
	// Name is lvsd's name of the service, when lvsd is the source.
	Name string
	// HasCounters is false when the source lacks the service's counters
	// and rates (/proc/net/ip_vs has none; netlink has them).
	HasCounters bool
	RealServers []RealServer
	// Unmatched counts connection-table entries of this service whose
	// real server is no longer in the table (removed while they last).
	Unmatched int
}

// RealServer is a real server with its connection states.
type RealServer struct {
	ipvs.RealServer
	// States counts the real server's connection-table entries by state,
	// templates apart.
	States    map[ipvs.ConnState]int
	Templates int
	// Health is lvsd's "up", "down" or "unknown"; empty without lvsd.
	// Why explains a real server that is out.
	Health string
	Why    string
}

// ActiveConns sums the service's real servers' ActiveConn.
func (s *Service) ActiveConns() uint64 {
	var n uint64
	for _, r := range s.RealServers {
		n += uint64(r.RealServer.ActiveConns)
	}
	return n
}

// InactiveConns sums the service's real servers' InActConn.
func (s *Service) InactiveConns() uint64 {
	var n uint64
	for _, r := range s.RealServers {
		n += uint64(r.RealServer.InactiveConns)
	}
	return n
}

// Up counts the real servers that take traffic: weight above 0 and, with
// lvsd, not down.
func (s *Service) Up() int {
	n := 0
	for _, r := range s.RealServers {
		if r.Weight > 0 && r.Health != "down" {
			n++
		}
	}
	return n
}

// FindService returns the service with the key, or nil.
func (s *Snapshot) FindService(key ipvs.ServiceKey) *Service {
	for i := range s.Services {
		if s.Services[i].ServiceKey == key {
			return &s.Services[i]
		}
	}
	return nil
}

// attachConnSummary files the aggregated connection table under the
// services and real servers. An entry names its service by protocol,
// virtual address and port; entries of a persistent service on port 0
// (all ports) are found by address, and entries of a fwmark service by
// their real server when exactly one fwmark service has it.
func attachConnSummary(s *Snapshot, sum *ipvs.ConnSummary) {
	s.HaveConns = true
	s.ConnEntries = sum.Entries
	s.ConnTemplates = sum.Templates
	s.ByState = sum.ByState
	byKey := make(map[ipvs.ServiceKey]*Service, len(s.Services))
	for i := range s.Services {
		svc := &s.Services[i]
		byKey[svc.ServiceKey] = svc
		for j := range svc.RealServers {
			svc.RealServers[j].States = map[ipvs.ConnState]int{}
		}
	}
	fwmarkOf := func(fam ipvs.Family, rs ipvs.RealServerKey) *Service {
		var found *Service
		for i := range s.Services {
			svc := &s.Services[i]
			if !svc.IsFWMark() || svc.Family != fam {
				continue
			}
			if slices.ContainsFunc(svc.RealServers, func(r RealServer) bool { return r.Key() == rs }) {
				if found != nil {
					return nil
				}
				found = svc
			}
		}
		return found
	}
	for g, n := range sum.Groups {
		svc := byKey[g.Service]
		if svc == nil && !g.Service.IsFWMark() {
			k := g.Service
			k.Port = 0
			svc = byKey[k]
		}
		if svc == nil {
			svc = fwmarkOf(g.Service.Family, g.RealServer)
		}
		if svc == nil {
			continue
		}
		i := slices.IndexFunc(svc.RealServers, func(r RealServer) bool { return r.Key() == g.RealServer })
		if i < 0 && g.Template && g.RealServer.Port == 0 {
			// a fwmark template names the real server without a port
			i = slices.IndexFunc(svc.RealServers, func(r RealServer) bool { return r.Address == g.RealServer.Address })
		}
		if i < 0 {
			svc.Unmatched += n
			continue
		}
		rs := &svc.RealServers[i]
		if g.Template {
			rs.Templates += n
		} else {
			rs.States[g.State] += n
		}
	}
}

// sortServices orders services as ipvsadm -Ln does not (it follows the
// kernel's hash): by key, so that a refresh does not reorder rows.
func sortServices(svcs []Service) {
	slices.SortFunc(svcs, func(a, b Service) int {
		switch {
		case a.ServiceKey == b.ServiceKey:
			return 0
		case a.ServiceKey.Less(b.ServiceKey):
			return -1
		}
		return 1
	})
	for i := range svcs {
		slices.SortFunc(svcs[i].RealServers, func(a, b RealServer) int {
			if c := a.Address.Compare(b.Address); c != 0 {
				return c
			}
			return int(a.Port) - int(b.Port)
		})
	}
}

// addrPortString formats an address and port as ipvsadm does.
func addrPortString(a netip.Addr, port uint16) string {
	return netip.AddrPortFrom(a, port).String()
}
