package keepalived

// Turning a virtual_server block into lvsd's service: its identity, keepalived's
// defaults, the real servers' ports, and the checks' and quorum's final shape.

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/lvskit/lvskit/director/config"
	"gopkg.in/yaml.v3"
)

// identity is one VIP:port or fwmark a virtual service stands for.
type identity struct {
	address netip.Addr
	port    int
	fwmark  int
}

func (c *converter) virtualServer(s *stmt) error {
	ids, fwmark, err := c.serviceIdentities(s)
	if err != nil {
		return err
	}
	v := &service{n: ymap(), s: s, quorum: ymap(), persistence: ymap(), fwmark: fwmark}
	if !s.hasBlock {
		return fmt.Errorf("%s: virtual_server needs a block", s.at())
	}
	err = run(c, serviceHandlers, v, s.block, func(c *converter, v *service, st *stmt) {
		c.drop(v.n, st, KindService, "lvsd has no equivalent")
	})
	if err != nil {
		return err
	}
	c.keepalivedServiceDefaults(v, s, ids)
	c.finishService(v)
	n := serviceNode(s, v, ids)
	n.HeadComment = v.n.HeadComment
	n.Content = append(n.Content, v.n.Content...)
	c.realServerPorts(n, ids)
	c.origin[n] = s
	c.services = append(c.services, n)
	return nil
}

// serviceIdentities reads what a virtual_server line stands for: an
// address and port, a fwmark, or a virtual_server_group's entries;
// fwmark says they are marks.
func (c *converter) serviceIdentities(s *stmt) (ids []identity, fwmark bool, err error) {
	switch {
	case len(s.words) == 3 && strings.EqualFold(s.words[1], "fwmark"):
		m, err := intArg(s, 2, 1, 1<<32-1)
		if err != nil {
			return nil, false, err
		}
		ids = append(ids, identity{fwmark: m})
		fwmark = true
	case len(s.words) == 3 && strings.EqualFold(s.words[1], "group"):
		g, ok := c.groups[s.words[2]]
		if !ok {
			return nil, false, fmt.Errorf("%s: virtual_server group %s: no virtual_server_group %s is defined: define it, or fix the name", s.at(), s.words[2], s.words[2])
		}
		if ids, err = groupEntries(g); err != nil {
			return nil, false, err
		}
		fwmark = ids[0].fwmark != 0
	case len(s.words) == 3:
		a, err := netip.ParseAddr(s.words[1])
		if err != nil {
			return nil, false, fmt.Errorf("%s: virtual_server %s: not an address", s.at(), s.words[1])
		}
		p, err := intArg(s, 2, 0, 65535)
		if err != nil {
			return nil, false, err
		}
		ids = append(ids, identity{address: a, port: p})
	default:
		return nil, false, fmt.Errorf("%s: virtual_server: want ADDRESS PORT, fwmark MARK or group NAME", s.at())
	}
	return ids, fwmark, nil
}

// keepalivedServiceDefaults applies what keepalived assumes of a service
// the config leaves out, with a note that says so.
func (c *converter) keepalivedServiceDefaults(v *service, s *stmt, ids []identity) {
	if v.protocol == "" && slices.ContainsFunc(ids, func(id identity) bool { return id.fwmark == 0 }) {
		// keepalived: "no protocol set - defaulting to UDP" (the kernel's
		// protocol 0 would be UDP too).
		v.protocol = "udp"
		c.note(v.n, s, KindService, true, "imported with protocol: udp: keepalived defaults to UDP when protocol is left out (and reports it as a config error); write protocol TCP in keepalived.conf if TCP was meant")
	}
	if v.persistenceTimeout == nil && slices.ContainsFunc(ids, func(id identity) bool { return id.fwmark == 0 && id.port == 0 }) {
		// keepalived: "zero port only valid for persistent services - setting".
		d := defaultPersistenceTimeout
		v.persistenceTimeout = &d
		c.note(v.n, s, KindService, true, "imported with persistence timeout 6m0s: keepalived turns persistence on for a port-0 service, with this default")
	}
}

// serviceNode is the lvsd service's identity: a group's entries, a
// fwmark, or a protocol, address and port.
func serviceNode(s *stmt, v *service, ids []identity) *yaml.Node {
	n := ymap()
	switch {
	case len(s.words) == 3 && strings.EqualFold(s.words[1], "group"):
		var entries []*yaml.Node
		for _, id := range ids {
			if id.fwmark != 0 {
				entries = append(entries, yflowMap("fwmark", yint(id.fwmark)))
			} else {
				entries = append(entries, yflowMap("address", ystr(id.address.String()), "port", yint(id.port)))
			}
		}
		yput(n, "name", ystr(s.words[2]))
		yput(n, "group", yseq(entries...))
		if v.protocol != "" && slices.ContainsFunc(ids, func(id identity) bool { return id.fwmark == 0 }) {
			yput(n, "protocol", ystr(v.protocol))
		}
	case ids[0].fwmark != 0:
		yput(n, "fwmark", yint(ids[0].fwmark))
	default:
		if v.protocol != "" {
			yput(n, "protocol", ystr(v.protocol))
		}
		yput(n, "address", ystr(ids[0].address.String()))
		yput(n, "port", yint(ids[0].port))
	}
	return n
}

