//go:build linux

package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NetlinkAddressOptions configures NetlinkAddresses.
type NetlinkAddressOptions struct {
	// Interface is the link the addresses go on.
	Interface string
	// Label is the label of IPv4 addresses (`ip addr ... label eth0:vip`,
	// keepalived's "label"): the interface name, or it followed by ':'
	// and up to 15 bytes in all. Empty means none. IPv6 has no labels.
	Label string
}

// NetlinkAddresses is the AddressManager over rtnetlink. Virtual
// addresses go on as /32 or /128 host addresses; IPv6 ones skip
// duplicate address detection, so they answer at once.
type NetlinkAddresses struct {
	h    *netlink.Handle
	opts NetlinkAddressOptions
}

var _ AddressManager = (*NetlinkAddresses)(nil)

// NewNetlinkAddresses returns an AddressManager that works through h (a
// handle in the namespace of the interface).
func NewNetlinkAddresses(h *netlink.Handle, opts NetlinkAddressOptions) (*NetlinkAddresses, error) {
	if h == nil {
		return nil, fmt.Errorf("netlink addresses on %s: no netlink handle", opts.Interface)
	}
	if l := opts.Label; l != "" && (len(l) > 15 || (l != opts.Interface && !strings.HasPrefix(l, opts.Interface+":"))) {
		return nil, fmt.Errorf("address label %q: must be %q or start with %q, at most 15 bytes", l, opts.Interface, opts.Interface+":")
	}
	return &NetlinkAddresses{h: h, opts: opts}, nil
}

func (n *NetlinkAddresses) nlAddr(a netip.Addr) *netlink.Addr {
	na := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}}
	if a.Is4() {
		na.Label = n.opts.Label
	} else {
		na.Flags = unix.IFA_F_NODAD
	}
	return na
}

// AddAddresses implements AddressManager.
func (n *NetlinkAddresses) AddAddresses(addrs []netip.Addr) error {
	link, err := n.h.LinkByName(n.opts.Interface)
	if err != nil {
		return fmt.Errorf("adding virtual addresses to %s: %w", n.opts.Interface, err)
	}
	var errs []error
	for _, a := range addrs {
		if err := n.h.AddrAdd(link, n.nlAddr(a)); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("adding %s to %s: %w", a, n.opts.Interface, err))
		}
	}
	return errors.Join(errs...)
}

// RemoveAddresses implements AddressManager.
func (n *NetlinkAddresses) RemoveAddresses(addrs []netip.Addr) error {
	link, err := n.h.LinkByName(n.opts.Interface)
	if err != nil {
		return fmt.Errorf("removing virtual addresses from %s: %w", n.opts.Interface, err)
	}
	var errs []error
	for _, a := range addrs {
		err := n.h.AddrDel(link, n.nlAddr(a))
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("removing %s from %s: %w", a, n.opts.Interface, err))
		}
	}
	return errors.Join(errs...)
}

// FrameConn is the FrameWriter over an AF_PACKET socket bound to one
// interface. It receives nothing.
type FrameConn struct {
	c   *packet.Conn
	mac net.HardwareAddr
}

var _ FrameWriter = (*FrameConn)(nil)

// DialFrames opens a FrameConn on the interface in the calling thread's
// network namespace. It needs CAP_NET_RAW.
func DialFrames(ifname string) (*FrameConn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("opening a frame socket on %s: %w", ifname, err)
	}
	// Protocol 0: bound to the interface, but no frames are queued to it.
	c, err := packet.Listen(ifi, packet.Raw, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("opening a frame socket on %s: %w", ifname, err)
	}
	return &FrameConn{c: c, mac: ifi.HardwareAddr}, nil
}

// HardwareAddr is the interface's MAC address.
func (f *FrameConn) HardwareAddr() net.HardwareAddr { return f.mac }

// WriteFrame implements FrameWriter.
func (f *FrameConn) WriteFrame(frame []byte) error {
	if len(frame) < ethHeaderLen {
		return fmt.Errorf("writing a frame of %d bytes: shorter than an Ethernet header", len(frame))
	}
	_, err := f.c.WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr(frame[0:6])})
	return err
}

// Close closes the socket.
func (f *FrameConn) Close() error { return f.c.Close() }
