package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// BGP is the `bgp` section: lvsd announces the address of every service
// written with `announce: bgp` (or both) to these peers as a /32 or /128
// while the address can serve, so that an upstream router spreads flows
// over several directors with ECMP. lvsd learns no routes from its peers.
//
//	bgp:
//	  asn: 65001
//	  router_id: 10.0.0.2            # IPv4, unique among the speakers
//	  peers:
//	    - {address: 10.0.0.1, asn: 65000, hold_time: 9s, keepalive: 3s, password: secret}
//	  communities: ["65001:100"]
//	  low_watermark: 50%             # withdraw when a service of the VIP has fewer up
//	  high_watermark: 75%            # announce again once every service has this many up
//
// Every director of the group should use the mh scheduler with mh-port,
// direct_route and the same real servers and weights, and set
// ipvs: {sloppy_tcp: true}: then a director's death moves only its
// flows, and those land on the same real server (`lvsd check` warns
// otherwise).
type BGP struct {
	// ASN (asn) is this director's autonomous system number, 1 to
	// 4294967295. Required.
	ASN uint32 `yaml:"asn"`
	// RouterID (router_id) is the BGP identifier, an IPv4 address unique
	// among the speakers. Required.
	RouterID netip.Addr `yaml:"router_id"`
	// ListenPort (listen_port) accepts sessions from the peers on this
	// TCP port, on listen_addresses. Default: no listener (lvsd connects
	// to its peers).
	ListenPort uint16 `yaml:"listen_port"`
	// ListenAddresses (listen_addresses) are where the listener binds;
	// required with listen_port.
	ListenAddresses []netip.Addr `yaml:"listen_addresses"`
	// Peers (peers) are the routers lvsd announces to. At least one.
	Peers []BGPPeer `yaml:"peers"`
	// Communities (communities) are standard communities ("65001:100")
	// set on every announced address.
	Communities []BGPCommunity `yaml:"communities"`
	// MED (med) is the multi-exit discriminator of the announced
	// addresses. Default 0 (left out).
	MED uint32 `yaml:"med"`
	// LowWatermark (low_watermark) withdraws an announced address when a
	// service of it has less than this share of its real servers up: a
	// percentage ("50%") or a fraction (0.5). Default 0%: withdrawn when a
	// service has none up.
	LowWatermark Ratio `yaml:"low_watermark"`
	// HighWatermark (high_watermark) announces a withdrawn address again
	// once every service of it has at least this share up (and one at
	// least). At least low_watermark; default: low_watermark.
	HighWatermark Ratio `yaml:"high_watermark"`
	// StopDrain (stop_drain) is how long lvsd waits on SIGTERM between
	// withdrawing its VIPs and stopping BGP and IPVS, so that the routers
	// move the flows elsewhere before this director stops forwarding
	// them. Default 1s; 0s to stop at once.
	StopDrain time.Duration `yaml:"stop_drain"`
}

// BGPPeer is one BGP neighbour.
type BGPPeer struct {
	// Address (address) is the peer's address. Required.
	Address netip.Addr `yaml:"address"`
	// ASN (asn) is the peer's AS number. Required.
	ASN uint32 `yaml:"asn"`
	// Port (port) is the peer's TCP port. Default 179.
	Port uint16 `yaml:"port"`
	// LocalAddress (local_address) is the session's source address.
	// Default: chosen by the kernel's routing.
	LocalAddress netip.Addr `yaml:"local_address"`
	// HoldTime (hold_time) is how long a silent session lasts before the
	// peer drops it (and lvsd's routes): 0s (no hold timer) or 3s to
	// 65535s. Default 90s; the router may negotiate it down. A killed
	// director's routes last this long at most.
	HoldTime time.Duration `yaml:"hold_time"`
	// Keepalive (keepalive) is the interval of keepalive messages, shorter
	// than hold_time. Default: a third of hold_time.
	Keepalive time.Duration `yaml:"keepalive"`
	// Password (password) enables TCP MD5 signatures (RFC 2385); the
	// router must be given the same one. It is never logged.
	Password string `yaml:"password"`
	// Passive (passive) waits for the peer to connect; needs listen_port.
	Passive bool `yaml:"passive"`
	// MultihopTTL (multihop_ttl) allows an eBGP peer that many hops away.
	// Default: directly connected (TTL 1).
	MultihopTTL uint8 `yaml:"multihop_ttl"`
	// BFD (bfd) is not supported yet: the hold time bounds detection.
	BFD bool `yaml:"bfd"`
}

