package health

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"
)

// Defaults of a UDPCheck, keepalived's.
const (
	// DefaultUDPPayloadBytes is the size of the datagram sent when a
	// UDPCheck has no Payload: "keepalived check - " repeated.
	DefaultUDPPayloadBytes = 32
	// DefaultUDPMaxReplyBytes is the longest reply accepted when Reply
	// is set and MaxReplyBytes is zero.
	DefaultUDPMaxReplyBytes = 255
)

// UDPCheck sends one datagram to Address and judges what comes back,
// with keepalived's UDP_CHECK semantics: an ICMP destination (port,
// host, network) unreachable fails the check; with RequireReply a
// datagram must come back within the timeout, else silence passes; with
// Reply the reply must also match it.
type UDPCheck struct {
	// Address is where to send: the real server's address and port, or
	// another (keepalived's connect_ip and connect_port).
	Address netip.AddrPort
	// Payload is the datagram sent; empty means DefaultUDPPayloadBytes
	// of keepalived's filler.
	Payload []byte
	// RequireReply makes silence until the timeout a failure.
	RequireReply bool
	// Reply is what the reply must start with, compared over the
	// shorter of the two (keepalived's require_reply with data). Bits
	// set in ReplyMask are not compared (keepalived's X digits).
	// Setting Reply sets RequireReply.
	Reply     []byte
	ReplyMask []byte
	// MinReplyBytes and MaxReplyBytes bound the reply's length when
	// Reply is set (keepalived's min_reply_length and max_reply_length,
	// which it also applies only then); MaxReplyBytes zero means
	// DefaultUDPMaxReplyBytes.
	MinReplyBytes, MaxReplyBytes int
	// Timeout bounds the wait for a reply; zero means DefaultTimeout.
	Timeout time.Duration
}

// NewChecker implements Spec.
func (c UDPCheck) NewChecker(env Env) (Checker, error) { return NewUDPChecker(c, env) }

// UDPChecker runs a UDPCheck.
type UDPChecker struct {
	env          Env
	target       string
	payload      []byte
	requireReply bool
	reply, mask  []byte
	minLen       int
	maxLen       int
	timeout      time.Duration
	silentPass   string      // the reason of a pass by silence
	loop         *loopTarget // nil: not on the Scheduler's event loop
}

// NewUDPChecker validates spec and returns its checker.
func NewUDPChecker(spec UDPCheck, env Env) (*UDPChecker, error) {
	c := &UDPChecker{
		env:          env.withDefaults(),
		target:       spec.Address.String(),
		payload:      spec.Payload,
		requireReply: spec.RequireReply || len(spec.Reply) > 0,
		reply:        spec.Reply,
		mask:         spec.ReplyMask,
		minLen:       spec.MinReplyBytes,
		maxLen:       spec.MaxReplyBytes,
		timeout:      timeoutOrDefault(spec.Timeout),
	}
	fail := func(format string, args ...any) (*UDPChecker, error) {
		return nil, fmt.Errorf("udp check of %s: %s", c.target, fmt.Sprintf(format, args...))
	}
	switch {
	case !spec.Address.IsValid() || spec.Address.Port() == 0:
		return fail("need an address and a port")
	case len(c.payload) > 65507:
		return fail("payload of %d bytes: a datagram holds at most 65507", len(c.payload))
	case c.mask != nil && len(c.mask) != len(c.reply):
		return fail("reply mask of %d bytes for a reply of %d: want one mask byte per reply byte", len(c.mask), len(c.reply))
	case c.minLen < 0 || c.maxLen < 0 || c.maxLen > 65535:
		return fail("reply lengths %d-%d: want 0 to 65535", c.minLen, c.maxLen)
	}
	if c.maxLen == 0 {
		c.maxLen = DefaultUDPMaxReplyBytes
	}
	if c.reply != nil && c.minLen > c.maxLen {
		return fail("minimum reply length %d is above the maximum %d: the check could never pass", c.minLen, c.maxLen)
	}
	if len(c.payload) == 0 {
		c.payload = appendKeepalivedPattern(nil, DefaultUDPPayloadBytes)
	}
	c.silentPass = fmt.Sprintf("no reply from %s within %s (none required), no ICMP error", c.target, c.timeout)
	if c.env.defaultDialer {
		if c.loop = newLoopTarget(spec.Address, c.timeout, nil); c.loop != nil {
			c.loop.kind = kindUDP
			c.loop.udp = c
		}
	}
	return c, nil
}

// Check sends the datagram and waits for a reply or an ICMP error.
func (c *UDPChecker) Check(ctx context.Context) Result {
	a, cancel := begin(ctx, c.timeout, c.target)
	defer cancel()
	conn, err := c.env.Dialer.DialContext(a.ctx, "udp", c.target)
	if err != nil {
		return failed(a.start, c.unreachable(a.fail("sending to", err)))
	}
	defer conn.Close()
	stop := a.watch(conn)
	defer stop()
	if _, err := conn.Write(c.payload); err != nil {
		return failed(a.start, c.unreachable(a.fail("sending to", err)))
	}
	buf := make([]byte, c.maxLen+1)
	n, err := conn.Read(buf)
	switch {
	case err != nil && isTimeout(err) && a.parent.Err() == nil && !c.requireReply:
		return passed(a.start, "%s", c.silentPass)
	case err != nil:
		return failed(a.start, c.unreachable(a.fail("waiting for a reply from", err)))
	}
	msg, ferr := c.judge(buf[:n])
	if ferr != nil {
		return failed(a.start, ferr)
	}
	return passed(a.start, "%s", msg)
}

// unreachable rewords an ICMP error's errno as what the ICMP message
// said: "port unreachable" rather than "connection refused".
func (c *UDPChecker) unreachable(err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err
	}
	return newError(nil, err, "udp check of %s: %s", c.target, icmpMeaning(errno))
}

// icmpMeaning names the ICMP error a socket reports as errno.
func icmpMeaning(errno syscall.Errno) string {
	switch errno {
	case syscall.ECONNREFUSED:
		return "port unreachable (ICMP)"
	case syscall.EHOSTUNREACH:
		return "host unreachable (ICMP)"
	case syscall.ENETUNREACH:
		return "network unreachable (ICMP)"
	}
	return errno.Error()
}

// judge judges a reply datagram.
func (c *UDPChecker) judge(got []byte) (string, error) {
	if c.reply != nil {
		if len(got) < c.minLen || len(got) > c.maxLen {
			return "", newError(ErrBadResponse, nil, "UDP reply of %d bytes from %s: want %d to %d bytes", len(got), c.target, c.minLen, c.maxLen)
		}
		for i := range min(len(got), len(c.reply)) {
			var ignore byte
			if c.mask != nil {
				ignore = c.mask[i]
			}
			if (got[i]^c.reply[i])&^ignore != 0 {
				return "", newError(ErrBadResponse, nil, "UDP reply from %s differs from the expected one at byte %d: %#02x, want %#02x", c.target, i, got[i], c.reply[i])
			}
		}
	}
	return fmt.Sprintf("UDP reply of %d bytes from %s", len(got), c.target), nil
}
