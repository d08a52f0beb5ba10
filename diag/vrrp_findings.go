package diag

// The census's findings: what a VRRP census of a link shows wrong.

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lvskit/lvskit/director/vrrp"
)

func (r *VirtualRouter) subject(iface string) string {
	return fmt.Sprintf("VRID %d (%s) on %s", r.VRID, r.Family, iface)
}

// Findings checks the census: VRID clashes, split brains, TTLs, version,
// interval and authentication mismatches, invalid packets.
func (c *VRRPCensus) Findings() []Finding {
	var fs []Finding
	for i := range c.Routers {
		r := &c.Routers[i]
		groups := vipGroups(r)
		if len(groups) > 1 {
			fs = append(fs, c.clash(r, groups))
		}
		for _, g := range groups {
			if f, ok := c.splitBrain(r, g); ok {
				fs = append(fs, f)
			}
		}
		if f, ok := c.versionMismatch(r); ok {
			fs = append(fs, f)
		}
		for _, g := range groups {
			if f, ok := c.intervalMismatch(r, g); ok {
				fs = append(fs, f)
			}
		}
		if f, ok := c.authMismatch(r); ok {
			fs = append(fs, f)
		}
		fs = append(fs, c.badTTL(r)...)
	}
	fs = append(fs, c.invalidPackets()...)
	SortFindings(fs)
	return fs
}

// vipGroups splits a router's speakers by the set of addresses they
// advertise, in order of first appearance.
func vipGroups(r *VirtualRouter) [][]*Speaker {
	var groups [][]*Speaker
	for i := range r.Speakers {
		s := &r.Speakers[i]
		found := false
		for gi, g := range groups {
			if slices.Equal(g[0].Addresses, s.Addresses) {
				groups[gi] = append(g, s)
				found = true
				break
			}
		}
		if !found {
			groups = append(groups, []*Speaker{s})
		}
	}
	slices.SortStableFunc(groups, func(a, b []*Speaker) int { return firstSeen(a).Compare(firstSeen(b)) })
	return groups
}

func firstSeen(g []*Speaker) time.Time {
	t := g[0].FirstSeen
	for _, s := range g[1:] {
		if s.FirstSeen.Before(t) {
			t = s.FirstSeen
		}
	}
	return t
}

func sources(g []*Speaker) string {
	var out []string
	for _, s := range g {
		out = append(out, s.Source.String())
	}
	return strings.Join(out, ", ")
}

func addrList(as []netip.Addr) string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return strings.Join(out, " ")
}

// freeVRIDs lists up to n VRIDs of the family nobody advertised.
func (c *VRRPCensus) freeVRIDs(f vrrp.Family, n int) []string {
	used := map[uint8]bool{}
	for _, r := range c.Routers {
		if r.Family == f {
			used[r.VRID] = true
		}
	}
	var out []string
	for id := 1; id <= 255 && len(out) < n; id++ {
		if !used[uint8(id)] {
			out = append(out, fmt.Sprint(id))
		}
	}
	return out
}

func (c *VRRPCensus) clash(r *VirtualRouter, groups [][]*Speaker) Finding {
	var ev []string
	for _, g := range groups {
		ev = append(ev, fmt.Sprintf("%s advertise%s VRID %d for %s (first seen %s)",
			sources(g), verbS(len(g)), r.VRID, addrList(g[0].Addresses), c.offset(firstSeen(g))))
	}
	ev = append(ev, fmt.Sprintf("routers drop adverts whose addresses differ from their own, so each group elects its own master: masters now %s",
		addrList(r.Masters())))
	newest := groups[len(groups)-1]
	free := c.freeVRIDs(r.Family, 5)
	pick := "N"
	if len(free) > 0 {
		pick = free[0]
	}
	fix := fmt.Sprintf(`Two groups of routers use VRID %d on %s. Move one group, all of its
routers at once, to a VRID no one uses on this link (free here: %s).
The newest group is the one of %s; on each of its routers:
  keepalived.conf, in the vrrp_instance:   virtual_router_id %s
  then:                                    systemctl reload keepalived
Then run this census again to check that the VRID is unique.`,
		r.VRID, c.Interface, strings.Join(free, ", "), sources(newest), pick)
	return Finding{ID: "vrrp-vrid-clash", Severity: Critical, Subject: r.subject(c.Interface), Evidence: ev, Fix: fix}
}

func verbS(n int) string {
	if n == 1 {
		return "s"
	}
	return ""
}

