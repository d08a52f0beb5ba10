//go:build !linux

package vrrp

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
)

func notImplemented(what string) error {
	return fmt.Errorf("%s on %s/%s: %w", what, runtime.GOOS, runtime.GOARCH, ErrNotImplemented)
}

// ListenConfig says which raw VRRP socket Listen opens.
type ListenConfig struct {
	Interface string
	Family    Family
	Multicast bool
}

// RawConn is the raw-socket PacketConn (Linux only).
type RawConn struct{}

// Listen is implemented only on Linux.
func Listen(ListenConfig) (*RawConn, error) { return nil, notImplemented("raw vrrp sockets") }

// ReadPacket implements PacketReader.
func (*RawConn) ReadPacket([]byte) (Packet, error) {
	return Packet{}, notImplemented("raw vrrp sockets")
}

// WritePacket implements PacketConn.
func (*RawConn) WritePacket([]byte, netip.Addr, netip.Addr) error {
	return notImplemented("raw vrrp sockets")
}

// Close implements PacketReader.
func (*RawConn) Close() error { return nil }

// SnoopConn is the listen-only AF_PACKET PacketConn (Linux only).
type SnoopConn struct{ RawConn }

// Snoop is implemented only on Linux.
func Snoop(string) (*SnoopConn, error) { return nil, notImplemented("listening for vrrp frames") }

// FrameConn is the AF_PACKET FrameWriter (Linux only).
type FrameConn struct{}

// DialFrames is implemented only on Linux.
func DialFrames(string) (*FrameConn, error) { return nil, notImplemented("frame sockets") }

// HardwareAddr is the interface's MAC address.
func (*FrameConn) HardwareAddr() net.HardwareAddr { return nil }

// WriteFrame implements FrameWriter.
func (*FrameConn) WriteFrame([]byte) error { return notImplemented("frame sockets") }

// Close closes the socket.
func (*FrameConn) Close() error { return nil }
