package main

import (
	"github.com/vishvananda/netlink"

	"github.com/lvskit/lvskit/director"
	"github.com/lvskit/lvskit/director/vrrp"
)

// vrrpOptions are the real VRRP connections: raw IP protocol 112
// sockets, rtnetlink for the addresses, AF_PACKET for gratuitous ARP and
// unsolicited NA.
func vrrpOptions() director.VRRPOptions {
	return director.VRRPOptions{
		WatchLinks: vrrp.WatchLinks,
		Listen: func(ifname string, fam vrrp.Family, multicast bool) (vrrp.PacketConn, error) {
			c, err := vrrp.Listen(vrrp.ListenConfig{Interface: ifname, Family: fam, Multicast: multicast})
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		Addresses: func(dev, label string) (vrrp.AddressManager, error) {
			h, err := netlink.NewHandle()
			if err != nil {
				return nil, err
			}
			a, err := vrrp.NewNetlinkAddresses(h, vrrp.NetlinkAddressOptions{Interface: dev, Label: label})
			if err != nil {
				h.Close()
				return nil, err
			}
			return &netlinkAddresses{a, h}, nil
		},
		Announcer: func(dev string) (vrrp.Announcer, error) {
			fc, err := vrrp.DialFrames(dev)
			if err != nil {
				return nil, err
			}
			// The NA source is the device's link-local address; an IPv4
			// only device has none and needs none.
			src, _ := director.InterfaceSourceAddress(dev, vrrp.IPv6)
			a, err := vrrp.NewFrameAnnouncer(fc, vrrp.FrameAnnouncerOptions{HardwareAddr: fc.HardwareAddr(), NASource: src})
			if err != nil {
				fc.Close()
				return nil, err
			}
			return &frameAnnouncer{a, fc}, nil
		},
	}
}

// netlinkAddresses closes its netlink handle with the daemon's VRRP.
type netlinkAddresses struct {
	*vrrp.NetlinkAddresses
	h *netlink.Handle
}

func (n *netlinkAddresses) Close() error { n.h.Close(); return nil }

// frameAnnouncer closes its frame socket with the daemon's VRRP.
type frameAnnouncer struct {
	*vrrp.FrameAnnouncer
	fc *vrrp.FrameConn
}

func (f *frameAnnouncer) Close() error { return f.fc.Close() }
