package health_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
)

// udpResponder answers each datagram on loopback with reply(request);
// nil means no answer.
func udpResponder(t *testing.T, reply func([]byte) []byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if r := reply(buf[:n]); r != nil {
				pc.WriteTo(r, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// closedUDPPort is a loopback UDP port where nothing listens.
func closedUDPPort(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	return a
}

// bothWays runs spec's check on the event loop and on a goroutine
// through a Dialer: they must agree.
func bothWays(t *testing.T, spec health.Spec, judge func(t *testing.T, r health.Result, took time.Duration)) {
	t.Helper()
	t.Run("event loop", func(t *testing.T) {
		t.Parallel()
		c, err := spec.NewChecker(health.Env{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		rs, ok := health.CheckOnEventLoop("", c)
		if !ok {
			t.Skip("no event loop on this system")
		}
		judge(t, rs[0], time.Since(start))
	})
	t.Run("goroutine", func(t *testing.T) {
		t.Parallel()
		c, err := spec.NewChecker(health.Env{Dialer: &net.Dialer{}})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r := c.Check(context.Background())
		judge(t, r, time.Since(start))
	})
}

func assertUp(t *testing.T, r health.Result, want string) {
	t.Helper()
	if !r.Up || r.Reason != want {
		t.Errorf("up=%v %q, want up %q", r.Up, r.Reason, want)
	}
}

// TestUDPCheck: keepalived's UDP_CHECK semantics on both paths: a reply
// is judged against the expected bytes (X digits ignored), silence
// passes at the timeout unless a reply is required, and an ICMP port
// unreachable fails at once.
func TestUDPCheck(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	echo := udpResponder(t, func(b []byte) []byte { return append([]byte(nil), b...) })
	silentPeer := udpResponder(t, func([]byte) []byte { return nil })
	closed := closedUDPPort(t)

	t.Run("echo matches", func(t *testing.T) {
		t.Parallel()
		bothWays(t, health.UDPCheck{Address: echo, Payload: []byte("ping\x01"), Reply: []byte("pi\x00g"), ReplyMask: []byte{0, 0, 0xff, 0}, Timeout: timeout},
			func(t *testing.T, r health.Result, _ time.Duration) {
				assertUp(t, r, "UDP reply of 5 bytes from "+echo.String())
			})
	})
	t.Run("echo differs", func(t *testing.T) {
		t.Parallel()
		bothWays(t, health.UDPCheck{Address: echo, Payload: []byte("pong"), Reply: []byte("ping"), Timeout: timeout},
			func(t *testing.T, r health.Result, _ time.Duration) {
				assertDown(t, r, health.ErrBadResponse, "UDP reply from "+echo.String()+" differs from the expected one at byte 1: 0x6f, want 0x69")
			})
	})
	t.Run("reply too long", func(t *testing.T) {
		t.Parallel()
		bothWays(t, health.UDPCheck{Address: echo, Payload: []byte("abcdef"), Reply: []byte("abc"), MaxReplyBytes: 4, Timeout: timeout},
			func(t *testing.T, r health.Result, _ time.Duration) {
				if r.Up || !strings.Contains(r.Reason, "want 0 to 4 bytes") {
					t.Errorf("up=%v %q, want a failure naming 0 to 4 bytes", r.Up, r.Reason)
				}
			})
	})
	t.Run("default payload is keepalived's", func(t *testing.T) {
		t.Parallel()
		bothWays(t, health.UDPCheck{Address: echo, Reply: []byte("keepalived check - keepalived c"), Timeout: timeout},
			func(t *testing.T, r health.Result, _ time.Duration) {
				assertUp(t, r, "UDP reply of 32 bytes from "+echo.String())
			})
	})
	t.Run("silence passes at the timeout", func(t *testing.T) {
		t.Parallel()
		bothWays(t, health.UDPCheck{Address: silentPeer, Timeout: timeout},
			func(t *testing.T, r health.Result, took time.Duration) {
				assertUp(t, r, "no reply from "+silentPeer.String()+" within 500ms (none required), no ICMP error")
				assertEndsAtTimeout(t, took, timeout)
			})
	})
	t.Run("silence fails when a reply is required", func(t *testing.T) {
		t.Parallel()
		bothWays(t, health.UDPCheck{Address: silentPeer, RequireReply: true, Timeout: timeout},
			func(t *testing.T, r health.Result, took time.Duration) {
				assertDown(t, r, health.ErrTimeout, "timeout after 500ms waiting for a reply from "+silentPeer.String())
				assertEndsAtTimeout(t, took, timeout)
			})
	})
	t.Run("port unreachable", func(t *testing.T) {
		t.Parallel()
		bothWays(t, health.UDPCheck{Address: closed, Timeout: 5 * time.Second},
			func(t *testing.T, r health.Result, _ time.Duration) {
				assertDown(t, r, syscall.ECONNREFUSED, "udp check of "+closed.String()+": port unreachable (ICMP)")
				// The ICMP error, not the 5 s deadline, ended it.
			})
	})
}

func TestUDPCheckRefusesBadSpecs(t *testing.T) {
	t.Parallel()
	a := netip.MustParseAddrPort("10.0.0.2:53")
	for _, tc := range []struct {
		spec health.UDPCheck
		want string
	}{
		{health.UDPCheck{Address: netip.MustParseAddrPort("10.0.0.2:0")}, "need an address and a port"},
		{health.UDPCheck{Address: a, Reply: []byte("ab"), ReplyMask: []byte{0}}, "one mask byte per reply byte"},
		{health.UDPCheck{Address: a, Reply: []byte("ab"), MinReplyBytes: 10, MaxReplyBytes: 5}, "could never pass"},
	} {
		if _, err := tc.spec.NewChecker(health.Env{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error saying %q", tc.spec, err, tc.want)
		}
	}
}

// smtpPeer is a minimal SMTP server: a two-line 220 greeting, 250 to
// HELO, 221 to QUIT; it records the HELO line.
func smtpPeer(greeting, heloReply string, helo chan<- string) func(net.Conn, <-chan struct{}) {
	return func(c net.Conn, _ <-chan struct{}) {
		br := bufio.NewReader(c)
		io.WriteString(c, greeting)
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if helo != nil {
			helo <- line
		}
		io.WriteString(c, heloReply)
		if line, err = br.ReadString('\n'); err != nil || line != "QUIT\r\n" {
			return
		}
		io.WriteString(c, "221 2.0.0 bye\r\n")
	}
}

// TestSMTPCheck: greeting, HELO and QUIT on both paths; a bad greeting
// or HELO reply fails, naming it; hostile servers end at the timeout.
func TestSMTPCheck(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	helo := make(chan string, 2)
	good := newServer(t, smtpPeer("220-mx.example.com ESMTP\r\n220 welcome\r\n", "250 mx.example.com\r\n", helo))
	t.Run("passes", func(t *testing.T) {
		bothWays(t, health.SMTPCheck{Address: good.Addr(), HELOName: "lvsd.example.com", Timeout: timeout},
			func(t *testing.T, r health.Result, _ time.Duration) {
				assertUp(t, r, "SMTP greeting, HELO and QUIT answered by "+good.Addr().String())
			})
	})
	for range 2 {
		if got := <-helo; got != "HELO lvsd.example.com\r\n" {
			t.Errorf("server got %q, want HELO lvsd.example.com", got)
		}
	}
	busy := newServer(t, smtpPeer("554 5.3.2 busy\r\n", "", nil))
	t.Run("greeting 554", func(t *testing.T) {
		t.Parallel()
		bothWays(t, health.SMTPCheck{Address: busy.Addr(), Timeout: timeout}, func(t *testing.T, r health.Result, _ time.Duration) {
			assertDown(t, r, health.ErrBadResponse, `SMTP greeting from `+busy.Addr().String()+`: "554 5.3.2 busy", want 220`)
		})
	})
	refuses := newServer(t, smtpPeer("220 hi\r\n", "550 no\r\n", nil))
	t.Run("HELO 550", func(t *testing.T) {
		t.Parallel()
		bothWays(t, health.SMTPCheck{Address: refuses.Addr(), Timeout: timeout}, func(t *testing.T, r health.Result, _ time.Duration) {
			assertDown(t, r, health.ErrBadResponse, `SMTP reply to HELO from `+refuses.Addr().String()+`: "550 no", want 250`)
		})
	})
	notSMTP := newServer(t, smtpPeer("HTTP/1.0 400 Bad\r\n", "", nil))
	t.Run("not SMTP", func(t *testing.T) {
		t.Parallel()
		bothWays(t, health.SMTPCheck{Address: notSMTP.Addr(), Timeout: timeout}, func(t *testing.T, r health.Result, _ time.Duration) {
			assertDown(t, r, health.ErrBadResponse, `malformed SMTP greeting from `+notSMTP.Addr().String()+`: "HTTP/1.0 400 Bad"`)
		})
	})
	quiet := newServer(t, silent)
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		bothWays(t, health.SMTPCheck{Address: quiet.Addr(), Timeout: timeout}, func(t *testing.T, r health.Result, took time.Duration) {
			assertDown(t, r, health.ErrTimeout, "timeout after 500ms reading the SMTP greeting from "+quiet.Addr().String())
			assertEndsAtTimeout(t, took, timeout)
		})
	})
	drip := newServer(t, func(c net.Conn, done <-chan struct{}) {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte("2")); err != nil {
				return
			}
		}
	})
	t.Run("trickle", func(t *testing.T) {
		t.Parallel()
		bothWays(t, health.SMTPCheck{Address: drip.Addr(), Timeout: timeout}, func(t *testing.T, r health.Result, took time.Duration) {
			assertDown(t, r, health.ErrTimeout, "timeout after 500ms reading the SMTP greeting from "+drip.Addr().String())
			assertEndsAtTimeout(t, took, timeout)
		})
	})
	rst := newServer(t, resetOnAccept)
	t.Run("reset", func(t *testing.T) {
		t.Parallel()
		bothWays(t, health.SMTPCheck{Address: rst.Addr(), Timeout: timeout}, func(t *testing.T, r health.Result, _ time.Duration) {
			if r.Up || !errorsIsAny(r.Err, syscall.ECONNRESET, io.EOF) {
				t.Errorf("up=%v %q (%v), want a reset or closed connection", r.Up, r.Reason, r.Err)
			}
		})
	})
	t.Run("closed port", func(t *testing.T) {
		t.Parallel()
		a := closedPort(t)
		bothWays(t, health.SMTPCheck{Address: a, Timeout: timeout}, func(t *testing.T, r health.Result, _ time.Duration) {
			assertDown(t, r, syscall.ECONNREFUSED, "connect "+a.String()+": connection refused")
		})
	})
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// startTLSPeer is an SMTP server offering STARTTLS (when offer is
// true) with cert: 220, EHLO 250 (listing STARTTLS), STARTTLS 220, the
// TLS handshake, EHLO 250 over TLS, QUIT 221. It reports what the
// client said over TLS on said.
func startTLSPeer(cert tls.Certificate, offer bool, said chan<- string) func(net.Conn, <-chan struct{}) {
	return func(c net.Conn, _ <-chan struct{}) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		io.WriteString(c, "220 mx ESMTP\r\n")
		if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "EHLO ") {
			return
		}
		if offer {
			io.WriteString(c, "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
		} else {
			io.WriteString(c, "250-mx\r\n250 PIPELINING\r\n")
		}
		if line, err := br.ReadString('\n'); err != nil || line != "STARTTLS\r\n" {
			return
		}
		io.WriteString(c, "220 go ahead\r\n")
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		if err := tc.Handshake(); err != nil {
			return
		}
		br = bufio.NewReader(tc)
		for _, reply := range []string{"250 mx\r\n", "221 bye\r\n"} {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			said <- line
			io.WriteString(tc, reply)
		}
	}
}

// TestSMTPStartTLS: with StartTLS the check says EHLO, upgrades with
// STARTTLS, says EHLO again and QUIT over TLS (verifying the
// certificate when asked); a server that does not offer STARTTLS, or
// whose certificate does not verify, fails.
func TestSMTPStartTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, caFile, _ := selfSigned(t, dir, "mx.test")
	said := make(chan string, 8)
	s := newServer(t, startTLSPeer(cert, true, said))
	c, err := health.NewSMTPChecker(health.SMTPCheck{Address: s.Addr(), HELOName: "lvs1.test", StartTLS: &health.TLSSettings{ServerName: "mx.test", Verify: true, CAFile: caFile}, Timeout: 2 * time.Second}, health.Env{})
	if err != nil {
		t.Fatal(err)
	}
	assertUp(t, c.Check(context.Background()), "SMTP greeting, STARTTLS, EHLO and QUIT answered by "+s.Addr().String())
	if a, b := <-said, <-said; a != "EHLO lvs1.test\r\n" || b != "QUIT\r\n" {
		t.Errorf("over TLS the server got %q, %q; want EHLO lvs1.test, QUIT", a, b)
	}

	wrongName, err := health.NewSMTPChecker(health.SMTPCheck{Address: s.Addr(), StartTLS: &health.TLSSettings{ServerName: "other.test", Verify: true, CAFile: caFile}, Timeout: 2 * time.Second}, health.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if r := wrongName.Check(context.Background()); r.Up || !strings.Contains(r.Reason, "TLS handshake with "+s.Addr().String()) {
		t.Errorf("certificate for another name: up=%v %q, want a TLS handshake failure", r.Up, r.Reason)
	}

	plain := newServer(t, startTLSPeer(cert, false, said))
	nc, err := health.NewSMTPChecker(health.SMTPCheck{Address: plain.Addr(), StartTLS: &health.TLSSettings{}, Timeout: 2 * time.Second}, health.Env{})
	if err != nil {
		t.Fatal(err)
	}
	assertDown(t, nc.Check(context.Background()), health.ErrBadResponse, "SMTP server "+plain.Addr().String()+" does not offer STARTTLS in its reply to EHLO")
}
