package reconcile

import (
	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs"
)

// Expand turns a configured service into the entry lvsd wants in the
// kernel, given which real servers are up: a real server that is down is
// quiesced (weight 0, its connections drain) or removed, per the config;
// while none is up the sorry server, if any, takes the traffic.
func Expand(ds config.DesiredService, up func(ipvs.RealServerKey) bool) *Entry {
	e := &Entry{Service: ds.Service, RealServers: make([]ipvs.RealServer, 0, len(ds.RealServers)+1)}
	anyUp := false
	for _, r := range ds.RealServers {
		rs := r.RealServer
		switch {
		case up(rs.Key()):
			anyUp = true
		case ds.OnFailure == config.Remove:
			continue
		default:
			rs.Weight = 0
		}
		e.RealServers = append(e.RealServers, rs)
	}
	if !anyUp && ds.SorryServer != nil {
		sorry := *ds.SorryServer
		if sorry.Weight == 0 {
			sorry.Weight = 1
		}
		e.RealServers = append(e.RealServers, sorry)
	}
	return e
}

// UpWeight is the sum of the configured weights of the real servers that
// are up: what a quorum is measured against.
func UpWeight(ds config.DesiredService, up func(ipvs.RealServerKey) bool) int {
	sum := 0
	for _, r := range ds.RealServers {
		if up(r.Key()) {
			sum += int(r.Weight)
		}
	}
	return sum
}
