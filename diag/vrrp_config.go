package diag

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/vrrp"
)

// ForeignRouterFindings compares the census with lvsd's VRRP instances:
// a router advertising one of our VRIDs with other virtual addresses
// than ours is foreign (another cluster reusing our VRID). Instances on
// the census's interface are compared; when none is on it (lvsdiag runs
// on another host of the segment), all of them are.
func (c *VRRPCensus) ForeignRouterFindings(instances []config.VRRPInstance) []Finding {
	var ours []config.VRRPInstance
	for _, in := range instances {
		if in.Interface == c.Interface {
			ours = append(ours, in)
		}
	}
	if len(ours) == 0 {
		ours = instances
	}
	var fs []Finding
	for _, in := range ours {
		var vips []netip.Addr
		for _, va := range in.VirtualAddresses {
			vips = append(vips, va.Address)
		}
		slices.SortFunc(vips, netip.Addr.Compare)
		vips = slices.Compact(vips)
		family := vrrp.IPv4
		if in.IsIPv6() {
			family = vrrp.IPv6
		}
		peers := map[netip.Addr]bool{}
		for _, p := range in.UnicastPeers {
			peers[p] = true
		}
		for i := range c.Routers {
			r := &c.Routers[i]
			if r.Family != family || int(r.VRID) != in.VirtualRouterID {
				continue
			}
			for _, s := range r.Speakers {
				sameVIPs := slices.Equal(s.Addresses, vips)
				strangerToUnicast := len(peers) > 0 && !peers[s.Source] && s.Source != in.SourceAddress
				if sameVIPs && !strangerToUnicast {
					continue
				}
				ev := []string{
					fmt.Sprintf("%s (MAC %s) advertises VRID %d for %s, priority %d, first seen %s", s.Source, orUnknown(s.MAC), r.VRID, addrList(s.Addresses), s.Priority, c.offset(s.FirstSeen)),
					fmt.Sprintf("lvsd's instance %s uses VRID %d on %s for %s", in.Name, in.VirtualRouterID, in.Interface, addrList(vips)),
				}
				if sameVIPs {
					ev = append(ev, fmt.Sprintf("it is not one of the instance's unicast peers (%s)", addrList(in.UnicastPeers)))
				} else {
					ev = append(ev, "a router with other virtual addresses on our VRID: each side drops the other's adverts and elects its own master")
				}
				free := c.freeVRIDs(family, 5)
				fix := fmt.Sprintf(`%s is not one of ours. Find its owner by its MAC in the switch's MAC
table and have them move it to a VRID no one uses here (free on this
link: %v), or move ours, on every director of the pair at once:
  lvsd.yaml, vrrp.instances[%s]:  virtual_router_id: N
  then restart lvsd on each director (VRRP changes need a restart).`, s.Source, free, in.Name)
				fs = append(fs, Finding{ID: "vrrp-foreign-router", Severity: Critical,
					Subject:  fmt.Sprintf("%s, source %s", r.subject(c.Interface), s.Source),
					Evidence: ev, Fix: fix})
			}
		}
	}
	SortFindings(fs)
	return fs
}
