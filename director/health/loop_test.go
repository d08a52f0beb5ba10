package health_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
)

// onLoop runs hostile's check next to a healthy server's check on one
// event loop; the healthy check must pass, and not wait behind the
// hostile one: when the hostile one ran to its deadline, the healthy one
// ended first (an order, which a loaded machine keeps, not a bound in
// milliseconds, which it does not).
func onLoop(t *testing.T, hostile health.Checker) (health.Result, time.Duration) {
	t.Helper()
	ok := newServer(t, respond("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	healthy := newHTTP(t, health.HTTPCheck{Address: ok.Addr(), Timeout: 5 * time.Second})
	start := time.Now()
	rs, can := health.CheckOnEventLoop("", hostile, healthy)
	if !can {
		t.Skip("no event loop on this system")
	}
	hr := rs[1]
	switch {
	case !hr.Up:
		t.Errorf("healthy check on the loop next to a hostile one: down (%q), want up", hr.Reason)
	case errors.Is(rs[0].Err, health.ErrTimeout) && hr.Duration >= rs[0].Duration:
		t.Errorf("healthy check on the loop took %v, the hostile one %v until its deadline: the healthy one waited behind it", hr.Duration, rs[0].Duration)
	}
	return rs[0], time.Since(start)
}

// TestEventLoopChecks: the event loop reports what the blocking checkers
// report, for healthy and hostile servers alike, and a hostile server
// delays no other check on the loop.
func TestEventLoopChecks(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	const gigabyte = 1 << 30

	t.Run("TCP connect", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, silent)
		c, err := health.NewTCPChecker(health.TCPCheck{Address: s.Addr(), Timeout: timeout}, health.Env{})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := onLoop(t, c)
		if want := "connected to " + s.Addr().String(); !r.Up || r.Reason != want {
			t.Errorf("up=%v %q, want up %q", r.Up, r.Reason, want)
		}
	})
	t.Run("HTTP over IPv6, and refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				readRequest(c)
				io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
				c.Close()
			}
		}()
		a := ln.Addr().(*net.TCPAddr).AddrPort()
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: a, Path: "/", Timeout: timeout}))
		if want := "HTTP 200 from " + a.String(); !r.Up || r.Reason != want {
			t.Errorf("up=%v %q, want up %q", r.Up, r.Reason, want)
		}
		closed, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Fatal(err)
		}
		refused := closed.Addr().(*net.TCPAddr).AddrPort()
		closed.Close()
		c, err := health.NewTCPChecker(health.TCPCheck{Address: refused, Timeout: timeout}, health.Env{})
		if err != nil {
			t.Fatal(err)
		}
		r, _ = onLoop(t, c)
		assertDown(t, r, syscall.ECONNREFUSED, "connect "+refused.String()+": connection refused")
	})
	t.Run("TCP refused", func(t *testing.T) {
		t.Parallel()
		a := closedPort(t)
		c, err := health.NewTCPChecker(health.TCPCheck{Address: a, Timeout: timeout}, health.Env{})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := onLoop(t, c)
		assertDown(t, r, syscall.ECONNREFUSED, "connect "+a.String()+": connection refused")
	})
	t.Run("request as keepalived sends it, digest matches", func(t *testing.T) {
		t.Parallel()
		requests := make(chan string, 1)
		s := newServer(t, func(c net.Conn, _ <-chan struct{}) {
			req, _ := readRequest(c)
			requests <- string(req)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
		})
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Path: "/health", Host: "www.example.com", Digest: md5hex("hello"), Timeout: timeout}))
		if want := "HTTP 200 from " + s.Addr().String() + ", digest matches"; !r.Up || r.Reason != want {
			t.Errorf("up=%v %q, want up %q", r.Up, r.Reason, want)
		}
		want := "GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: www.example.com\r\nConnection: close\r\n\r\n"
		if got := <-requests; got != want {
			t.Errorf("request %q, want %q", got, want)
		}
	})
	t.Run("digest mismatch, body to the end of the connection", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, respond("HTTP/1.0 200 OK\r\n\r\nhellx"))
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Digest: md5hex("hello"), Timeout: timeout}))
		assertDown(t, r, health.ErrDigestMismatch, fmt.Sprintf("HTTP 200 from %s with body digest %s, want %s", s.Addr(), md5hex("hellx"), md5hex("hello")))
	})
	t.Run("unexpected status", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, respond("HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"))
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}))
		assertDown(t, r, health.ErrUnexpectedStatus, "HTTP 503 from "+s.Addr().String())
	})
	t.Run("short body", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, respond("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"))
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Digest: md5hex("hello"), Timeout: timeout}))
		assertDown(t, r, health.ErrBadResponse, fmt.Sprintf("short body from %s: 5 of 10 bytes", s.Addr()))
	})
	t.Run("accept and never answer", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, silent)
		r, took := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}))
		assertDown(t, r, health.ErrTimeout, "timeout after 1s reading status line from "+s.Addr().String())
		assertEndsAtTimeout(t, took, timeout)
	})
	t.Run("RST on accept", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, resetOnAccept)
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}))
		if r.Up || !(errorsIs(r.Err, syscall.ECONNRESET) || errorsIs(r.Err, syscall.EPIPE)) {
			t.Errorf("up=%v %q (%v), want a reset", r.Up, r.Reason, r.Err)
		}
		// A reset, not the deadline, ended it: it was noticed at once.
	})
	t.Run("RST on connect", func(t *testing.T) {
		t.Parallel()
		a := closedPort(t)
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: a, Timeout: timeout}))
		assertDown(t, r, syscall.ECONNREFUSED, "connect "+a.String()+": connection refused")
	})
	t.Run("slow trickle of the headers", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, trickle("HTTP/1.0 200 OK\r\n", "Content-Length: 0\r\n\r\n", 100*time.Millisecond))
		r, took := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}))
		assertDown(t, r, health.ErrTimeout, "timeout after 1s reading headers from "+s.Addr().String())
		assertEndsAtTimeout(t, took, timeout)
	})
	t.Run("slow trickle of the body", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, trickle("HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n", strings.Repeat("x", 100), 100*time.Millisecond))
		r, took := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}))
		assertDown(t, r, health.ErrTimeout, "timeout after 1s reading body from "+s.Addr().String())
		assertEndsAtTimeout(t, took, timeout)
	})
	t.Run("1 GB body with a digest and Content-Length", func(t *testing.T) {
		t.Parallel()
		written := make(chan int64, 1)
		s := newServer(t, hugeBody(gigabyte, true, written))
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout, Digest: md5hex("x")}))
		assertDown(t, r, health.ErrBodyTooLarge, fmt.Sprintf("body of %d bytes from %s exceeds the 1048576-byte cap", gigabyte, s.Addr()))
		assertWroteLittle(t, written)
	})
	t.Run("1 GB body with a digest, no Content-Length", func(t *testing.T) {
		t.Parallel()
		written := make(chan int64, 1)
		s := newServer(t, hugeBody(gigabyte, false, written))
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout, Digest: md5hex("x")}))
		assertDown(t, r, health.ErrBodyTooLarge, fmt.Sprintf("body from %s exceeds the 1048576-byte cap", s.Addr()))
		assertWroteLittle(t, written)
	})
	t.Run("1 GB body without a digest", func(t *testing.T) {
		t.Parallel()
		written := make(chan int64, 1)
		s := newServer(t, hugeBody(gigabyte, false, written))
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}))
		if want := "HTTP 200 from " + s.Addr().String(); !r.Up || r.Reason != want {
			t.Errorf("up=%v %q, want up %q (reading stops at the cap)", r.Up, r.Reason, want)
		}
		assertWroteLittle(t, written)
	})
	t.Run("endless headers", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, func(c net.Conn, done <-chan struct{}) {
			readRequest(c)
			io.WriteString(c, "HTTP/1.0 200 OK\r\n")
			for {
				if _, err := io.WriteString(c, "X-Padding: "+strings.Repeat("p", 1000)+"\r\n"); err != nil {
					return
				}
			}
		})
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}))
		assertDown(t, r, health.ErrBadResponse, "malformed response from "+s.Addr().String()+": headers longer than 65536 bytes")
	})
	t.Run("header line too long", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, respond("HTTP/1.0 200 OK\r\nX-Long: "+strings.Repeat("l", 5000)+"\r\n\r\n"))
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}))
		assertDown(t, r, health.ErrBadResponse, "malformed response from "+s.Addr().String()+": header line longer than 4096 bytes")
	})
	t.Run("not HTTP", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, func(c net.Conn, _ <-chan struct{}) { io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n") })
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}))
		assertDown(t, r, health.ErrBadResponse, `malformed status line from `+s.Addr().String()+`: "SSH-2.0-OpenSSH_9.2"`)
	})
	t.Run("closes without answering", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, func(c net.Conn, _ <-chan struct{}) { readRequest(c) })
		r, _ := onLoop(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}))
		assertDown(t, r, nil, "reading status line from "+s.Addr().String()+": connection closed by the server")
	})
}

