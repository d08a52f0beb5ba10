package ipvs

import (
	"bufio"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
)

// WriteServiceTable writes t as the kernel prints /proc/net/ip_vs
// (ip_vs_info_seq_show): addresses and ports in hex, the persistence
// timeout in jiffies (TimeoutJiffies, or Timeout × ProcHZ when that is
// zero), and the connection counts of each real server. Only what the
// file shows is written (an IPv6 service's line has no "ops", as in the
// kernel); ParseServiceTable reads it back.
func WriteServiceTable(w io.Writer, t ServiceTable) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "IP Virtual Server version %s (size=%d)\n", t.Info.Version, t.Info.ConnTableSize)
	bw.WriteString("Prot LocalAddress:Port Scheduler Flags\n")
	bw.WriteString("  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n")
	for i := range t.Services {
		s := &t.Services[i]
		ops := ""
		if s.Flags&FlagOnePacket != 0 {
			ops = "ops "
		}
		// The kernel's three formats differ in their spacing, and an
		// IPv6 service's line omits "ops".
		switch {
		case s.IsFWMark():
			fmt.Fprintf(bw, "FWM  %08X %s %s", s.FWMark, s.Scheduler, ops)
		case s.Address.Is6():
			fmt.Fprintf(bw, "%s  %s %s ", ProcProtocolName(s.Protocol), procAddrPort(s.Address, s.Port), s.Scheduler)
		default:
			fmt.Fprintf(bw, "%s  %s %s %s ", ProcProtocolName(s.Protocol), procAddrPort(s.Address, s.Port), s.Scheduler, ops)
		}
		if s.Persistent() {
			jiffies := s.TimeoutJiffies
			if jiffies == 0 {
				jiffies = s.Timeout * ProcHZ
			}
			fmt.Fprintf(bw, "persistent %d %08X\n", jiffies, procNetmask(s.Family, s.NetmaskBits))
		} else {
			bw.WriteByte('\n')
		}
		for _, r := range s.RealServers {
			fmt.Fprintf(bw, "  -> %s      %-7s %-6d %-10d %-10d\n", procAddrPort(r.Address, r.Port), r.Forwarding, r.Weight, r.ActiveConns, r.InactiveConns)
		}
	}
	return bw.Flush()
}

// procAddrPort prints an address and port as the kernel does: %08X:%04X
// for IPv4, [%pI6]:%04X (every group, four lower-case digits) for IPv6.
func procAddrPort(a netip.Addr, port uint16) string {
	if a.Is4() {
		b := a.As4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", b[0], b[1], b[2], b[3], port)
	}
	b := a.As16()
	return fmt.Sprintf("[%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x]:%04X",
		b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15], port)
}

// procNetmask is the persistence netmask as the kernel prints it
// (ntohl of the stored value): the mask for IPv4; for IPv6 the prefix
// length, which ntohl byte-swaps on a little-endian machine.
func procNetmask(f Family, prefix uint8) uint32 {
	if f == IPv6 {
		if prefix == 0 {
			prefix = 128
		}
		return bits.ReverseBytes32(uint32(prefix))
	}
	if prefix == 0 || prefix > 32 {
		prefix = 32
	}
	return ^uint32(0) << (32 - prefix)
}
