//go:build linux

package health

import (
	"bytes"
	"container/heap"
	"crypto/md5"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The event loop's stream checks: a TCP connect, and an HTTP GET sent
// and its response parsed as it arrives.

// begin opens p's connection (or sends its datagram).
func (l *netLoop) begin(p *probe, now time.Time) {
	p.start, p.deadline, p.phase = now, now.Add(p.t.timeout), phaseConnect
	switch p.t.kind {
	case kindUDP:
		l.beginUDP(p)
		return
	case kindPing:
		l.beginPing(p)
		return
	}
	fd, err := unix.Socket(p.t.family(), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.failCheck(p, p.fail(os.NewSyscallError("socket", err)))
		return
	}
	// As keepalived's checkers do: close ends the connection with a
	// reset, not a FIN. A TCP check's connection, which the checker
	// closes first, then leaves no TIME_WAIT socket on the director
	// (at 1,000 checks a second, 60,000 of them that connect's choice
	// of a local port must step around) and costs four packets instead
	// of seven; an HTTP check's, closed after the server's FIN, skips
	// the last FIN and ACK.
	if err := setAbortiveClose(fd); err != nil {
		closeNow(fd)
		l.failCheck(p, p.fail(os.NewSyscallError("setsockopt SO_LINGER", err)))
		return
	}
	err = connectNow(fd, p.t.sockaddr.(*sockaddr))
	if err != nil && err != unix.EINPROGRESS {
		closeNow(fd)
		l.failCheck(p, p.fail(err))
		return
	}
	// Edge-triggered: the connect's completion, then the response,
	// each wake the loop once; EPOLLRDHUP says when the server's FIN
	// came with the response.
	l.watch(p, fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET)
}

// abortiveClose is SO_LINGER on with a zero timeout: close resets the
// connection.
var abortiveClose = unix.Linger{Onoff: 1, Linger: 0}

// watch makes fd p's socket, waited on for events, until p's deadline.
//
// Its registration is tagged: closing a socket removes it from epoll
// only once no process holds it, and Go's fork of a command (modprobe
// at every reload, notify and quorum scripts) gives the child every
// descriptor until it execs. A socket closed in that window stays
// registered under its old descriptor number, which the next socket
// takes; its late events (a server's FIN, a reset) must not be read as
// the new check's. Without the tag, a refused connect was reported as
// "connected": the closed socket's FIN came under the new one's number.
func (l *netLoop) watch(p *probe, fd int, events uint32) {
	l.tag++
	if l.tag == 0 {
		l.tag++ // 0 is no socket's
	}
	p.tag = l.tag
	l.ev = unix.EpollEvent{Events: events, Fd: int32(fd), Pad: int32(p.tag)}
	if err := epollAdd(l.epfd, fd, &l.ev); err != nil {
		closeNow(fd)
		l.failCheck(p, p.fail(os.NewSyscallError("epoll_ctl", err)))
		return
	}
	p.fd = fd
	l.setProbe(fd, p)
	heap.Push(&l.timers, p)
}

// step moves p on after events on its socket.
func (l *netLoop) step(p *probe, events uint32) {
	l.events = events
	switch p.t.kind {
	case kindUDP, kindPing:
		l.stepDatagram(p, events)
		return
	}
	if p.phase == phaseConnect {
		// A refused or unreachable connect reports EPOLLERR (and
		// EPOLLHUP); its errno is the socket's pending error. Only
		// then is SO_ERROR read.
		if events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			errno, err := unix.GetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err == nil && errno != 0 {
				err = unix.Errno(errno)
			}
			if err != nil {
				l.failCheck(p, p.fail(err))
				return
			}
		}
		if events&(unix.EPOLLOUT|unix.EPOLLIN) == 0 {
			return
		}
		if p.t.kind == kindSMTP {
			p.phase = phaseSMTP
			l.stepSMTP(p, events)
			return
		}
		if p.t.http == nil {
			l.finish(p, Result{Up: true, Reason: p.t.connected, Time: p.start})
			return
		}
		p.phase, p.out = phaseSend, p.t.http.request
	}
	if p.phase == phaseSMTP {
		l.stepSMTP(p, events)
		return
	}
	if p.phase == phaseSend {
		if !l.send(p) {
			return
		}
		p.phase = phaseHead
		if events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
			// The response cannot be there yet: its arrival is the
			// next edge. (A read now would only say EAGAIN.)
			return
		}
	}
	l.readReady(p)
}

