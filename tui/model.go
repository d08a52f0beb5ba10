package tui

import (
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
)

// HistoryLen is how many snapshots the header's sparklines cover.
const HistoryLen = 60

// Delta is how a service's or real server's connection counts moved
// since the previous snapshot.
type Delta struct {
	Active, Inactive int64
	Conns            int64 // new connections (the Conns counter's increase)
}

// RealServerID names a real server of a service.
type RealServerID struct {
	Service    ipvs.ServiceKey
	RealServer ipvs.RealServerKey
}

// Frame is what the views and batch mode render: a snapshot, how it
// moved since the previous one, and the recent history of the totals.
// Nothing in it changes after Model.Update returns it.
type Frame struct {
	Snap *Snapshot
	// Seq counts snapshots; 1 for the first.
	Seq int
	// Since is the time between the previous snapshot and this one (0
	// for the first).
	Since time.Duration

	Totals        ipvs.Stats // Snap.Totals, or the services' sum without them
	ActiveConns   uint64
	InactiveConns uint64

	Services    map[ipvs.ServiceKey]Delta
	RealServers map[RealServerID]Delta

	// History of the totals, oldest first, at most HistoryLen points.
	CPSHistory    []uint64
	ActiveHistory []uint64
	BPSInHistory  []uint64
	BPSOutHistory []uint64
}

// Model turns snapshots into frames. It is used by one goroutine at a
// time (the Collector's).
type Model struct {
	prev  *Frame
	cps   []uint64
	act   []uint64
	bin   []uint64
	bout  []uint64
	count int
}

func pushHistory(h []uint64, v uint64) []uint64 {
	if len(h) == HistoryLen {
		h = h[1:]
	}
	// Copy on append: frames already handed out keep their own slices.
	out := make([]uint64, len(h), len(h)+1)
	copy(out, h)
	return append(out, v)
}

// Update files a snapshot and returns its frame.
func (m *Model) Update(s *Snapshot) *Frame {
	m.count++
	f := &Frame{Snap: s, Seq: m.count, Services: map[ipvs.ServiceKey]Delta{}, RealServers: map[RealServerID]Delta{}}
	if s.HaveTotals {
		f.Totals = s.Totals
	}
	for i := range s.Services {
		svc := &s.Services[i]
		f.ActiveConns += svc.ActiveConns()
		f.InactiveConns += svc.InactiveConns()
		if !s.HaveTotals && svc.HasCounters {
			addStats(&f.Totals, svc.Stats)
		}
	}
	if p := m.prev; p != nil {
		f.Since = s.Taken.Sub(p.Snap.Taken)
		for i := range s.Services {
			svc := &s.Services[i]
			old := p.Snap.FindService(svc.ServiceKey)
			if old == nil {
				continue
			}
			d := Delta{
				Active:   int64(svc.ActiveConns()) - int64(old.ActiveConns()),
				Inactive: int64(svc.InactiveConns()) - int64(old.InactiveConns()),
			}
			if svc.HasCounters && old.HasCounters {
				d.Conns = int64(svc.Stats.Conns - old.Stats.Conns)
			}
			f.Services[svc.ServiceKey] = d
			for _, r := range svc.RealServers {
				for _, o := range old.RealServers {
					if o.Key() != r.Key() {
						continue
					}
					rd := Delta{
						Active:   int64(r.ActiveConns) - int64(o.ActiveConns),
						Inactive: int64(r.InactiveConns) - int64(o.InactiveConns),
					}
					if svc.HasCounters && old.HasCounters {
						rd.Conns = int64(r.Stats.Conns - o.Stats.Conns)
					}
					f.RealServers[RealServerID{svc.ServiceKey, r.Key()}] = rd
				}
			}
		}
	}
	m.cps = pushHistory(m.cps, f.Totals.CPS)
	m.act = pushHistory(m.act, f.ActiveConns)
	m.bin = pushHistory(m.bin, f.Totals.BPSIn)
	m.bout = pushHistory(m.bout, f.Totals.BPSOut)
	f.CPSHistory, f.ActiveHistory, f.BPSInHistory, f.BPSOutHistory = m.cps, m.act, m.bin, m.bout
	m.prev = f
	return f
}

func addStats(a *ipvs.Stats, b ipvs.Stats) {
	a.Conns += b.Conns
	a.PacketsIn += b.PacketsIn
	a.PacketsOut += b.PacketsOut
	a.BytesIn += b.BytesIn
	a.BytesOut += b.BytesOut
	a.CPS += b.CPS
	a.PPSIn += b.PPSIn
	a.PPSOut += b.PPSOut
	a.BPSIn += b.BPSIn
	a.BPSOut += b.BPSOut
}
