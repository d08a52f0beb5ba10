package director

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
	"github.com/lvskit/lvskit/director/scripts"
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

func TestDaemonRemovesAFailedRealServerWhenConfigured(t *testing.T) {
	srv := newFlakyServer(t)
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	writeConfig(t, path, fmt.Sprintf(daemonConfig, "remove", srv.port(), ""))
	f := ipvstest.New()
	startDaemon(t, f, path)
	waitFor(t, "the service installed", func() bool { return weightOf(f, "192.168.0.100:80", "10.0.0.1") == 3 })
	srv.stop()
	waitFor(t, "10.0.0.1 removed", func() bool { return weightOf(f, "192.168.0.100:80", "10.0.0.1") == -1 })
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

func TestDaemonKeepsServingThroughABadReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	writeConfig(t, path, fmt.Sprintf(plainConfig, ""))
	f := ipvstest.New()
	d, _, _ := startDaemon(t, f, path)
	waitFor(t, "the service installed", func() bool { return weightOf(f, "192.168.0.100:80", "10.0.0.1") == 3 })

	writeConfig(t, path, "virtual_services:\n  - protocol: tcp\n    adress: 1.2.3.4\n")
	f.ResetCalls()
	err := d.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "lvsd.yaml:3:5") {
		t.Fatalf("bad reload: %v, want an error naming lvsd.yaml:3:5", err)
	}
	if w := f.Writes(); len(w) != 0 {
		t.Errorf("a rejected reload wrote %v", w)
	}
	if st := d.Status(); st.LastReloadError == "" || len(st.Services) != 1 {
		t.Errorf("status after a bad reload: %+v", st)
	}

	extra := `  - protocol: udp
    address: 192.168.0.100
    port: 53
    scheduler: rr
    real_servers:
      - address: 10.0.0.9
`
	writeConfig(t, path, fmt.Sprintf(plainConfig, extra))
	if err := d.Reload(context.Background()); err != nil {
		t.Fatalf("good reload: %v", err)
	}
	var got []string
	for _, c := range f.Writes() {
		got = append(got, c.String())
	}
	want := "AddService UDP 192.168.0.100:53 rr|AddRealServer UDP 192.168.0.100:53 -> 10.0.0.9:53 Route w=1"
	if strings.Join(got, "|") != want {
		t.Errorf("good reload wrote %q, want %q", got, want)
	}
	if d.Status().LastReloadError != "" {
		t.Error("a good reload did not clear the last reload error")
	}
	f.ResetCalls()
	if err := d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w := f.Writes(); len(w) != 0 {
		t.Errorf("a no-change reload wrote %v", w)
	}
}

func TestDaemonLeavesRulesOnStopUnlessFlushOnStop(t *testing.T) {
	for _, flush := range []bool{false, true} {
		t.Run(fmt.Sprint("flush_on_stop=", flush), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lvsd.yaml")
			writeConfig(t, path, fmt.Sprintf(`
lvsd:
  flush_on_stop: %v
virtual_services:
  - protocol: tcp
    address: 192.168.0.100
    port: 80
    scheduler: rr
    real_servers:
      - address: 10.0.0.1
`, flush))
			f := ipvstest.New()
			_, cancel, done := startDaemon(t, f, path)
			waitFor(t, "the service installed", func() bool { return weightOf(f, "192.168.0.100:80", "10.0.0.1") == 1 })
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			done <- nil // for the cleanup
			svcs, _ := f.Services()
			if flush && len(svcs) != 0 {
				t.Errorf("flush_on_stop left %v", svcs)
			}
			if !flush && len(svcs) != 1 {
				t.Errorf("a plain stop removed the rules: %v", svcs)
			}
		})
	}
}

// TestDaemonRunsQuorumCommandsOnCrossings: the up command runs when the
// up weight reaches the quorum, the down command when it falls below.
func TestDaemonRunsQuorumCommandsOnCrossings(t *testing.T) {
	srv := newFlakyServer(t)
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	writeConfig(t, path, fmt.Sprintf(`
virtual_services:
  - protocol: tcp
    address: 192.168.0.100
    port: 80
    scheduler: wrr
    on_failure: quiesce
    quorum:
      weight: 4
      up_command: [/usr/local/bin/quorum, up]
      down_command: [/usr/local/bin/quorum, down]
    health_check:
      type: tcp
      connect_ip: 127.0.0.1
      connect_port: %s
      interval: 100ms
      timeout: 100ms
      rise: 1
      fall: 1
    real_servers:
      - address: 10.0.0.1
        weight: 3
      - address: 10.0.0.2
        weight: 2
        health_check: {type: none}
`, srv.port()))
	ran := make(chan string, 10)
	d, err := NewDaemon(DaemonOptions{
		ConfigPath: path, Client: ipvstest.New(), StateDir: t.TempDir(),
		RunCommand: func(_ context.Context, p scripts.Program) error {
			ran <- strings.Join(p.Args, " ")
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	next := func(want string) {
		t.Helper()
		select {
		case got := <-ran:
			if got != want {
				t.Fatalf("ran %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q never ran", want)
		}
	}
	next("/usr/local/bin/quorum up") // 3 + 2 >= 4
	waitFor(t, "10.0.0.1 checked up", func() bool { return d.Status().Services[0].RealServers[0].Health == "up" })
	srv.stop()
	next("/usr/local/bin/quorum down") // 2 < 4
	if q := d.Status().Services[0].Quorum; q != "down" {
		t.Errorf("status quorum %q, want down", q)
	}
	srv.start()
	next("/usr/local/bin/quorum up")
}

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
