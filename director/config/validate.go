package config

import (
	"fmt"
	"net/netip"
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
