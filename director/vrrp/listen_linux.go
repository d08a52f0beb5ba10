//go:build linux

package vrrp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// ListenConfig says which raw VRRP socket Listen opens.
type ListenConfig struct {
	// Interface is the link to bind to (SO_BINDTODEVICE).
	Interface string
	// Family is IPv4 or IPv6.
	Family Family
	// Multicast joins the VRRP group (224.0.0.18 or ff02::12) on the
	// interface. Instances that only use unicast peers do not need it.
	Multicast bool
}

// RawConn is the PacketConn over a raw IP socket of protocol 112 bound to
// one interface. It sends with TTL (hop limit) 255 from the source given
// to WritePacket and reports the TTL (hop limit), destination and
// interface of what it receives (IP_RECVTTL / IPV6_RECVHOPLIMIT and
// IP_PKTINFO / IPV6_RECVPKTINFO).
type RawConn struct {
	ifi *net.Interface
	c   net.PacketConn
	v4  *ipv4.PacketConn
	v6  *ipv6.PacketConn
}

var _ PacketConn = (*RawConn)(nil)

// Listen opens a raw VRRP socket in the calling thread's network
// namespace. It needs CAP_NET_RAW.
func Listen(cfg ListenConfig) (*RawConn, error) {
	c, err := listen(cfg)
	if err != nil {
		return nil, fmt.Errorf("listening for vrrp (%s) on %s: %w", cfg.Family, cfg.Interface, err)
	}
	return c, nil
}

func listen(cfg ListenConfig) (*RawConn, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), cfg.Interface) }); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("binding to device: %w", serr)
		}
		return nil
	}}
	network, any := "ip4:112", "0.0.0.0"
	if cfg.Family == IPv6 {
		network, any = "ip6:112", "::"
	} else if cfg.Family != IPv4 {
		return nil, fmt.Errorf("unknown address family %d", cfg.Family)
	}
	c, err := lc.ListenPacket(context.Background(), network, any)
	if err != nil {
		return nil, err
	}
	rc := &RawConn{ifi: ifi, c: c}
	if cfg.Family == IPv4 {
		err = rc.setup4(cfg.Multicast)
	} else {
		err = rc.setup6(cfg.Multicast)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return rc, nil
}

func (rc *RawConn) setup4(multicast bool) error {
	p := ipv4.NewPacketConn(rc.c)
	rc.v4 = p
	if err := p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		return fmt.Errorf("asking for ttl and destination: %w", err)
	}
	if err := p.SetTTL(HopLimit); err != nil {
		return fmt.Errorf("setting ttl: %w", err)
	}
	if err := p.SetMulticastTTL(HopLimit); err != nil {
		return fmt.Errorf("setting multicast ttl: %w", err)
	}
	if err := p.SetMulticastLoopback(false); err != nil {
		return fmt.Errorf("turning multicast loopback off: %w", err)
	}
	if err := p.SetMulticastInterface(rc.ifi); err != nil {
		return fmt.Errorf("setting multicast interface: %w", err)
	}
	if multicast {
		if err := p.JoinGroup(rc.ifi, &net.IPAddr{IP: IPv4Group.AsSlice()}); err != nil {
			return fmt.Errorf("joining %s: %w", IPv4Group, err)
		}
	}
	return nil
}

func (rc *RawConn) setup6(multicast bool) error {
	p := ipv6.NewPacketConn(rc.c)
	rc.v6 = p
	if err := p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
		return fmt.Errorf("asking for hop limit and destination: %w", err)
	}
	if err := p.SetHopLimit(HopLimit); err != nil {
		return fmt.Errorf("setting hop limit: %w", err)
	}
	if err := p.SetMulticastHopLimit(HopLimit); err != nil {
		return fmt.Errorf("setting multicast hop limit: %w", err)
	}
	if err := p.SetMulticastLoopback(false); err != nil {
		return fmt.Errorf("turning multicast loopback off: %w", err)
	}
	if err := p.SetMulticastInterface(rc.ifi); err != nil {
		return fmt.Errorf("setting multicast interface: %w", err)
	}
	if multicast {
		if err := p.JoinGroup(rc.ifi, &net.IPAddr{IP: IPv6Group.AsSlice()}); err != nil {
			return fmt.Errorf("joining %s: %w", IPv6Group, err)
		}
	}
	return nil
}

// ReadPacket implements PacketReader.
func (rc *RawConn) ReadPacket(buf []byte) (Packet, error) {
	if rc.v4 != nil {
		n, cm, src, err := rc.v4.ReadFrom(buf)
		if err != nil {
			return Packet{}, err
		}
		p := Packet{Payload: buf[:n], Src: addrOf(src), HopLimit: -1}
		if cm != nil {
			p.HopLimit, p.IfIndex = cm.TTL, cm.IfIndex
			p.Dst, _ = netip.AddrFromSlice(cm.Dst.To4())
		}
		return p, nil
	}
	n, cm, src, err := rc.v6.ReadFrom(buf)
	if err != nil {
		return Packet{}, err
	}
	p := Packet{Payload: buf[:n], Src: addrOf(src), HopLimit: -1}
	if cm != nil {
		p.HopLimit, p.IfIndex = cm.HopLimit, cm.IfIndex
		p.Dst, _ = netip.AddrFromSlice(cm.Dst.To16())
	}
	return p, nil
}

func addrOf(a net.Addr) netip.Addr {
	ipa, ok := a.(*net.IPAddr)
	if !ok {
		return netip.Addr{}
	}
	addr, _ := netip.AddrFromSlice(ipa.IP)
	return addr.Unmap()
}

// WritePacket implements PacketConn.
func (rc *RawConn) WritePacket(payload []byte, src, dst netip.Addr) error {
	to := &net.IPAddr{IP: dst.AsSlice()}
	if rc.v4 != nil {
		cm := &ipv4.ControlMessage{Src: src.AsSlice(), IfIndex: rc.ifi.Index}
		_, err := rc.v4.WriteTo(payload, cm, to)
		return err
	}
	if dst.IsLinkLocalMulticast() || dst.IsLinkLocalUnicast() {
		// By index: a name would be looked up in the namespace of
		// whichever thread runs this, not necessarily the socket's.
		to.Zone = strconv.Itoa(rc.ifi.Index)
	}
	cm := &ipv6.ControlMessage{Src: src.WithZone("").AsSlice(), IfIndex: rc.ifi.Index, HopLimit: HopLimit}
	_, err := rc.v6.WriteTo(payload, cm, to)
	return err
}

// Close implements PacketReader.
func (rc *RawConn) Close() error { return rc.c.Close() }
