package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// VRRP is the `vrrp` section: the VRRP instances that decide whether this
// director holds the virtual addresses (it is master) or leaves them to a
// peer (it is backup). Without it lvsd runs as a single director and
// holds no addresses itself.
//
//	vrrp:
//	  instances:
//	    - name: VI_1
//	      interface: eth0
//	      virtual_router_id: 51
//	      version: 3                 # 2 or 3 (default 3)
//	      priority: 150              # 1..255 (default 100; 255 = address owner)
//	      advert_interval: 1s        # v2: whole seconds; v3: 10ms steps
//	      virtual_addresses:
//	        - 192.168.0.100
//	        - {address: 192.168.0.101, label: eth0:vip, dev: eth0}
//	      preempt: true              # default true
//	      preempt_delay: 0s
//	      unicast_peers: [192.168.0.3]
//	      source_address: 192.168.0.2
//	      authentication: {password: secret}   # version 2 only; no security
//	      garp: {delay: 5s, repeat: 5, interval: 0s, refresh: 0s, refresh_repeat: 1}
//	      track_interfaces: [eth1, {name: eth2, weight: -30}]
//	      track_scripts: [chk_nginx]
//	      notify: {master: [/usr/local/bin/lvs-notify, master], any: [/usr/local/bin/lvs-log]}
//	  scripts:
//	    - {name: chk_nginx, command: [/usr/bin/pgrep, -x, nginx], interval: 2s, weight: -20}
//	  sync_groups:
//	    - {name: G1, instances: [VI_1, VI_2]}
//
// The section belongs in the main file. A reload applies new priorities
// to the running instances (lower one and reload to drain a master);
// other changes take effect when lvsd restarts.
type VRRP struct {
	// Instances (instances) are the virtual routers this director takes
	// part in.
	Instances []VRRPInstance `yaml:"instances"`
	// Scripts (scripts) are the track scripts instances may name in
	// track_scripts (keepalived's vrrp_script).
	Scripts []VRRPScript `yaml:"scripts"`
	// SyncGroups (sync_groups) are sets of instances that fail over
	// together (keepalived's vrrp_sync_group).
	SyncGroups []VRRPSyncGroup `yaml:"sync_groups"`
}

// VRRPInstance is one virtual router (keepalived's vrrp_instance).
type VRRPInstance struct {
	// Name (name) names the instance in logs, metrics and the status API.
	// Required and unique.
	Name string `yaml:"name"`
	// Interface (interface) is the link the adverts go out on and the
	// virtual addresses go on. Required.
	Interface string `yaml:"interface"`
	// VirtualRouterID (virtual_router_id) is the VRID, 1 to 255, shared
	// by the routers of one group and unique on the link. Required.
	VirtualRouterID int `yaml:"virtual_router_id"`
	// Version (version) is the VRRP version: 2 (RFC 3768, IPv4 only) or 3
	// (RFC 5798). Default 3. keepalived's default is 2: write version: 2
	// to pair with a keepalived that does not set vrrp_version 3.
	Version int `yaml:"version"`
	// Priority (priority) is 1 to 254, or 255 for the owner of the
	// addresses, which always takes over at once. Default 100. The
	// highest priority is master.
	Priority int `yaml:"priority"`
	// AdvertInterval (advert_interval) is how often the master advertises:
	// whole seconds from 1s to 255s for version 2, steps of 10ms from 10ms
	// to 40.95s for version 3. Default 1s.
	AdvertInterval time.Duration `yaml:"advert_interval"`
	// VirtualAddresses (virtual_addresses) are the addresses the master
	// holds, 1 to 255, all of one family: each an address, or a mapping
	// with a label or another device. Required.
	VirtualAddresses []VirtualAddress `yaml:"virtual_addresses"`
	// Preempt (preempt) lets a higher-priority backup take over from a
	// lower-priority master. Default true (keepalived's nopreempt is
	// preempt: false).
	Preempt *bool `yaml:"preempt"`
	// PreemptDelay (preempt_delay) waits this long after the first advert
	// of a lower-priority master before preempting it. Default 0.
	PreemptDelay time.Duration `yaml:"preempt_delay"`
	// UnicastPeers (unicast_peers) replace the multicast group (224.0.0.18
	// or ff02::12): adverts are sent to each peer.
	UnicastPeers []netip.Addr `yaml:"unicast_peers"`
	// SourceAddress (source_address) is the source of the adverts and the
	// tie-breaker between equal priorities. Default: the interface's first
	// address of the family (its link-local address for IPv6).
	SourceAddress netip.Addr `yaml:"source_address"`
	// Authentication (authentication) is version 2's simple password, for
	// pairing with a keepalived that sets auth_type PASS. It is sent in
	// clear text and gives no security.
	Authentication *VRRPAuthentication `yaml:"authentication"`
	// GARP (garp) governs the gratuitous ARPs (IPv4) and unsolicited
	// neighbour advertisements (IPv6) a new master sends.
	GARP GARP `yaml:"garp"`
	// TrackInterfaces (track_interfaces) are links whose state moves the
	// instance: a name alone puts it in fault while the link is down; with
	// a weight the priority moves instead. The instance's own interface is
	// always tracked (fault while down).
	TrackInterfaces []TrackInterface `yaml:"track_interfaces"`
	// TrackScripts (track_scripts) name scripts of vrrp.scripts whose
	// result moves the instance, with the script's weight or this one.
	TrackScripts []TrackScript `yaml:"track_scripts"`
	// Notify (notify) are commands run when the instance changes state.
	Notify *VRRPNotify `yaml:"notify"`
}

