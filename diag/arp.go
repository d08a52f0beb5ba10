package diag

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
)

// parseARPFrame decodes an Ethernet frame carrying an IPv4-over-Ethernet
// ARP packet. It never panics on short or foreign frames.
func parseARPFrame(b []byte) (ARPPacket, bool) {
	if len(b) < 14+28 || binary.BigEndian.Uint16(b[12:14]) != 0x0806 {
		return ARPPacket{}, false
	}
	a := b[14:]
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != 0x0800 || a[4] != 6 || a[5] != 4 {
		return ARPPacket{}, false
	}
	op := binary.BigEndian.Uint16(a[6:8])
	if op != 1 && op != 2 {
		return ARPPacket{}, false
	}
	return ARPPacket{
		Reply:     op == 2,
		SenderMAC: net.HardwareAddr(slices.Clone(a[8:14])),
		SenderIP:  netip.AddrFrom4([4]byte(a[14:18])),
		TargetIP:  netip.AddrFrom4([4]byte(a[24:28])),
	}, true
}
