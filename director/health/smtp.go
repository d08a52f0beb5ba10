package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// DefaultHELOName is the name an SMTPCheck gives in its HELO when
// HELOName is empty: keepalived's.
const DefaultHELOName = "smtpchecker.keepalived.org"

// smtpReplyBytes caps one SMTP reply, all its lines together.
const smtpReplyBytes = 64 << 10

// SMTPCheck passes when an SMTP server greets with 220, answers
// "HELO name" with 250 and answers QUIT (keepalived's SMTP_CHECK). A
// reply may span lines ("250-..." then "250 ..."), which keepalived
// does not accept.
type SMTPCheck struct {
	// Address is where to connect: the real server's address and port,
	// or another (keepalived's connect_ip and connect_port).
	Address netip.AddrPort
	// HELOName is the name sent with HELO; empty means
	// DefaultHELOName.
	HELOName string
	// Timeout bounds the whole check; zero means DefaultTimeout.
	Timeout time.Duration
}

// NewChecker implements Spec.
func (c SMTPCheck) NewChecker(env Env) (Checker, error) { return NewSMTPChecker(c, env) }

// SMTPChecker runs an SMTPCheck.
type SMTPChecker struct {
	env     Env
	target  string
	helo    []byte // "HELO name\r\n"
	timeout time.Duration
	passMsg string
	loop    *loopTarget // nil: not on the Scheduler's event loop
}

// NewSMTPChecker validates spec and returns its checker.
func NewSMTPChecker(spec SMTPCheck, env Env) (*SMTPChecker, error) {
	c := &SMTPChecker{env: env.withDefaults(), target: spec.Address.String(), timeout: timeoutOrDefault(spec.Timeout)}
	if !spec.Address.IsValid() || spec.Address.Port() == 0 {
		return nil, fmt.Errorf("smtp check of %s: need an address and a port", c.target)
	}
	name := spec.HELOName
	if name == "" {
		name = DefaultHELOName
	}
	if !validHeaderValue(name) || strings.ContainsAny(name, " \t") {
		return nil, fmt.Errorf("smtp check of %s: HELO name %q holds spaces or control characters", c.target, name)
	}
	c.helo = []byte("HELO " + name + "\r\n")
	c.passMsg = "SMTP greeting, HELO and QUIT answered by " + c.target
	if c.env.defaultDialer {
		if c.loop = newLoopTarget(spec.Address, c.timeout, nil); c.loop != nil {
			c.loop.kind = kindSMTP
			c.loop.smtp = c
		}
	}
	return c, nil
}

// The steps of an SMTP check, each waiting for one reply.
const (
	smtpGreeting = iota
	smtpHELO
	smtpQUIT
)

var smtpQuit = []byte("QUIT\r\n")

// smtpWhat names the reply a step waits for, for messages.
func smtpWhat(step int) string {
	switch step {
	case smtpHELO:
		return "reply to HELO"
	case smtpQUIT:
		return "reply to QUIT"
	}
	return "greeting"
}

// smtpOp names the step waiting for a reply, for messages.
func smtpOp(step int) string { return "reading the SMTP " + smtpWhat(step) + " from" }

// smtpLine takes one line of a reply, with its line end: code is the
// reply's code and done is true on its last line ("250 ok" after
// "250-..." lines).
func (c *SMTPChecker) smtpLine(step int, line []byte, code *int) (done bool, err error) {
	l := strings.TrimRight(string(line), "\r\n")
	n, ok := 0, len(l) >= 3
	for i := 0; ok && i < 3; i++ {
		ok = l[i] >= '0' && l[i] <= '9'
		n = n*10 + int(l[i]-'0')
	}
	if !ok || (len(l) > 3 && l[3] != ' ' && l[3] != '-') || (*code != 0 && n != *code) {
		return false, newError(ErrBadResponse, nil, "malformed SMTP %s from %s: %q", smtpWhat(step), c.target, truncate(l, 64))
	}
	*code = n
	return len(l) == 3 || l[3] == ' ', nil
}

// smtpReply judges the reply that ended step; next is what to send
// then (nil: the check passed).
func (c *SMTPChecker) smtpReply(step, code int, last []byte) (next []byte, err error) {
	want := 220
	if step == smtpHELO {
		want = 250
	}
	if step != smtpQUIT && code != want {
		return nil, newError(ErrBadResponse, nil, "SMTP %s from %s: %q, want %d", smtpWhat(step), c.target, truncate(strings.TrimRight(string(last), "\r\n"), 64), want)
	}
	switch step {
	case smtpGreeting:
		return c.helo, nil
	case smtpHELO:
		return smtpQuit, nil
	}
	return nil, nil
}

// Check connects, reads the greeting, says HELO and QUIT.
func (c *SMTPChecker) Check(ctx context.Context) Result {
	a, cancel := begin(ctx, c.timeout, c.target)
	defer cancel()
	conn, err := c.env.Dialer.DialContext(a.ctx, "tcp", c.target)
	if err != nil {
		return failed(a.start, a.fail("connect", err))
	}
	defer conn.Close()
	stop := a.watch(conn)
	defer stop()
	br := bufio.NewReaderSize(conn, headerLineBytes)
	for step := smtpGreeting; ; step++ {
		code, total := 0, 0
		for {
			line, err := br.ReadSlice('\n')
			total += len(line)
			switch {
			case errors.Is(err, bufio.ErrBufferFull):
				return failed(a.start, newError(ErrBadResponse, err, "malformed SMTP reply from %s: a line longer than %d bytes", c.target, headerLineBytes))
			case total > smtpReplyBytes:
				return failed(a.start, newError(ErrBadResponse, nil, "malformed SMTP reply from %s: longer than %d bytes", c.target, smtpReplyBytes))
			case err != nil:
				return failed(a.start, a.fail(smtpOp(step), err))
			}
			done, err := c.smtpLine(step, line, &code)
			if err != nil {
				return failed(a.start, err)
			}
			if !done {
				continue
			}
			next, err := c.smtpReply(step, code, line)
			if err != nil {
				return failed(a.start, err)
			}
			if next == nil {
				return passed(a.start, "%s", c.passMsg)
			}
			if _, err := conn.Write(next); err != nil {
				return failed(a.start, a.fail("sending "+strings.Fields(string(next))[0]+" to", err))
			}
			break
		}
	}
}
