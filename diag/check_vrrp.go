package diag

import (
	"context"
	"net/netip"

	"github.com/lvskit/lvskit/director/config"
)

// vrrpFacts are what check 7 (VRRP on the segment) decides from.
type vrrpFacts struct {
	VIP    netip.Addr
	Census *VRRPCensus
	// Instances are lvsd's configured VRRP instances (--config).
	Instances []config.VRRPInstance
}

func checkVRRP(ctx context.Context, r *run) outcome {
	c, err := r.getCensus(ctx)
	if err != nil {
		return couldNotRun("%v", err)
	}
	f := vrrpFacts{VIP: r.opts.VIP, Census: c}
	if r.env.Config != nil {
		f.Instances = r.env.Config.VRRP.Instances
	}
	return vrrpFindings(f)
}

// vrrpFindings decides check 7 from its facts: the census's own findings
// and, with lvsd's config, the routers foreign to it.
func vrrpFindings(f vrrpFacts) outcome {
	c := f.Census
	var o outcome
	o.note("listened on %s for %s: %d packet%s, %d virtual router%s", c.Interface, c.End.Sub(c.Start).Round(1e6), c.Packets, plural(c.Packets), len(c.Routers), plural(len(c.Routers)))
	for _, vr := range c.Routers {
		for _, s := range vr.Speakers {
			o.note("VRID %d %s v%d %s priority %d every %s: %s for %s", vr.VRID, vr.Family, s.Version, s.Source, s.Priority, s.Interval, s.Role, addrList(s.Addresses))
		}
	}
	for _, inv := range c.Invalid {
		o.note("invalid: %d packet%s from %s", inv.Count, plural(inv.Count), inv.Source)
	}
	if len(c.Routers) > 0 && len(vipRouters(c, f.VIP)) == 0 {
		o.note("no virtual router advertises %s", f.VIP)
	}
	o.findings = append(o.findings, c.Findings()...)
	if f.Instances != nil {
		o.findings = append(o.findings, c.ForeignRouterFindings(f.Instances)...)
	}
	return o
}