// VirtualAddress is one address of a VRRP instance.
type VirtualAddress struct {
	// Address (address) is the virtual address. Required.
	Address netip.Addr `yaml:"address"`
	// Label (label) is the IPv4 address label (ip addr ... label
	// eth0:vip): the device's name, or it followed by ':' and more, at
	// most 15 bytes. Default none.
	Label string `yaml:"label"`
	// Dev (dev) puts the address on another device than the instance's
	// interface. Default the instance's interface.
	Dev string `yaml:"dev"`
}

// VRRPAuthentication is version 2's simple-password authentication.
type VRRPAuthentication struct {
	// Password (password) is 1 to 8 bytes. It travels in clear text: it
	// keeps apart misconfigured routers, not attackers.
	Password string `yaml:"password"`
}

// GARP is when a new master announces its addresses (keepalived's
// garp_master_* settings).
type GARP struct {
	// Delay (delay) sends a second burst this long after becoming master.
	// Default 5s; 0s for none.
	Delay time.Duration `yaml:"delay"`
	// Repeat (repeat) is how many announcements make one burst, 1 or
	// more. Default 5.
	Repeat int `yaml:"repeat"`
	// Interval (interval) spaces the announcements of a burst. Default 0
	// (all at once).
	Interval time.Duration `yaml:"interval"`
	// Refresh (refresh) repeats the announcement this often while master.
	// Default 0 (never).
	Refresh time.Duration `yaml:"refresh"`
	// RefreshRepeat (refresh_repeat) is how many announcements make one
	// refresh. Default 1.
	RefreshRepeat int `yaml:"refresh_repeat"`
}

// Defaults of a VRRP instance.
const (
	DefaultVRRPVersion        = 3
	DefaultVRRPPriority       = 100
	DefaultVRRPAdvertInterval = time.Second
	DefaultGARPDelay          = 5 * time.Second
	DefaultGARPRepeat         = 5
	DefaultGARPRefreshRepeat  = 1
)

// PreemptMode reports whether the instance preempts (preempt, default
// true).
func (v *VRRPInstance) PreemptMode() bool { return v.Preempt == nil || *v.Preempt }

// Password returns the version 2 password, or "".
func (v *VRRPInstance) Password() string {
	if v.Authentication == nil {
		return ""
	}
	return v.Authentication.Password
}

// IsIPv6 reports whether the instance's addresses are IPv6.
func (v *VRRPInstance) IsIPv6() bool {
	return len(v.VirtualAddresses) > 0 && v.VirtualAddresses[0].Address.Is6()
}