// send writes what is left of p.out; true when all of it is sent.
func (l *netLoop) send(p *probe) bool {
	req := p.out
	for p.sent < len(req) {
		n, err := sendNow(p.fd, req[p.sent:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err != nil:
			l.failCheck(p, p.fail(err))
			return false
		}
		p.sent += n
	}
	return true
}

// readReady reads what p's socket holds, handing each read to p's kind
// of check, until the socket would block or the check ends. A failed
// read ends the check with the error as p's kind describes it; the end
// of a stream (never a datagram's empty read) ends it as atEOF says.
func (l *netLoop) readReady(p *probe) {
	for p.fd >= 0 {
		n, err := readNow(p.fd, l.buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return
		case err != nil:
			l.failCheck(p, p.readFailed(err))
			return
		case n == 0 && (p.t.kind == kindStream || p.t.kind == kindSMTP):
			l.atEOF(p)
			return
		}
		switch data := l.buf[:n]; p.t.kind {
		case kindStream:
			l.consume(p, data)
		case kindSMTP:
			l.consumeSMTP(p, data)
		case kindUDP:
			l.consumeUDP(p, data)
		case kindPing:
			l.consumePing(p, data)
		}
	}
}

// readFailed describes a failed read of p's socket.
func (p *probe) readFailed(err error) error {
	switch p.t.kind {
	case kindUDP:
		return p.t.udp.unreachable(p.fail(err))
	case kindPing:
		return p.pingFailed(err)
	}
	return p.fail(err)
}

// atEOF ends p's check at the end of its stream: an HTTP body without a
// Content-Length ends there, anything else was cut short.
func (l *netLoop) atEOF(p *probe) {
	if p.t.kind == kindStream && p.phase == phaseBody {
		l.judge(p, true)
		return
	}
	l.failCheck(p, p.fail(io.EOF))
}

// consume parses data, the next bytes of the response, as the blocking
// checker's bufio.Reader of headerLineBytes would.
func (l *netLoop) consume(p *probe, data []byte) {
	c := p.t.http
	for p.phase == phaseHead && len(data) > 0 {
		line, rest, complete := p.nextLine(data)
		if line == nil {
			l.failCheck(p, newError(ErrBadResponse, nil, "malformed response from %s: header line longer than %d bytes", p.t.target, headerLineBytes))
			return
		}
		if !complete {
			return
		}
		data = rest
		p.headBytes += len(line)
		if p.headBytes > maxHeaderBytes {
			l.failCheck(p, newError(ErrBadResponse, nil, "malformed response from %s: headers longer than %d bytes", p.t.target, maxHeaderBytes))
			return
		}
		done, err := c.headLine(p.lines, line, &p.code, &p.length)
		p.lines++
		p.line = p.line[:0]
		switch {
		case err != nil:
			l.failCheck(p, err)
			return
		case !done:
			continue
		case !c.statusOK(p.code):
			l.failCheck(p, newError(ErrUnexpectedStatus, nil, "HTTP %d from %s", p.code, p.t.target))
			return
		}
		if p.want, err = c.bodyWant(p.length); err != nil {
			l.failCheck(p, err)
			return
		}
		if c.digest != nil {
			if p.sum == nil {
				p.sum = md5.New()
			}
			p.sum.Reset()
		}
		p.phase = phaseBody
	}
	if p.phase != phaseBody {
		return
	}
	take := min(int64(len(data)), p.want-p.taken)
	if c.digest != nil {
		p.sum.Write(data[:take])
	}
	p.taken += take
	if p.taken >= p.want {
		l.judge(p, false)
	}
}

// nextLine takes the next line, '\n' included, from data, joined to the
// part of it that p.line holds: as a bufio.Reader of headerLineBytes
// reads lines. rest is what follows it. When data ends within the line,
// complete is false and p.line holds what came of it; a line longer
// than headerLineBytes is nil. The caller empties p.line after using a
// complete line.
func (p *probe) nextLine(data []byte) (line, rest []byte, complete bool) {
	i := bytes.IndexByte(data, '\n')
	switch {
	case i < 0 && len(p.line)+len(data) >= headerLineBytes,
		i >= 0 && len(p.line)+i+1 > headerLineBytes:
		return nil, nil, false
	case i < 0:
		p.line = append(p.line, data...)
		return p.line, nil, false
	}
	line = data[:i+1]
	if len(p.line) > 0 {
		p.line = append(p.line, line...)
		line = p.line
	}
	return line, data[i+1:], true
}

// judge ends an HTTP check whose body has been read, up to the end of
// the connection when eof is true.
func (l *netLoop) judge(p *probe, eof bool) {
	var got []byte
	if p.t.http.digest != nil {
		got = p.sum.Sum(l.sum[:0])
	}
	msg, err := p.t.http.judgeBody(p.code, p.length, p.taken, got)
	if err != nil {
		l.failCheck(p, err)
		return
	}
	r := Result{Up: true, Reason: msg, Time: p.start}
	if !eof && p.taken == p.length && p.fd >= 0 && l.events&unix.EPOLLRDHUP == 0 {
		// The whole body came by its Content-Length; the server's FIN
		// is on its way (had it come with the body, EPOLLRDHUP would
		// say so, and the socket is closed at once).
		fd := p.fd
		l.probes[fd] = nil
		p.fd = -1
		d := drainingSocket{fd: fd, until: l.now.Add(drainFor), tag: p.tag}
		l.draining[fd] = d
		l.drainQ = append(l.drainQ, d)
	}
	l.finish(p, r)
}

// drainFor is how long a passed HTTP check's socket waits for the
// server's FIN before it is closed anyway.
const drainFor = 250 * time.Millisecond

type drainingSocket struct {
	fd    int
	until time.Time
	tag   uint32 // its epoll registration's
}

// sweep closes the sockets that waited drainFor for a FIN in vain.
func (l *netLoop) sweep(now time.Time) {
	n := 0
	for _, d := range l.drainQ {
		if d.until.After(now) {
			break
		}
		n++
		if now, ok := l.draining[d.fd]; ok && now.tag == d.tag {
			delete(l.draining, d.fd)
			closeNow(d.fd)
		}
	}
	if n > 0 {
		l.drainQ = append(l.drainQ[:0], l.drainQ[n:]...)
	}
}
