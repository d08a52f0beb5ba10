package health

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of an HTTPCheck.
const (
	// DefaultMaxBodyBytes caps how much of a body a check reads.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultUserAgent is keepalived's, so that log filters and access
	// rules written for keepalived's checks keep working.
	DefaultUserAgent = "KeepAliveClient"
	// maxHeaderBytes caps the status line and headers together.
	maxHeaderBytes = 64 << 10
	// headerLineBytes is the longest header line accepted.
	headerLineBytes = 4096
)

// HTTPCheck passes when a GET of Path answers with an expected status
// code and, when Digest is set, with a body whose MD5 digest is Digest.
//
// The request is HTTP/1.0 with "Connection: close", like keepalived's
// HTTP_GET and SSL_GET. The digest is computed as keepalived's genhash
// does: MD5 over the raw bytes after the blank line that ends the
// headers, up to Content-Length bytes when the response has that header,
// else up to the end of the connection; the body is not decoded (an
// HTTP/1.1 server does not send chunked encoding to an HTTP/1.0
// request). The body is streamed into the hash, never held whole.
type HTTPCheck struct {
	// Address is where to connect: the real server's address and port,
	// or another (keepalived's connect_ip and connect_port).
	Address netip.AddrPort
	// Path is the request's path and query; empty means "/".
	Path string
	// Host is the Host header (keepalived's virtualhost); empty means
	// Address ("10.0.0.2:80").
	Host string
	// StatusCodes are the codes that pass; empty means 200-299.
	StatusCodes []StatusRange
	// Digest is the expected MD5 of the body in hex (genhash's output);
	// empty means the body is not checked.
	Digest string
	// MaxBodyBytes caps how much of the body is read; zero means
	// DefaultMaxBodyBytes. With a Digest, a larger body fails the check
	// with ErrBodyTooLarge; without, reading stops at the cap.
	MaxBodyBytes int64
	// UserAgent is the User-Agent header; empty means DefaultUserAgent.
	UserAgent string
	// TLS, when set, makes the check HTTPS.
	TLS *TLSSettings
	// Timeout bounds the whole check (connect, handshake, request,
	// response); zero means DefaultTimeout.
	Timeout time.Duration
}

// TLSSettings configure an HTTPS check.
type TLSSettings struct {
	// ServerName is sent as SNI and is the name the certificate must
	// carry when verified. Empty means Host when that is set (like
	// keepalived's enable_sni), else no SNI and, when verifying, the
	// certificate must carry the address.
	ServerName string
	// Verify checks the certificate's chain and name. keepalived never
	// verifies, so the zero value does not either.
	Verify bool
	// CAFile is a PEM file of the roots to verify against; empty means
	// the system's roots.
	CAFile string
}

// StatusRange is an inclusive range of HTTP status codes; a single code
// has Min == Max.
type StatusRange struct {
	Min, Max int
}

// NewChecker implements Spec.
func (c HTTPCheck) NewChecker(env Env) (Checker, error) { return NewHTTPChecker(c, env) }

// HTTPChecker runs an HTTPCheck.
type HTTPChecker struct {
	env      Env
	target   string
	request  []byte
	statuses []StatusRange
	digest   []byte
	maxBody  int64
	timeout  time.Duration
	tls      *tls.Config
	loop     *loopTarget // nil: not on the Scheduler's event loop
	lastPass atomic.Pointer[passMessage]
}

