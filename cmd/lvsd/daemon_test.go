package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
	"github.com/lvskit/lvskit/director/statusapi"
	"go.uber.org/goleak"
)

// TestDaemonLeavesNoGoroutinesBehind runs lvsd in-process on a fake
// kernel, with both listeners, a health check and a reload, stops it, and
// checks that every goroutine it started has ended.
func TestDaemonLeavesNoGoroutinesBehind(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	rs, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	go func() { // the real server: accepts and closes; ends with rs.Close
		for {
			c, err := rs.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := rs.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "lvsd.yaml")
	cfg := fmt.Sprintf(`lvsd:
  state_dir: %[1]s/state
  status_listen: unix:%[1]s/status.sock
  metrics_listen: unix:%[1]s/metrics.sock
virtual_services:
  - name: web
    protocol: tcp
    address: 192.0.2.100
    port: %[2]d
    scheduler: rr
    forwarding: masquerade
    health_check: {type: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 1}
    real_servers:
      - address: 127.0.0.1
        port: %[2]d
`, dir, port)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	kernel := ipvstest.New()
	reload := make(chan os.Signal, 1)
	sys := daemonSystem{
		openIPVS:    func(*config.Config, *slog.Logger) (ipvs.Client, error) { return kernel, nil },
		loadModules: func([]string) error { return nil },
		reload:      reload,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr strings.Builder
	done := make(chan int, 1)
	go func() {
		done <- runDaemon(ctx, sys, options{config: cfgPath}, slog.New(slog.NewTextHandler(t.Output(), nil)), &stderr)
	}()

	api, err := statusapi.NewClient("unix:" + filepath.Join(dir, "status.sock"))
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, api, done, &stderr, func(s statusapi.Status) bool {
		return len(s.Services) == 1 && len(s.Services[0].RealServers) == 1 && s.Services[0].RealServers[0].LastResult != ""
	})
	reload <- os.Signal(nil)
	waitStatus(t, api, done, &stderr, func(s statusapi.Status) bool {
		for _, e := range s.Events {
			if strings.Contains(strings.ToLower(e.Kind+" "+e.Message), "reload") {
				return true
			}
		}
		return false
	})
	api.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("lvsd exited %d: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lvsd did not stop within 30 s of its context ending")
	}
}

// waitStatus polls the status API until ok holds, failing if lvsd exits.
func waitStatus(t *testing.T, api *statusapi.Client, done <-chan int, stderr fmt.Stringer, ok func(statusapi.Status) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := api.Status(context.Background())
		if err == nil && ok(st) {
			return
		}
		select {
		case code := <-done:
			t.Fatalf("lvsd exited %d before the status showed what the test waits for: %s", code, stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed what the test waits for; last: %+v, %v", st, err)
		}
	}
}