// Default BGP timers, as GoBGP's and most routers'.
const DefaultBGPHoldTime = 90 * time.Second

// DefaultBGPStopDrain is the wait between withdrawing and stopping.
const DefaultBGPStopDrain = time.Second

// BGPCommunity is a standard community, ASN:value in 32 bits.
type BGPCommunity uint32

// String returns the ASN:value form.
func (c BGPCommunity) String() string { return fmt.Sprintf("%d:%d", uint32(c)>>16, uint32(c)&0xffff) }

func (c *BGPCommunity) decodeScalar(n *yaml.Node) string {
	hi, lo, ok := strings.Cut(n.Value, ":")
	a, errA := strconv.ParseUint(hi, 10, 16)
	v, errV := strconv.ParseUint(lo, 10, 16)
	if !ok || errA != nil || errV != nil {
		return fmt.Sprintf("%s is not a community: write ASN:value, each 0 to 65535, in quotes (\"65001:100\")", describe(n))
	}
	*c = BGPCommunity(a<<16 | v)
	return ""
}

// Ratio is a share from 0 to 1, written as a percentage ("50%") or a
// fraction (0.5).
type Ratio float64

// String formats the ratio as a percentage.
func (r Ratio) String() string { return strconv.FormatFloat(float64(r)*100, 'f', -1, 64) + "%" }