func init() {
	for t, name := range map[reflect.Type]string{
		reflect.TypeFor[VRRP]():               "in vrrp",
		reflect.TypeFor[VRRPInstance]():       "in a vrrp instance",
		reflect.TypeFor[VirtualAddress]():     "in a virtual address",
		reflect.TypeFor[VRRPAuthentication](): "in authentication",
		reflect.TypeFor[GARP]():               "in garp",
		reflect.TypeFor[VRRPScript]():         "in a vrrp script",
		reflect.TypeFor[VRRPSyncGroup]():      "in a sync group",
		reflect.TypeFor[TrackInterface]():     "in a tracked interface",
		reflect.TypeFor[TrackScript]():        "in a tracked script",
		reflect.TypeFor[VRRPNotify]():         "in notify",
	} {
		typeNames[t] = name
	}
	// Keys close to a known one but meaning something else: answered
	// before the closest key is suggested.
	reserved[reflect.TypeFor[Config]()] = map[string]string{
		"vrrp_instance": `unknown key "vrrp_instance" at the top level: write vrrp: {instances: [...]}`,
	}
	reserved[reflect.TypeFor[VRRPInstance]()] = map[string]string{
		"nopreempt": `unknown key "nopreempt" in a vrrp instance: write preempt: false`,
	}
	for k, v := range map[string]string{
		"vrrp_instance":              "vrrp: {instances: [...]}",
		"vrrp_instances":             "vrrp: {instances: [...]}",
		"virtual_ipaddress":          "virtual_addresses (a list)",
		"virtual_ip":                 "virtual_addresses (a list)",
		"vips":                       "virtual_addresses (a list)",
		"state":                      "priority (the highest priority becomes master)",
		"nopreempt":                  "preempt: false",
		"advert_int":                 "advert_interval",
		"unicast_peer":               "unicast_peers (a list)",
		"unicast_src_ip":             "source_address",
		"mcast_src_ip":               "source_address",
		"auth_pass":                  "authentication: {password: ...}",
		"auth_type":                  "authentication: {password: ...} (only simple passwords exist)",
		"garp_master_delay":          "garp: {delay: 5s}",
		"garp_master_repeat":         "garp: {repeat: 5}",
		"garp_master_refresh":        "garp: {refresh: 60s}",
		"garp_interval":              "garp: {interval: 10ms}",
		"vrid":                       "virtual_router_id",
		"router_id":                  "virtual_router_id",
		"vrrp_version":               "version",
		"track_interface":            "track_interfaces (a list)",
		"track_script":               "track_scripts (a list)",
		"vrrp_script":                "vrrp: {scripts: [...]}",
		"notify_master":              "notify: {master: [program, args...]}",
		"notify_backup":              "notify: {backup: [program, args...]}",
		"notify_fault":               "notify: {fault: [program, args...]}",
		"notify_stop":                "notify: {stop: [program, args...]}",
		"vrrp_sync_group":            "vrrp: {sync_groups: [...]}",
		"sync_group":                 "vrrp: {sync_groups: [...]}",
		"lvs_sync_daemon_interface":  "ipvs: {sync_daemon: {interface: eth1, vrrp_instance: VI_1}}",
		"garp_master_refresh_repeat": "garp: {refresh_repeat: 1}",
	} {
		renamed[k] = v
	}
}

// decodeNode reads an address alone (192.168.0.100) or a mapping with a
// label and a device.
func (va *VirtualAddress) decodeNode(d *decoder, n *yaml.Node, key string) {
	if n.Kind == yaml.ScalarNode {
		d.value(n, reflect.ValueOf(&va.Address).Elem(), key)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, "%s: expected an address (192.168.0.100) or a mapping of address, label and dev, got %s", key, describe(n))
		d.markBad(va)
		return
	}
	d.structure(n, reflect.ValueOf(va).Elem(), key)
}

