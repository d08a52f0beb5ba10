package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/bgp"
	"github.com/lvskit/lvskit/director/bgp/bgptest"
	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
)

const bgpDaemonConfig = `
lvsd:
  resync_interval: 1h
  flush_on_stop: true
ipvs: {sloppy_tcp: true}
bgp:
  asn: 65001
  router_id: 10.0.0.2
  peers: [{address: 10.0.0.1, asn: 65000}]
  communities: ["65001:7"]
  stop_drain: 0s
virtual_services:
  - address: 192.168.0.100
    port: 80
    scheduler: mh
    scheduler_flags: [mh-port, mh-fallback]
    on_failure: quiesce
    announce: bgp
    health_check: {type: tcp, connect_ip: 127.0.0.1, connect_port: %s, interval: 100ms, timeout: 100ms, rise: 1, fall: 1}
    real_servers:
      - {address: 10.0.0.11, weight: %d}
  - address: 192.168.0.101
    port: 80
    real_servers: [{address: 10.0.0.12}]
`

var vip100 = netip.MustParsePrefix("192.168.0.100/32")

func startBGPDaemon(t *testing.T, f *ipvstest.Fake, sp *bgptest.Speaker, port string) (*Daemon, string, context.CancelFunc, chan error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	writeConfig(t, path, fmt.Sprintf(bgpDaemonConfig, port, 1))
	d, err := NewDaemon(DaemonOptions{
		ConfigPath: path, Client: f, StateDir: t.TempDir(),
		BGP: BGPOptions{
			Open:     func(config.BGP, *slog.Logger) (bgp.Speaker, error) { return sp, nil },
			Interval: 20 * time.Millisecond,
		},
	})
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
	return d, path, cancel, done
}

func announced(sp *bgptest.Speaker) bool { return slices.Contains(sp.Announced(), vip100) }

func vipReason(d *Daemon) string {
	st := d.Status().BGP
	if st == nil || len(st.VIPs) == 0 {
		return ""
	}
	return st.VIPs[0].Reason
}

func TestBGPAnnouncesAVIPOnlyOnceItsServicesAreProgrammed(t *testing.T) {
	srv := newFlakyServer(t)
	f := ipvstest.New()
	var mu sync.Mutex
	kernelDown := true
	f.Hook = func(c ipvstest.Call) error {
		mu.Lock()
		defer mu.Unlock()
		if kernelDown && c.Op.IsWrite() {
			return errors.New("generic netlink: no such file or directory")
		}
		return nil
	}
	sp := bgptest.New(bgp.PeerState{Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000, State: bgp.SessionEstablished})
	d, _, _, _ := startBGPDaemon(t, f, sp, srv.port())

	waitFor(t, "the VIP reported withdrawn while starting", func() bool { return strings.Contains(vipReason(d), "first apply") })
	if got := sp.Calls(); slices.ContainsFunc(got, func(c bgptest.Call) bool { return c.Op == bgptest.OpAnnounce }) {
		t.Fatalf("announced before any IPVS write succeeded: %v", got)
	}
	mu.Lock()
	kernelDown = false
	mu.Unlock()
	waitFor(t, "the VIP announced after the retried apply", func() bool { return announced(sp) })
	calls := sp.Calls()
	if a := calls[len(calls)-1].Attrs; len(a.Communities) != 1 || a.Communities[0].String() != "65001:7" {
		t.Errorf("announced with %+v, want community 65001:7", a)
	}
	if slices.Contains(sp.Announced(), netip.MustParsePrefix("192.168.0.101/32")) {
		t.Error("a service without announce: bgp was announced")
	}
	waitFor(t, "the peer polled", func() bool { return len(d.Status().BGP.Peers) == 1 })
	st := d.Status().BGP
	if st.Phase != "running" || len(st.Peers) != 1 || !st.Peers[0].Up || !st.VIPs[0].Announced {
		t.Errorf("bgp status = %+v", st)
	}
}

func TestBGPWithdrawsWhenTheLastRealServerFailsAndAnnouncesWhenItReturns(t *testing.T) {
	srv := newFlakyServer(t)
	f := ipvstest.New()
	sp := bgptest.New()
	d, _, _, _ := startBGPDaemon(t, f, sp, srv.port())
	waitFor(t, "announced", func() bool { return announced(sp) })
	srv.stop()
	waitFor(t, "withdrawn", func() bool { return !announced(sp) })
	if r := vipReason(d); !strings.Contains(r, "TCP 192.168.0.100:80 has no real server up") {
		t.Errorf("reason = %q", r)
	}
	srv.start()
	waitFor(t, "announced again", func() bool { return announced(sp) })
	var msgs []string
	for _, e := range d.Status().Events {
		if e.Kind == "bgp" {
			msgs = append(msgs, e.Message)
		}
	}
	joined := strings.Join(msgs, "\n")
	for _, want := range []string{"192.168.0.100/32 announced", "192.168.0.100/32 withdrawn: TCP 192.168.0.100:80 has no real server up"} {
		if !strings.Contains(joined, want) {
			t.Errorf("timeline lacks %q:\n%s", want, joined)
		}
	}
}

