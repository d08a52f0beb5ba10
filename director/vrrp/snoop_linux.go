//go:build linux

package vrrp

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// SnoopConn is a listen-only PacketReader over an AF_PACKET socket: it
// sees every VRRP packet on the link, its own host's outgoing ones too,
// without joining a multicast group or sending anything (no IGMP or MLD
// report). It is what `lvsdiag vrrp` listens with.
type SnoopConn struct {
	c *packet.Conn
}

var _ PacketConn = (*SnoopConn)(nil)

// Snoop opens a SnoopConn on the interface in the calling thread's
// network namespace. It puts the interface in all-multicast mode for as
// long as the socket is open, so that a NIC's multicast filter does not
// hide the adverts. It needs CAP_NET_RAW.
func Snoop(ifname string) (*SnoopConn, error) {
	c, err := snoop(ifname)
	if err != nil {
		return nil, fmt.Errorf("listening for vrrp on %s: %w", ifname, err)
	}
	return c, nil
}

func snoop(ifname string) (*SnoopConn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	filter, err := bpf.Assemble(vrrpFilter)
	if err != nil {
		return nil, fmt.Errorf("assembling the packet filter: %w", err)
	}
	c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: filter})
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptPacketMreq(int(fd), unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP,
			&unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_ALLMULTI})
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("turning all-multicast on: %w", err)
	}
	return &SnoopConn{c: c}, nil
}

// vrrpFilter passes IPv4 and IPv6 frames whose protocol (next header) is
// 112 and drops the rest in the kernel.
var vrrpFilter = []bpf.Instruction{
	/* 0 */ bpf.LoadAbsolute{Off: 12, Size: 2}, // EtherType
	/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeIPv4, SkipFalse: 2},
	/* 2 */ bpf.LoadAbsolute{Off: ethHeaderLen + 9, Size: 1}, // IPv4 protocol
	/* 3 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: IPProtocol, SkipTrue: 3, SkipFalse: 4},
	/* 4 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeIPv6, SkipFalse: 3},
	/* 5 */ bpf.LoadAbsolute{Off: ethHeaderLen + 6, Size: 1}, // IPv6 next header
	/* 6 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: IPProtocol, SkipFalse: 1},
	/* 7 */ bpf.RetConstant{Val: 0x40000},
	/* 8 */ bpf.RetConstant{Val: 0},
}

// ReadPacket implements PacketReader: it returns the next frame that
// holds a whole, unfragmented VRRP packet.
func (s *SnoopConn) ReadPacket(buf []byte) (Packet, error) {
	for {
		n, _, err := s.c.ReadFrom(buf)
		if err != nil {
			return Packet{}, err
		}
		if p, ok := ParseFrame(buf[:n]); ok {
			return p, nil
		}
	}
}

// WritePacket implements PacketConn: it returns ErrPassive.
func (s *SnoopConn) WritePacket([]byte, netip.Addr, netip.Addr) error { return ErrPassive }

// Close implements PacketReader.
func (s *SnoopConn) Close() error { return s.c.Close() }
