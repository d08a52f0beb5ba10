package config

// Checking a virtual service: its identity (address, fwmark or group),
// scheduler, persistence and tunnel options.

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/lvskit/lvskit/director/ipvs"
)

// service checks one virtual service and fills in its defaults; false when
// it is too broken to have a key.
func (c *checker) service(s *VirtualService) bool {
	if !c.valid(s) {
		return false // not a mapping: reported
	}
	keyed := c.identity(s)
	c.scheduler(s)
	c.persistence(s)
	if s.OnePacket && !s.IsFWMark() && s.Protocol != UDP && c.valid(&s.OnePacket) && !slices.ContainsFunc(s.Group, func(e GroupEntry) bool { return e.FWMark != 0 }) {
		c.atKey(&s.OnePacket, "one_packet applies only to UDP: remove it, or write protocol: udp")
	}
	if !c.written(&s.Forwarding) {
		s.Forwarding = DirectRoute
	}
	s.Tunnel = c.tunnelFor(&s.Tunnel, s.Forwarding, "the service's forwarding", nil)
	if !c.written(&s.OnFailure) {
		s.OnFailure = Remove
	}
	if s.HealthCheck != nil {
		c.healthCheck(s.HealthCheck)
	}
	seen := map[ipvs.RealServerKey]*RealServer{}
	for i := range s.RealServers {
		rs := &s.RealServers[i]
		if !c.realServer(s, rs) {
			continue
		}
		k := ipvs.RealServerKey{Address: rs.Address, Port: rs.Port}
		if first, dup := seen[k]; dup && c.where(first) == c.where(rs) {
			c.at(rs, "real server %s is listed twice in this service, through an alias: use the alias once", k)
		} else if dup {
			c.at(rs, "real server %s is listed twice in this service (first at %s): remove one of them", k, c.where(first))
		} else {
			seen[k] = rs
		}
	}
	if s.SorryServer != nil {
		c.sorryServer(s, seen)
	}
	if s.Quorum != nil {
		c.quorum(s)
	}
	return keyed
}

// identity checks the address, port, protocol, fwmark and family.
func (c *checker) identity(s *VirtualService) bool {
	if c.written(&s.Group) {
		return c.group(s)
	}
	if c.written(&s.FWMark) {
		ok := c.valid(&s.FWMark)
		if ok && s.FWMark == 0 {
			c.at(&s.FWMark, "fwmark: 0 is not a mark: write 1 or more, the value your nft or iptables rule sets")
			ok = false
		}
		if c.written(&s.Address) {
			c.atKey(&s.Address, "a fwmark service has no address: remove address (write family: ipv6 for an IPv6 fwmark service), or remove fwmark")
		}
		if c.written(&s.Port) {
			c.atKey(&s.Port, "a fwmark service has no port: remove port; the firewall rule that sets mark %d chooses the ports", s.FWMark)
		}
		if c.written(&s.Protocol) {
			c.atKey(&s.Protocol, "a fwmark service has no protocol: remove protocol; the firewall rule that sets mark %d chooses the packets", s.FWMark)
		}
		s.Protocol = ""
		if !c.written(&s.Family) {
			s.Family = IPv4
		}
		return ok && (c.valid(&s.Family) || !c.written(&s.Family))
	}

	if !c.written(&s.Protocol) {
		s.Protocol = TCP
	}
	switch {
	case !c.written(&s.Address) && !c.written(&s.Port):
		c.at(s, "a virtual service needs address and port, or fwmark: write address: 192.168.0.100 and port: 80")
		return false
	case !c.written(&s.Address):
		c.at(s, "a virtual service needs an address: write address: 192.168.0.100, or fwmark: 1 for a firewall-mark service")
		return false
	case !c.written(&s.Port):
		c.at(s, "a virtual service needs a port: write port: 80 (or port: 0 with persistence for every port)")
		return false
	}
	if !c.valid(&s.Address) || !c.valid(&s.Port) || c.written(&s.Protocol) && !c.valid(&s.Protocol) {
		return false
	}
	if msg := unicast(s.Address); msg != "" {
		c.at(&s.Address, "address: %s %s: write the virtual IP address clients connect to", s.Address, msg)
		return false
	}
	fam := familyOf(s.Address)
	if c.valid(&s.Family) && s.Family != fam {
		c.at(&s.Family, "family: %s does not match address %s, which is %s: remove family", s.Family, s.Address, fam)
	}
	s.Family = fam
	return true
}