// vrrp checks the vrrp section and fills in its defaults.
func (c *checker) vrrp(v *VRRP) {
	c.scripts = c.vrrpScripts(v.Scripts)
	names := map[string]*VRRPInstance{}
	type routerKey struct {
		iface string
		ipv6  bool
		vrid  int
	}
	routers := map[routerKey]*VRRPInstance{}
	held := map[netip.Addr]*VRRPInstance{}
	for i := range v.Instances {
		in := &v.Instances[i]
		if !c.valid(in) {
			continue
		}
		ok := c.vrrpInstance(in)
		if c.valid(&in.Name) && in.Name != "" {
			if first, dup := names[in.Name]; dup {
				c.at(&in.Name, "duplicate vrrp instance name %q: it is already used at %s: give each instance its own name", in.Name, c.where(first))
			} else {
				names[in.Name] = in
			}
		}
		if !ok {
			continue
		}
		k := routerKey{in.Interface, in.IsIPv6(), in.VirtualRouterID}
		if first, dup := routers[k]; dup {
			c.at(&in.VirtualRouterID, "virtual_router_id: %d is already used on %s by instance %q at %s: give each instance on a link its own id", in.VirtualRouterID, in.Interface, first.Name, c.where(first))
		} else {
			routers[k] = in
		}
		for j := range in.VirtualAddresses {
			va := &in.VirtualAddresses[j]
			if first, dup := held[va.Address]; dup && first != in {
				c.at(&va.Address, "virtual address %s is also held by instance %q: give each address to one instance", va.Address, first.Name)
			} else {
				held[va.Address] = in
			}
		}
	}
	c.syncGroups(v.SyncGroups, names)
	if sd := c.cfg.IPVS.SyncDaemon; sd != nil && sd.VRRPInstance != "" && c.valid(&sd.VRRPInstance) {
		if _, ok := names[sd.VRRPInstance]; !ok {
			c.at(&sd.VRRPInstance, "vrrp_instance: %q is not a vrrp instance of this config: write the name of one (%s)", sd.VRRPInstance, strings.Join(instanceNames(v), ", "))
		}
	}
}

func instanceNames(v *VRRP) []string {
	var out []string
	for _, in := range v.Instances {
		if in.Name != "" {
			out = append(out, in.Name)
		}
	}
	if len(out) == 0 {
		return []string{"none is defined"}
	}
	return out
}

// vrrpInstance checks one instance and fills in its defaults; false when
// it is too broken to compare with the others.
func (c *checker) vrrpInstance(in *VRRPInstance) bool {
	ok := c.vrrpIdentity(in)
	c.vrrpTimingDefaults(in)
	fam6, famOK := c.virtualAddresses(in)
	if !famOK {
		ok = false
	}
	if famOK && fam6 && in.Version == 2 {
		c.at(&in.Version, "version: 2 carries IPv4 only, and the virtual addresses are IPv6: write version: 3")
	}
	c.vrrpPreempt(in)
	if famOK {
		c.vrrpPeerAddresses(in, fam6)
	}
	c.vrrpAuthentication(in)
	c.garp(&in.GARP)
	c.tracking(in)
	if in.Notify != nil {
		c.notify(in.Notify)
	}
	return ok
}

// vrrpIdentity checks what names an instance: its name, interface,
// virtual router ID and virtual addresses, and the version.
func (c *checker) vrrpIdentity(in *VRRPInstance) bool {
	ok := true
	need := func(p any, msg string) {
		if !c.written(p) {
			c.at(in, "%s", msg)
			ok = false
		} else if !c.valid(p) {
			ok = false
		}
	}
	need(&in.Name, "a vrrp instance needs a name: write name: VI_1")
	need(&in.Interface, "a vrrp instance needs an interface: write interface: eth0 (the link shared with the other directors)")
	need(&in.VirtualRouterID, "a vrrp instance needs a virtual_router_id: write virtual_router_id: 51 (1 to 255, the same on every director of the pair, unique on the link)")
	if !c.written(&in.VirtualAddresses) || len(in.VirtualAddresses) == 0 && c.valid(&in.VirtualAddresses) {
		c.at(in, "a vrrp instance needs virtual_addresses: write virtual_addresses: [192.168.0.100]")
		ok = false
	}
	if c.valid(&in.Interface) && in.Interface != "" && !validInterfaceName(in.Interface) {
		c.at(&in.Interface, "interface: %q is not an interface name: write a name such as eth0 (at most 15 characters, no spaces, slashes or colons)", in.Interface)
		ok = false
	}
	if c.valid(&in.VirtualRouterID) && (in.VirtualRouterID < 1 || in.VirtualRouterID > 255) {
		c.at(&in.VirtualRouterID, "virtual_router_id: %d is out of range: write 1 to 255", in.VirtualRouterID)
		ok = false
	}
	if !c.written(&in.Version) {
		in.Version = DefaultVRRPVersion
	} else if c.valid(&in.Version) && in.Version != 2 && in.Version != 3 {
		c.at(&in.Version, "version: %d is not a VRRP version: write 2 (RFC 3768, IPv4 only) or 3 (RFC 5798)", in.Version)
		ok = false
	}
	return ok
}

