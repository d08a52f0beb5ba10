package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
)

// checker checks a decoded configuration as a whole and fills in its
// defaults. It reports every problem, at the position of the value (or
// key) at fault.
type checker struct {
	cfg  *Config
	errs *ErrorList
	sent map[Error]bool
	// scripts are the vrrp scripts by name, for track_scripts.
	scripts map[string]*VRRPScript
}

// written reports whether the value at p was written in a file.
func (c *checker) written(p any) bool { _, ok := c.cfg.pos.m[p]; return ok }

// valid reports whether the value at p was written and decoded cleanly.
func (c *checker) valid(p any) bool { s, ok := c.cfg.pos.m[p]; return ok && !s.bad }

func (c *checker) report(at position, format string, args ...any) {
	e := Error{File: at.file, Line: int(at.line), Column: int(at.column), Message: fmt.Sprintf(format, args...)}
	if c.sent == nil {
		c.sent = map[Error]bool{}
	}
	if !c.sent[e] {
		c.sent[e] = true
		*c.errs = append(*c.errs, e)
	}
}

// at reports a problem at the value p points to.
func (c *checker) at(p any, format string, args ...any) {
	c.report(c.cfg.pos.m[p].value, format, args...)
}

// atKey reports a problem at the key of the field p points to.
func (c *checker) atKey(p any, format string, args ...any) {
	s := c.cfg.pos.m[p]
	at := s.key
	if !at.known() {
		at = s.value
	}
	c.report(at, format, args...)
}

func (c *checker) config() {
	c.daemon(&c.cfg.LVSD)
	c.globals(&c.cfg.IPVS)
	c.vrrp(&c.cfg.VRRP)
	defer c.bgp(&c.cfg.BGP) // after the services: it reads their addresses
	keys := map[ipvs.ServiceKey]*VirtualService{}
	names := map[string]*VirtualService{}
	for i := range c.cfg.VirtualServices {
		s := &c.cfg.VirtualServices[i]
		if !c.service(s) {
			continue
		}
		for _, k := range s.Keys() {
			if first, dup := keys[k]; dup && first == s {
				c.at(s, "duplicate virtual service %s: the group lists it twice: remove one entry", k)
			} else if dup && c.where(first) == c.where(s) {
				c.at(s, "duplicate virtual service %s: an alias repeats it: use the alias once, or change port or address after a merge key (<<: *web)", k)
			} else if dup {
				c.at(s, "duplicate virtual service %s: it is already defined at %s: merge the two entries into one", k, c.where(first))
			} else {
				keys[k] = s
			}
		}
		if s.Name != "" {
			if first, dup := names[s.Name]; dup {
				c.at(&s.Name, "duplicate name %q: it is already used at %s: give each service its own name", s.Name, c.where(first))
			} else {
				names[s.Name] = s
			}
		}
	}
}

// warn records advice at the value p points to (see Config.Warnings).
func (c *checker) warn(p any, format string, args ...any) {
	at := c.cfg.pos.m[p].value
	c.cfg.warnings = append(c.cfg.warnings, Error{File: at.file, Line: int(at.line), Column: int(at.column), Message: fmt.Sprintf(format, args...)})
}

// where formats the position of a value for "already defined at ...".
func (c *checker) where(p any) string {
	at := c.cfg.pos.m[p].value
	return fmt.Sprintf("%s:%d:%d", at.file, at.line, at.column)
}