// group checks a group's entries: each an address and a port, or a
// fwmark; the addresses of one family, which the fwmark entries take.
func (c *checker) group(s *VirtualService) bool {
	for _, p := range []any{&s.Address, &s.Port, &s.FWMark} {
		if c.written(p) {
			c.atKey(p, "a group's addresses, ports and marks are its entries: move this into group, or remove group")
		}
	}
	if !c.valid(&s.Group) {
		return false
	}
	if len(s.Group) == 0 {
		c.at(&s.Group, "group: empty: write its entries, such as [{address: 192.168.0.100, port: 80}, {fwmark: 5}]")
		return false
	}
	if !c.written(&s.Protocol) {
		s.Protocol = TCP
	}
	ok := !c.written(&s.Protocol) || c.valid(&s.Protocol)
	var fam Family
	for i := range s.Group {
		e := &s.Group[i]
		if !c.valid(e) {
			ok = false
			continue
		}
		if c.written(&e.FWMark) {
			switch {
			case !c.valid(&e.FWMark):
				ok = false
			case e.FWMark == 0:
				c.at(&e.FWMark, "fwmark: 0 is not a mark: write 1 or more, the value your nft or iptables rule sets")
				ok = false
			case c.written(&e.Address) || c.written(&e.Port):
				c.at(e, "a group entry is an address and a port, or a fwmark: not both: split it into two entries")
				ok = false
			}
			continue
		}
		switch {
		case !c.written(&e.Address) || !c.written(&e.Port):
			c.at(e, "a group entry needs address and port, or fwmark: write {address: 192.168.0.100, port: 80} or {fwmark: 5}")
			ok = false
			continue
		case !c.valid(&e.Address) || !c.valid(&e.Port):
			ok = false
			continue
		}
		if msg := unicast(e.Address); msg != "" {
			c.at(&e.Address, "address: %s %s: write the virtual IP address clients connect to", e.Address, msg)
			ok = false
			continue
		}
		if fam == "" {
			fam = familyOf(e.Address)
		} else if familyOf(e.Address) != fam {
			c.at(&e.Address, "address: %s is not %s as the group's first address: put IPv4 and IPv6 in separate groups", e.Address, fam)
			ok = false
		}
	}
	switch {
	case fam != "" && c.valid(&s.Family) && s.Family != fam:
		c.at(&s.Family, "family: %s does not match the group's addresses, which are %s: remove family", s.Family, fam)
	case fam != "":
		s.Family = fam
	case !c.written(&s.Family):
		s.Family = IPv4
	}
	return ok
}

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// unicast says why a cannot be a service or server address, or "".
func unicast(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "is the unspecified address"
	case a.IsMulticast():
		return "is a multicast address"
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "is the broadcast address"
	}
	return ""
}

func (c *checker) scheduler(s *VirtualService) {
	if !c.written(&s.Scheduler) {
		s.Scheduler = "wlc"
	} else if c.valid(&s.Scheduler) && !slices.Contains(ipvs.Schedulers, s.Scheduler) {
		if lower := strings.ToLower(s.Scheduler); slices.Contains(ipvs.Schedulers, lower) {
			c.at(&s.Scheduler, "scheduler: write %s in lower case", lower)
		} else {
			c.at(&s.Scheduler, "scheduler: unknown scheduler %q: %s", s.Scheduler, didYouMean(s.Scheduler, ipvs.Schedulers))
		}
	}
	seen := map[ipvs.ServiceFlags]string{}
	for i := range s.SchedulerFlags {
		f := &s.SchedulerFlags[i]
		if !c.valid(f) {
			continue
		}
		bit, ok := ipvs.SchedulerFlagNames[*f]
		switch {
		case !ok:
			c.at(f, "scheduler_flags: unknown flag %q: %s", *f, didYouMean(*f, sortedKeys(ipvs.SchedulerFlagNames)))
			continue
		case strings.HasPrefix(*f, "sh-") && s.Scheduler != "sh", strings.HasPrefix(*f, "mh-") && s.Scheduler != "mh":
			sched, _, _ := strings.Cut(*f, "-")
			c.at(f, "scheduler_flags: %s applies only to the %s scheduler, not %s: remove it, or write scheduler: %s", *f, sched, s.Scheduler, sched)
			continue
		}
		if other, dup := seen[bit]; dup {
			c.at(f, "scheduler_flags: %s repeats %s (the same flag): remove one", *f, other)
		}
		seen[bit] = *f
	}
}

