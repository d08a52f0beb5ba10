package diag

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
)

// directorView is what the checks know about the director's services
// for the VIP, from this host's IPVS, lvsd's status API and lvsd's
// config, whichever are at hand. Several checks decide from it; it is
// gathered once a run.
type directorView struct {
	// IPVS is set when this host's IPVS was readable.
	IPVS        bool
	IPVSErr     error
	Services    []ipvs.Service // this host's services covering VIP:port
	FWMarks     []ipvs.Service // this host's fwmark services (may cover it)
	AllServices int

	Status         *statusapi.Status
	StatusErr      error
	StatusServices []statusapi.ServiceStatus

	ConfigServices []config.DesiredService

	// RealServers are the real servers of the VIP's services, from the
	// best source: the kernel, then lvsd, then the config.
	RealServers []rsView
	Sources     []string
}

// rsView is one real server of a service of the VIP.
type rsView struct {
	Service    string
	Address    netip.AddrPort
	Forwarding string // "Route", "Masq", "Tunnel"
	// Weight is the kernel's weight; -1 when it is not in the kernel
	// (lvsd removed it); ConfigWeight the configured one (-1 unknown).
	Weight       int32
	ConfigWeight int32
	Upper, Lower uint32
	Active       uint32
	Inactive     uint32
	Persistent   uint32
	HaveCounts   bool
	// Health, Why and Check are lvsd's view ("" without lvsd).
	Health, Why, Check string
	Persistence        bool
}

// getDirector gathers the director's view once.
func (r *run) getDirector(ctx context.Context) *directorView {
	r.directorOnce.Do(func() { r.director = r.gatherDirector(ctx) })
	return r.director
}

// rsMerge collects real servers from several sources: the first source
// to name a (service, address) makes its entry; later ones fill in what
// they know.
type rsMerge struct {
	byKey map[string]*rsView
	order []string
}

func (m *rsMerge) put(rs rsView) *rsView {
	k := rs.Service + " " + rs.Address.String()
	if old := m.byKey[k]; old != nil {
		return old
	}
	if m.byKey == nil {
		m.byKey = map[string]*rsView{}
	}
	m.byKey[k] = &rs
	m.order = append(m.order, k)
	return m.byKey[k]
}

func (m *rsMerge) sorted() []rsView {
	var out []rsView
	for _, k := range m.order {
		out = append(out, *m.byKey[k])
	}
	slices.SortStableFunc(out, func(a, b rsView) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), a.Address.Compare(b.Address))
	})
	return out
}

func (r *run) gatherDirector(ctx context.Context) *directorView {
	v := &directorView{}
	var m rsMerge
	r.directorFromKernel(v, &m)
	r.directorFromStatus(ctx, v, &m)
	r.directorFromConfig(v, &m)
	v.RealServers = m.sorted()
	return v
}

// directorFromKernel reads this host's IPVS.
func (r *run) directorFromKernel(v *directorView, m *rsMerge) {
	if r.env.IPVS == nil {
		v.IPVSErr = r.env.IPVSErr
		if v.IPVSErr == nil {
			v.IPVSErr = errors.New("no IPVS client on this system")
		}
		return
	}
	svcs, err := r.env.IPVS.Services()
	if err != nil {
		v.IPVSErr = err
		return
	}
	v.IPVS = true
	v.AllServices = len(svcs)
	v.Sources = append(v.Sources, "this host's IPVS")
	for _, s := range svcs {
		switch {
		case s.IsFWMark() && s.Family == ipvs.FamilyOf(r.opts.VIP):
			v.FWMarks = append(v.FWMarks, s)
		case !s.IsFWMark() && r.matchesVIP(s.Address, s.Port):
			v.Services = append(v.Services, s)
		}
	}
	for _, s := range append(slices.Clone(v.Services), v.FWMarks...) {
		rss, err := r.env.IPVS.RealServers(s.ServiceKey)
		if err != nil {
			continue
		}
		for _, rs := range rss {
			m.put(rsView{
				Service: s.ServiceKey.String(), Address: netip.AddrPortFrom(rs.Address, rs.Port),
				Forwarding: rs.Forwarding.String(), Weight: rs.Weight, ConfigWeight: -1,
				Upper: rs.UpperThreshold, Lower: rs.LowerThreshold,
				Active: rs.ActiveConns, Inactive: rs.InactiveConns, Persistent: rs.PersistentConns,
				HaveCounts: true, Persistence: s.Persistent(),
			})
		}
	}
}

