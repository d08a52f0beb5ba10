package health

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"
)

// PingCheck passes when Address answers an ICMP echo request (ping, or
// ICMPv6 echo for an IPv6 address) within the timeout: keepalived's
// PING_CHECK. A destination-unreachable error fails it at once.
//
// The echo goes through an unprivileged ICMP socket (SOCK_DGRAM,
// IPPROTO_ICMP: allowed when the process's group is in the network
// namespace's net.ipv4.ping_group_range) and, where that is refused,
// through a raw ICMP socket, which needs CAP_NET_RAW. lvsd's systemd
// unit grants CAP_NET_RAW. keepalived instead rewrites
// ping_group_range; lvsd changes no system setting.
//
// Ping checks always run on the Scheduler's event loop (Linux only),
// in its network namespace: a Dialer does not apply to them.
type PingCheck struct {
	// Address is the host to ping.
	Address netip.Addr
	// Timeout bounds the wait for the reply; zero means DefaultTimeout.
	Timeout time.Duration
}

// NewChecker implements Spec.
func (c PingCheck) NewChecker(env Env) (Checker, error) { return NewPingChecker(c, env) }

// PingChecker runs a PingCheck.
type PingChecker struct {
	loop *loopTarget
}

// pingPayloadBytes is the size of the echo's data, keepalived's
// (ICMP_BUFSIZE).
const pingPayloadBytes = 128

// pingIDs numbers the echo identifiers of raw sockets, one per target.
var pingIDs atomic.Uint32

// NewPingChecker validates spec and returns its checker.
func NewPingChecker(spec PingCheck, env Env) (*PingChecker, error) {
	a := spec.Address
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
		return nil, fmt.Errorf("ping check of %s: need a unicast address", a)
	}
	if a.Zone() != "" {
		return nil, fmt.Errorf("ping check of %s: write the address without a zone", a)
	}
	t := newLoopTarget(netip.AddrPortFrom(a.Unmap(), 0), timeoutOrDefault(spec.Timeout), nil)
	if t == nil {
		return nil, fmt.Errorf("ping check of %s: not implemented on %s/%s", a, runtime.GOOS, runtime.GOARCH)
	}
	t.kind = kindPing
	t.target = a.Unmap().String()
	t.connected = "echo reply from " + t.target
	t.ping = &pingState{id: uint16(pingIDs.Add(1))}
	return &PingChecker{loop: t}, nil
}

// Check sends one echo request on an event loop of its own and waits
// for the reply.
func (c *PingChecker) Check(ctx context.Context) Result { return checkOnLoop(ctx, c.loop) }

// pingState is a ping target's echo numbering.
type pingState struct {
	id  uint16 // the echo identifier on a raw socket (the kernel picks it on an ICMP socket)
	seq atomic.Uint32
}

// ICMP message types.
const (
	icmpEchoReply     = 0
	icmpEchoRequest   = 8
	icmpv6EchoRequest = 128
	icmpv6EchoReply   = 129
)

// appendEcho appends an echo request with id and seq (ICMPv6 when v6),
// with keepalived's payload and, for ICMPv4, its checksum (the kernel
// computes ICMPv6's).
func appendEcho(b []byte, v6 bool, id, seq uint16) []byte {
	typ := byte(icmpEchoRequest)
	if v6 {
		typ = icmpv6EchoRequest
	}
	start := len(b)
	b = append(b, typ, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, id)
	b = binary.BigEndian.AppendUint16(b, seq)
	b = appendKeepalivedPattern(b, pingPayloadBytes)
	if !v6 {
		binary.BigEndian.PutUint16(b[start+2:], icmpChecksum(b[start:]))
	}
	return b
}

// icmpChecksum is the Internet checksum of b.
func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// isEchoReply reports whether msg, an ICMP message as a socket returned
// it, answers the echo with id and seq. ipHeader: msg starts with the
// IPv4 header (a raw IPv4 socket); checkID: the identifier is ours to
// check (a raw socket; an ICMP socket's kernel matches it).
func isEchoReply(msg []byte, v6, ipHeader, checkID bool, id, seq uint16) bool {
	if ipHeader {
		if len(msg) < 20 || msg[0]>>4 != 4 {
			return false
		}
		hl := int(msg[0]&0x0f) * 4
		if hl < 20 || len(msg) < hl {
			return false
		}
		msg = msg[hl:]
	}
	if len(msg) < 8 {
		return false
	}
	want := byte(icmpEchoReply)
	if v6 {
		want = icmpv6EchoReply
	}
	return msg[0] == want && msg[1] == 0 &&
		(!checkID || binary.BigEndian.Uint16(msg[4:]) == id) &&
		binary.BigEndian.Uint16(msg[6:]) == seq
}

// appendKeepalivedPattern appends n bytes of "keepalived check - "
// repeated, the filler keepalived sends in its UDP and ICMP checks.
func appendKeepalivedPattern(b []byte, n int) []byte {
	const pattern = "keepalived check - "
	for n > 0 {
		k := min(n, len(pattern))
		b = append(b, pattern[:k]...)
		n -= k
	}
	return b
}
