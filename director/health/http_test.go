package health_test

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
)

func newHTTP(t *testing.T, spec health.HTTPCheck) *health.HTTPChecker {
	t.Helper()
	c, err := health.NewHTTPChecker(spec, health.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestHTTPRequest(t *testing.T) {
	requests := make(chan string, 1)
	s := newServer(t, func(c net.Conn, _ <-chan struct{}) {
		req, _ := readRequest(c)
		requests <- string(req)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	tests := []struct {
		spec health.HTTPCheck
		want string
	}{
		{health.HTTPCheck{Address: s.Addr()},
			"GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: " + s.Addr().String() + "\r\nConnection: close\r\n\r\n"},
		{health.HTTPCheck{Address: s.Addr(), Path: "/health?full=1", Host: "www.example.com", UserAgent: "lvsd"},
			"GET /health?full=1 HTTP/1.0\r\nUser-Agent: lvsd\r\nHost: www.example.com\r\nConnection: close\r\n\r\n"},
	}
	for _, tt := range tests {
		r := newHTTP(t, tt.spec).Check(context.Background())
		if want := "HTTP 200 from " + s.Addr().String(); !r.Up || r.Reason != want {
			t.Errorf("got up=%v %q, want up %q", r.Up, r.Reason, want)
		}
		if got := <-requests; got != tt.want {
			t.Errorf("request\n%q\nwant\n%q", got, tt.want)
		}
		if r.Duration <= 0 || r.Time.IsZero() {
			t.Errorf("result has no time (%v) or duration (%v)", r.Time, r.Duration)
		}
	}
}

func TestHTTPStatusCodes(t *testing.T) {
	tests := []struct {
		status string
		codes  []health.StatusRange
		up     bool
	}{
		{"200 OK", nil, true},
		{"204 No Content", nil, true},
		{"301 Moved Permanently", nil, false},
		{"503 Service Unavailable", nil, false},
		{"503 Service Unavailable", []health.StatusRange{{200, 200}, {503, 503}}, true},
		{"404 Not Found", []health.StatusRange{{200, 399}}, false},
		{"302 Found", []health.StatusRange{{200, 399}}, true},
	}
	for _, tt := range tests {
		s := newServer(t, respond("HTTP/1.1 "+tt.status+"\r\nContent-Length: 0\r\n\r\n"))
		r := newHTTP(t, health.HTTPCheck{Address: s.Addr(), StatusCodes: tt.codes}).Check(context.Background())
		want := "HTTP " + tt.status[:3] + " from " + s.Addr().String()
		if r.Up != tt.up || r.Reason != want {
			t.Errorf("%s with codes %v: up=%v %q, want up=%v %q", tt.status, tt.codes, r.Up, r.Reason, tt.up, want)
		}
		if !tt.up && !errorsIs(r.Err, health.ErrUnexpectedStatus) {
			t.Errorf("%s: error %v is not ErrUnexpectedStatus", tt.status, r.Err)
		}
	}
}

// TestHTTPDigest pins the digest to what keepalived's genhash computes:
// MD5 of the raw bytes after the headers, up to Content-Length if given,
// else to the end of the connection, without decoding.
func TestHTTPDigest(t *testing.T) {
	chunked := "5\r\nhello\r\n0\r\n\r\n"
	tests := []struct {
		name     string
		response string
		hashed   string // the bytes genhash hashes
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello"},
		{"bytes past content-length are ignored", "HTTP/1.1 200 OK\r\ncontent-length:  5 \r\n\r\nhelloWORLD", "hello"},
		{"no content-length: up to the close", "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nhello\nworld\n", "hello\nworld\n"},
		{"invalid content-length is ignored", "HTTP/1.0 200 OK\r\nContent-Length: 5x\r\n\r\nhello world", "hello world"},
		{"empty body", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", ""},
		{"chunked is hashed raw", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked, chunked},
		{"bare LF line ends", "HTTP/1.0 200 OK\nContent-Length: 5\n\nhello", "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, respond(tt.response))
			r := newHTTP(t, health.HTTPCheck{Address: s.Addr(), Digest: md5hex(tt.hashed)}).Check(context.Background())
			if want := "HTTP 200 from " + s.Addr().String() + ", digest matches"; !r.Up || r.Reason != want {
				t.Errorf("up=%v %q, want up %q", r.Up, r.Reason, want)
			}
		})
	}
	if got := md5hex(""); got != "d41d8cd98f00b204e9800998ecf8427e" {
		t.Fatalf("md5 of nothing is %s", got)
	}

	s := newServer(t, respond("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhellx"))
	r := newHTTP(t, health.HTTPCheck{Address: s.Addr(), Digest: strings.ToUpper(md5hex("hello"))}).Check(context.Background())
	assertDown(t, r, health.ErrDigestMismatch, fmt.Sprintf("HTTP 200 from %s with body digest %s, want %s", s.Addr(), md5hex("hellx"), md5hex("hello")))

	s = newServer(t, respond("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"))
	r = newHTTP(t, health.HTTPCheck{Address: s.Addr(), Digest: md5hex("hello")}).Check(context.Background())
	assertDown(t, r, health.ErrBadResponse, fmt.Sprintf("short body from %s: 5 of 10 bytes", s.Addr()))
}

func TestHTTPHostileServers(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	const gigabyte = 1 << 30
	healthy := healthyHTTP(t)

	t.Run("accept and never answer", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, silent)
		r, took := checkAlongside(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}), s, healthy)
		assertDown(t, r, health.ErrTimeout, "timeout after 1s reading status line from "+s.Addr().String())
		assertEndsAtTimeout(t, took, timeout)
	})
	t.Run("half-open TLS", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, silent)
		c := newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout, TLS: &health.TLSSettings{}})
		r, took := checkAlongside(t, c, s, healthy)
		assertDown(t, r, health.ErrTimeout, "timeout after 1s in TLS handshake with "+s.Addr().String())
		assertEndsAtTimeout(t, took, timeout)
	})
	t.Run("RST on accept", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, resetOnAccept)
		r, _ := checkAlongside(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}), nil, healthy)
		if r.Up || !(errorsIs(r.Err, syscall.ECONNRESET) || errorsIs(r.Err, syscall.EPIPE)) {
			t.Errorf("up=%v %q (%v), want a reset", r.Up, r.Reason, r.Err)
		}
		// A reset, not the deadline, ended it: it was noticed at once.
	})
	t.Run("RST on connect", func(t *testing.T) {
		t.Parallel()
		a := closedPort(t)
		r := newHTTP(t, health.HTTPCheck{Address: a, Timeout: timeout}).Check(context.Background())
		assertDown(t, r, syscall.ECONNREFUSED, "connect "+a.String()+": connection refused")
	})
	t.Run("slow trickle of the status line", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, trickle("", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 100*time.Millisecond))
		r, took := checkAlongside(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}), s, healthy)
		assertDown(t, r, health.ErrTimeout, "timeout after 1s reading status line from "+s.Addr().String())
		assertEndsAtTimeout(t, took, timeout)
	})
	t.Run("slow trickle of the body", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, trickle("HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n", strings.Repeat("x", 100), 100*time.Millisecond))
		r, took := checkAlongside(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}), s, healthy)
		assertDown(t, r, health.ErrTimeout, "timeout after 1s reading body from "+s.Addr().String())
		assertEndsAtTimeout(t, took, timeout)
	})
	t.Run("1 GB body with a digest and Content-Length", func(t *testing.T) {
		t.Parallel()
		written := make(chan int64, 1)
		s := newServer(t, hugeBody(gigabyte, true, written))
		c := newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout, Digest: md5hex("x")})
		r, _ := checkAlongside(t, c, nil, healthy)
		assertDown(t, r, health.ErrBodyTooLarge, fmt.Sprintf("body of %d bytes from %s exceeds the 1048576-byte cap", gigabyte, s.Addr()))
		// Refused by its length, not ended by the deadline, and the
		// server wrote little: the body was not read.
		assertWroteLittle(t, written)
	})
	t.Run("1 GB body with a digest, no Content-Length", func(t *testing.T) {
		t.Parallel()
		written := make(chan int64, 1)
		s := newServer(t, hugeBody(gigabyte, false, written))
		c := newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout, Digest: md5hex("x")})
		r, _ := checkAlongside(t, c, nil, healthy)
		assertDown(t, r, health.ErrBodyTooLarge, fmt.Sprintf("body from %s exceeds the 1048576-byte cap", s.Addr()))
		assertWroteLittle(t, written)
	})
	t.Run("1 GB body without a digest", func(t *testing.T) {
		t.Parallel()
		written := make(chan int64, 1)
		s := newServer(t, hugeBody(gigabyte, false, written))
		r, _ := checkAlongside(t, newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}), nil, healthy)
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
		r := newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}).Check(context.Background())
		assertDown(t, r, health.ErrBadResponse, "malformed response from "+s.Addr().String()+": headers longer than 65536 bytes")
	})
	t.Run("not HTTP", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, func(c net.Conn, _ <-chan struct{}) { io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n") })
		r := newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}).Check(context.Background())
		assertDown(t, r, health.ErrBadResponse, `malformed status line from `+s.Addr().String()+`: "SSH-2.0-OpenSSH_9.2"`)
	})
	t.Run("closes without answering", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, func(c net.Conn, _ <-chan struct{}) { readRequest(c) })
		r := newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: timeout}).Check(context.Background())
		assertDown(t, r, nil, "reading status line from "+s.Addr().String()+": connection closed by the server")
	})
}