func (c *checker) persistence(s *VirtualService) {
	p := s.Persistence
	if p == nil {
		if c.valid(&s.Port) && s.Port == 0 && !s.IsFWMark() {
			c.at(&s.Port, "port: 0 (every port) needs persistence: add persistence: {timeout: 300s}, or write the service's port")
		}
		for i := range s.Group {
			if e := &s.Group[i]; c.valid(&e.Port) && e.Port == 0 && e.FWMark == 0 {
				c.at(&e.Port, "port: 0 (every port) needs persistence: add persistence: {timeout: 300s} to the service, or write the entry's port")
			}
		}
		return
	}
	if !c.written(&p.Timeout) {
		p.Timeout = DefaultPersistenceTimeout
	} else if c.valid(&p.Timeout) {
		c.seconds(&p.Timeout, "timeout", "remove persistence to turn it off")
	}
	maxBits := Netmask(32)
	if s.Family == IPv6 {
		maxBits = 128
	}
	if !c.written(&p.Netmask) {
		p.Netmask = maxBits
	} else if c.valid(&p.Netmask) && p.Netmask > maxBits {
		c.at(&p.Netmask, "netmask: %d is out of range for IPv4: write a prefix length from 1 to 32, or a dotted mask such as 255.255.255.0", p.Netmask)
	}
	if c.valid(&p.Engine) && p.Engine != "sip" {
		c.at(&p.Engine, "engine: unknown persistence engine %q: write sip, or remove engine", p.Engine)
	}
}

// tunnelFor checks the tunnel options at *pt against the forwarding in
// force there and returns the options to use: nil unless forwarding is
// tunnel; inherited (when *pt is nil) or IPIP by default.
func (c *checker) tunnelFor(pt **TunnelOptions, fwd Forwarding, whose string, inherited *TunnelOptions) *TunnelOptions {
	t := *pt
	if fwd != Tunnel {
		if t != nil {
			c.atKey(pt, "tunnel options need forwarding: tunnel, but %s is %s: remove tunnel, or write forwarding: tunnel", whose, fwd)
		}
		return nil
	}
	if t == nil {
		if inherited != nil {
			cp := *inherited
			return &cp
		}
		return &TunnelOptions{Type: TunnelIPIP, Checksum: ChecksumNone}
	}
	if !c.written(&t.Type) {
		t.Type = TunnelIPIP
	}
	if !c.written(&t.Checksum) {
		t.Checksum = ChecksumNone
	}
	switch {
	case t.Type == TunnelGUE && !c.written(&t.Port):
		c.at(t, "a gue tunnel needs the real server's GUE port: write port: 6080 (the port of its fou/gue receiver)")
	case t.Type == TunnelGUE && c.valid(&t.Port) && t.Port == 0:
		c.at(&t.Port, "port: 0 is not a port: write the real server's GUE port, such as 6080")
	case t.Type != TunnelGUE && c.written(&t.Port):
		c.atKey(&t.Port, "port applies only to gue tunnels, not %s: remove it", t.Type)
	}
	switch {
	case t.Type == TunnelIPIP && c.written(&t.Checksum) && t.Checksum != ChecksumNone:
		c.atKey(&t.Checksum, "checksum applies only to gue and gre tunnels, not ipip: remove it")
	case t.Type == TunnelGRE && t.Checksum == ChecksumRemote:
		c.at(&t.Checksum, "checksum: remote checksum offload works only with gue: write checksum: checksum or none")
	}
	return t
}