func TestBGPWithdrawsWhenIPVSWritesFail(t *testing.T) {
	srv := newFlakyServer(t)
	f := ipvstest.New()
	var mu sync.Mutex
	failing := false
	f.Hook = func(c ipvstest.Call) error {
		mu.Lock()
		defer mu.Unlock()
		if failing && c.Op.IsWrite() {
			return errors.New("netlink: operation not permitted")
		}
		return nil
	}
	sp := bgptest.New()
	d, path, _, _ := startBGPDaemon(t, f, sp, srv.port())
	waitFor(t, "announced", func() bool { return announced(sp) })
	mu.Lock()
	failing = true
	mu.Unlock()
	writeConfig(t, path, fmt.Sprintf(bgpDaemonConfig, srv.port(), 5)) // a weight change: one write, which fails
	d.Reload(context.Background())
	waitFor(t, "withdrawn", func() bool { return !announced(sp) })
	if r := vipReason(d); !strings.Contains(r, "IPVS writes failing") || !strings.Contains(r, "operation not permitted") {
		t.Errorf("reason = %q", r)
	}
}

func TestBGPWithdrawsOnStopBeforeIPVSIsFlushed(t *testing.T) {
	srv := newFlakyServer(t)
	f := ipvstest.New()
	sp := bgptest.New()
	var mu sync.Mutex
	var announcedAtFlush []bool
	f.Hook = func(c ipvstest.Call) error {
		if c.Op == ipvstest.OpDeleteService {
			mu.Lock()
			announcedAtFlush = append(announcedAtFlush, announced(sp) || !sp.Closed())
			mu.Unlock()
		}
		return nil
	}
	_, _, cancel, done := startBGPDaemon(t, f, sp, srv.port())
	waitFor(t, "announced", func() bool { return announced(sp) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil // for the cleanup
	mu.Lock()
	defer mu.Unlock()
	if len(announcedAtFlush) == 0 {
		t.Fatal("flush_on_stop deleted no service")
	}
	if slices.Contains(announcedAtFlush, true) {
		t.Errorf("a service was deleted while the VIP was announced or the speaker open: %v", announcedAtFlush)
	}
	calls := sp.Calls()
	if n := len(calls); n < 2 || calls[n-2].String() != "withdraw 192.168.0.100/32" || calls[n-1].Op != bgptest.OpClose {
		t.Errorf("last speaker calls = %v, want a withdraw then close", calls)
	}
}

func TestBGPWithdrawsAtOnceOnStopWhileTheLoopIsBusy(t *testing.T) {
	srv := newFlakyServer(t)
	f := ipvstest.New()
	sp := bgptest.New()
	gate := make(chan struct{})
	blocked := make(chan struct{})
	var held, opened sync.Once
	release := func() { opened.Do(func() { close(gate) }) }
	// The only real-server update is the reload's weight change below.
	f.Hook = func(c ipvstest.Call) error {
		if c.Op == ipvstest.OpUpdateRealServer {
			held.Do(func() { close(blocked) })
			<-gate // the daemon's loop is stuck in a kernel write
		}
		return nil
	}
	d, path, cancel, done := startBGPDaemon(t, f, sp, srv.port())
	t.Cleanup(release) // after the daemon's cleanup was registered: runs before it
	waitFor(t, "announced", func() bool { return announced(sp) })
	writeConfig(t, path, fmt.Sprintf(bgpDaemonConfig, srv.port(), 2))
	reloaded := make(chan error, 1)
	go func() { reloaded <- d.Reload(context.Background()) }()
	<-blocked
	cancel()
	waitFor(t, "the VIP withdrawn while the loop is busy", func() bool { return !announced(sp) })
	if sp.Closed() {
		t.Error("the speaker was closed before the loop's shutdown (stop_drain and IPVS come first)")
	}
	release()
	if err := <-reloaded; err != nil {
		t.Errorf("reload: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil // for the cleanup
	calls := sp.Calls()
	if n := len(calls); n < 2 || calls[n-2].String() != "withdraw 192.168.0.100/32" || calls[n-1].Op != bgptest.OpClose {
		t.Errorf("last speaker calls = %v, want one withdraw then close", calls)
	}
}

func TestBGPMetrics(t *testing.T) {
	srv := newFlakyServer(t)
	m, err := NewMetrics(MetricsOptions{ProcRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	writeConfig(t, path, fmt.Sprintf(bgpDaemonConfig, srv.port(), 1))
	sp := bgptest.New(bgp.PeerState{Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000, State: bgp.SessionActive})
	d, err := NewDaemon(DaemonOptions{ConfigPath: path, Client: ipvstest.New(), StateDir: t.TempDir(), Metrics: m,
		BGP: BGPOptions{Open: func(config.BGP, *slog.Logger) (bgp.Speaker, error) { return sp, nil }, Interval: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	metric := func(name string) (float64, bool) {
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name && len(mf.GetMetric()) > 0 {
				mm := mf.GetMetric()[0]
				if mm.GetGauge() != nil {
					return mm.GetGauge().GetValue(), true
				}
			}
		}
		return 0, false
	}
	waitFor(t, "one route announced", func() bool { v, ok := metric("lvsd_bgp_routes_announced"); return ok && v == 1 })
	waitFor(t, "the peer reported down", func() bool { v, ok := metric("lvsd_bgp_peer_up"); return ok && v == 0 })
	sp.SetPeers(bgp.PeerState{Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000, State: bgp.SessionEstablished})
	waitFor(t, "the peer reported up", func() bool { v, ok := metric("lvsd_bgp_peer_up"); return ok && v == 1 })
	if v, ok := metric("lvsd_bgp_last_change_timestamp_seconds"); !ok || v <= 0 {
		t.Errorf("lvsd_bgp_last_change_timestamp_seconds = %v, %v", v, ok)
	}
	waitFor(t, "a peer-up event", func() bool {
		return slices.ContainsFunc(d.Status().Events, func(e Event) bool { return e.Message == "peer 10.0.0.1 (as 65000) up" })
	})
}

func TestBGPReloadSaysSpeakerChangesWaitForARestart(t *testing.T) {
	srv := newFlakyServer(t)
	sp := bgptest.New()
	d, path, _, _ := startBGPDaemon(t, ipvstest.New(), sp, srv.port())
	waitFor(t, "announced", func() bool { return announced(sp) })
	writeConfig(t, path, strings.Replace(fmt.Sprintf(bgpDaemonConfig, srv.port(), 1), `"65001:7"`, `"65001:8"`, 1))
	if err := d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(d.Status().Events, func(e Event) bool {
		return e.Kind == "bgp" && e.Message == "reload: changes to the bgp section take effect when lvsd restarts"
	}) {
		t.Errorf("no event says the bgp change waits for a restart: %v", d.Status().Events)
	}
	if !announced(sp) {
		t.Error("a reload withdrew the VIP")
	}
}

// With announce: both, the VIP is announced only while this director is
// the VRRP master of it.
func TestBGPAnnounceBothFollowsVRRPMaster(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	writeConfig(t, path, `
lvsd:
  resync_interval: 1h
bgp:
  asn: 65001
  router_id: 10.0.0.2
  peers: [{address: 10.0.0.1, asn: 65000}]
  stop_drain: 0s
virtual_services:
  - {address: 192.168.0.100, port: 80, scheduler: mh, scheduler_flags: [mh-port], announce: both, real_servers: [{address: 10.0.0.1}]}
vrrp:
  instances:
    - {name: VI_1, interface: eth0, virtual_router_id: 51, priority: 150, source_address: 192.0.2.2, virtual_addresses: [192.168.0.100]}
`)
	fv := newFakeVRRP()
	sp := bgptest.New()
	d, err := NewDaemon(DaemonOptions{ConfigPath: path, Client: ipvstest.New(), StateDir: t.TempDir(), VRRP: fv.options(),
		BGP: BGPOptions{Open: func(config.BGP, *slog.Logger) (bgp.Speaker, error) { return sp, nil }, Interval: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor(t, "VI_1 backup", func() bool { return vrrpState(d) == "backup" })
	waitFor(t, "the VIP reported withdrawn as backup", func() bool { return strings.Contains(vipReason(d), "not VRRP master") })
	if announced(sp) {
		t.Fatal("announced while backup")
	}
	fv.clock.Advance(4 * time.Second) // nobody else advertises: master
	waitFor(t, "VI_1 master", func() bool { return vrrpState(d) == "master" })
	waitFor(t, "announced as master", func() bool { return announced(sp) })
}

func TestBGPSpeakerErrorsAreRetriedAndReportedOnce(t *testing.T) {
	srv := newFlakyServer(t)
	sp := bgptest.New()
	sp.Fail(errors.New("bgp server hasn't started yet"))
	d, _, _, _ := startBGPDaemon(t, ipvstest.New(), sp, srv.port())
	waitFor(t, "several attempts", func() bool { return len(sp.Calls()) >= 5 })
	if st := d.Status().BGP; !strings.Contains(st.Error, "hasn't started yet") {
		t.Errorf("status error = %q", st.Error)
	}
	n := 0
	for _, e := range d.Status().Events {
		if e.Kind == "bgp" && strings.Contains(e.Message, "hasn't started yet") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d timeline events for one repeated error, want 1", n)
	}
	sp.Fail(nil)
	waitFor(t, "announced once the speaker works", func() bool { return announced(sp) })
	if st := d.Status().BGP; st.Error != "" {
		t.Errorf("status error after success = %q", st.Error)
	}
}