// assertWroteLittle checks that a huge-body server could write only a
// small part of its body before the check hung up.
func assertWroteLittle(t *testing.T, written <-chan int64) {
	t.Helper()
	select {
	case n := <-written:
		if n > 64<<20 {
			t.Errorf("the server wrote %d bytes before the check hung up", n)
		}
	case <-time.After(10 * time.Second):
		t.Error("the huge-body server was still writing 10s after the check ended")
	}
}

func TestHTTPCanceled(t *testing.T) {
	requested := make(chan struct{})
	s := newServer(t, func(c net.Conn, done <-chan struct{}) {
		readRequest(c)
		close(requested)
		<-done
	})
	c := newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan health.Result, 1)
	go func() { done <- c.Check(ctx) }()
	<-requested
	cancel()
	select {
	case r := <-done:
		assertDown(t, r, health.ErrCanceled, "canceled while reading status line from "+s.Addr().String())
	case <-time.After(5 * time.Second):
		t.Fatal("a canceled check did not return within 5s")
	}
}

func TestHTTPContextDeadlineShortensTimeout(t *testing.T) {
	s := newServer(t, silent)
	c := newHTTP(t, health.HTTPCheck{Address: s.Addr(), Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := c.Check(ctx)
	if !errorsIs(r.Err, health.ErrTimeout) || !strings.HasPrefix(r.Reason, "timeout after 29") && !strings.HasPrefix(r.Reason, "timeout after 300ms") {
		t.Errorf("got %q (%v), want a timeout after about 300ms", r.Reason, r.Err)
	}
	assertEndsAtTimeout(t, time.Since(start), 300*time.Millisecond)
}

// tlsServer serves HTTPS with cert, recording the SNI of each hello.
func tlsServer(t *testing.T, cert tls.Certificate, body string) (*server, func() []string) {
	var mu sync.Mutex
	var snis []string
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			snis = append(snis, h.ServerName)
			mu.Unlock()
			return nil, nil
		},
	}
	s := newServer(t, func(c net.Conn, done <-chan struct{}) {
		tc := tls.Server(c, cfg)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		respond(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body))(tc, done)
		tc.Close()
	})
	return s, func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := snis
		snis = nil
		return out
	}
}

