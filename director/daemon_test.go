package director

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
)

// flakyServer is a loopback TCP listener a test can stop and restart on
// the same port, standing in for a real server's health endpoint.
type flakyServer struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	ln   net.Listener
}

func newFlakyServer(t *testing.T) *flakyServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &flakyServer{t: t, addr: ln.Addr().String(), ln: ln}
	go s.serve(ln)
	t.Cleanup(s.stop)
	return s
}

func (s *flakyServer) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func (s *flakyServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

func (s *flakyServer) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("restarting %s: %v", s.addr, err)
	}
	s.ln = ln
	go s.serve(ln)
}

func (s *flakyServer) port() string { _, p, _ := net.SplitHostPort(s.addr); return p }

const daemonConfig = `
lvsd:
  resync_interval: 1h
virtual_services:
  - name: web
    protocol: tcp
    address: 192.168.0.100
    port: 80
    scheduler: wrr
    on_failure: %s
    health_check:
      type: tcp
      connect_ip: 127.0.0.1
      connect_port: %s
      interval: 100ms
      timeout: 100ms
      rise: 1
      fall: 2
    real_servers:
      - address: 10.0.0.1
        weight: 3
      - address: 10.0.0.2
        weight: 2
        health_check:
          type: none
%s`

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

func weightOf(f *ipvstest.Fake, vip, rip string) int32 {
	rss, err := f.RealServers(ipvs.TCPKey(netip.MustParseAddrPort(vip)))
	if err != nil {
		return -2
	}
	for _, r := range rss {
		if r.Address == netip.MustParseAddr(rip) {
			return r.Weight
		}
	}
	return -1
}

