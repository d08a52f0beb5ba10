package statusapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
)

// MaxResponseBytes bounds what Client reads of one answer: a status of
// 10,000 services with their real servers and the timeline fits easily.
const MaxResponseBytes = 64 << 20

// Client reads a running lvsd's status API. It is safe for concurrent
// use.
type Client struct {
	base string // "http://127.0.0.1:9120"
	http *http.Client

	// The last whole status and its entity tag: Status asks lvsd for it
	// again only if it changed (If-None-Match), so polling an idle lvsd
	// with 10,000 services moves no 10 MB of JSON a second.
	mu       sync.Mutex
	lastTag  string
	last     Status
	lastPath string
}

// NewClient returns a client of the status API at target, which is what
// a person would pass to --lvsd: "http://127.0.0.1:9120",
// "127.0.0.1:9120", "unix:/run/lvsd/status.sock" or a socket path
// ("/run/lvsd/status.sock"). The error says which forms are accepted.
func NewClient(target string) (*Client, error) {
	transport := &http.Transport{Proxy: nil, MaxIdleConns: 2, IdleConnTimeout: time.Minute}
	c := &Client{http: &http.Client{Transport: transport}}
	switch {
	case strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "/"):
		path := strings.TrimPrefix(strings.TrimPrefix(target, "unix:"), "//")
		if path == "" || !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("lvsd address %q: a unix socket needs an absolute path, like unix:/run/lvsd/status.sock", target)
		}
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://lvsd"
	case strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://"):
		u, err := url.Parse(target)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("lvsd address %q: want http://HOST:PORT, HOST:PORT or unix:/path/to/status.sock", target)
		}
		c.base = strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/")
	default:
		if _, _, err := net.SplitHostPort(target); err != nil {
			return nil, fmt.Errorf("lvsd address %q: want http://HOST:PORT, HOST:PORT or unix:/path/to/status.sock", target)
		}
		c.base = "http://" + target
	}
	return c, nil
}

// Close closes the client's idle connections (and the goroutines that
// keep them); the client still works after it, opening new ones.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// String is the address the client reads, for messages.
func (c *Client) String() string { return c.base }

// Status fetches GET /status. When lvsd answers that nothing changed
// since the last call (304 to If-None-Match), it returns the same Status
// as then: treat a Status as read-only.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return c.status(ctx, "/status")
}

// StatusOfVIP fetches GET /status?vip=VIP: the whole status but only
// the services of that address (any protocol and port; no fwmark
// services). It is what lvsdiag needs of a director with a large table.
func (c *Client) StatusOfVIP(ctx context.Context, vip netip.Addr) (Status, error) {
	return c.status(ctx, "/status?vip="+url.QueryEscape(vip.String()))
}

func (c *Client) status(ctx context.Context, path string) (Status, error) {
	// The remembered status and its tag, taken together: a 304 to this
	// tag means this status, whatever other calls remember meanwhile.
	c.mu.Lock()
	tag, last := "", Status{}
	if c.lastPath == path {
		tag, last = c.lastTag, c.last
	}
	c.mu.Unlock()
	var s Status
	newTag, err := c.getTagged(ctx, path, tag, &s)
	if err != nil {
		return Status{}, err
	}
	if tag != "" && newTag == tag {
		return last, nil
	}
	c.mu.Lock()
	c.lastPath, c.lastTag, c.last = path, newTag, s
	c.mu.Unlock()
	return s, nil
}

// Events fetches the events after since (all when zero), oldest first.
func (c *Client) Events(ctx context.Context, since time.Time) ([]Event, error) {
	path := "/status/events"
	if !since.IsZero() {
		path += "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339))
	}
	var s Status
	err := c.get(ctx, path, &s)
	return s.Events, err
}

func (c *Client) get(ctx context.Context, path string, into any) error {
	_, err := c.getTagged(ctx, path, "", into)
	return err
}

// getTagged GETs path into into, unless its entity tag is still tag
// (304): then into is left alone. It returns the answer's tag.
func (c *Client) getTagged(ctx context.Context, path, tag string, into any) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return "", fmt.Errorf("reading lvsd status at %s: %w", c.base, err)
	}
	if tag != "" {
		req.Header.Set("If-None-Match", tag)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("reading lvsd status at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && tag != "" {
		return tag, nil
	}
	return resp.Header.Get("ETag"), decodeAnswer(c.base, path, resp, into)
}

func decodeAnswer(base, path string, resp *http.Response, into any) error {
	body := io.LimitReader(resp.Body, MaxResponseBytes)
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg, _ := io.ReadAll(io.LimitReader(body, 4096))
		if json.Unmarshal(msg, &e) == nil && e.Error != "" {
			return fmt.Errorf("reading lvsd status at %s%s: %s: %s", base, path, resp.Status, e.Error)
		}
		return fmt.Errorf("reading lvsd status at %s%s: %s (is this lvsd's status_listen address?)", base, path, resp.Status)
	}
	if err := json.NewDecoder(body).Decode(into); err != nil {
		return fmt.Errorf("reading lvsd status at %s%s: decoding the answer: %w", base, path, err)
	}
	return nil
}

// IsLocal reports whether an lvsd address (as NewClient takes it) is on
// this machine: a unix socket, localhost, a loopback address, or one of
// this machine's own addresses (lvsd listening on the director's
// address). lvstop merges such an lvsd with the local kernel; lvsdiag
// takes it to mean it runs on a director.
func IsLocal(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "/") {
		return true
	}
	host := target
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		host = u.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