// NewHTTPChecker validates spec, loads its CA file if any, and returns
// its checker.
func NewHTTPChecker(spec HTTPCheck, env Env) (*HTTPChecker, error) {
	c := &HTTPChecker{
		env:      env.withDefaults(),
		target:   spec.Address.String(),
		statuses: spec.StatusCodes,
		maxBody:  spec.MaxBodyBytes,
		timeout:  timeoutOrDefault(spec.Timeout),
	}
	kind := "http"
	if spec.TLS != nil {
		kind = "https"
	}
	fail := func(format string, args ...any) (*HTTPChecker, error) {
		return nil, fmt.Errorf("%s check of %s: %s", kind, c.target, fmt.Sprintf(format, args...))
	}
	if !spec.Address.IsValid() || spec.Address.Port() == 0 {
		return fail("need an address and a port")
	}
	path := spec.Path
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \t\r\n\x00") {
		return fail("path %q must start with / and hold no spaces or control characters", path)
	}
	if !validHeaderValue(spec.Host) || strings.ContainsAny(spec.Host, " \t") {
		return fail("host %q holds spaces or control characters", spec.Host)
	}
	agent := spec.UserAgent
	if agent == "" {
		agent = DefaultUserAgent
	}
	if !validHeaderValue(agent) {
		return fail("user agent %q holds control characters", agent)
	}
	if len(c.statuses) == 0 {
		c.statuses = []StatusRange{{200, 299}}
	}
	for _, r := range c.statuses {
		if r.Min < 100 || r.Max > 599 || r.Min > r.Max {
			return fail("status codes %d-%d: want a range within 100-599", r.Min, r.Max)
		}
	}
	if spec.Digest != "" {
		d, err := hex.DecodeString(spec.Digest)
		if err != nil || len(d) != md5.Size {
			return fail("digest %q: want 32 hexadecimal digits (an MD5 digest, as genhash prints it)", spec.Digest)
		}
		c.digest = d
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxBodyBytes
	}
	if spec.TLS != nil {
		cfg, err := tlsConfig(*spec.TLS, spec.Host, spec.Address)
		if err != nil {
			return fail("%v", err)
		}
		c.tls = cfg
	}
	host := spec.Host
	if host == "" {
		host = c.target
	}
	c.request = fmt.Appendf(nil, "GET %s HTTP/1.0\r\nUser-Agent: %s\r\nHost: %s\r\nConnection: close\r\n\r\n", path, agent, host)
	if c.tls == nil && c.env.defaultDialer {
		c.loop = newLoopTarget(spec.Address, c.timeout, c)
	}
	return c, nil
}

func tlsConfig(s TLSSettings, host string, addr netip.AddrPort) (*tls.Config, error) {
	name := s.ServerName
	if name == "" {
		name = host
	}
	if name == "" && s.Verify {
		name = addr.Addr().String() // verified against the IP SANs; Go sends no SNI for an address
	}
	cfg := &tls.Config{ServerName: name, InsecureSkipVerify: !s.Verify}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", s.CAFile)
		}
	}
	return cfg, nil
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, headerLineBytes) }}
	copyPool   = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
)

// Check sends the GET and judges the response.
func (c *HTTPChecker) Check(ctx context.Context) Result {
	a, cancel := begin(ctx, c.timeout, c.target)
	defer cancel()
	msg, err := c.get(a)
	if err != nil {
		return failed(a.start, err)
	}
	return passed(a.start, "%s", msg)
}

func (c *HTTPChecker) get(a *attempt) (string, error) {
	conn, err := c.env.Dialer.DialContext(a.ctx, "tcp", c.target)
	if err != nil {
		return "", a.fail("connect", err)
	}
	defer conn.Close()
	stop := a.watch(conn)
	defer stop()

	var rw net.Conn = conn
	if c.tls != nil {
		tc := tls.Client(conn, c.tls)
		if err := tc.HandshakeContext(a.ctx); err != nil {
			return "", a.fail("TLS handshake with", err)
		}
		rw = tc
	}
	if _, err := rw.Write(c.request); err != nil {
		return "", a.fail("sending request to", err)
	}

	br := readerPool.Get().(*bufio.Reader)
	br.Reset(rw)
	defer func() { br.Reset(nil); readerPool.Put(br) }()

	code, length, err := c.readHead(a, br)
	if err != nil {
		return "", err
	}
	if !c.statusOK(code) {
		return "", newError(ErrUnexpectedStatus, nil, "HTTP %d from %s", code, c.target)
	}
	return c.readBody(a, br, code, length)
}

// readHead reads the status line and the headers, and returns the status
// code and the Content-Length (-1 when absent or invalid, as genhash
// treats it).
func (c *HTTPChecker) readHead(a *attempt, br *bufio.Reader) (code int, length int64, err error) {
	length = -1
	total := 0
	for n := 0; ; n++ {
		line, err := br.ReadSlice('\n')
		total += len(line)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return 0, 0, newError(ErrBadResponse, err, "malformed response from %s: header line longer than %d bytes", c.target, headerLineBytes)
		case err != nil && n == 0:
			return 0, 0, a.fail("reading status line from", err)
		case err != nil:
			return 0, 0, a.fail("reading headers from", err)
		case total > maxHeaderBytes:
			return 0, 0, newError(ErrBadResponse, nil, "malformed response from %s: headers longer than %d bytes", c.target, maxHeaderBytes)
		}
		done, err := c.headLine(n, line, &code, &length)
		if err != nil || done {
			return code, length, err
		}
	}
}

