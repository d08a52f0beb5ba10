//go:build linux

package health

import (
	"hash"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A check on the event loop: how far it has come, and how its messages
// name the step it failed in.

// probePhase is how far a check has come.
type probePhase uint8

const (
	phaseIdle probePhase = iota
	phaseConnect
	phaseSend
	phaseHead
	phaseBody
	phaseReply // a datagram check waits for its reply
	phaseSMTP  // an SMTP check sends and reads its replies
)

// probe is one check on the event loop. A target's probe is reused by
// its next check.
type probe struct {
	t        *loopTarget
	e        *entry
	fd       int
	tag      uint32 // the epoll registration of fd (watch)
	phase    probePhase
	start    time.Time
	deadline time.Time
	index    int  // in the deadline heap; -1 when not in it
	queued   bool // submitted, waiting in the loop's backlog

	sent        int    // bytes of the request sent
	line        []byte // a head line read in part
	lines       int    // head lines read
	headBytes   int
	code        int
	length      int64     // Content-Length; -1 when absent
	want, taken int64     // body bytes to read, read
	sum         hash.Hash // the body's MD5 when the check has a digest; reused

	out      []byte // what to send (HTTP's request, SMTP's commands)
	smtpStep int    // the reply an SMTP check waits for
	seq      uint16 // a ping's echo sequence number
	rawPing  bool   // the ping went out on a raw socket
}

func (p *probe) reset(t *loopTarget, e *entry) {
	line, sum := p.line[:0], p.sum
	*p = probe{t: t, e: e, fd: -1, index: -1, line: line, length: -1, sum: sum}
	if t.ping != nil {
		p.seq = uint16(t.ping.seq.Add(1))
	}
}

func loopSockaddr(ap netip.AddrPort) (any, bool) {
	a := ap.Addr()
	switch {
	case a.Zone() != "":
		return nil, false
	case a.Is4() || a.Is4In6():
		return newSockaddr(&unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}), true
	}
	return newSockaddr(&unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}), true
}

// family is the address family of t's address.
func (t *loopTarget) family() int {
	if _, ok := t.sockaddr.(*sockaddr).sa.(*unix.SockaddrInet6); ok {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// op names the step p is in, as the blocking checkers name it in
// messages.
func (p *probe) op() string {
	switch {
	case p.phase == phaseSend:
		return "sending request to"
	case p.phase == phaseHead && p.lines == 0:
		return "reading status line from"
	case p.phase == phaseHead:
		return "reading headers from"
	case p.phase == phaseBody:
		return "reading body from"
	case p.phase == phaseSMTP && p.sent < len(p.out):
		return "sending " + strings.Fields(string(p.out))[0] + " to"
	case p.phase == phaseSMTP:
		return smtpOp(p.smtpStep)
	case p.phase == phaseReply && p.t.kind == kindPing:
		return "waiting for an echo reply from"
	case p.phase == phaseReply:
		return "waiting for a reply from"
	case p.t.kind == kindPing:
		return "ping"
	case p.t.kind == kindUDP:
		return "sending to"
	}
	return "connect"
}

// fail describes err, from p's current step, as the blocking checkers
// do: "connect 10.0.0.2:80: connection refused".
func (p *probe) fail(err error) error {
	return newError(nil, err, "%s %s: %s", p.op(), p.t.target, rootCause(err))
}
