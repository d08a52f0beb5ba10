package vrrp

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// ParseFrame extracts a VRRP packet from an Ethernet frame (with at most
// one 802.1Q tag): the IP payload, trimmed of link-layer padding, and the
// header's addresses and TTL or hop limit. ok is false for anything else,
// including IPv4 fragments and IPv6 packets with extension headers.
func ParseFrame(frame []byte) (p Packet, ok bool) {
	if len(frame) < ethHeaderLen {
		return Packet{}, false
	}
	mac := net.HardwareAddr(frame[6:12])
	etherType := binary.BigEndian.Uint16(frame[12:14])
	ip := frame[ethHeaderLen:]
	if etherType == 0x8100 && len(ip) >= 4 {
		etherType = binary.BigEndian.Uint16(ip[2:4])
		ip = ip[4:]
	}
	switch etherType {
	case etherTypeIPv4:
		p, ok = parseIPv4(ip)
	case etherTypeIPv6:
		p, ok = parseIPv6(ip)
	}
	if ok {
		p.SrcMAC = mac
	}
	return p, ok
}

func parseIPv4(b []byte) (Packet, bool) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return Packet{}, false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	fragment := binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 // MF or an offset
	if ihl < 20 || total < ihl || total > len(b) || fragment || b[9] != IPProtocol {
		return Packet{}, false
	}
	src, _ := netip.AddrFromSlice(b[12:16])
	dst, _ := netip.AddrFromSlice(b[16:20])
	return Packet{Payload: b[ihl:total], Src: src, Dst: dst, HopLimit: int(b[8])}, true
}

func parseIPv6(b []byte) (Packet, bool) {
	if len(b) < ipv6HeaderLen || b[0]>>4 != 6 || b[6] != IPProtocol {
		return Packet{}, false
	}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if ipv6HeaderLen+n > len(b) {
		return Packet{}, false
	}
	src, _ := netip.AddrFromSlice(b[8:24])
	dst, _ := netip.AddrFromSlice(b[24:40])
	return Packet{Payload: b[ipv6HeaderLen : ipv6HeaderLen+n], Src: src, Dst: dst, HopLimit: int(b[7])}, true
}