func (c *checker) daemon(d *Daemon) {
	if !c.written(&d.StateDir) {
		d.StateDir = DefaultStateDir
	} else if c.valid(&d.StateDir) && !strings.HasPrefix(d.StateDir, "/") {
		c.at(&d.StateDir, "state_dir: %q is relative: write an absolute path such as %s", d.StateDir, DefaultStateDir)
	}
	if !c.written(&d.StatusListen) {
		d.StatusListen = ListenAddress{Network: "tcp", Address: DefaultStatusListen}
	}
	if !c.written(&d.MetricsListen) {
		d.MetricsListen = ListenAddress{Network: "tcp", Address: DefaultMetricsListen}
	}
	if !d.StatusListen.IsZero() && d.StatusListen == d.MetricsListen {
		c.at(&d.MetricsListen, "metrics_listen: %s is also status_listen: give metrics another port", d.MetricsListen)
	}
	if !c.written(&d.ResyncInterval) {
		d.ResyncInterval = DefaultResyncInterval
	} else if c.valid(&d.ResyncInterval) && d.ResyncInterval < time.Second {
		c.at(&d.ResyncInterval, "resync_interval: %v is too short: write at least 1s (default %v)", d.ResyncInterval, DefaultResyncInterval)
	}
}

func (c *checker) globals(g *Globals) {
	for _, t := range []struct {
		name string
		p    *time.Duration
	}{{"tcp", &g.Timeouts.TCP}, {"tcp_fin", &g.Timeouts.TCPFin}, {"udp", &g.Timeouts.UDP}} {
		if c.valid(t.p) {
			c.seconds(t.p, t.name, "leave "+t.name+" out to keep the kernel's timeout")
		}
	}
	if g.ConnReuseMode != nil && (*g.ConnReuseMode < 0 || *g.ConnReuseMode > 3) {
		c.at(g.ConnReuseMode, "conn_reuse_mode: %d is out of range: write 0 (off), 1 (the kernel's default), 2 or 3", *g.ConnReuseMode)
	}
	if st := g.SyncThreshold; st != nil {
		if !c.written(&st.Threshold) {
			st.Threshold = 3
		}
		if !c.written(&st.Period) {
			st.Period = 50
		}
		switch {
		case st.Threshold < 0:
			c.at(&st.Threshold, "threshold: %d is negative: write 0 or more (the kernel's default is 3)", st.Threshold)
		case st.Period < 0:
			c.at(&st.Period, "period: %d is negative: write 0 or more (the kernel's default is 50)", st.Period)
		case st.Period != 0 && st.Threshold >= st.Period:
			c.at(&st.Threshold, "threshold: %d must be lower than period %d: write a threshold below it (the kernel's defaults are 3 and 50)", st.Threshold, st.Period)
		}
	}
	if sd := g.SyncDaemon; sd != nil {
		c.syncDaemon(sd)
	}
}

// seconds checks a duration the kernel keeps in whole seconds.
func (c *checker) seconds(p *time.Duration, name, zeroHint string) bool {
	d := *p
	switch {
	case d < time.Second:
		c.at(p, "%s: %v is too short: write at least 1s, or %s", name, d, zeroHint)
	case d%time.Second != 0:
		c.at(p, "%s: %v is not a whole number of seconds: write %v", name, d, d.Round(time.Second))
	case d > (1<<31-1)*time.Second:
		c.at(p, "%s: %v is too long: write at most %v", name, d, (1<<31-1)*time.Second)
	default:
		return true
	}
	return false
}

func (c *checker) syncDaemon(sd *SyncDaemon) {
	switch {
	case !c.written(&sd.Role) && !c.written(&sd.VRRPInstance):
		c.at(sd, "sync_daemon needs a role: write vrrp_instance: VI_1 (master while that instance is master, backup otherwise), or role: master, backup or both")
	case c.written(&sd.Role) && c.written(&sd.VRRPInstance):
		c.atKey(&sd.Role, "sync_daemon has both role and vrrp_instance: the instance's state chooses the role; remove role")
	}
	switch {
	case !c.written(&sd.Interface):
		c.at(sd, "sync_daemon needs an interface: write interface: eth1 (the link to the other director)")
	case c.valid(&sd.Interface) && !validInterfaceName(sd.Interface):
		c.at(&sd.Interface, "interface: %q is not an interface name: write a name such as eth1 (at most 15 characters, no spaces or slashes)", sd.Interface)
	}
	if c.valid(&sd.MaxLen) && (sd.MaxLen == 0 || sd.MaxLen > 65507) {
		c.at(&sd.MaxLen, "max_len: %d is out of range: write 1 to 65507, or leave it out for the kernel's default", sd.MaxLen)
	}
	if c.valid(&sd.McastGroup) && !sd.McastGroup.IsMulticast() {
		c.at(&sd.McastGroup, "mcast_group: %s is not a multicast address: write one such as 224.0.0.81 (the kernel's default) or ff02::81", sd.McastGroup)
	}
	if c.valid(&sd.McastPort) && sd.McastPort == 0 {
		c.at(&sd.McastPort, "mcast_port: 0 is not a port: write 1 to 65535, or leave it out for the kernel's default 8848")
	}
	if c.valid(&sd.McastTTL) && sd.McastTTL == 0 {
		c.at(&sd.McastTTL, "mcast_ttl: 0 would not leave this host: write 1 to 255, or leave it out for the kernel's default 1")
	}
}

