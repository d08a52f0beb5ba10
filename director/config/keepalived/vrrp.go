package keepalived

// vrrp_instance blocks.

import (
	"fmt"
	"net/netip"
	"strings"

	"gopkg.in/yaml.v3"
)

// instance is a vrrp_instance block being imported.
type instance struct {
	n                                   *yaml.Node
	name                                string
	version                             int
	vips, peers, trackIfs, trackScripts []*yaml.Node
	cmds, garp                          *yaml.Node
	seen                                map[netip.Addr]*stmt // virtual addresses already imported
}

// keepalived truncates longer PASS passwords to this many characters.
const maxAuthPass = 8

var instanceHandlers = handlers[*instance]{
	"interface": func(c *converter, in *instance, s *stmt) error {
		yput(in.n, "interface", ystr(s.words[1]))
		return nil
	},
	"virtual_router_id": instanceInt("virtual_router_id"),
	"priority":          instanceInt("priority"),
	"version": func(c *converter, in *instance, s *stmt) error {
		v, err := intArg(s, 1, 2, 3)
		in.version = v
		return err
	},
	"advert_int": func(c *converter, in *instance, s *stmt) error {
		return durationKey("advert_interval")(c, in.n, s)
	},
	"nopreempt": func(c *converter, in *instance, s *stmt) error {
		yput(in.n, "preempt", ybool(false))
		return nil
	},
	"preempt": func(*converter, *instance, *stmt) error { return nil },
	"preempt_delay": func(c *converter, in *instance, s *stmt) error {
		return durationKey("preempt_delay")(c, in.n, s)
	},
	"state": func(c *converter, in *instance, s *stmt) error {
		c.ignore(in.n, s, KindVRRP, "lvsd starts every instance as backup and the highest priority becomes master, as keepalived does after its first adverts")
		return nil
	},
	"authentication": func(c *converter, in *instance, s *stmt) error {
		var pass string
		for _, a := range s.block {
			if err := needsValue(a); err != nil {
				return err
			}
			switch {
			case a.keyword() == "auth_type" && len(a.words) == 2 && strings.EqualFold(a.words[1], "PASS"):
			case a.keyword() == "auth_type" && len(a.words) == 2 && strings.EqualFold(a.words[1], "AH"):
				return fmt.Errorf("%s: auth_type AH: lvsd has no IPsec AH authentication, and a peer using AH would never accept lvsd's adverts: switch the pair to auth_type PASS or no authentication first (VRRP v3 has none), then import", a.at())
			case a.keyword() == "auth_pass" && len(a.words) == 2:
				pass = a.words[1]
				if len(pass) > maxAuthPass {
					pass = pass[:maxAuthPass]
					c.note(in.n, a, KindVRRP, true, fmt.Sprintf("imported as %q: keepalived uses only the first %d characters (and says so at start)", pass, maxAuthPass))
				}
			default:
				c.drop(in.n, a, KindVRRP, "lvsd supports only auth_type PASS (version 2)")
			}
		}
		if pass != "" {
			yput(in.n, "authentication", ymap("password", ystr(pass)))
		}
		return nil
	},
	"virtual_ipaddress": func(c *converter, in *instance, s *stmt) error {
		for _, a := range s.block {
			v, err := c.virtualAddress(in, a)
			if err != nil {
				return err
			}
			if v != nil {
				in.vips = append(in.vips, v)
			}
		}
		return nil
	},
	"virtual_ipaddress_excluded": func(c *converter, in *instance, s *stmt) error {
		for _, a := range s.block {
			c.drop(in.n, a, KindVIP, "lvsd has no excluded addresses (held by the master but not advertised): add it to virtual_addresses of this instance (it is then advertised too), or to an instance of its own family")
		}
		return nil
	},
	"unicast_src_ip": func(c *converter, in *instance, s *stmt) error {
		yput(in.n, "source_address", ystr(s.words[1]))
		return nil
	},
	"unicast_peer": func(c *converter, in *instance, s *stmt) error {
		for _, p := range s.block {
			in.peers = append(in.peers, ystr(p.words[0]))
			if len(p.words) > 1 {
				c.drop(in.n, p, KindVRRP, "unicast peer options are not supported: the peer is imported without them")
			}
		}
		return nil
	},
	"track_interface": func(c *converter, in *instance, s *stmt) error {
		for _, t := range s.block {
			w, err := trackWeight(t)
			if err != nil {
				return err
			}
			if w == 0 {
				in.trackIfs = append(in.trackIfs, ystr(t.words[0]))
			} else {
				in.trackIfs = append(in.trackIfs, yflowMap("name", ystr(t.words[0]), "weight", yint(w)))
			}
		}
		return nil
	},
	"track_script": func(c *converter, in *instance, s *stmt) error {
		for _, t := range s.block {
			w, err := trackWeight(t)
			if err != nil {
				return err
			}
			if c.noScript[t.words[0]] {
				c.ignore(in.n, t, KindVRRP, "keepalived ignores a track script whose vrrp_script has no script, and so does lvsd")
				continue
			}
			if len(t.words) == 1 {
				in.trackScripts = append(in.trackScripts, ystr(t.words[0]))
			} else {
				in.trackScripts = append(in.trackScripts, yflowMap("name", ystr(t.words[0]), "weight", yint(w)))
			}
		}
		return nil
	},
	"garp_master_delay":          garpDuration("delay"),
	"garp_master_refresh":        garpDuration("refresh"),
	"garp_interval":              garpDuration("interval"),
	"garp_master_repeat":         garpCount("repeat"),
	"garp_master_refresh_repeat": garpCount("refresh_repeat"),
	"lvs_sync_daemon_interface": func(c *converter, in *instance, s *stmt) error {
		c.syncDaemon = ymap("interface", ystr(s.words[1]), "vrrp_instance", ystr(in.name))
		return nil
	},
	"native_ipv6": func(*converter, *instance, *stmt) error { return nil },
	"dont_track_primary": func(c *converter, in *instance, s *stmt) error {
		c.drop(in.n, s, KindVRRP, "lvsd always tracks the instance's own interface")
		return nil
	},
	"smtp_alert": func(c *converter, in *instance, s *stmt) error {
		c.ignore(in.n, s, KindVRRP, "lvsd sends no e-mail")
		return nil
	},
}