// headLine takes the nth line (from 0) of a response's head, with its
// line end, into code (the status line's) and length (a valid
// Content-Length's); done is true at the blank line that ends the head.
func (c *HTTPChecker) headLine(n int, line []byte, code *int, length *int64) (done bool, err error) {
	line = bytes.TrimRight(line, "\r\n")
	if n == 0 {
		if *code, err = parseStatusLine(line); err != nil {
			return false, newError(ErrBadResponse, err, "malformed status line from %s: %q", c.target, truncate(string(line), 64))
		}
		return false, nil
	}
	if len(line) == 0 {
		return true, nil
	}
	name, value, ok := bytes.Cut(line, []byte{':'})
	if ok && strings.EqualFold(string(bytes.TrimSpace(name)), "Content-Length") {
		if v, err := strconv.ParseInt(string(bytes.TrimSpace(value)), 10, 64); err == nil && v >= 0 {
			*length = v
		}
	}
	return false, nil
}

// parseStatusLine returns the code of "HTTP/1.1 200 OK".
func parseStatusLine(line []byte) (int, error) {
	rest, ok := bytes.CutPrefix(line, []byte("HTTP/"))
	if !ok {
		return 0, errors.New("not HTTP")
	}
	_, rest, ok = bytes.Cut(rest, []byte{' '})
	if !ok || len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ') {
		return 0, errors.New("no status code")
	}
	code, err := strconv.Atoi(string(rest[:3]))
	if err != nil || code < 100 || code > 999 {
		return 0, errors.New("no status code")
	}
	return code, nil
}

func (c *HTTPChecker) statusOK(code int) bool {
	for _, r := range c.statuses {
		if code >= r.Min && code <= r.Max {
			return true
		}
	}
	return false
}

// readBody streams the body into the digest (or discards it), stopping
// at Content-Length, at the cap, or at the end of the connection.
func (c *HTTPChecker) readBody(a *attempt, br *bufio.Reader, code int, length int64) (string, error) {
	want, err := c.bodyWant(length)
	if err != nil {
		return "", err
	}
	var sum hash.Hash
	var w io.Writer = io.Discard
	if c.digest != nil {
		sum = md5.New()
		w = sum
	}
	buf := copyPool.Get().(*[]byte)
	n, err := io.CopyBuffer(w, io.LimitReader(br, want), *buf)
	copyPool.Put(buf)
	if err != nil {
		return "", a.fail("reading body from", err)
	}
	var got []byte
	if sum != nil {
		got = sum.Sum(nil)
	}
	return c.judgeBody(code, length, n, got)
}

// bodyWant is how many bytes of the body to read: up to Content-Length
// (or the cap), else up to the end of the connection, noticing a body
// past the cap. It fails at once when Content-Length is past the cap
// and the body's digest is checked.
func (c *HTTPChecker) bodyWant(length int64) (int64, error) {
	if c.digest != nil && length > c.maxBody {
		return 0, newError(ErrBodyTooLarge, nil, "body of %d bytes from %s exceeds the %d-byte cap", length, c.target, c.maxBody)
	}
	if length >= 0 {
		return min(length, c.maxBody), nil
	}
	return c.maxBody + 1, nil
}

// judgeBody judges a response of status code whose body had n bytes
// read (up to bodyWant's count, or fewer at the end of the connection)
// with MD5 digest got (nil when no digest is checked).
func (c *HTTPChecker) judgeBody(code int, length, n int64, got []byte) (string, error) {
	want := min(length, c.maxBody)
	switch {
	case length >= 0 && n < want:
		return "", newError(ErrBadResponse, nil, "short body from %s: %d of %d bytes", c.target, n, length)
	case length < 0 && n > c.maxBody && c.digest != nil:
		return "", newError(ErrBodyTooLarge, nil, "body from %s exceeds the %d-byte cap", c.target, c.maxBody)
	case c.digest == nil:
		return c.passMessage(code), nil
	}
	if !bytes.Equal(got, c.digest) {
		return "", newError(ErrDigestMismatch, nil, "HTTP %d from %s with body digest %x, want %x", code, c.target, got, c.digest)
	}
	return c.passMessage(code), nil
}

// passMessage is the reason of a passed check whose response had status
// code: "HTTP 200 from 10.0.0.2:80" (", digest matches" with a digest).
// A server answers with the same code check after check, so the last
// message is kept rather than formatted for every check.
func (c *HTTPChecker) passMessage(code int) string {
	if m := c.lastPass.Load(); m != nil && m.code == code {
		return m.text
	}
	m := &passMessage{code: code, text: fmt.Sprintf("HTTP %d from %s", code, c.target)}
	if c.digest != nil {
		m.text += ", digest matches"
	}
	c.lastPass.Store(m)
	return m.text
}

type passMessage struct {
	code int
	text string
}

// truncate shortens s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