func validInterfaceName(s string) bool {
	return s != "" && len(s) <= 15 && s != "." && s != ".." && !strings.ContainsAny(s, "/ \t\n:")
}

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

// checkKeys says which check types each health_check key applies to; keys
// not listed apply to every type but none.
var checkKeys = map[string][]CheckType{
	"connect_ip":      {CheckTCP, CheckHTTP, CheckHTTPS, CheckDNS, CheckUDP, CheckPing, CheckSMTP},
	"connect_port":    {CheckTCP, CheckHTTP, CheckHTTPS, CheckDNS, CheckUDP, CheckSMTP},
	"payload":         {CheckUDP},
	"require_reply":   {CheckUDP},
	"reply":           {CheckUDP},
	"min_reply_bytes": {CheckUDP},
	"max_reply_bytes": {CheckUDP},
	"helo_name":       {CheckSMTP},
	"path":            {CheckHTTP, CheckHTTPS},
	"status_codes":    {CheckHTTP, CheckHTTPS},
	"digest":          {CheckHTTP, CheckHTTPS},
	"host":            {CheckHTTP, CheckHTTPS},
	"sni":             {CheckHTTPS, CheckSMTP},
	"verify_tls":      {CheckHTTPS, CheckSMTP},
	"starttls":        {CheckSMTP},
	"command":         {CheckScript},
	"shell":           {CheckScript},
	"script_user":     {CheckScript},
	"query_name":      {CheckDNS},
	"query_type":      {CheckDNS},
}

// dnsTypes are the record types a dns check may ask for.
var dnsTypes = []string{"A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT"}

func (c *checker) healthCheck(h *HealthCheck) {
	if !c.written(&h.Type) {
		c.at(h, "health_check needs a type: write type: tcp, http, https, script, dns, udp, ping, smtp or none")
		return
	}
	if !c.valid(&h.Type) {
		return
	}
	v := reflect.ValueOf(h).Elem()
	for _, f := range fieldsOf(v.Type()) {
		p := v.Field(f.index).Addr().Interface()
		if f.name == "type" || !c.written(p) {
			continue
		}
		types, limited := checkKeys[f.name]
		switch {
		case h.Type == CheckNone:
			c.atKey(p, "%s does not apply to type: none (no check): remove it, or choose a check type", f.name)
		case limited && !slices.Contains(types, h.Type):
			names := make([]string, len(types))
			for i, t := range types {
				names[i] = string(t)
			}
			c.atKey(p, "%s applies only to %s checks, not %s: remove it, or write type: %s", f.name, joinOr(names), h.Type, types[0])
		}
	}
	if h.Type == CheckNone {
		return
	}
	c.checkTiming(h)
	if c.valid(&h.ConnectIP) {
		if msg := unicast(h.ConnectIP); msg != "" {
			c.at(&h.ConnectIP, "connect_ip: %s %s: write the address to check, or leave it out to check the real server", h.ConnectIP, msg)
		}
	}
	if c.valid(&h.ConnectPort) && h.ConnectPort == 0 {
		c.at(&h.ConnectPort, "connect_port: 0 is not a port: write 1 to 65535, or leave it out to check the real server's port")
	}
	switch h.Type {
	case CheckHTTP, CheckHTTPS:
		c.httpCheck(h)
	case CheckScript:
		c.scriptCheck(h)
	case CheckDNS:
		c.dnsCheck(h)
	case CheckUDP:
		c.udpCheck(h)
	case CheckSMTP:
		c.smtpCheck(h)
	}
}

