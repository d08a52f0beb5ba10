package lab

// Setting a host up: sysctls, addresses, routes, and the roles a test host
// plays (a direct-routing or NAT real server, a forwarding director).

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// SetSysctl writes a per-namespace sysctl (a key under net.) in the
// host's namespace. Keys use dots ("net.ipv4.conf.all.arp_ignore") or
// slashes ("net/ipv4/conf/eth0.10/rp_filter", for names with dots).
// Keys outside net. are refused: they are global and would change the
// machine.
func (h *Host) SetSysctl(key, value string) {
	h.lab.t.Helper()
	if err := h.setSysctl(key, value); err != nil {
		h.lab.t.Fatalf("lab: %v", err)
	}
}

func (h *Host) setSysctl(key, value string) error {
	path, err := sysctlPath(key)
	if err != nil {
		return fmt.Errorf("setting sysctl %s=%s on %s: %w", key, value, h.Name, err)
	}
	err = h.Do(func() error {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("setting sysctl %s=%s on %s: %w", key, value, h.Name, err)
	}
	return nil
}

// Sysctl reads a sysctl in the host's namespace, without the trailing
// newline.
func (h *Host) Sysctl(key string) (string, error) {
	path, err := sysctlPath(key)
	if err != nil {
		return "", fmt.Errorf("reading sysctl %s on %s: %w", key, h.Name, err)
	}
	var value []byte
	err = h.Do(func() error {
		value, err = os.ReadFile(path)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("reading sysctl %s on %s: %w", key, h.Name, err)
	}
	return strings.TrimRight(string(value), "\n"), nil
}

// sysctlPath maps a net.* sysctl key to its file under /proc/sys.
func sysctlPath(key string) (string, error) {
	p := key
	if !strings.Contains(p, "/") {
		p = strings.ReplaceAll(p, ".", "/")
	}
	p = filepath.Clean(strings.TrimPrefix(p, "/"))
	if !strings.HasPrefix(p, "net/") {
		return "", fmt.Errorf("only per-namespace keys under net. may be set in a lab host")
	}
	return filepath.Join("/proc/sys", p), nil
}

// AddAddr adds an address (CIDR notation) to a link of the host and
// brings the link up.
func (h *Host) AddAddr(dev, prefix string) {
	h.lab.t.Helper()
	p, err := netip.ParsePrefix(prefix)
	if err == nil {
		err = h.addAddrs(dev, p)
	}
	if err != nil {
		h.lab.t.Fatalf("lab: adding address %s to %s on %s: %v", prefix, dev, h.Name, err)
	}
}

// AddDummy creates a dummy link in the host's namespace with the given
// addresses and brings it up. (IPVS needs a routable address in a
// namespace before it accepts real servers there.)
func (h *Host) AddDummy(name string, prefixes ...string) {
	h.lab.t.Helper()
	ps := make([]netip.Prefix, 0, len(prefixes))
	for _, s := range prefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			h.lab.t.Fatalf("lab: adding dummy link %s on %s: %v", name, h.Name, err)
		}
		ps = append(ps, p)
	}
	if err := h.addDummy(name); err != nil {
		h.lab.t.Fatalf("lab: adding dummy link %s on %s: %v", name, h.Name, err)
	}
	if err := h.addAddrs(name, ps...); err != nil {
		h.lab.t.Fatalf("lab: adding dummy link %s on %s: %v", name, h.Name, err)
	}
}

// AddRoute adds a route to dst ("default", or a prefix in CIDR
// notation) via the gateway via.
func (h *Host) AddRoute(dst, via string) {
	h.lab.t.Helper()
	if err := h.addRouteString(dst, via); err != nil {
		h.lab.t.Fatalf("lab: adding route to %s via %s on %s: %v", dst, via, h.Name, err)
	}
}

func (h *Host) addRouteString(dst, via string) error {
	gw, err := netip.ParseAddr(via)
	if err != nil {
		return fmt.Errorf("parsing gateway: %w", err)
	}
	var p netip.Prefix // invalid: the default route
	if dst != "default" {
		if p, err = netip.ParsePrefix(dst); err != nil {
			return fmt.Errorf("parsing destination: %w", err)
		}
	}
	if p.IsValid() && p.Addr().Is4() != gw.Is4() {
		return fmt.Errorf("destination and gateway are of different address families")
	}
	return h.addRoute(p, gw)
}

// SetDefaultRoute adds a default route via gw.
func (h *Host) SetDefaultRoute(gw netip.Addr) {
	h.lab.t.Helper()
	h.AddRoute("default", gw.String())
}

// EnableForwarding turns on IPv4 forwarding (and IPv6 forwarding where
// the namespace has IPv6), as a NAT director needs.
func (h *Host) EnableForwarding() {
	h.lab.t.Helper()
	h.SetSysctl("net.ipv4.ip_forward", "1")
	if _, err := h.Sysctl("net.ipv6.conf.all.forwarding"); err == nil {
		h.SetSysctl("net.ipv6.conf.all.forwarding", "1")
	}
}

// ConfigureDRRealServer makes the host a direct-routing real server for
// vip: the VIP goes on lo as a /32 (/128), and for IPv4 the host stops
// answering ARP for it (arp_ignore=1) and stops using it as the source
// of its own ARP requests (arp_announce=2), on all links and on eth0.
func (h *Host) ConfigureDRRealServer(vip string) {
	h.lab.t.Helper()
	a, err := netip.ParseAddr(vip)
	if err != nil {
		h.lab.t.Fatalf("lab: configuring %s as a DR real server: %v", h.Name, err)
	}
	if a.Is4() {
		for _, dev := range []string{"all", h.Interface} {
			h.SetSysctl("net.ipv4.conf."+dev+".arp_ignore", "1")
			h.SetSysctl("net.ipv4.conf."+dev+".arp_announce", "2")
		}
	}
	h.AddAddr("lo", netip.PrefixFrom(a, a.BitLen()).String())
}

// ConfigureNATRealServer makes the host a masquerading (NAT) real
// server: its default route goes via the director, so replies pass back
// through IPVS.
func (h *Host) ConfigureNATRealServer(director *Host) {
	h.lab.t.Helper()
	h.SetDefaultRoute(director.Addr())
}
