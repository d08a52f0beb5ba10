//go:build linux

package health

import (
	"os"

	"golang.org/x/sys/unix"
)

// The event loop's datagram checks (UDP, ping) and its SMTP check. A
// UDP check costs socket, connect, sendmsg, epoll_ctl, a read and close;
// a ping the same on an ICMP socket.

// pendingError is the socket's pending error (an ICMP error on a
// datagram socket, a refused connect), read when epoll says EPOLLERR.
func pendingError(fd int) error {
	errno, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if errno != 0 {
		return unix.Errno(errno)
	}
	return nil
}

// beginUDP sends p's datagram from a socket of its own.
func (l *netLoop) beginUDP(p *probe) {
	c := p.t.udp
	fd, err := unix.Socket(p.t.family(), unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.failCheck(p, p.fail(os.NewSyscallError("socket", err)))
		return
	}
	if err = unix.Connect(fd, p.t.sockaddr.(*sockaddr).sa); err == nil {
		_, err = unix.SendmsgN(fd, c.payload, nil, nil, unix.MSG_NOSIGNAL)
	}
	if err != nil {
		unix.Close(fd)
		l.failCheck(p, c.unreachable(p.fail(err)))
		return
	}
	p.phase = phaseReply
	l.watch(p, fd, unix.EPOLLIN|unix.EPOLLET)
}

// stepDatagram judges a UDP check's reply or a ping's echo reply, or
// the ICMP error that came instead.
func (l *netLoop) stepDatagram(p *probe, events uint32) {
	if events&unix.EPOLLERR != 0 {
		if err := pendingError(p.fd); err != nil {
			l.failCheck(p, p.readFailed(err))
			return
		}
	}
	l.readReady(p)
}

// consumeUDP judges a reply.
func (l *netLoop) consumeUDP(p *probe, data []byte) {
	msg, err := p.t.udp.judge(data)
	if err != nil {
		l.failCheck(p, err)
		return
	}
	l.finish(p, Result{Up: true, Reason: msg, Time: p.start})
}

// beginPing sends p's echo request from an ICMP socket of its own: an
// unprivileged one (SOCK_DGRAM) if the namespace's ping_group_range
// lets lvsd's group have one, else a raw one (CAP_NET_RAW).
func (l *netLoop) beginPing(p *probe) {
	family := p.t.family()
	v6 := family == unix.AF_INET6
	proto := unix.IPPROTO_ICMP
	if v6 {
		proto = unix.IPPROTO_ICMPV6
	}
	raw := l.pingRaw[b2i(v6)]
	var fd int
	var err error
	if !raw {
		fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		if err == unix.EACCES || err == unix.EPERM {
			raw, l.pingRaw[b2i(v6)] = true, true
		}
	}
	if raw {
		fd, err = unix.Socket(family, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		if err == unix.EPERM || err == unix.EACCES {
			l.failCheck(p, newError(nil, err, "ping %s: no ICMP socket allowed: give lvsd CAP_NET_RAW (its systemd unit does), or put its group in the sysctl net.ipv4.ping_group_range", p.t.target))
			return
		}
	}
	if err != nil {
		l.failCheck(p, p.fail(os.NewSyscallError("socket", err)))
		return
	}
	// A connected ICMP socket (raw too) receives only what its peer
	// sends.
	var id uint16
	if raw {
		id = p.t.ping.id
	}
	l.echo = appendEcho(l.echo[:0], v6, id, p.seq)
	if err = unix.Connect(fd, p.t.sockaddr.(*sockaddr).sa); err == nil {
		_, err = unix.SendmsgN(fd, l.echo, nil, nil, 0)
	}
	if err != nil {
		unix.Close(fd)
		l.failCheck(p, p.pingFailed(err))
		return
	}
	p.rawPing, p.phase = raw, phaseReply
	l.watch(p, fd, unix.EPOLLIN|unix.EPOLLET)
}

// consumePing passes p on its echo reply, skipping other ICMP messages.
func (l *netLoop) consumePing(p *probe, data []byte) {
	v6 := p.t.family() == unix.AF_INET6
	if isEchoReply(data, v6, p.rawPing && !v6, p.rawPing, p.t.ping.id, p.seq) {
		l.finish(p, Result{Up: true, Reason: p.t.connected, Time: p.start})
	}
}

// pingFailed describes a ping's socket error: an ICMP error by what it
// said ("ping 10.0.0.2: host unreachable (ICMP)").
func (p *probe) pingFailed(err error) error {
	if errno, ok := err.(unix.Errno); ok {
		return newError(nil, err, "ping %s: %s", p.t.target, icmpMeaning(errno))
	}
	return p.fail(err)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// stepSMTP sends what is pending and reads the server's replies.
func (l *netLoop) stepSMTP(p *probe, events uint32) {
	if events&unix.EPOLLERR != 0 {
		if err := pendingError(p.fd); err != nil {
			l.failCheck(p, p.fail(err))
			return
		}
	}
	if p.sent < len(p.out) && !l.send(p) {
		return
	}
	l.readReady(p)
}

// consumeSMTP parses data, the next bytes from an SMTP server, as the
// blocking checker's bufio.Reader of headerLineBytes would, and sends
// the next command when a reply ends.
func (l *netLoop) consumeSMTP(p *probe, data []byte) {
	c := p.t.smtp
	for len(data) > 0 && p.fd >= 0 {
		line, rest, complete := p.nextLine(data)
		if line == nil {
			l.failCheck(p, newError(ErrBadResponse, nil, "malformed SMTP reply from %s: a line longer than %d bytes", p.t.target, headerLineBytes))
			return
		}
		if !complete {
			return
		}
		data = rest
		if p.headBytes += len(line); p.headBytes > smtpReplyBytes {
			l.failCheck(p, newError(ErrBadResponse, nil, "malformed SMTP reply from %s: longer than %d bytes", p.t.target, smtpReplyBytes))
			return
		}
		done, err := c.smtpLine(p.smtpStep, line, &p.code)
		if err == nil && done {
			var next []byte
			if next, err = c.smtpReply(p.smtpStep, p.code, line); err == nil && next == nil {
				l.finish(p, Result{Up: true, Reason: c.passMsg, Time: p.start})
				return
			}
			p.smtpStep, p.code, p.headBytes = p.smtpStep+1, 0, 0
			p.out, p.sent = next, 0
		}
		p.line = p.line[:0]
		if err != nil {
			l.failCheck(p, err)
			return
		}
		if done && !l.send(p) {
			return
		}
	}
}