func (c *checker) udpCheck(h *HealthCheck) {
	if c.valid(&h.Payload) {
		switch data, _, err := ParseHex(h.Payload, false); {
		case err != nil:
			c.at(&h.Payload, "payload: %v: write the datagram in hex digits, such as 0a1b2c", err)
		case len(data) > 65507:
			c.at(&h.Payload, "payload: %d bytes: a datagram holds at most 65507", len(data))
		}
	}
	if c.valid(&h.Reply) {
		if _, _, err := ParseHex(h.Reply, true); err != nil {
			c.at(&h.Reply, "reply: %v: write the expected reply in hex digits, X for a digit that may be anything, such as 0aXX2c", err)
		}
	}
	if !c.written(&h.MaxReplyBytes) {
		h.MaxReplyBytes = DefaultUDPMaxReply
	}
	for _, n := range []struct {
		name string
		p    *int
	}{{"min_reply_bytes", &h.MinReplyBytes}, {"max_reply_bytes", &h.MaxReplyBytes}} {
		if c.valid(n.p) && (*n.p < 0 || *n.p > 65535) {
			c.at(n.p, "%s: %d is out of range: write 0 to 65535", n.name, *n.p)
		}
	}
	if c.valid(&h.MinReplyBytes) && c.valid(&h.MaxReplyBytes) && h.MinReplyBytes > h.MaxReplyBytes {
		c.at(&h.MinReplyBytes, "min_reply_bytes: %d is above max_reply_bytes %d: the check could never pass", h.MinReplyBytes, h.MaxReplyBytes)
	}
	if (c.written(&h.MinReplyBytes) || c.written(&h.MaxReplyBytes)) && !c.written(&h.Reply) {
		p := any(&h.MinReplyBytes)
		if !c.written(&h.MinReplyBytes) {
			p = &h.MaxReplyBytes
		}
		c.at(p, "min_reply_bytes and max_reply_bytes apply only with reply (as in keepalived): write reply: with the expected bytes, or remove them")
	}
}

func (c *checker) smtpCheck(h *HealthCheck) {
	for _, p := range []any{&h.SNI, &h.VerifyTLS} {
		if c.written(p) && !h.StartTLS {
			c.atKey(p, "sni and verify_tls apply to an smtp check only with starttls: true: add it, or remove them")
		}
	}
	c.sni(h)
	switch {
	case !c.written(&h.HELOName):
		h.HELOName = DefaultHELOName
	case c.valid(&h.HELOName) && (h.HELOName == "" || strings.ContainsAny(h.HELOName, " \t\r\n\x00")):
		c.at(&h.HELOName, "helo_name: %q is not a host name: write this director's name, such as lvs1.example.com (default %s)", h.HELOName, DefaultHELOName)
	}
}

func (c *checker) checkTiming(h *HealthCheck) {
	if !c.written(&h.Interval) {
		h.Interval = DefaultCheckInterval
	} else if c.valid(&h.Interval) && h.Interval < 100*time.Millisecond {
		c.at(&h.Interval, "interval: %v is too short: write at least 100ms (default %v)", h.Interval, DefaultCheckInterval)
	}
	if !c.written(&h.Timeout) {
		h.Timeout = min(DefaultCheckTimeout, h.Interval)
	} else if c.valid(&h.Timeout) {
		// A timeout longer than the interval is allowed, as keepalived
		// allows connect_timeout > delay_loop: the scheduler never
		// overlaps two rounds of one check, and the round after a slow
		// one starts an interval after it ended.
		if h.Timeout < time.Millisecond {
			c.at(&h.Timeout, "timeout: %v is too short: write at least 1ms (default %v)", h.Timeout, DefaultCheckTimeout)
		}
	}
	counts := []struct {
		name string
		p    *int
		def  int
		min  int
	}{{"rise", &h.Rise, DefaultCheckRise, 1}, {"fall", &h.Fall, DefaultCheckFall, 1}, {"retry", &h.Retry, DefaultCheckRetry, 0}}
	for _, n := range counts {
		switch {
		case !c.written(n.p):
			*n.p = n.def
		case c.valid(n.p) && *n.p < n.min:
			c.at(n.p, "%s: %d is too small: write %d or more (default %d)", n.name, *n.p, n.min, n.def)
		case c.valid(n.p) && *n.p > 1000:
			c.at(n.p, "%s: %d is too large: write at most 1000 (default %d)", n.name, *n.p, n.def)
		}
	}
	if !c.written(&h.RetryDelay) {
		h.RetryDelay = DefaultCheckRetryDelay
	}
}

