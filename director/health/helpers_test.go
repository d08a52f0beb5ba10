package health_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
)

// server is a loopback TCP server whose connections a test handles. It
// reports each accepted connection on Accepted, and closes everything at
// cleanup, waiting for its goroutines.
type server struct {
	ln       net.Listener
	Accepted chan net.Conn
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
	done     chan struct{}
}

func newServer(t testing.TB, handle func(c net.Conn, done <-chan struct{})) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, Accepted: make(chan net.Conn, 128), done: make(chan struct{})}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			select {
			case s.Accepted <- c:
			default:
			}
			s.wg.Go(func() {
				defer c.Close()
				handle(c, s.done)
			})
		}
	})
	t.Cleanup(func() {
		close(s.done)
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *server) Addr() netip.AddrPort {
	return s.ln.Addr().(*net.TCPAddr).AddrPort()
}

// waitAccepted blocks until the server has accepted a connection.
func (s *server) waitAccepted(t testing.TB) {
	t.Helper()
	select {
	case <-s.Accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("server accepted no connection within 10s")
	}
}

// readRequest reads a request's head (up to the blank line).
func readRequest(c net.Conn) ([]byte, error) {
	var req []byte
	buf := make([]byte, 1024)
	for {
		n, err := c.Read(buf)
		req = append(req, buf[:n]...)
		if i := len(req); i >= 4 && string(req[i-4:]) == "\r\n\r\n" {
			return req, nil
		}
		if err != nil {
			return req, err
		}
	}
}

// respond answers each request with a fixed response and closes.
func respond(response string) func(net.Conn, <-chan struct{}) {
	return func(c net.Conn, _ <-chan struct{}) {
		if _, err := readRequest(c); err != nil {
			return
		}
		io.WriteString(c, response)
	}
}

// silent accepts and never answers.
func silent(c net.Conn, done <-chan struct{}) {
	<-done
}

// resetOnAccept accepts and closes with a RST.
func resetOnAccept(c net.Conn, _ <-chan struct{}) {
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

// trickle writes data one byte per interval, after head.
func trickle(head, data string, interval time.Duration) func(net.Conn, <-chan struct{}) {
	return func(c net.Conn, done <-chan struct{}) {
		if _, err := readRequest(c); err != nil {
			return
		}
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; i < len(data); i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte{data[i]}); err != nil {
				return
			}
		}
	}
}

// hugeBody serves size bytes of body from a 32 KiB pattern, never
// allocating the body; withLength says whether to send Content-Length.
// It reports how much it managed to write on written.
func hugeBody(size int64, withLength bool, written chan<- int64) func(net.Conn, <-chan struct{}) {
	return func(c net.Conn, _ <-chan struct{}) {
		var n int64
		defer func() { written <- n }()
		if _, err := readRequest(c); err != nil {
			return
		}
		head := "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
		if withLength {
			head += "Content-Length: " + big.NewInt(size).String() + "\r\n"
		}
		if _, err := io.WriteString(c, head+"\r\n"); err != nil {
			return
		}
		chunk := make([]byte, 32<<10)
		for i := range chunk {
			chunk[i] = byte('a' + i%26)
		}
		for n < size {
			m, err := c.Write(chunk[:min(int64(len(chunk)), size-n)])
			n += int64(m)
			if err != nil {
				return
			}
		}
	}
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t testing.TB) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return a
}

// blackhole is a Dialer whose connections never complete.
type blackhole struct{}

func (blackhole) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	<-ctx.Done()
	return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
}

// healthyHTTP is a server answering 200 "ok" at once, and a check of it.
func healthyHTTP(t testing.TB) health.Checker {
	t.Helper()
	s := newServer(t, respond("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	c, err := health.NewHTTPChecker(health.HTTPCheck{Address: s.Addr(), Timeout: 5 * time.Second}, health.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkAlongside runs hostile.Check while healthy checks run next to it:
// once the hostile server has accepted (if accepted is not nil), a
// healthy check must pass, and end before the hostile one when that one
// runs to its deadline: it did not wait behind it. (An order, which holds
// on a loaded machine, not a bound in milliseconds.) It returns the
// hostile result and how long it took.
func checkAlongside(t *testing.T, hostile health.Checker, accepted *server, healthy health.Checker) (health.Result, time.Duration) {
	t.Helper()
	start := time.Now()
	type ended struct {
		r  health.Result
		at time.Time
	}
	done := make(chan ended, 1)
	go func() {
		r := hostile.Check(context.Background())
		done <- ended{r, time.Now()}
	}()
	if accepted != nil {
		accepted.waitAccepted(t)
	}
	hr := healthy.Check(context.Background())
	healthyAt := time.Now()
	e := <-done
	switch {
	case !hr.Up:
		t.Errorf("healthy check next to a hostile one: down (%q), want up", hr.Reason)
	case errors.Is(e.r.Err, health.ErrTimeout) && !healthyAt.Before(e.at):
		t.Errorf("healthy check next to a hostile one ended after the hostile one's deadline: it waited behind it")
	}
	return e.r, e.at.Sub(start)
}

// assertEndsAtTimeout checks that a check against a server that never
// lets it finish ended by its deadline: not before it. That it ends at
// all is what the test finishing shows (a missing deadline hangs it
// until go test's -timeout); an upper bound in milliseconds would only
// measure the machine's load.
func assertEndsAtTimeout(t *testing.T, took, timeout time.Duration) {
	t.Helper()
	if took < timeout-50*time.Millisecond {
		t.Errorf("check took %v, want it to end at its timeout of %v, not before", took, timeout)
	}
}

// assertDown checks that r is a failure matching kind with the reason
// want.
func assertDown(t *testing.T, r health.Result, kind error, want string) {
	t.Helper()
	if r.Up {
		t.Fatalf("check passed (%q), want a failure %q", r.Reason, want)
	}
	if r.Reason != want {
		t.Errorf("reason %q, want %q", r.Reason, want)
	}
	if kind != nil && !errors.Is(r.Err, kind) {
		t.Errorf("error %v is not %v", r.Err, kind)
	}
}

// selfSigned makes a self-signed ECDSA certificate for names (DNS names
// or IP addresses), and writes it as a PEM file (cert.pem) and its key
// (key.pem) into dir.
func selfSigned(t testing.TB, dir string, names ...string) (tls.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: names[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certFile, keyFile
}
