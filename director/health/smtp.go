package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
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
	// StartTLS, when set, makes the check say EHLO instead of HELO,
	// require STARTTLS among the server's extensions, upgrade the
	// connection with crypto/tls, say EHLO again over TLS and then QUIT
	// (keepalived has no such option). Such checks run on a goroutine,
	// as HTTPS checks do.
	StartTLS *TLSSettings
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
	ehlo    []byte // "EHLO name\r\n"
	tls     *tls.Config
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
	c.ehlo = []byte("EHLO " + name + "\r\n")
	c.passMsg = "SMTP greeting, HELO and QUIT answered by " + c.target
	if spec.StartTLS != nil {
		cfg, err := tlsConfig(*spec.StartTLS, "", spec.Address)
		if err != nil {
			return nil, fmt.Errorf("smtp check of %s: %w", c.target, err)
		}
		c.tls = cfg
		c.passMsg = "SMTP greeting, STARTTLS, EHLO and QUIT answered by " + c.target
		return c, nil // on a goroutine, as HTTPS
	}
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
	smtpEHLO     // with STARTTLS only
	smtpStartTLS // with STARTTLS only
)

var smtpQuit = []byte("QUIT\r\n")

// smtpWhat names the reply a step waits for, for messages.
func smtpWhat(step int) string {
	switch step {
	case smtpHELO:
		return "reply to HELO"
	case smtpQUIT:
		return "reply to QUIT"
	case smtpEHLO:
		return "reply to EHLO"
	case smtpStartTLS:
		return "reply to STARTTLS"
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

// Check connects, reads the greeting, says HELO (or EHLO, STARTTLS and
// EHLO again over TLS) and QUIT.
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
	s := &smtpSession{c: c, a: a, conn: conn, br: bufio.NewReaderSize(conn, headerLineBytes)}
	if err := s.run(); err != nil {
		return failed(a.start, err)
	}
	return passed(a.start, "%s", c.passMsg)
}

// smtpSession is one blocking SMTP check's conversation.
type smtpSession struct {
	c    *SMTPChecker
	a    *attempt
	conn net.Conn
	br   *bufio.Reader
}

func (s *smtpSession) run() error {
	c := s.c
	if c.tls == nil {
		for step := smtpGreeting; ; step++ {
			code, last, _, err := s.reply(step)
			if err != nil {
				return err
			}
			next, err := c.smtpReply(step, code, last)
			if err != nil || next == nil {
				return err
			}
			if err := s.send(next); err != nil {
				return err
			}
		}
	}
	code, last, _, err := s.reply(smtpGreeting)
	if err == nil {
		_, err = c.smtpReply(smtpGreeting, code, last)
	}
	if err != nil {
		return err
	}
	if err := s.ehlo(true); err != nil {
		return err
	}
	if err := s.send([]byte("STARTTLS\r\n")); err != nil {
		return err
	}
	if code, last, _, err = s.reply(smtpStartTLS); err != nil {
		return err
	}
	if code != 220 {
		return newError(ErrBadResponse, nil, "SMTP reply to STARTTLS from %s: %q, want 220", c.target, truncate(strings.TrimRight(string(last), "\r\n"), 64))
	}
	tc := tls.Client(s.conn, c.tls)
	if err := tc.HandshakeContext(s.a.ctx); err != nil {
		return s.a.fail("TLS handshake with", err)
	}
	s.conn, s.br = tc, bufio.NewReaderSize(tc, headerLineBytes)
	if err := s.ehlo(false); err != nil {
		return err
	}
	if err := s.send(smtpQuit); err != nil {
		return err
	}
	_, _, _, err = s.reply(smtpQUIT)
	return err
}

// ehlo says EHLO and wants 250; with wantTLS, STARTTLS among the
// extensions the reply lists.
func (s *smtpSession) ehlo(wantTLS bool) error {
	if err := s.send(s.c.ehlo); err != nil {
		return err
	}
	code, last, lines, err := s.reply(smtpEHLO)
	if err != nil {
		return err
	}
	if code != 250 {
		return newError(ErrBadResponse, nil, "SMTP reply to EHLO from %s: %q, want 250", s.c.target, truncate(strings.TrimRight(string(last), "\r\n"), 64))
	}
	if wantTLS && !slices.ContainsFunc(lines, func(l string) bool {
		f := strings.Fields(l)
		return len(f) > 0 && strings.EqualFold(f[0], "STARTTLS")
	}) {
		return newError(ErrBadResponse, nil, "SMTP server %s does not offer STARTTLS in its reply to EHLO", s.c.target)
	}
	return nil
}

func (s *smtpSession) send(cmd []byte) error {
	if _, err := s.conn.Write(cmd); err != nil {
		return s.a.fail("sending "+strings.Fields(string(cmd))[0]+" to", err)
	}
	return nil
}

// reply reads one reply of step: its code, its last line, and the text
// after the code of each of its lines.
func (s *smtpSession) reply(step int) (code int, last []byte, texts []string, err error) {
	total := 0
	for {
		line, err := s.br.ReadSlice('\n')
		total += len(line)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return 0, nil, nil, newError(ErrBadResponse, err, "malformed SMTP reply from %s: a line longer than %d bytes", s.c.target, headerLineBytes)
		case total > smtpReplyBytes:
			return 0, nil, nil, newError(ErrBadResponse, nil, "malformed SMTP reply from %s: longer than %d bytes", s.c.target, smtpReplyBytes)
		case err != nil:
			return 0, nil, nil, s.a.fail(smtpOp(step), err)
		}
		done, err := s.c.smtpLine(step, line, &code)
		if err != nil {
			return 0, nil, nil, err
		}
		if t := strings.TrimRight(string(line), "\r\n"); len(t) > 4 {
			texts = append(texts, t[4:])
		}
		if done {
			return code, line, texts, nil
		}
	}
}