func (c *checker) httpCheck(h *HealthCheck) {
	switch {
	case !c.written(&h.Path):
		h.Path = DefaultHTTPPath
	case c.valid(&h.Path) && !strings.HasPrefix(h.Path, "/"):
		c.at(&h.Path, "path: %q must start with /: write /%s", h.Path, h.Path)
	case c.valid(&h.Path) && strings.ContainsAny(h.Path, " \t\r\n"):
		c.at(&h.Path, "path: %q has a space: write it URL-encoded (%%20)", h.Path)
	}
	if len(h.StatusCodes) == 0 {
		if c.written(&h.StatusCodes) {
			c.at(&h.StatusCodes, "status_codes: empty: list the codes that mean up, such as [200] or [\"200-299\"]")
		}
		h.StatusCodes = []StatusRange{{200, 299}}
	}
	if c.valid(&h.Digest) {
		d := strings.ToLower(h.Digest)
		if len(d) != 32 || strings.Trim(d, "0123456789abcdef") != "" {
			c.at(&h.Digest, "digest: %q is not an MD5 digest: write the 32 hex digits genhash prints for the page (genhash -s ADDRESS -p PORT -u PATH)", h.Digest)
		}
		h.Digest = d
	}
	if c.valid(&h.Host) && (h.Host == "" || strings.ContainsAny(h.Host, " \t\r\n/")) {
		c.at(&h.Host, "host: %q is not a host name: write the Host header the server expects, such as www.example.com", h.Host)
	}
	c.sni(h)
	if h.Type == CheckHTTPS && !c.written(&h.SNI) && h.Host != "" {
		if _, err := netip.ParseAddr(h.Host); err != nil {
			h.SNI = h.Host
		}
	}
}

// sni checks a TLS server name.
func (c *checker) sni(h *HealthCheck) {
	if c.valid(&h.SNI) {
		if _, err := netip.ParseAddr(h.SNI); err == nil {
			c.at(&h.SNI, "sni: %s is an IP address, which TLS cannot send as a server name: write the certificate's host name, or remove sni", h.SNI)
		} else if h.SNI == "" || strings.ContainsAny(h.SNI, " \t\r\n/:") {
			c.at(&h.SNI, "sni: %q is not a host name: write the certificate's host name, such as www.example.com", h.SNI)
		}
	}
}

func (c *checker) scriptCheck(h *HealthCheck) {
	switch {
	case !c.written(&h.Command):
		c.at(h, "a script check needs a command: write command: [/usr/local/bin/check, --port, \"80\"] (exit status 0 means up)")
	case !c.valid(&h.Command):
	case len(h.Command) == 0:
		c.at(&h.Command, "command: empty: write the program and its arguments, such as [/usr/local/bin/check, --port, \"80\"]")
	case h.Shell && len(h.Command) != 1:
		c.at(&h.Command, "command: with shell: true, write the script as one string: command: [\"check-a && check-b\"]")
	case h.Command[0] == "":
		c.at(&h.Command[0], "command: the program is empty: write its path first, such as /usr/local/bin/check")
	case !h.Shell && len(h.Command) == 1 && strings.ContainsAny(h.Command[0], " \t"):
		c.at(&h.Command[0], "command: %q is one argument holding spaces, and no shell runs it: write each argument as its own item ([%s]), or set shell: true", h.Command[0], strings.Join(strings.Fields(h.Command[0]), ", "))
	}
}

