package diag

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// This file holds the facts a run gathers once and shares between its
// checks (links, the VRRP census, the ARP capture, sysctls), and the
// target the pure findings functions are told about. Each check's own
// gathering and deciding is in its check_<name>.go.

// target is what a run diagnoses, as the pure findings functions see it.
type target struct {
	VIP  netip.Addr
	Port uint16
	// Host is the site's name (the VIP when --host is not given); Path
	// and Probe are how real servers are asked.
	Host  string
	Path  string
	Probe ProbeKind
	// Iface is the link toward the VIP ("" when none was found).
	Iface string
}

func (r *run) target() target {
	return target{VIP: r.opts.VIP, Port: r.opts.Port, Host: r.opts.host(), Path: r.opts.Path, Probe: r.opts.Probe, Iface: r.iface}
}

// vipPort is "VIP:port", or the VIP alone when any port is asked about.
func (t target) vipPort() string {
	if t.Port == 0 {
		return t.VIP.String()
	}
	return netip.AddrPortFrom(t.VIP, t.Port).String()
}

// ifaceOr is the link toward the VIP, or def when none was found (for
// commands in a fix).
func (t target) ifaceOr(def string) string {
	if t.Iface != "" {
		return t.Iface
	}
	return def
}

// matchesVIP reports whether a service address and port serve VIP:port.
func (t target) matchesVIP(a netip.Addr, port uint16) bool {
	return a == t.VIP && (t.Port == 0 || port == 0 || port == t.Port)
}

// probeKind picks how a real server on port is probed.
func (t target) probeKind(port uint16) ProbeKind {
	return Options{Probe: t.Probe}.probeKind(port)
}

func (r *run) vipPort() string           { return r.target().vipPort() }
func (r *run) ifaceOr(def string) string { return r.target().ifaceOr(def) }
func (r *run) matchesVIP(a netip.Addr, port uint16) bool {
	return r.target().matchesVIP(a, port)
}

// findInterface picks the link to the VIP's segment.
func (r *run) findInterface(ctx context.Context) string {
	if r.opts.Interface != "" {
		return r.opts.Interface
	}
	links, _ := r.getLinks(ctx)
	for _, l := range links {
		if !l.Loopback() && hasAddr(l.Prefixes, r.opts.VIP) {
			return l.Name
		}
	}
	if r.env.Net != nil {
		if rt, err := r.env.Net.RouteTo(ctx, r.opts.VIP); err == nil && rt.Interface != "" && rt.Interface != "lo" {
			return rt.Interface
		}
	}
	// The VIP is on lo (a real server): the link with the default route.
	if r.env.Net != nil {
		if rt, err := r.env.Net.RouteTo(ctx, netip.MustParseAddr("192.0.2.1")); err == nil && rt.Interface != "lo" {
			return rt.Interface
		}
	}
	return ""
}

func (r *run) getLinks(ctx context.Context) ([]Link, error) {
	r.linksOnce.Do(func() {
		if r.env.Net == nil {
			r.linksErr = errors.New("no link information on this system")
			return
		}
		r.links, r.linksErr = r.env.Net.Links(ctx)
	})
	return r.links, r.linksErr
}

func hasAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// vipLink returns the link that holds the VIP on this host.
func (r *run) vipLink(ctx context.Context) (Link, bool) {
	links, _ := r.getLinks(ctx)
	return vipLinkOf(links, r.opts.VIP)
}

func vipLinkOf(links []Link, vip netip.Addr) (Link, bool) {
	for _, l := range links {
		if hasAddr(l.Prefixes, vip) {
			return l, true
		}
	}
	return Link{}, false
}

// getCensus listens for VRRP on the segment once.
func (r *run) getCensus(ctx context.Context) (*VRRPCensus, error) {
	r.censusOnce.Do(func() {
		switch {
		case r.env.VRRP == nil:
			r.censusErr = errors.New("no VRRP listener on this system")
		case r.iface == "":
			r.censusErr = errors.New("no interface toward the VIP: pass --interface")
		default:
			r.census, r.censusErr = r.env.VRRP.Listen(ctx, r.iface, r.opts.Listen)
		}
	})
	return r.census, r.censusErr
}

// vipRouters returns the census's virtual routers that advertise the VIP.
func vipRouters(c *VRRPCensus, vip netip.Addr) []*VirtualRouter {
	var out []*VirtualRouter
	for i := range c.Routers {
		for _, s := range c.Routers[i].Speakers {
			if containsAddr(s.Addresses, vip) {
				out = append(out, &c.Routers[i])
				break
			}
		}
	}
	return out
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	return slices.Contains(as, a)
}

// containsString reports whether ss holds s or a prefix of s ("s/len").
func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s || strings.HasPrefix(x, s+"/") {
			return true
		}
	}
	return false
}

