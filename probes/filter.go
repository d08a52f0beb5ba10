package probes

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// constants are the values of the filter's volatile const globals in
// bpf/trace.c (f_*). Addresses are four host-order words holding the
// address bytes in network order, as the kernel's nf_inet_addr.all[].
type constants struct {
	All        uint8
	VIPAF      uint16
	VIP        [4]uint32
	Port       uint16
	ClientAF   uint16
	ClientNet  [4]uint32
	ClientMask [4]uint32
	RSAF       uint16
	RS         [4]uint32
	Proto      uint8
	NetNS      uint32
	Ifindex    uint32
}

// compile checks f and turns it into the BPF constants.
func (f Filter) compile() (constants, error) {
	var c constants
	if f.VIP.IsValid() {
		c.VIPAF, c.VIP = family(f.VIP), words(f.VIP)
	}
	c.Port = f.Port
	if f.Client.IsValid() {
		p := f.Client.Masked()
		c.ClientAF, c.ClientNet, c.ClientMask = family(p.Addr()), words(p.Addr()), mask(p)
		if f.VIP.IsValid() && f.VIP.Unmap().Is4() != p.Addr().Unmap().Is4() {
			return c, fmt.Errorf("filter: client %v and VIP %v are of different address families", f.Client, f.VIP)
		}
	}
	if f.RealServer.IsValid() {
		c.RSAF, c.RS = family(f.RealServer), words(f.RealServer)
	}
	switch strings.ToLower(f.Protocol) {
	case "":
	case "tcp":
		c.Proto = 6
	case "udp":
		c.Proto = 17
	case "sctp":
		c.Proto = 132
	default:
		return c, fmt.Errorf("filter: protocol %q: want tcp, udp or sctp", f.Protocol)
	}
	if f.Interface < 0 {
		return c, fmt.Errorf("filter: interface index %d: want a positive index", f.Interface)
	}
	c.NetNS, c.Ifindex = f.NetNS, uint32(f.Interface)
	// The skb map follows a matched packet; with no address, port or
	// protocol to match every packet matches, and the map is not used.
	if f.matchesAll() {
		c.All = 1
	}
	return c, nil
}

// matchesAll reports whether the filter has no address, port or
// protocol: every packet (of its netns and interface) matches.
func (f Filter) matchesAll() bool {
	return !f.VIP.IsValid() && f.Port == 0 && !f.Client.IsValid() && !f.RealServer.IsValid() && f.Protocol == ""
}

func family(a netip.Addr) uint16 {
	if a.Unmap().Is4() {
		return afInet
	}
	return afInet6
}

// words lays an address out as the kernel's nf_inet_addr.all[]: the
// bytes in network order, read as host-order (little-endian) words;
// IPv4 in the first word, the rest zero.
func words(a netip.Addr) [4]uint32 {
	var b [16]byte
	a = a.Unmap()
	if a.Is4() {
		v := a.As4()
		copy(b[:], v[:])
	} else {
		b = a.As16()
	}
	var w [4]uint32
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(b[i*4:])
	}
	return w
}

func mask(p netip.Prefix) [4]uint32 {
	var b [16]byte
	for i := 0; i < p.Bits(); i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	var w [4]uint32
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(b[i*4:])
	}
	return w
}