func (c *checker) dnsCheck(h *HealthCheck) {
	if !c.written(&h.QueryName) {
		h.QueryName = DefaultDNSQueryName
	} else if c.valid(&h.QueryName) && (h.QueryName == "" || len(h.QueryName) > 253 || strings.ContainsAny(h.QueryName, " \t\r\n")) {
		c.at(&h.QueryName, "query_name: %q is not a DNS name: write a name such as example.com (default %q)", h.QueryName, DefaultDNSQueryName)
	}
	if !c.written(&h.QueryType) {
		h.QueryType = DefaultDNSQueryType
	} else if c.valid(&h.QueryType) {
		if up := strings.ToUpper(h.QueryType); slices.Contains(dnsTypes, up) {
			h.QueryType = up
		} else {
			c.at(&h.QueryType, "query_type: unknown record type %q: write %s", h.QueryType, joinOr(dnsTypes))
		}
	}
}

// needsPort reports whether a check connects to a port.
func needsPort(t CheckType) bool {
	return t == CheckTCP || t == CheckHTTP || t == CheckHTTPS || t == CheckDNS || t == CheckUDP || t == CheckSMTP
}

// destination checks what real servers and sorry servers share: address,
// family, forwarding, tunnel and port. It fills in the inherited values.
func (c *checker) destination(s *VirtualService, what string, self any, addr *netip.Addr, port *uint16, fwd *Forwarding, tun **TunnelOptions) bool {
	ok := true
	if !c.written(fwd) {
		*fwd = s.Forwarding
	}
	*tun = c.tunnelFor(tun, *fwd, "its forwarding", s.Tunnel)
	switch {
	case !c.written(addr):
		c.at(self, "a %s needs an address: write address: 10.0.0.2", what)
		ok = false
	case !c.valid(addr):
		ok = false
	default:
		if msg := unicast(*addr); msg != "" {
			c.at(addr, "address: %s %s: write the %s's own address", *addr, msg, what)
			ok = false
		} else if s.Family != "" && familyOf(*addr) != s.Family && *fwd != Tunnel {
			c.at(addr, "address: %s is %s but the service is %s: only tunnel forwarding can cross address families", *addr, familyOf(*addr), s.Family)
		}
	}
	svcPort := s.realServerPort()
	switch {
	case !c.written(port):
		*port = svcPort
	case !c.valid(port):
		ok = false
	case !s.IsFWMark() && !s.IsGroup() && !c.valid(&s.Port):
		// the service's port is broken: nothing to compare with
	case *fwd != Masquerade && *port != svcPort && svcPort == 0:
		c.at(port, "port: a %s of a %s service with %s forwarding keeps the client's port: remove port, or use forwarding: masquerade to change it", what, portless(s), *fwd)
	case *fwd != Masquerade && *port != svcPort:
		c.at(port, "port: %s forwarding cannot change the port (%d, the service's is %d): remove port, or use forwarding: masquerade", *fwd, *port, svcPort)
	}
	return ok
}

func portless(s *VirtualService) string {
	switch {
	case s.IsGroup():
		return "group (marks, or several ports)"
	case s.IsFWMark():
		return "fwmark"
	}
	return "port-0"
}