// getARP asks who-has the VIP and every known real server and director
// address once, and watches the link's ARP for the listen window (the
// same window as the VRRP census, so a failover's gratuitous ARP is
// seen).
func (r *run) getARP(ctx context.Context) (ARPCapture, error) {
	r.arpOnce.Do(func() {
		switch {
		case !r.opts.VIP.Is4():
			r.arpErr = errors.New("the VIP is IPv6: ARP is IPv4 only")
			return
		case r.env.ARP == nil:
			r.arpErr = errors.New("no ARP on this system")
			return
		case r.iface == "":
			r.arpErr = errors.New("no interface toward the VIP: pass --interface")
			return
		}
		targets := []netip.Addr{r.opts.VIP}
		v := r.getDirector(ctx)
		for _, a := range v.realServerAddrs() {
			if a.Is4() && !slices.Contains(targets, a) {
				targets = append(targets, a)
			}
		}
		if v.Status != nil {
			for _, in := range v.Status.VRRP {
				if a, err := netip.ParseAddr(in.Master); err == nil && a.Is4() && !slices.Contains(targets, a) {
					targets = append(targets, a)
				}
			}
		}
		r.arp, r.arpErr = r.env.ARP.Probe(ctx, r.iface, targets, r.opts.Listen)
	})
	return r.arp, r.arpErr
}

// vipAnswers are the distinct MACs that answered who-has VIP, in order.
func vipAnswers(capture ARPCapture, vip netip.Addr) []string {
	var out []string
	for _, p := range capture.Packets {
		if p.Reply && p.SenderIP == vip && !p.Gratuitous() && !slices.Contains(out, p.SenderMAC.String()) {
			out = append(out, p.SenderMAC.String())
		}
	}
	return out
}

// vipMasters are the census's speakers that are master for the VIP.
func vipMasters(c *VRRPCensus, vip netip.Addr) []Speaker {
	var out []Speaker
	for _, vr := range vipRouters(c, vip) {
		for _, s := range vr.Speakers {
			if s.Role == RoleMaster && containsAddr(s.Addresses, vip) {
				out = append(out, s)
			}
		}
	}
	return out
}

// reading is one sysctl's value, or why it could not be read.
type reading struct {
	N   int
	Err error
}

// sysctlFacts are the sysctls a check read, for its pure findings
// function to decide from: Global by dotted key ("net.ipv4.ip_forward"),
// Conf by "DEV/NAME" (net.ipv4.conf.DEV.NAME; DEV may hold dots).
type sysctlFacts struct {
	Global map[string]reading
	Conf   map[string]reading
}

var errNotRead = errors.New("not read")

func (s sysctlFacts) global(key string) (int, error) {
	if v, ok := s.Global[key]; ok {
		return v.N, v.Err
	}
	return 0, fmt.Errorf("sysctl %s: %w", key, errNotRead)
}

func (s sysctlFacts) conf(dev, name string) (int, error) {
	if v, ok := s.Conf[dev+"/"+name]; ok {
		return v.N, v.Err
	}
	return 0, fmt.Errorf("sysctl net.ipv4.conf.%s.%s: %w", dev, name, errNotRead)
}

// readSysctls reads the global keys and net.ipv4.conf.DEV.NAME for every
// dev and name (an empty dev is skipped).
func (r *run) readSysctls(global []string, devs, names []string) sysctlFacts {
	s := sysctlFacts{Global: map[string]reading{}, Conf: map[string]reading{}}
	for _, k := range global {
		n, err := r.readSysctl(k)
		s.Global[k] = reading{n, err}
	}
	for _, dev := range devs {
		for _, name := range names {
			if dev == "" {
				continue
			}
			n, err := r.readIfSysctl(dev, name)
			s.Conf[dev+"/"+name] = reading{n, err}
		}
	}
	return s
}

// readSysctl reads a sysctl ("net.ipv4.ip_forward") from Root.
func (r *run) readSysctl(key string) (int, error) {
	return r.readSysctlFile("proc/sys/"+strings.ReplaceAll(key, ".", "/"), key)
}

// readIfSysctl reads net.ipv4.conf.<dev>.<name>; dev may hold dots.
func (r *run) readIfSysctl(dev, name string) (int, error) {
	return r.readSysctlFile("proc/sys/net/ipv4/conf/"+dev+"/"+name, "net.ipv4.conf."+dev+"."+name)
}

func (r *run) readSysctlFile(path, key string) (int, error) {
	if r.env.Root == nil {
		return 0, errors.New("no file system to read sysctls from")
	}
	b, err := fs.ReadFile(r.env.Root, path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("sysctl %s: %q is not a number", key, strings.TrimSpace(string(b)))
	}
	return n, nil
}

func shortErr(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "ip_vs is not loaded here"
	}
	return err.Error()
}