// vrrpTimingDefaults fills in the priority and advert interval when they
// are not written, and checks them when they are.
func (c *checker) vrrpTimingDefaults(in *VRRPInstance) {
	if !c.written(&in.Priority) {
		in.Priority = DefaultVRRPPriority
	} else if c.valid(&in.Priority) && (in.Priority < 1 || in.Priority > 255) {
		c.at(&in.Priority, "priority: %d is out of range: write 1 to 254, or 255 for the owner of the addresses (0 is reserved for a master stepping down)", in.Priority)
	}
	if !c.written(&in.AdvertInterval) {
		in.AdvertInterval = DefaultVRRPAdvertInterval
	} else if c.valid(&in.AdvertInterval) && (in.Version == 2 || in.Version == 3) {
		c.advertInterval(in)
	}
}

// vrrpPreempt rejects preempt settings that cannot apply.
func (c *checker) vrrpPreempt(in *VRRPInstance) {
	if in.Preempt != nil && !*in.Preempt {
		switch {
		case in.Priority == 255:
			c.atKey(&in.Preempt, "preempt: false does not apply to priority 255: the address owner always takes over; lower the priority or remove preempt")
		case c.written(&in.PreemptDelay):
			c.atKey(&in.PreemptDelay, "preempt_delay with preempt: false: a router that never preempts has nothing to delay; remove one of them")
		}
	}
}

// vrrpPeerAddresses checks the unicast peers and the source address
// against the virtual addresses' family.
func (c *checker) vrrpPeerAddresses(in *VRRPInstance, fam6 bool) {
	for i := range in.UnicastPeers {
		p := &in.UnicastPeers[i]
		if !c.valid(p) {
			continue
		}
		switch {
		case p.IsMulticast() || p.IsUnspecified():
			c.at(p, "unicast_peers: %s is not a unicast address: write the other director's address on %s", *p, in.Interface)
		case p.Is6() != fam6:
			c.at(p, "unicast_peers: %s is not of the virtual addresses' family: write the other director's %s address", *p, familyName(fam6))
		}
	}
	if c.valid(&in.SourceAddress) {
		s := in.SourceAddress
		switch {
		case s.IsMulticast() || s.IsUnspecified():
			c.at(&in.SourceAddress, "source_address: %s is not a unicast address: write this director's address on %s", s, in.Interface)
		case s.Is6() != fam6:
			c.at(&in.SourceAddress, "source_address: %s is not of the virtual addresses' family: write this director's %s address", s, familyName(fam6))
		case s.Is6() && !s.IsLinkLocalUnicast():
			c.at(&in.SourceAddress, "source_address: %s is not link-local: IPv6 adverts are sent from the link-local address (fe80::...); leave it out to use the interface's", s)
		}
	}
}

// vrrpAuthentication checks VRRPv2's password.
func (c *checker) vrrpAuthentication(in *VRRPInstance) {
	if a := in.Authentication; a != nil {
		switch {
		case !c.written(&a.Password):
			c.at(a, "authentication needs a password: write password: and 1 to 8 characters (sent in clear text: no security)")
		case !c.valid(&a.Password):
		case in.Version != 2:
			c.atKey(&in.Authentication, "authentication applies only to version 2: version 3 has none; remove it, or write version: 2")
		case a.Password == "" || len(a.Password) > 8:
			c.at(&a.Password, "password: %d bytes: write 1 to 8 (keepalived cuts longer ones to 8, so the peers would disagree)", len(a.Password))
		}
	}
}

func familyName(ipv6 bool) string {
	if ipv6 {
		return "IPv6"
	}
	return "IPv4"
}

// advertInterval checks the interval against what the version carries.
func (c *checker) advertInterval(in *VRRPInstance) {
	d := in.AdvertInterval
	if in.Version == 2 {
		switch {
		case d < time.Second:
			c.at(&in.AdvertInterval, "advert_interval: %v is too short for version 2: write whole seconds from 1s to 255s, or version: 3 for shorter intervals", d)
		case d%time.Second != 0:
			c.at(&in.AdvertInterval, "advert_interval: %v is not a whole number of seconds, which version 2 needs: write %v, or version: 3", d, max(d.Round(time.Second), time.Second))
		case d > 255*time.Second:
			c.at(&in.AdvertInterval, "advert_interval: %v is too long: write at most 255s", d)
		}
		return
	}
	const step = 10 * time.Millisecond
	switch {
	case d < step:
		c.at(&in.AdvertInterval, "advert_interval: %v is too short: write at least 10ms", d)
	case d%step != 0:
		c.at(&in.AdvertInterval, "advert_interval: %v is not a multiple of 10ms, which version 3 needs: write %v", d, max(d.Round(step), step))
	case d > 4095*step:
		c.at(&in.AdvertInterval, "advert_interval: %v is too long: write at most 40.95s", d)
	}
}