// TestEventLoopNotForHTTPSOrDialers: HTTPS and checks through a
// caller's Dialer stay on their own goroutines.
func TestEventLoopNotForHTTPSOrDialers(t *testing.T) {
	a := closedPort(t)
	https := newHTTP(t, health.HTTPCheck{Address: a, TLS: &health.TLSSettings{}})
	dialed, err := health.NewTCPChecker(health.TCPCheck{Address: a}, health.Env{Dialer: &net.Dialer{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []health.Checker{https, dialed} {
		if _, ok := health.CheckOnEventLoop("", c); ok {
			t.Errorf("%T ran on the event loop", c)
		}
	}
}

// TestEventLoopLeavesTimeWaitToTheServer: after a response with its
// Content-Length, the loop waits for the server to close first, as
// keepalived (which reads to the end of the connection) does, so the
// TIME_WAIT sockets pile up on the real servers rather than on the
// director; the result does not wait for it. The server closes only
// once the result has come: an order of events, not a bound in
// milliseconds (a loaded host made one of 90ms fail).
func TestEventLoopLeavesTimeWaitToTheServer(t *testing.T) {
	resulted := make(chan struct{})
	closedFirst := make(chan bool, 1)
	s := newServer(t, func(c net.Conn, _ <-chan struct{}) {
		if _, err := readRequest(c); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
		select {
		case <-resulted:
		case <-time.After(10 * time.Second):
			closedFirst <- false
			return
		}
		// A checker that closes first closes (a reset) before it
		// hands its result on: a peek at the socket now sees it.
		closedFirst <- !stillOpen(t, c)
	})
	results := make(chan health.Result, 10)
	sched := health.NewScheduler(health.SchedulerOptions{
		Jitter:   -1,
		OnResult: func(_ string, r health.Result) { results <- r },
	})
	err := sched.Update([]health.Target{{ID: "rs", Check: health.HTTPCheck{Address: s.Addr(), Timeout: time.Second}, Policy: health.Policy{Interval: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sched.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var r health.Result
	select {
	case r = <-results:
	case <-time.After(10 * time.Second):
		t.Fatal("no result within 10s: it waited for the server's FIN")
	}
	close(resulted)
	if !r.Up {
		t.Fatalf("check failed: %s", r.Reason)
	}
	if <-closedFirst {
		t.Error("the checker closed its end before the server did (TIME_WAIT on the director)")
	}
}

// stillOpen says whether c's peer has neither closed nor reset its end,
// without waiting: a peek that would block.
func stillOpen(t *testing.T, c net.Conn) bool {
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Error(err)
		return false
	}
	var peekErr error
	if err := rc.Control(func(fd uintptr) {
		_, _, peekErr = syscall.Recvfrom(int(fd), make([]byte, 1), syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}); err != nil {
		t.Error(err)
		return false
	}
	return errors.Is(peekErr, syscall.EAGAIN)
}

// TestEventLoopBurst: checks submitted at once, more than one round of
// the loop begins, all end with their own results (the loop begins them
// over several rounds).
func TestEventLoopBurst(t *testing.T) {
	t.Parallel()
	up := newServer(t, silent)
	refused := closedPort(t)
	var cs []health.Checker
	for i := range 300 {
		addr := up.Addr()
		if i%3 == 2 {
			addr = refused
		}
		c, err := health.NewTCPChecker(health.TCPCheck{Address: addr, Timeout: 5 * time.Second}, health.Env{})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	rs, can := health.CheckOnEventLoop("", cs...)
	if !can {
		t.Skip("no event loop on this system")
	}
	for i, r := range rs {
		if want := i%3 != 2; r.Up != want || (!want && !strings.Contains(r.Reason, "connection refused")) {
			t.Errorf("check %d of 300: up=%v %q, want up=%v (refused when down)", i, r.Up, r.Reason, want)
		}
	}
}