func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	cert, caFile, _ := selfSigned(t, dir, "rs1.test", "127.0.0.1")
	s, snis := tlsServer(t, cert, "secure")
	addr := s.Addr().String()
	tests := []struct {
		name   string
		spec   health.HTTPCheck
		sni    string
		reason string // "" for up
	}{
		{"no verification, no SNI", health.HTTPCheck{TLS: &health.TLSSettings{}}, "", ""},
		{"SNI from Host", health.HTTPCheck{Host: "rs1.test", TLS: &health.TLSSettings{}}, "rs1.test", ""},
		{"SNI set", health.HTTPCheck{Host: "www.test", TLS: &health.TLSSettings{ServerName: "rs1.test"}}, "rs1.test", ""},
		{"verified name", health.HTTPCheck{TLS: &health.TLSSettings{ServerName: "rs1.test", Verify: true, CAFile: caFile}}, "rs1.test", ""},
		{"verified address", health.HTTPCheck{TLS: &health.TLSSettings{Verify: true, CAFile: caFile}}, "", ""},
		{"digest over TLS", health.HTTPCheck{Digest: md5hex("secure"), TLS: &health.TLSSettings{}}, "", ""},
		{"wrong name", health.HTTPCheck{TLS: &health.TLSSettings{ServerName: "other.test", Verify: true, CAFile: caFile}}, "other.test",
			"TLS handshake with " + addr + ": tls: failed to verify certificate: x509: certificate is valid for rs1.test, not other.test"},
		{"unknown authority", health.HTTPCheck{TLS: &health.TLSSettings{ServerName: "rs1.test", Verify: true}}, "rs1.test",
			"TLS handshake with " + addr + ": tls: failed to verify certificate: x509: certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Address = s.Addr()
			r := newHTTP(t, tt.spec).Check(context.Background())
			switch {
			case tt.reason == "" && !r.Up:
				t.Errorf("down: %q", r.Reason)
			case tt.reason != "" && (r.Up || r.Reason != tt.reason):
				t.Errorf("up=%v %q, want down %q", r.Up, r.Reason, tt.reason)
			}
			if got := snis(); len(got) != 1 || got[0] != tt.sni {
				t.Errorf("server saw SNI %q, want [%q]", got, tt.sni)
			}
		})
	}
}

func TestHTTPSpecErrors(t *testing.T) {
	addr := closedPort(t)
	tests := []struct {
		spec health.HTTPCheck
		want string
	}{
		{health.HTTPCheck{}, "http check of invalid AddrPort: need an address and a port"},
		{health.HTTPCheck{Address: addr, Path: "health"}, `must start with /`},
		{health.HTTPCheck{Address: addr, Path: "/a b"}, `must start with /`},
		{health.HTTPCheck{Address: addr, Host: "a\r\nX-Evil: 1"}, `control characters`},
		{health.HTTPCheck{Address: addr, Digest: "abc"}, `want 32 hexadecimal digits`},
		{health.HTTPCheck{Address: addr, StatusCodes: []health.StatusRange{{300, 200}}}, `status codes 300-200`},
		{health.HTTPCheck{Address: addr, TLS: &health.TLSSettings{CAFile: "/nonexistent.pem"}}, "https check of " + addr.String() + ": reading CA file: open /nonexistent.pem"},
	}
	for _, tt := range tests {
		_, err := health.NewHTTPChecker(tt.spec, health.Env{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: error %v, want one containing %q", tt.spec, err, tt.want)
		}
	}
}
