package director

// The VIPs' ends: each address goes to the manager of its device and
// label and to the announcer of its interface, which a reload may change
// while the instance runs; and the source address of an interface.

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/vrrp"
)

// vipEnds maps c's addresses to their managers and announcers (open).
func (r *vrrpRuntime) vipEnds(c config.VRRPInstance) (map[netip.Addr]vrrp.AddressManager, map[netip.Addr]vrrp.Announcer) {
	addrs, ann := map[netip.Addr]vrrp.AddressManager{}, map[netip.Addr]vrrp.Announcer{}
	for _, va := range c.VirtualAddresses {
		dev := cmpOr(va.Dev, c.Interface)
		addrs[va.Address] = r.managers[[2]string{dev, va.Label}]
		ann[va.Address] = r.announcers[dev]
	}
	return addrs, ann
}

// instanceConfig turns a config instance into the vrrp package's.
func instanceConfig(c config.VRRPInstance, source func(string, vrrp.Family) (netip.Addr, error)) (vrrp.InstanceConfig, error) {
	fam := vrrp.IPv4
	if c.IsIPv6() {
		fam = vrrp.IPv6
	}
	src := c.SourceAddress
	if !src.IsValid() {
		var err error
		if src, err = source(c.Interface, fam); err != nil {
			return vrrp.InstanceConfig{}, fmt.Errorf("vrrp instance %s: finding the source address on %s: %w", c.Name, c.Interface, err)
		}
	}
	ic := vrrp.InstanceConfig{
		Name:      c.Name,
		Interface: c.Interface,
		Router: vrrp.Config{
			VRID:           uint8(c.VirtualRouterID),
			Version:        vrrp.Version(c.Version),
			Priority:       uint8(c.Priority),
			AdvertInterval: c.AdvertInterval,
			PrimaryAddress: src,
			NoPreempt:      !c.PreemptMode(),
			PreemptDelay:   c.PreemptDelay,
			AcceptMode:     true, // the VIPs carry IPVS services
			Password:       c.Password(),
		},
		UnicastPeers: slices.Clone(c.UnicastPeers),
		Announce: vrrp.AnnounceConfig{
			Repeat: c.GARP.Repeat, Interval: c.GARP.Interval, Delay: c.GARP.Delay,
			Refresh: c.GARP.Refresh, RefreshRepeat: c.GARP.RefreshRepeat,
		},
	}
	for _, va := range c.VirtualAddresses {
		ic.Router.Addresses = append(ic.Router.Addresses, va.Address)
	}
	return ic, ic.Validate()
}

// vipAddresses sends each address to the manager of its device and
// label. A reload changes the map while the instance runs.
type vipAddresses struct {
	mu     sync.Mutex
	byAddr map[netip.Addr]vrrp.AddressManager
}

// merge adds m's addresses (a reload's, before the instance takes them).
func (v *vipAddresses) merge(m map[netip.Addr]vrrp.AddressManager) {
	v.mu.Lock()
	defer v.mu.Unlock()
	maps.Copy(v.byAddr, m)
}

// set makes m the addresses (a reload's, once the instance dropped the
// others).
func (v *vipAddresses) set(m map[netip.Addr]vrrp.AddressManager) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.byAddr = maps.Clone(m)
}

func (v *vipAddresses) group(addrs []netip.Addr) ([]vrrp.AddressManager, map[vrrp.AddressManager][]netip.Addr) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var order []vrrp.AddressManager
	groups := map[vrrp.AddressManager][]netip.Addr{}
	for _, a := range addrs {
		m := v.byAddr[a]
		if m == nil {
			continue
		}
		if _, ok := groups[m]; !ok {
			order = append(order, m)
		}
		groups[m] = append(groups[m], a)
	}
	return order, groups
}

// AddAddresses implements vrrp.AddressManager.
func (v *vipAddresses) AddAddresses(addrs []netip.Addr) error {
	order, groups := v.group(addrs)
	var errs []error
	for _, m := range order {
		errs = append(errs, m.AddAddresses(groups[m]))
	}
	return errors.Join(errs...)
}

// RemoveAddresses implements vrrp.AddressManager.
func (v *vipAddresses) RemoveAddresses(addrs []netip.Addr) error {
	order, groups := v.group(addrs)
	var errs []error
	for _, m := range order {
		errs = append(errs, m.RemoveAddresses(groups[m]))
	}
	return errors.Join(errs...)
}

// vipAnnouncer announces each address on its device.
type vipAnnouncer struct {
	mu     sync.Mutex
	byAddr map[netip.Addr]vrrp.Announcer
}

func (v *vipAnnouncer) merge(m map[netip.Addr]vrrp.Announcer) {
	v.mu.Lock()
	defer v.mu.Unlock()
	maps.Copy(v.byAddr, m)
}

func (v *vipAnnouncer) set(m map[netip.Addr]vrrp.Announcer) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.byAddr = maps.Clone(m)
}

// Announce implements vrrp.Announcer.
func (v *vipAnnouncer) Announce(addrs []netip.Addr) error {
	var order []vrrp.Announcer
	groups := map[vrrp.Announcer][]netip.Addr{}
	v.mu.Lock()
	for _, a := range addrs {
		an := v.byAddr[a]
		if an == nil {
			continue
		}
		if _, ok := groups[an]; !ok {
			order = append(order, an)
		}
		groups[an] = append(groups[an], a)
	}
	v.mu.Unlock()
	var errs []error
	for _, an := range order {
		errs = append(errs, an.Announce(groups[an]))
	}
	return errors.Join(errs...)
}

// InterfaceSourceAddress returns the address of ifname that VRRP adverts
// of the family go out from: for IPv6 its link-local address; for IPv4
// its first address with a prefix shorter than /32 (virtual addresses are
// /32 host addresses), else its first IPv4 address.
func InterfaceSourceAddress(ifname string, family vrrp.Family) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	var fallback netip.Addr
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, bits := ipn.Mask.Size()
		switch {
		case family == vrrp.IPv6 && ip.Is6() && ip.IsLinkLocalUnicast():
			return ip, nil
		case family == vrrp.IPv4 && ip.Is4() && ones < bits:
			return ip, nil
		case family == vrrp.IPv4 && ip.Is4() && !fallback.IsValid():
			fallback = ip
		}
	}
	if fallback.IsValid() {
		return fallback, nil
	}
	what := "IPv4 address"
	if family == vrrp.IPv6 {
		what = "IPv6 link-local address"
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no %s: write source_address", ifname, what)
}