func startDaemon(t *testing.T, f *ipvstest.Fake, path string) (*Daemon, context.CancelFunc, chan error) {
	t.Helper()
	d, err := NewDaemon(DaemonOptions{ConfigPath: path, Client: f, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return d, cancel, done
}

// The two tests below run the real health scheduler (goroutines of its
// own, outside the daemon's loop, checking a TCP server on loopback) to
// prove what the status shows of a real check: its state and its reason.
// The scheduler's state reaches the status without passing through the
// loop, so they poll; the daemon's writes for the same transitions are
// asserted exactly, stepped, in daemon_step_test.go.
func TestDaemonQuiescesAndRestoresARealServer(t *testing.T) {
	srv := newFlakyServer(t)
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	writeConfig(t, path, fmt.Sprintf(daemonConfig, "quiesce", srv.port(), ""))
	f := ipvstest.New()
	d, _, _ := startDaemon(t, f, path)
	const vip = "192.168.0.100:80"

	waitFor(t, "the service installed", func() bool { return weightOf(f, vip, "10.0.0.1") == 3 && weightOf(f, vip, "10.0.0.2") == 2 })
	waitFor(t, "10.0.0.1 checked up", func() bool { return d.Status().Services[0].RealServers[0].Health == "up" })
	srv.stop()
	waitFor(t, "10.0.0.1 quiesced", func() bool { return weightOf(f, vip, "10.0.0.1") == 0 })
	if w := weightOf(f, vip, "10.0.0.2"); w != 2 {
		t.Errorf("the unchecked real server's weight changed to %d", w)
	}
	st := d.Status()
	rs := st.Services[0].RealServers[0]
	if rs.Health != "down" || !strings.HasPrefix(rs.Why, "2 of 2 failures") || !strings.Contains(rs.Why, "127.0.0.1:"+srv.port()) {
		t.Errorf("status of the failed real server: %+v", rs)
	}
	srv.start()
	waitFor(t, "10.0.0.1 back at weight 3", func() bool { return weightOf(f, vip, "10.0.0.1") == 3 })

	var kinds []string
	for _, e := range d.Status().Events {
		kinds = append(kinds, e.Kind)
	}
	if !strings.Contains(strings.Join(kinds, " "), "check") {
		t.Errorf("timeline has no check transitions: %v", kinds)
	}
}

// A real check's result is in the status, plain and encoded, when the
// scheduler hands it out: the status API reads it from the scheduler,
// with no wait for the daemon's loop.
func TestDaemonStatusHasEachCheckResultWhenItIsOut(t *testing.T) {
	srv := newFlakyServer(t)
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	writeConfig(t, path, fmt.Sprintf(daemonConfig, "quiesce", srv.port(), ""))
	var d *Daemon
	seen := make(chan string, 100)
	opts := DaemonOptions{ConfigPath: path, Client: ipvstest.New(), StateDir: t.TempDir()}
	opts.Health.OnResult = func(id string, r health.Result) {
		// Called after the daemon took the result, from the
		// scheduler's goroutine: what a request would read now.
		rs := d.Status().Services[0].RealServers[0]
		e, err := d.EncodedStatus()
		var enc ServiceStatus
		if err == nil {
			err = json.Unmarshal(e.Spans[0].Services[0].JSON, &enc)
		}
		msg := ""
		switch {
		case err != nil:
			msg = err.Error()
		case rs.LastResult == "" || rs.LastCheck.Before(r.Time):
			msg = fmt.Sprintf("Status shows %q at %v for the result %q at %v", rs.LastResult, rs.LastCheck, r.Reason, r.Time)
		case enc.RealServers[0].LastResult != rs.LastResult || !enc.RealServers[0].LastCheck.Equal(rs.LastCheck):
			msg = fmt.Sprintf("the encoded status shows %q at %v, Status %q at %v", enc.RealServers[0].LastResult, enc.RealServers[0].LastCheck, rs.LastResult, rs.LastCheck)
		}
		select {
		case seen <- msg:
		default: // the test has what it needs
		}
	}
	var err error
	if d, err = NewDaemon(opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	for range 5 {
		select {
		case msg := <-seen:
			if msg != "" {
				t.Error(msg)
			}
		case <-time.After(time.Minute):
			t.Fatal("no check result in a minute")
		}
	}
}

const plainConfig = `
virtual_services:
  - name: web
    protocol: tcp
    address: 192.168.0.100
    port: 80
    scheduler: wrr
    real_servers:
      - address: 10.0.0.1
        weight: 3
%s`

// A group's real server is checked once for all its services, and a
// failure takes it out of every one of them.
func TestDaemonGroupSharesOneCheckPerRealServer(t *testing.T) {
	srv := newFlakyServer(t)
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	writeConfig(t, path, fmt.Sprintf(`
lvsd:
  resync_interval: 1h
virtual_services:
  - name: web
    group:
      - {address: 192.168.0.100, port: 80}
      - {address: 192.168.0.101, port: 80}
    scheduler: wrr
    on_failure: quiesce
    health_check: {type: tcp, connect_ip: 127.0.0.1, connect_port: %s, interval: 100ms, timeout: 100ms, rise: 1, fall: 2}
    real_servers:
      - {address: 10.0.0.1, weight: 3}
`, srv.port()))
	f := ipvstest.New()
	d, _, _ := startDaemon(t, f, path)
	waitFor(t, "both services installed", func() bool {
		return weightOf(f, "192.168.0.100:80", "10.0.0.1") == 3 && weightOf(f, "192.168.0.101:80", "10.0.0.1") == 3
	})
	if n := len(d.sched.Status()); n != 1 {
		t.Errorf("%d health targets, want 1 for the group's one real server", n)
	}
	srv.stop()
	waitFor(t, "10.0.0.1 quiesced in both services", func() bool {
		return weightOf(f, "192.168.0.100:80", "10.0.0.1") == 0 && weightOf(f, "192.168.0.101:80", "10.0.0.1") == 0
	})
	for _, s := range d.Status().Services {
		if rs := s.RealServers[0]; rs.Health != "down" {
			t.Errorf("%+v: 10.0.0.1 health %q, want down", s, rs.Health)
		}
	}
}
