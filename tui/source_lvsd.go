package tui

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"strings"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
)

// StatusReader is what LVSDSource needs of statusapi.Client.
type StatusReader interface {
	Status(ctx context.Context) (statusapi.Status, error)
	String() string
}

// LVSDSource reads a running lvsd's status API: health, why a real
// server is out, VRRP state and VIPs. With a Base source (the local
// kernel, when lvsd runs on this machine) it adds those to the kernel's
// counters and connection table; without one it shows what lvsd knows,
// which has no counters.
type LVSDSource struct {
	Status StatusReader
	Base   Source // nil: lvsd alone
	// Clock times a snapshot of lvsd alone; nil means time.Now.
	Clock func() time.Time
}

func (l *LVSDSource) String() string {
	if l.Base != nil {
		return l.Base.String() + " + lvsd " + l.Status.String()
	}
	return "lvsd " + l.Status.String()
}

// OpenConnTable opens the base source's table; lvsd alone has none.
func (l *LVSDSource) OpenConnTable() (io.ReadCloser, error) {
	if l.Base == nil {
		return nil, fmt.Errorf("lvsd's status API has no connection table: %w", fs.ErrNotExist)
	}
	return l.Base.OpenConnTable()
}

// Collect reads lvsd and, with a base, the base.
func (l *LVSDSource) Collect(ctx context.Context, q ConnQuery) (*Snapshot, error) {
	st, err := l.Status.Status(ctx)
	if err != nil {
		return nil, err
	}
	var s *Snapshot
	if l.Base != nil {
		if s, err = l.Base.Collect(ctx, q); err != nil {
			return nil, err
		}
		mergeStatus(s, st)
	} else {
		s = snapshotFromStatus(st)
		s.Taken = time.Now()
		if l.Clock != nil {
			s.Taken = l.Clock()
		}
	}
	s.Source = l.String()
	s.VRRP = st.VRRP
	s.BGP = st.BGP
	s.HaveHealth = true
	if st.LastReloadError != "" {
		s.Warnings = append(s.Warnings, "lvsd rejected its last reload: "+st.LastReloadError)
	}
	return s, nil
}

// mergeStatus adds lvsd's names and health to a kernel snapshot.
func mergeStatus(s *Snapshot, st statusapi.Status) {
	for _, ss := range st.Services {
		key, err := ipvs.ParseServiceKey(ss.Key)
		if err != nil {
			s.Warnings = append(s.Warnings, fmt.Sprintf("lvsd service %q: %v", ss.Key, err))
			continue
		}
		svc := s.FindService(key)
		if svc == nil {
			if ss.InKernel {
				s.Warnings = append(s.Warnings, fmt.Sprintf("lvsd owns %v but the kernel does not have it", key))
			}
			continue
		}
		svc.Name = ss.Name
		for _, rs := range ss.RealServers {
			ap, err := netip.ParseAddrPort(rs.Address)
			if err != nil {
				continue
			}
			for i := range svc.RealServers {
				r := &svc.RealServers[i]
				if r.Address == ap.Addr().Unmap() && r.Port == ap.Port() {
					r.Health, r.Why = rs.Health, whyOut(rs)
				}
			}
		}
	}
}

func whyOut(rs statusapi.RealServerStatus) string {
	if rs.Why != "" {
		return rs.Why
	}
	if rs.Health == "down" {
		return rs.LastResult
	}
	return ""
}

// snapshotFromStatus is what lvsd alone says: services and real servers
// with weights and health, no counters or connection table.
func snapshotFromStatus(st statusapi.Status) *Snapshot {
	s := &Snapshot{}
	for _, ss := range st.Services {
		key, err := ipvs.ParseServiceKey(ss.Key)
		if err != nil {
			s.Warnings = append(s.Warnings, fmt.Sprintf("lvsd service %q: %v", ss.Key, err))
			continue
		}
		svc := Service{Service: ipvs.Service{ServiceKey: key, Scheduler: ss.Scheduler}, Name: ss.Name}
		for _, rs := range ss.RealServers {
			ap, err := netip.ParseAddrPort(rs.Address)
			if err != nil {
				s.Warnings = append(s.Warnings, fmt.Sprintf("lvsd real server %q of %v: %v", rs.Address, key, err))
				continue
			}
			w := rs.KernelWeight
			if w < 0 {
				w = 0 // removed from the kernel
			}
			svc.RealServers = append(svc.RealServers, RealServer{
				RealServer: ipvs.RealServer{Address: ap.Addr().Unmap(), Port: ap.Port(), Forwarding: parseForwarding(rs.Forwarding), Weight: w},
				Health:     rs.Health,
				Why:        whyOut(rs),
			})
		}
		s.Services = append(s.Services, svc)
	}
	sortServices(s.Services)
	return s
}

func parseForwarding(s string) ipvs.Forwarding {
	for _, f := range []ipvs.Forwarding{ipvs.Masquerade, ipvs.Local, ipvs.Tunnel, ipvs.DirectRoute, ipvs.Bypass} {
		if strings.EqualFold(f.String(), s) {
			return f
		}
	}
	switch strings.ToLower(s) {
	case "direct_route", "dr", "gate":
		return ipvs.DirectRoute
	case "nat", "masquerade":
		return ipvs.Masquerade
	case "tunnel", "ipip", "tun":
		return ipvs.Tunnel
	}
	return ipvs.Masquerade
}