func init() {
	alias(instanceHandlers, "unicast_src_ip", "mcast_src_ip")
	for k := range notifyKeys {
		instanceHandlers[k] = func(c *converter, in *instance, s *stmt) error {
			c.notify(in.n, in.cmds, s)
			return nil
		}
	}
}

func instanceInt(key string) func(*converter, *instance, *stmt) error {
	return func(c *converter, in *instance, s *stmt) error {
		v, err := intArg(s, 1, 1, 255)
		yput(in.n, key, yint(v))
		return err
	}
}

func garpDuration(key string) func(*converter, *instance, *stmt) error {
	return func(c *converter, in *instance, s *stmt) error {
		d, err := seconds(s)
		yput(in.garp, key, ystr(d.String()))
		return err
	}
}

func garpCount(key string) func(*converter, *instance, *stmt) error {
	return func(c *converter, in *instance, s *stmt) error {
		v, err := intArg(s, 1, 1, 100)
		yput(in.garp, key, yint(v))
		return err
	}
}

func (c *converter) vrrpInstance(s *stmt) error {
	if len(s.words) != 2 || !s.hasBlock {
		return fmt.Errorf("%s: vrrp_instance needs a name and a block", s.at())
	}
	in := &instance{n: ymap("name", ystr(s.words[1])), name: s.words[1], version: c.vrrpVersion,
		cmds: ymap(), garp: ymap(), seen: map[netip.Addr]*stmt{}}
	err := run(c, instanceHandlers, in, s.block, func(c *converter, in *instance, st *stmt) {
		c.drop(in.n, st, KindVRRP, "lvsd has no equivalent")
	})
	if err != nil {
		return err
	}
	n := in.n
	c.origin[n] = s
	yput(n, "version", yint(in.version))
	if len(in.vips) > 0 {
		yput(n, "virtual_addresses", yseq(in.vips...))
	}
	if len(in.peers) > 0 {
		yput(n, "unicast_peers", yflowSeq(in.peers...))
	}
	if len(in.garp.Content) > 0 {
		in.garp.Style = yaml.FlowStyle
		yput(n, "garp", in.garp)
	}
	if len(in.trackIfs) > 0 {
		yput(n, "track_interfaces", yflowSeq(in.trackIfs...))
	}
	if len(in.trackScripts) > 0 {
		yput(n, "track_scripts", yflowSeq(in.trackScripts...))
	}
	if len(in.cmds.Content) > 0 {
		yput(n, "notify", in.cmds)
	}
	c.instances = append(c.instances, n)
	return nil
}

// virtualAddress reads "ADDR[/LEN] [dev IF] [label L] [brd ...] ...";
// nil when the address is already listed.
func (c *converter) virtualAddress(in *instance, a *stmt) (*yaml.Node, error) {
	addr := a.words[0]
	var ip netip.Addr
	if p, err := netip.ParsePrefix(addr); err == nil {
		ip = p.Addr()
		if p.Bits() != ip.BitLen() {
			c.note(in.n, a, KindVIP, true, fmt.Sprintf("imported as %s/%d: lvsd holds virtual addresses as host addresses; the /%d only adds a prefix route on the master, which the interface's own address normally provides", ip, ip.BitLen(), p.Bits()))
		}
	} else if ip, err = netip.ParseAddr(addr); err != nil {
		return nil, fmt.Errorf("%s: virtual address %q: not an address: write 192.168.0.100 or 192.168.0.100/24", a.at(), addr)
	}
	if prev, dup := in.seen[ip]; dup {
		c.note(in.n, a, KindVIP, true, fmt.Sprintf("%s is already listed at %s: keepalived adds it once, and so does lvsd (with the options written first)", ip, prev.at()))
		return nil, nil
	}
	in.seen[ip] = a
	m := yflowMap("address", ystr(ip.String()))
	for i := 1; i < len(a.words); i++ {
		switch a.words[i] {
		case "dev", "label":
			if i+1 >= len(a.words) {
				return nil, fmt.Errorf("%s: %s needs a value", a.at(), a.words[i])
			}
			yput(m, a.words[i], ystr(a.words[i+1]))
			i++
		case "brd", "broadcast", "scope", "metric", "preferred_lft", "valid_lft":
			c.ignore(in.n, a, KindVIP, fmt.Sprintf("address option %q is not imported: it changes no traffic to the address", a.words[i]))
			i++
		default:
			c.drop(in.n, a, KindVIP, fmt.Sprintf("address option %q is not supported: the address is imported without it", a.words[i]))
		}
	}
	if len(m.Content) == 2 {
		return ystr(ip.String()), nil
	}
	return m, nil
}