// splitBrain reports speakers of one address group that advertised
// concurrently: only masters advertise, so two of them at once is two
// masters. A handover overlaps by an advert or two; this needs at least
// three adverts from each inside the common window.
func (c *VRRPCensus) splitBrain(r *VirtualRouter, g []*Speaker) (Finding, bool) {
	const minOverlap = 3
	var ev []string
	var involved []*Speaker
	for i, a := range g {
		for _, b := range g[i+1:] {
			if len(a.positives) == 0 || len(b.positives) == 0 {
				continue
			}
			from := maxTime(a.positives[0], b.positives[0])
			to := minTime(a.positives[len(a.positives)-1], b.positives[len(b.positives)-1])
			na, nb := countIn(a.positives, from, to), countIn(b.positives, from, to)
			if na < minOverlap || nb < minOverlap {
				continue
			}
			ev = append(ev, fmt.Sprintf("%s (priority %d) and %s (priority %d) both advertised from %s to %s: %d and %d adverts",
				a.Source, a.Priority, b.Source, b.Priority, c.offset(from), c.offset(to), na, nb))
			for _, s := range []*Speaker{a, b} {
				if !slices.Contains(involved, s) {
					involved = append(involved, s)
				}
			}
		}
	}
	if len(ev) == 0 {
		return Finding{}, false
	}
	ev = append(ev, fmt.Sprintf("each acts as master for %s (holds it, answers ARP for it): traffic goes to whichever announced last", addrList(g[0].Addresses)))
	proto, family := "ip protocol vrrp", "ip"
	if r.Family == vrrp.IPv6 {
		proto, family = "ip6 nexthdr vrrp", "ip6"
	}
	if cause := rejectCause(involved); cause != "" {
		ev = append(ev, cause)
		fix := fmt.Sprintf(`The routers %s hear each other but reject each other's
adverts: fix the %s finding for VRID %d first.`, sources(involved), strings.TrimSuffix(strings.Fields(cause)[0], ":"), r.VRID)
		return Finding{ID: "vrrp-split-brain", Severity: Critical, Subject: r.subject(c.Interface), Evidence: ev, Fix: fix}, true
	}
	fix := fmt.Sprintf(`The routers %s do not hear each other's adverts. On each of them:
  see the other's adverts arrive:  tcpdump -ni %s '%s proto 112'
  look for a rule dropping them:   nft list ruleset | grep -n -i -e vrrp -e 112
                                   iptables -S | grep -i -e vrrp -e 112
  let them in:                     nft insert rule inet filter input %s accept
                                   (or: iptables -I INPUT -p vrrp -j ACCEPT)
If nothing on the routers drops them, check the switch (IGMP snooping
without a querier can stop 224.0.0.18; a VLAN or port mismatch splits
the group).`, sources(involved), c.Interface, family, proto)
	return Finding{ID: "vrrp-split-brain", Severity: Critical, Subject: r.subject(c.Interface), Evidence: ev, Fix: fix}, true
}

// rejectCause explains why routers that advertise concurrently may be
// rejecting each other's adverts, or returns "".
func rejectCause(g []*Speaker) string {
	for _, s := range g[1:] {
		switch {
		case s.Version != g[0].Version:
			return "vrrp-version-mismatch: they run different VRRP versions"
		case s.Version == vrrp.Version2 && s.auth != g[0].auth:
			return "vrrp-auth-mismatch: their authentication differs"
		case s.Version == vrrp.Version2 && s.Interval != g[0].Interval:
			return "vrrp-interval-mismatch: version 2 routers with different intervals"
		}
	}
	return ""
}