func (c *checker) realServer(s *VirtualService, rs *RealServer) bool {
	if !c.valid(rs) {
		return false // not a mapping: reported
	}
	ok := c.destination(s, "real server", rs, &rs.Address, &rs.Port, &rs.Forwarding, &rs.Tunnel)
	switch {
	case !c.written(&rs.Weight):
		rs.Weight = DefaultWeight
	case !c.valid(&rs.Weight):
	case rs.Weight < 0:
		c.at(&rs.Weight, "weight: %d is negative: write 0 (no new connections) to %d", rs.Weight, MaxWeight)
	case rs.Weight > MaxWeight:
		c.at(&rs.Weight, "weight: %d is too large: write at most %d", rs.Weight, MaxWeight)
	}
	switch {
	case !c.valid(&rs.LowerThreshold) || rs.LowerThreshold == 0:
	case rs.UpperThreshold == 0:
		c.atKey(&rs.LowerThreshold, "lower_threshold needs an upper_threshold (0 means no limit): add upper_threshold, or remove lower_threshold")
	case rs.LowerThreshold > rs.UpperThreshold:
		c.at(&rs.LowerThreshold, "lower_threshold: %d is higher than upper_threshold %d: write at most %d", rs.LowerThreshold, rs.UpperThreshold, rs.UpperThreshold)
	}
	if rs.HealthCheck != nil {
		c.healthCheck(rs.HealthCheck)
	}
	h, own := rs.HealthCheck, true
	if h == nil {
		h, own = s.HealthCheck, false
	}
	if ok && h != nil && c.valid(&h.Type) && needsPort(h.Type) && rs.Port == 0 && !c.written(&h.ConnectPort) {
		if own {
			c.at(h, "the %s check needs a port, but this real server has none (%s service): write connect_port: 80", h.Type, portless(s))
		} else {
			c.at(h, "the %s check needs a port, but the real servers of a %s service have none: write connect_port: 80", h.Type, portless(s))
		}
	}
	return ok
}

func (c *checker) sorryServer(s *VirtualService, realServers map[ipvs.RealServerKey]*RealServer) {
	ss := s.SorryServer
	if !c.destination(s, "sorry server", ss, &ss.Address, &ss.Port, &ss.Forwarding, &ss.Tunnel) {
		return
	}
	k := ipvs.RealServerKey{Address: ss.Address, Port: ss.Port}
	if rs, dup := realServers[k]; dup {
		c.at(ss, "sorry_server %s is also a real server (at %s): use another server, or remove it from real_servers", k, c.where(rs))
	}
}

func (c *checker) quorum(s *VirtualService) {
	q := s.Quorum
	total := 0
	for _, rs := range s.RealServers {
		total += int(max(rs.Weight, 0))
	}
	switch {
	case !c.written(&q.Weight):
		c.at(q, "quorum needs a weight: write weight: N, the total weight of the real servers that must be up")
	case !c.valid(&q.Weight):
	case q.Weight < 1:
		c.at(&q.Weight, "weight: %d is too small: write 1 or more", q.Weight)
	case q.Weight > total:
		c.at(&q.Weight, "weight: %d can never be reached: the real servers' weights add up to %d: write at most %d, or add real servers", q.Weight, total, total)
	}
	if c.valid(&q.Hysteresis) && q.Weight >= 1 && (q.Hysteresis < 0 || q.Hysteresis >= q.Weight) {
		c.at(&q.Hysteresis, "hysteresis: %d is out of range: write 0 to %d (less than the quorum weight)", q.Hysteresis, q.Weight-1)
	}
	for _, cmd := range []struct {
		name string
		argv *[]string
	}{{"up_command", &q.UpCommand}, {"down_command", &q.DownCommand}} {
		switch {
		case !c.valid(cmd.argv):
		case len(*cmd.argv) == 0:
			c.at(cmd.argv, "%s: empty: write an argument list such as [/usr/local/bin/notify, %s], or remove it", cmd.name, strings.TrimSuffix(cmd.name, "_command"))
		case (*cmd.argv)[0] == "":
			c.at(&(*cmd.argv)[0], "%s: the program is empty: write its path first, such as /usr/local/bin/notify", cmd.name)
		case len(*cmd.argv) == 1 && strings.ContainsAny((*cmd.argv)[0], " \t"):
			c.at(&(*cmd.argv)[0], "%s: %q is one argument holding spaces, and no shell runs it: write each argument as its own item ([%s])", cmd.name, (*cmd.argv)[0], strings.Join(strings.Fields((*cmd.argv)[0]), ", "))
		}
	}
}