// realServerPorts drops the real servers' ports that lvsd derives: where
// forwarding is not masquerade, the port is the service's (0 for a
// fwmark service or a group of marks or several ports). keepalived puts
// the written port in the kernel, where only masquerade uses it.
func (c *converter) realServerPorts(svc *yaml.Node, ids []identity) {
	port := ids[0].port
	for _, id := range ids {
		if id.fwmark != 0 || id.port != port {
			port = 0
		}
	}
	fwd := yget(svc, "forwarding")
	for i := 0; i+1 < len(svc.Content); i += 2 {
		if svc.Content[i].Value != "real_servers" {
			continue
		}
		for _, rs := range svc.Content[i+1].Content {
			f := yget(rs, "forwarding")
			if f == "" {
				f = fwd
			}
			p := yget(rs, "port")
			if f == string(config.Masquerade) || p == "" {
				continue
			}
			if p != strconv.Itoa(port) {
				if st := c.origin[rs]; st != nil {
					c.note(rs, st, KindRealServer, true, fmt.Sprintf("imported without its port: keepalived puts port %s in the kernel, but %s forwarding does not change the port, so the traffic is the same", p, f))
				}
			}
			ydel(rs, "port")
		}
	}
}

// groupEntries reads a virtual_server_group's entries: ADDRESS PORT,
// A.B.C.D-E PORT (a range of the last byte) and fwmark MARK.
func groupEntries(g *stmt) ([]identity, error) {
	var ids []identity
	for _, e := range g.block {
		if strings.EqualFold(e.words[0], "fwmark") {
			m, err := intArg(e, 1, 1, 1<<32-1)
			if err != nil {
				return nil, err
			}
			ids = append(ids, identity{fwmark: m})
			continue
		}
		if len(e.words) != 2 {
			return nil, fmt.Errorf("%s: virtual_server_group entry %s: want ADDRESS PORT, A.B.C.D-E PORT or fwmark MARK", e.at(), e)
		}
		p, err := intArg(e, 1, 0, 65535)
		if err != nil {
			return nil, err
		}
		first, last, _ := strings.Cut(e.words[0], "-")
		a, err := netip.ParseAddr(first)
		if err != nil {
			return nil, fmt.Errorf("%s: virtual_server_group entry %s: not an address", e.at(), first)
		}
		end := a
		if last != "" {
			n, err := strconv.Atoi(last)
			b := a.As16()
			lastByte := int(b[15])
			if err != nil || !a.Is4() || n < lastByte || n > 255 {
				return nil, fmt.Errorf("%s: virtual_server_group entry %s: want a range of the last byte of an IPv4 address, such as 192.168.0.3-10", e.at(), e.words[0])
			}
			b4 := a.As4()
			b4[3] = byte(n)
			end = netip.AddrFrom4(b4)
		}
		for x := a; ; x = x.Next() {
			ids = append(ids, identity{address: x, port: p})
			if x == end {
				break
			}
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: virtual_server_group %s has no entries", g.at(), g.words[1])
	}
	return ids, nil
}

// finishService writes keepalived's defaults and the real servers into
// v.n.
func (c *converter) finishService(v *service) {
	if !v.forwarding {
		// keepalived: "no forwarding method set, setting default NAT".
		yput(v.n, "forwarding", ystr(string(config.Masquerade)))
	}
	if v.persistenceTimeout != nil {
		yput(v.persistence, "timeout", ystr(v.persistenceTimeout.String()))
	}
	if v.persistenceTimeout != nil {
		v.persistence.Style = yaml.FlowStyle
		// timeout first, as people write it.
		t := ymap("timeout", ystr(v.persistenceTimeout.String()))
		for i := 0; i+1 < len(v.persistence.Content); i += 2 {
			if v.persistence.Content[i].Value != "timeout" {
				yput(t, v.persistence.Content[i].Value, v.persistence.Content[i+1])
			}
		}
		t.Style = yaml.FlowStyle
		yput(v.n, "persistence", t)
	} else if len(v.persistence.Content) > 0 {
		v.persistence.Style = yaml.FlowStyle
		yput(v.n, "persistence", v.persistence)
	}
	if len(v.quorum.Content) > 0 {
		yput(v.n, "quorum", v.quorum)
	}
	inhibit := 0
	for _, rs := range v.realServers {
		if rs.inhibit == nil && v.inhibit || rs.inhibit != nil && *rs.inhibit {
			inhibit++
		}
	}
	switch {
	case inhibit > 0 && inhibit == len(v.realServers):
		yput(v.n, "on_failure", ystr(string(config.Quiesce)))
	case inhibit > 0:
		yput(v.n, "on_failure", ystr(string(config.Quiesce)))
		c.note(v.n, v.s, KindRealServer, false, "inhibit_on_failure on some real servers only: lvsd quiesces every real server of the service")
	}
	var checks []*yaml.Node
	for _, rs := range v.realServers {
		var ch *yaml.Node
		if rs.check != nil {
			ch = c.finishCheck(v, rs, rs.check)
		}
		checks = append(checks, ch)
	}
	if len(checks) > 0 && checks[0] != nil && allSame(checks) {
		yput(v.n, "health_check", checks[0])
	} else {
		for i, ch := range checks {
			if ch != nil {
				yput(v.realServers[i].n, "health_check", ch)
			}
		}
	}
	var rss []*yaml.Node
	for _, rs := range v.realServers {
		rss = append(rss, rs.n)
	}
	if len(rss) > 0 {
		yput(v.n, "real_servers", yseq(rss...))
	}
}