// directorFromStatus reads lvsd's status API.
func (r *run) directorFromStatus(ctx context.Context, v *directorView, m *rsMerge) {
	if r.env.LVSD == nil {
		return
	}
	var st statusapi.Status
	var err error
	if vs, ok := r.env.LVSD.(VIPStatusSource); ok {
		st, err = vs.StatusOfVIP(ctx, r.opts.VIP)
	} else {
		st, err = r.env.LVSD.Status(ctx)
	}
	if err != nil {
		v.StatusErr = err
		return
	}
	v.Status = &st
	v.Sources = append(v.Sources, "lvsd's status API")
	for _, s := range st.Services {
		if !r.statusKeyMatches(s.Key) {
			continue
		}
		v.StatusServices = append(v.StatusServices, s)
		for _, rs := range s.RealServers {
			ap, err := netip.ParseAddrPort(rs.Address)
			if err != nil {
				continue
			}
			x := m.put(rsView{Service: s.Key, Address: ap, Forwarding: rs.Forwarding,
				Weight: rs.KernelWeight, ConfigWeight: rs.Weight})
			x.ConfigWeight = rs.Weight
			x.Health, x.Why, x.Check = rs.Health, rs.Why, rs.Check
			if !v.IPVS {
				x.Weight = rs.KernelWeight
			}
		}
	}
}

// directorFromConfig reads lvsd's config.
func (r *run) directorFromConfig(v *directorView, m *rsMerge) {
	if r.env.Config == nil {
		return
	}
	v.Sources = append(v.Sources, "lvsd's config")
	for _, d := range r.env.Config.Desired() {
		k := d.Service.ServiceKey
		if k.IsFWMark() || !r.matchesVIP(k.Address, k.Port) {
			continue
		}
		v.ConfigServices = append(v.ConfigServices, d)
		for _, rs := range d.RealServers {
			x := m.put(rsView{Service: k.String(), Address: netip.AddrPortFrom(rs.Address, rs.Port),
				Forwarding: rs.Forwarding.String(), Weight: rs.Weight, ConfigWeight: rs.Weight,
				Upper: rs.UpperThreshold, Lower: rs.LowerThreshold, Persistence: d.Service.Persistent()})
			if x.ConfigWeight < 0 {
				x.ConfigWeight = rs.Weight
			}
		}
	}
}

// statusKeyMatches reports whether a status key ("TCP 192.168.0.100:80")
// names a service of the VIP.
func (r *run) statusKeyMatches(key string) bool {
	k, err := ipvs.ParseServiceKey(key)
	return err == nil && !k.IsFWMark() && r.matchesVIP(k.Address, k.Port)
}

// realServerAddrs are the distinct addresses of the VIP's real servers.
func (v *directorView) realServerAddrs() []netip.Addr {
	var out []netip.Addr
	for _, rs := range v.RealServers {
		if !slices.Contains(out, rs.Address.Addr()) {
			out = append(out, rs.Address.Addr())
		}
	}
	return out
}

func (v *directorView) haveAny() bool {
	return v.IPVS || v.Status != nil || len(v.ConfigServices) > 0
}

// forwardings are the forwarding methods of the VIP's real servers.
func (v *directorView) forwardings() map[string]bool {
	m := map[string]bool{}
	for _, rs := range v.RealServers {
		m[rs.Forwarding] = true
	}
	return m
}

// onDirector reports whether this host is a director of the VIP: its
// IPVS has a service for it, it holds the VIP on a link, lvsd runs
// here, or it speaks VRRP for the VIP. why says which.
func (r *run) onDirector(ctx context.Context) (bool, string) {
	v := r.getDirector(ctx)
	if v.IPVS && len(v.Services)+len(v.FWMarks) > 0 {
		return true, "this host's IPVS has a service for the VIP"
	}
	if l, ok := r.vipLink(ctx); ok && !l.Loopback() && l.Kind != "dummy" && l.Kind != "ipip" {
		return true, "this host holds the VIP on " + l.Name
	}
	if r.env.LVSDLocal {
		return true, "lvsd runs on this host"
	}
	if c, err := r.getCensus(ctx); err == nil {
		links, _ := r.getLinks(ctx)
		for _, vr := range vipRouters(c, r.opts.VIP) {
			for _, s := range vr.Speakers {
				for _, l := range links {
					if hasAddr(l.Prefixes, s.Source) {
						return true, fmt.Sprintf("this host (%s) speaks VRRP for the VIP", s.Source)
					}
				}
			}
		}
	}
	return false, ""
}

// directorAddrs are the directors' own addresses: the VRRP routers that
// advertise the VIP, and lvsd's VRRP master.
func (r *run) directorAddrs(ctx context.Context) []netip.Addr {
	var out []netip.Addr
	if c, err := r.getCensus(ctx); err == nil {
		for _, vr := range vipRouters(c, r.opts.VIP) {
			for _, s := range vr.Speakers {
				if containsAddr(s.Addresses, r.opts.VIP) && !slices.Contains(out, s.Source) {
					out = append(out, s.Source)
				}
			}
		}
	}
	if v := r.getDirector(ctx); v.Status != nil {
		for _, in := range v.Status.VRRP {
			if a, err := netip.ParseAddr(in.Master); err == nil && containsString(in.VIPs, r.opts.VIP.String()) && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}