// virtualAddresses checks the addresses; it returns their family and
// whether they are usable.
func (c *checker) virtualAddresses(in *VRRPInstance) (ipv6, ok bool) {
	if !c.valid(&in.VirtualAddresses) || len(in.VirtualAddresses) == 0 {
		return false, false
	}
	if len(in.VirtualAddresses) > 255 {
		c.atKey(&in.VirtualAddresses, "virtual_addresses: %d addresses: a VRRP advert carries at most 255; split them over several instances", len(in.VirtualAddresses))
		return false, false
	}
	ok = true
	first := netip.Addr{}
	seen := map[netip.Addr]*VirtualAddress{}
	for i := range in.VirtualAddresses {
		va := &in.VirtualAddresses[i]
		if !c.valid(va) || !c.written(&va.Address) {
			if c.valid(va) {
				c.at(va, "a virtual address needs an address: write address: 192.168.0.100")
			}
			ok = false
			continue
		}
		if !c.valid(&va.Address) {
			ok = false
			continue
		}
		a := va.Address
		if msg := unicast(a); msg != "" {
			c.at(&va.Address, "virtual_addresses: %s %s: write the address clients reach this director pair on", a, msg)
			ok = false
			continue
		}
		if !first.IsValid() {
			first = a
		} else if a.Is4() != first.Is4() {
			c.at(&va.Address, "virtual_addresses: %s is not of the family of %s: put IPv4 and IPv6 addresses in separate instances", a, first)
			ok = false
			continue
		}
		if prev, dup := seen[a]; dup {
			c.at(&va.Address, "virtual_addresses: %s is listed twice (first at %s): remove one", a, c.where(prev))
		}
		seen[a] = va
		dev := in.Interface
		if c.written(&va.Dev) && c.valid(&va.Dev) {
			if !validInterfaceName(va.Dev) {
				c.at(&va.Dev, "dev: %q is not an interface name: write a name such as eth1, or leave it out for the instance's interface", va.Dev)
			} else {
				dev = va.Dev
			}
		}
		if c.written(&va.Label) && c.valid(&va.Label) {
			l := va.Label
			switch {
			case a.Is6():
				c.atKey(&va.Label, "label applies only to IPv4 addresses: remove it")
			case len(l) > 15 || (l != dev && !strings.HasPrefix(l, dev+":")):
				c.at(&va.Label, "label: %q must be %q or start with %q, at most 15 characters", l, dev, dev+":")
			}
		}
	}
	return first.Is6(), ok && first.IsValid()
}

func (c *checker) garp(g *GARP) {
	if !c.written(&g.Delay) {
		g.Delay = DefaultGARPDelay
	}
	if !c.written(&g.Repeat) {
		g.Repeat = DefaultGARPRepeat
	} else if c.valid(&g.Repeat) && (g.Repeat < 1 || g.Repeat > 100) {
		c.at(&g.Repeat, "repeat: %d is out of range: write 1 to 100 (default %d)", g.Repeat, DefaultGARPRepeat)
	}
	if !c.written(&g.RefreshRepeat) {
		g.RefreshRepeat = DefaultGARPRefreshRepeat
	} else if c.valid(&g.RefreshRepeat) && (g.RefreshRepeat < 1 || g.RefreshRepeat > 100) {
		c.at(&g.RefreshRepeat, "refresh_repeat: %d is out of range: write 1 to 100 (default %d)", g.RefreshRepeat, DefaultGARPRefreshRepeat)
	}
	if c.written(&g.RefreshRepeat) && !c.written(&g.Refresh) {
		c.atKey(&g.RefreshRepeat, "refresh_repeat needs refresh: write refresh: 60s, or remove refresh_repeat")
	}
}

// String formats an instance for logs and golden files.
func (v *VRRPInstance) String() string {
	return fmt.Sprintf("%s vrid %d on %s", v.Name, v.VirtualRouterID, v.Interface)
}
