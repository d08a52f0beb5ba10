package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
)

// flood sends n UDP datagrams to dst, each from its own source address
// and port in 10.1.0.0/16, through a raw socket: n entries in the IPVS
// connection table of the director in the way (bench/conntable.sh
// --vm-live). The UDP checksum is left 0, which IPv4 allows.
func flood(n int, dst netip.AddrPort) error {
	if !dst.Addr().Is4() {
		return fmt.Errorf("flood: %v is not IPv4", dst)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("flood: raw socket (needs CAP_NET_RAW): %w", err)
	}
	defer syscall.Close(fd)
	to := &syscall.SockaddrInet4{Addr: dst.Addr().As4()}
	var pkt [20 + 8 + 4]byte
	pkt[0] = 0x45                                         // IPv4, 20-byte header
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt))) // total length
	pkt[8] = 64                                           // TTL
	pkt[9] = syscall.IPPROTO_UDP                          // protocol
	copy(pkt[16:20], to.Addr[:])                          // destination
	binary.BigEndian.PutUint16(pkt[22:], dst.Port())      // UDP destination port
	binary.BigEndian.PutUint16(pkt[24:], uint16(8+4))     // UDP length
	copy(pkt[28:], "lvsk")
	for i := range n {
		// 16 source ports per address: 10.1.0.0 upwards.
		src := 0x0A010000 + uint32(i/16)
		binary.BigEndian.PutUint32(pkt[12:], src)
		binary.BigEndian.PutUint16(pkt[20:], uint16(10000+i%16))
		binary.BigEndian.PutUint16(pkt[4:], uint16(i)) // IP ID
		if err := syscall.Sendto(fd, pkt[:], 0, to); err != nil {
			return fmt.Errorf("flood: packet %d: %w", i, err)
		}
	}
	return nil
}