func countIn(ts []time.Time, from, to time.Time) int {
	n := 0
	for _, t := range ts {
		if !t.Before(from) && !t.After(to) {
			n++
		}
	}
	return n
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (c *VRRPCensus) versionMismatch(r *VirtualRouter) (Finding, bool) {
	versions := map[vrrp.Version][]string{}
	for _, s := range r.Speakers {
		versions[s.Version] = append(versions[s.Version], s.Source.String())
	}
	if len(versions) < 2 {
		return Finding{}, false
	}
	var ev []string
	for _, v := range []vrrp.Version{vrrp.Version2, vrrp.Version3} {
		if len(versions[v]) > 0 {
			ev = append(ev, fmt.Sprintf("version %d from %s", v, strings.Join(versions[v], ", ")))
		}
	}
	ev = append(ev, "routers drop adverts of the other version, so each version elects its own master")
	fix := fmt.Sprintf(`Run one VRRP version on every router of VRID %d (version 3 unless a
peer only speaks version 2):
  keepalived.conf, in the vrrp_instance:  version 3
  (or for all instances, in global_defs:  vrrp_version 3)
  then:                                   systemctl reload keepalived`, r.VRID)
	return Finding{ID: "vrrp-version-mismatch", Severity: Critical, Subject: r.subject(c.Interface), Evidence: ev, Fix: fix}, true
}

func (c *VRRPCensus) intervalMismatch(r *VirtualRouter, g []*Speaker) (Finding, bool) {
	intervals := map[time.Duration][]string{}
	var order []time.Duration
	v2 := false
	for _, s := range g {
		if len(intervals[s.Interval]) == 0 {
			order = append(order, s.Interval)
		}
		intervals[s.Interval] = append(intervals[s.Interval], s.Source.String())
		v2 = v2 || s.Version == vrrp.Version2
	}
	if len(order) < 2 {
		return Finding{}, false
	}
	slices.Sort(order)
	var ev []string
	for _, iv := range order {
		ev = append(ev, fmt.Sprintf("interval %s from %s", iv, strings.Join(intervals[iv], ", ")))
	}
	sev := Warning
	if v2 {
		sev = Critical
		ev = append(ev, "version 2 routers drop adverts with another interval: a backup will not hear the master")
	} else {
		ev = append(ev, "version 3 backups adopt the master's interval, but the takeover time changes with the master")
	}
	fix := fmt.Sprintf(`Set one advertisement interval on every router of VRID %d:
  keepalived.conf, in the vrrp_instance:  advert_int %s
  then:                                   systemctl reload keepalived`, r.VRID, keepalivedInterval(order[0]))
	return Finding{ID: "vrrp-interval-mismatch", Severity: sev, Subject: r.subject(c.Interface), Evidence: ev, Fix: fix}, true
}

func keepalivedInterval(d time.Duration) string {
	return strings.TrimSuffix(fmt.Sprintf("%g", d.Seconds()), ".0")
}

func (c *VRRPCensus) authMismatch(r *VirtualRouter) (Finding, bool) {
	auths := map[string][]string{}
	var order []string
	for _, s := range r.Speakers {
		if s.Version != vrrp.Version2 {
			continue
		}
		if len(auths[s.auth]) == 0 {
			order = append(order, s.auth)
		}
		auths[s.auth] = append(auths[s.auth], s.Source.String())
	}
	if len(order) < 2 {
		return Finding{}, false
	}
	slices.Sort(order)
	var ev []string
	for _, a := range order {
		ev = append(ev, fmt.Sprintf("authentication %s from %s", a, strings.Join(auths[a], ", ")))
	}
	ev = append(ev, "routers drop adverts that fail authentication, so each side elects its own master")
	fix := fmt.Sprintf(`Use the same authentication on every router of VRID %d. The password
is sent in clear and protects nothing (RFC 3768 removed it), so the
simplest fix is none at all: remove the authentication block from the
vrrp_instance on every router. To keep it, use one identical block:
  authentication {
      auth_type PASS
      auth_pass <the same 8 characters everywhere>
  }
then: systemctl reload keepalived`, r.VRID)
	return Finding{ID: "vrrp-auth-mismatch", Severity: Critical, Subject: r.subject(c.Interface), Evidence: ev, Fix: fix}, true
}

func (c *VRRPCensus) badTTL(r *VirtualRouter) []Finding {
	var fs []Finding
	for _, s := range r.Speakers {
		if s.badTTL == 0 {
			continue
		}
		var ttls []string
		for _, t := range s.TTLs {
			if t != vrrp.HopLimit {
				ttls = append(ttls, fmt.Sprint(t))
			}
		}
		fs = append(fs, Finding{
			ID:       "vrrp-ttl",
			Severity: Warning,
			Subject:  fmt.Sprintf("%s, source %s", r.subject(c.Interface), s.Source),
			Evidence: []string{
				fmt.Sprintf("%d of %d adverts from %s arrived with TTL %s, not 255", s.badTTL, s.Adverts, s.Source, strings.Join(ttls, ", ")),
				"receivers drop them (RFC 3768/5798 section 7.1): they crossed a router, were rewritten, or were forged off-link",
			},
			Fix: fmt.Sprintf(`Keep every router of VRID %d on one layer-2 segment with %s, so
adverts are never routed. Look for a rule rewriting the TTL on the
sender and on anything in between:
  nft list ruleset | grep -n -i -e 'ttl set' -e 'hoplimit set'
  iptables -t mangle -S | grep -i ttl
If %s is not one of your routers, find it by its MAC address in the
switch's MAC table.`, r.VRID, c.Interface, s.Source),
		})
	}
	return fs
}

func (c *VRRPCensus) invalidPackets() []Finding {
	var fs []Finding
	for _, inv := range c.Invalid {
		ev := []string{fmt.Sprintf("%d VRRP packet%s from %s (MAC %s) did not decode", inv.Count, plural(inv.Count), inv.Source, inv.MAC)}
		for _, e := range inv.Errors {
			ev = append(ev, e)
		}
		fs = append(fs, Finding{
			ID:       "vrrp-invalid-packet",
			Severity: Warning,
			Subject:  fmt.Sprintf("source %s on %s", inv.Source, c.Interface),
			Evidence: ev,
			Fix: fmt.Sprintf(`Receivers drop these packets. If %s is one of your routers, check its
VRRP software and settings against its peers': the errors above name
the mismatch (a version 3 checksum without the pseudo-header is
keepalived's v3_checksum_as_v2; remove that option, or set it on every
peer). If it is not yours, find it by its MAC address in the switch's
MAC table.`, inv.Source),
		})
	}
	return fs
}

// offset shows t relative to the start of the listen.
func (c *VRRPCensus) offset(t time.Time) string {
	return fmt.Sprintf("+%.3fs", t.Sub(c.Start).Seconds())
}