func (r *Ratio) decodeScalar(n *yaml.Node) string {
	s := n.Value
	scale := 1.0
	if p, ok := strings.CutSuffix(s, "%"); ok {
		s, scale = strings.TrimSpace(p), 100
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f/scale > 1 {
		return fmt.Sprintf("%s is not a share: write a percentage from 0%% to 100%% (\"50%%\") or a fraction from 0 to 1 (0.5)", describe(n))
	}
	*r = Ratio(f / scale)
	return ""
}

// Announce is how a service's address is made known to the network.
type Announce string

// Announce methods.
const (
	// AnnounceVRRP: the address is held through VRRP (or, with no vrrp
	// section, configured by hand); nothing is said over BGP. The default.
	AnnounceVRRP Announce = "vrrp"
	// AnnounceBGP: the address is announced to the bgp peers while it can
	// serve; every director of the group is active.
	AnnounceBGP Announce = "bgp"
	// AnnounceBoth: held through VRRP and announced over BGP while this
	// director is the VRRP master and the address can serve.
	AnnounceBoth Announce = "both"
)

func (a *Announce) decodeScalar(n *yaml.Node) string { return decodeEnum(n, a) }

// OverBGP reports whether the address is announced over BGP.
func (a Announce) OverBGP() bool { return a == AnnounceBGP || a == AnnounceBoth }

func init() {
	enumNames[reflect.TypeFor[Announce]()] = []string{"vrrp", "bgp", "both"}
	typeNames[reflect.TypeFor[BGP]()] = "in bgp"
	typeNames[reflect.TypeFor[BGPPeer]()] = "in a bgp peer"
	for k, v := range map[string]string{
		"neighbor":       "peers (a list)",
		"neighbors":      "peers (a list)",
		"neighbour":      "peers (a list)",
		"neighbours":     "peers (a list)",
		"local_as":       "asn",
		"local_asn":      "asn",
		"peer_as":        "asn (in a peer)",
		"remote_as":      "asn (in a peer)",
		"holdtime":       "hold_time",
		"keepalive_time": "keepalive",
		"md5":            "password",
		"auth_password":  "password",
		"routerid":       "router_id",
	} {
		renamed[k] = v
	}
}

// bgp checks the bgp section and the services' announce settings.
func (c *checker) bgp(b *BGP) {
	present := c.written(b)
	if present {
		c.bgpSection(b)
	}
	c.announces(present)
}

func (c *checker) bgpSection(b *BGP) {
	if !c.written(&b.ASN) {
		c.at(b, "bgp: asn is missing: write this director's AS number (asn: 65001)")
	} else if c.valid(&b.ASN) && b.ASN == 0 {
		c.at(&b.ASN, "asn: 0 is reserved: write an AS number from 1 (private ones: 64512-65534, 4200000000-4294967294)")
	}
	if !c.written(&b.RouterID) {
		c.at(b, "bgp: router_id is missing: write an IPv4 address unique among the speakers, usually this director's (router_id: 10.0.0.2)")
	} else if c.valid(&b.RouterID) && !b.RouterID.Is4() {
		c.at(&b.RouterID, "router_id: %s is not IPv4: a BGP identifier is an IPv4 address even on an IPv6-only director", b.RouterID)
	}
	if b.ListenPort != 0 && len(b.ListenAddresses) == 0 {
		c.at(&b.ListenPort, "listen_port: lvsd does not listen on every address: write listen_addresses too (the addresses the peers connect to)")
	}
	if len(b.ListenAddresses) > 0 && b.ListenPort == 0 {
		c.atKey(&b.ListenAddresses, "listen_addresses: without listen_port nothing listens: write listen_port: 179, or remove listen_addresses")
	}
	if len(b.Peers) == 0 {
		c.at(b, "bgp: no peers: write peers: [{address: ..., asn: ...}] (the routers to announce to)")
	}
	seen := map[netip.Addr]*BGPPeer{}
	for i := range b.Peers {
		p := &b.Peers[i]
		if !c.valid(p) {
			continue
		}
		c.bgpPeer(b, p)
		if !p.Address.IsValid() {
			continue
		}
		if first, dup := seen[p.Address]; dup {
			c.at(&p.Address, "peer %s is already listed at %s: list each peer once", p.Address, c.where(first))
		} else {
			seen[p.Address] = p
		}
	}
	if !c.written(&b.StopDrain) {
		b.StopDrain = DefaultBGPStopDrain
	} else if c.valid(&b.StopDrain) && (b.StopDrain < 0 || b.StopDrain > time.Minute) {
		c.at(&b.StopDrain, "stop_drain: %v is out of range: write 0s to 1m (default %v)", b.StopDrain, DefaultBGPStopDrain)
	}
	if !c.written(&b.LowWatermark) {
		b.LowWatermark = 0
	}
	if !c.written(&b.HighWatermark) {
		b.HighWatermark = b.LowWatermark
	} else if c.valid(&b.HighWatermark) && b.HighWatermark < b.LowWatermark {
		c.at(&b.HighWatermark, "high_watermark: %v is below low_watermark %v: write at least %v (the gap keeps a flapping real server from flapping the route)", b.HighWatermark, b.LowWatermark, b.LowWatermark)
	}
}

func (c *checker) bgpPeer(b *BGP, p *BGPPeer) {
	if !c.written(&p.Address) {
		c.at(p, "bgp peer: address is missing: write the router's address (address: 10.0.0.1)")
	} else if c.valid(&p.Address) {
		if msg := unicast(p.Address); msg != "" {
			c.at(&p.Address, "address: %s %s: write the router's unicast address", p.Address, msg)
		}
	}
	if !c.written(&p.ASN) {
		c.at(p, "bgp peer %s: asn is missing: write the router's AS number (asn: 65000)", p.Address)
	} else if c.valid(&p.ASN) && p.ASN == 0 {
		c.at(&p.ASN, "asn: 0 is reserved: write the router's AS number")
	}
	if c.valid(&p.LocalAddress) && p.LocalAddress.IsValid() && p.Address.IsValid() && p.LocalAddress.Is4() != p.Address.Is4() {
		c.at(&p.LocalAddress, "local_address: %s is not of the peer's family (%s): write an address of this director in the same family", p.LocalAddress, p.Address)
	}
	if !c.written(&p.HoldTime) {
		p.HoldTime = DefaultBGPHoldTime
	} else if c.valid(&p.HoldTime) {
		switch {
		case p.HoldTime%time.Second != 0:
			c.at(&p.HoldTime, "hold_time: %v is not whole seconds: BGP counts in seconds", p.HoldTime)
		case p.HoldTime != 0 && p.HoldTime < 3*time.Second, p.HoldTime > 65535*time.Second:
			c.at(&p.HoldTime, "hold_time: %v is out of range: write 0s (no hold timer) or 3s to 65535s (RFC 4271)", p.HoldTime)
		}
	}
	if c.written(&p.Keepalive) && c.valid(&p.Keepalive) {
		switch {
		case p.Keepalive%time.Second != 0:
			c.at(&p.Keepalive, "keepalive: %v is not whole seconds: BGP counts in seconds", p.Keepalive)
		case p.HoldTime != 0 && p.Keepalive >= p.HoldTime:
			c.at(&p.Keepalive, "keepalive: %v is not shorter than hold_time %v: write a third of it (%v)", p.Keepalive, p.HoldTime, (p.HoldTime / 3).Truncate(time.Second))
		}
	}
	if p.Passive && b.ListenPort == 0 {
		c.atKey(&p.Passive, "passive: the peer must connect to lvsd, which does not listen: write listen_port and listen_addresses in bgp, or remove passive")
	}
	if len(p.Password) > 80 {
		c.atKey(&p.Password, "password: %d bytes is too long: TCP MD5 keys are at most 80 bytes", len(p.Password))
	}
	if p.BFD {
		c.atKey(&p.BFD, "bfd: not supported by lvsd yet: remove it; a dead director's routes go after hold_time (write hold_time: 3s for the fastest the protocol allows)")
	}
}

// announces checks every service's announce setting and that all services
// of one address agree, since a route is announced per address.
func (c *checker) announces(haveBGP bool) {
	first := map[netip.Addr]*VirtualService{}
	overBGP := 0
	held := map[netip.Addr]bool{}
	for _, in := range c.cfg.VRRP.Instances {
		for _, va := range in.VirtualAddresses {
			held[va.Address] = true
		}
	}
	for i := range c.cfg.VirtualServices {
		s := &c.cfg.VirtualServices[i]
		if !c.valid(s) || (c.written(&s.Announce) && !c.valid(&s.Announce)) {
			continue
		}
		written := c.written(&s.Announce)
		if !written {
			s.Announce = AnnounceVRRP
		}
		if s.IsFWMark() {
			if written && s.Announce.OverBGP() {
				c.at(&s.Announce, "announce: %s: a fwmark service has no address to announce: write announce on services with an address", s.Announce)
			}
			continue
		}
		if s.Announce.OverBGP() {
			overBGP++
			if !haveBGP {
				c.at(&s.Announce, "announce: %s needs a bgp section (asn, router_id, peers): write one, or announce: vrrp", s.Announce)
			}
		}
		if s.Announce == AnnounceBoth && !held[s.Address] {
			c.at(&s.Announce, "announce: both: %s is not a virtual address of any vrrp instance: add it to one, or write announce: bgp", s.Address)
		}
		if f, ok := first[s.Address]; !ok {
			first[s.Address] = s
		} else if f.Announce != s.Announce {
			var at any = s
			if written {
				at = &s.Announce
			}
			c.at(at, "announce: %s, but the service of %s at %s is announced with %s: a route is per address: write the same announce on every service of %s", s.Announce, s.Address, c.where(f), f.Announce, s.Address)
		}
	}
	if haveBGP && overBGP == 0 {
		c.atKey(&c.cfg.BGP, "bgp: no virtual service is announced over it: write announce: bgp on the services whose address the routers should learn")
	}
}

// hasChecks reports whether any real server of s is health-checked.
func (c *checker) hasChecks(s *VirtualService) bool {
	for _, rs := range s.RealServers {
		h := rs.HealthCheck
		if h == nil {
			h = s.HealthCheck
		}
		if h != nil && h.Type != CheckNone {
			return true
		}
	}
	return false
}

// flowKeepingSchedulers keep a flow on the same real server when another
// director takes it over: they pick by a hash of the packet, the same on
// every director with the same real servers.
var flowKeepingSchedulers = []string{"mh", "sh"}

// bgpWarnings is advice on services announced over BGP: what they need so
// that flows survive a director's death.
func (c *checker) bgpWarnings() {
	if !c.written(&c.cfg.BGP) {
		return
	}
	for i := range c.cfg.VirtualServices {
		s := &c.cfg.VirtualServices[i]
		if s.Announce != AnnounceBGP {
			continue
		}
		what := fmt.Sprintf("%s, which every director announces over bgp", s.Key())
		at := func(p any) any { // a default has no position: point at the service
			if c.written(p) {
				return p
			}
			return s
		}
		switch {
		case !slices.Contains(flowKeepingSchedulers, s.Scheduler):
			c.warn(at(&s.Scheduler), "scheduler: %s on %s: when a director goes, the router moves its flows to the others, which know none of them and pick a real server of their own for each; the client's next packet lands on a server that has no connection and is reset. Write scheduler: mh, scheduler_flags: [mh-port], and ipvs: {sloppy_tcp: true}, with direct_route and the same real servers on every director", s.Scheduler, what)
		case s.Scheduler == "sh":
			c.warn(at(&s.Scheduler), "scheduler: sh on %s: sh keeps a director's flows on their real server only while every director has the same real servers up; when one real server goes, sh reassigns most of its table on each director, mh (Maglev hashing) only that server's share: write scheduler: mh, scheduler_flags: [mh-port]", what)
		case !slices.Contains(s.SchedulerFlags, "mh-port"):
			c.warn(at(&s.Scheduler), "scheduler: mh without mh-port on %s: every connection of one client goes to one real server; write scheduler_flags: [mh-port] to spread by port too", what)
		}
		if s.Scheduler == "mh" && s.OnFailure == Remove && c.hasChecks(s) {
			c.warn(at(&s.OnFailure), "on_failure: remove on %s: a real server that comes back is added again at another place in the kernel's list, and mh builds its table in list order, so the directors' tables can differ until they restart: write on_failure: quiesce (weight 0 keeps the server's place) with scheduler_flags: [mh-port, mh-fallback]", what)
		}
		if s.Scheduler == "mh" && s.OnFailure == Quiesce && c.hasChecks(s) && !slices.Contains(s.SchedulerFlags, "mh-fallback") {
			c.warn(at(&s.SchedulerFlags), "scheduler_flags: mh without mh-fallback on %s, with on_failure: quiesce: a quiesced real server keeps its share of mh's table, and new connections hashed to it find no destination (the director resets them): add mh-fallback", what)
		}
		if s.Persistence != nil {
			c.warn(at(s.Persistence), "persistence on %s: persistence templates live on one director; after a failover a client may move to another real server: leave persistence out and let mh's hash keep clients", what)
		}
		if s.Forwarding == Masquerade {
			c.warn(at(&s.Forwarding), "forwarding: masquerade on %s: replies must return through the director that forwarded the request, which ECMP does not ensure: write forwarding: direct_route (or tunnel)", what)
		}
	}
	g := &c.cfg.IPVS
	if g.SloppyTCP == nil || !*g.SloppyTCP {
		c.warn(&c.cfg.BGP, "bgp: without ipvs: {sloppy_tcp: true} a director that takes over a flow mid-connection drops its packets (IPVS schedules only SYNs): write sloppy_tcp: true under ipvs")
	}
}
