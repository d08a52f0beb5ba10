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
	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
	"github.com/lvskit/lvskit/internal/clock/clocktest"
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

func announced(sp *bgptest.Speaker) bool { return slices.Contains(sp.Announced(), vip100) }

func vipReason(d *Daemon) string {
	st := d.Status().BGP
	if st == nil || len(st.VIPs) == 0 {
		return ""
	}
	return st.VIPs[0].Reason
}

// bgpStepped is a stepped daemon (daemon_step_test.go) with a recording
// BGP speaker: each step's IPVS writes and speaker calls are exactly what
// its event caused.
type bgpStepped struct {
	*stepped
	sp   *bgptest.Speaker
	seen int // speaker calls already returned by said
}

func startBGPStepped(t *testing.T, body string, sp *bgptest.Speaker, opts DaemonOptions) *bgpStepped {
	t.Helper()
	opts.BGP = BGPOptions{Open: func(config.BGP, *slog.Logger) (bgp.Speaker, error) { return sp, nil }, Interval: time.Second}
	return &bgpStepped{stepped: startStepped(t, body, opts), sp: sp}
}

// said returns the speaker calls since the last said, as "announce
// 192.168.0.100/32".
func (b *bgpStepped) said() []string {
	calls := b.sp.Calls()
	out := []string{}
	for _, c := range calls[b.seen:] {
		out = append(out, c.String())
	}
	b.seen = len(calls)
	return out
}

func wantSaid(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s told the speaker %q, want %q", what, got, want)
	}
}

func bgpEvents(d *Daemon) []string {
	var msgs []string
	for _, e := range d.Status().Events {
		if e.Kind == "bgp" {
			msgs = append(msgs, e.Message)
		}
	}
	return msgs
}

func TestBGPAnnouncesAVIPOnlyOnceItsServicesAreProgrammed(t *testing.T) {
	f := ipvstest.New()
	kernelDown := true
	f.Hook = func(c ipvstest.Call) error {
		if kernelDown && c.Op.IsWrite() {
			return errors.New("generic netlink: no such file or directory")
		}
		return nil
	}
	sp := bgptest.New(bgp.PeerState{Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000, State: bgp.SessionEstablished})
	s := startBGPStepped(t, fmt.Sprintf(bgpDaemonConfig, "9", 1), sp, DaemonOptions{Client: f})
	// Withdrawn (never announced): the speaker learns the VIP's state.
	wantSaid(t, "a start whose writes all failed", s.said(), "withdraw 192.168.0.100/32")
	if r := vipReason(s.Daemon); !strings.Contains(r, "first apply") {
		t.Errorf("the VIP's reason while starting = %q, want it to wait for the first apply", r)
	}

	kernelDown = false
	s.clk.Advance(time.Second) // RetryMin
	wantWrites(t, "the retried apply", s.step(retryDue{}),
		"AddService TCP 192.168.0.100:80 mh",
		"AddRealServer TCP 192.168.0.100:80 -> 10.0.0.11:80 Route w=1",
		"AddService TCP 192.168.0.101:80 wlc",
		"AddRealServer TCP 192.168.0.101:80 -> 10.0.0.12:80 Route w=1")
	wantSaid(t, "the retried apply", s.said(), "announce 192.168.0.100/32") // not .101: no announce: bgp
	calls := sp.Calls()
	if a := calls[len(calls)-1].Attrs; len(a.Communities) != 1 || a.Communities[0].String() != "65001:7" {
		t.Errorf("announced with %+v, want community 65001:7", a)
	}
	if st := s.Status().BGP; len(st.Peers) != 0 {
		t.Errorf("peers %+v before the first poll", st.Peers)
	}
	s.clk.Advance(time.Second)
	wantWrites(t, "the peers' poll", s.step(bgpPollDue{}))
	st := s.Status().BGP
	if st.Phase != "running" || len(st.Peers) != 1 || !st.Peers[0].Up || !st.VIPs[0].Announced {
		t.Errorf("bgp status = %+v", st)
	}
}

func TestBGPWithdrawsWhenTheLastRealServerFailsAndAnnouncesWhenItReturns(t *testing.T) {
	s := startBGPStepped(t, fmt.Sprintf(bgpDaemonConfig, "9", 1), bgptest.New(), DaemonOptions{})
	wantSaid(t, "the start", s.said(), "announce 192.168.0.100/32")
	wantWrites(t, "10.0.0.11 down", s.step(s.health("10.0.0.11:80", health.StateUp, health.StateDown)),
		"UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.11:80 Route w=0")
	wantSaid(t, "10.0.0.11 down", s.said(), "withdraw 192.168.0.100/32")
	if r := vipReason(s.Daemon); !strings.Contains(r, "TCP 192.168.0.100:80 has no real server up") {
		t.Errorf("reason = %q", r)
	}
	wantWrites(t, "10.0.0.11 up", s.step(s.health("10.0.0.11:80", health.StateDown, health.StateUp)),
		"UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.11:80 Route w=1")
	wantSaid(t, "10.0.0.11 up", s.said(), "announce 192.168.0.100/32")
	joined := strings.Join(bgpEvents(s.Daemon), "\n")
	for _, want := range []string{"192.168.0.100/32 announced", "192.168.0.100/32 withdrawn: TCP 192.168.0.100:80 has no real server up"} {
		if !strings.Contains(joined, want) {
			t.Errorf("timeline lacks %q:\n%s", want, joined)
		}
	}
}

func TestBGPWithdrawsWhenIPVSWritesFail(t *testing.T) {
	s := startBGPStepped(t, fmt.Sprintf(bgpDaemonConfig, "9", 1), bgptest.New(), DaemonOptions{})
	wantSaid(t, "the start", s.said(), "announce 192.168.0.100/32")
	s.f.Hook = func(c ipvstest.Call) error {
		if c.Op.IsWrite() {
			return errors.New("netlink: operation not permitted")
		}
		return nil
	}
	if err := s.reload(fmt.Sprintf(bgpDaemonConfig, "9", 5)); err != nil { // a weight change: one write, which fails
		t.Fatal(err)
	}
	wantWrites(t, "the reload", callStrings(s.f.Writes()), "UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.11:80 Route w=5")
	wantSaid(t, "the reload whose write failed", s.said(), "withdraw 192.168.0.100/32")
	if r := vipReason(s.Daemon); !strings.Contains(r, "IPVS writes failing") || !strings.Contains(r, "operation not permitted") {
		t.Errorf("reason = %q", r)
	}
}

func TestBGPWithdrawsOnStopBeforeIPVSIsFlushed(t *testing.T) {
	f := ipvstest.New()
	sp := bgptest.New()
	var announcedAtFlush []bool
	f.Hook = func(c ipvstest.Call) error {
		if c.Op == ipvstest.OpDeleteService {
			announcedAtFlush = append(announcedAtFlush, announced(sp) || !sp.Closed())
		}
		return nil
	}
	s := startBGPStepped(t, fmt.Sprintf(bgpDaemonConfig, "9", 1), sp, DaemonOptions{Client: f})
	wantSaid(t, "the start", s.said(), "announce 192.168.0.100/32")
	s.f.ResetCalls()
	if !s.handle(s.clk.Now(), stopRequested{}) {
		t.Fatal("stopRequested did not stop the daemon")
	}
	wantSaid(t, "the stop", s.said(), "withdraw 192.168.0.100/32", "close")
	wantWrites(t, "the stop (flush_on_stop)", callStrings(s.f.Writes()),
		"DeleteRealServer TCP 192.168.0.100:80 -> 10.0.0.11:80",
		"DeleteService TCP 192.168.0.100:80",
		"DeleteRealServer TCP 192.168.0.101:80 -> 10.0.0.12:80",
		"DeleteService TCP 192.168.0.101:80")
	if slices.Contains(announcedAtFlush, true) {
		t.Errorf("a service was deleted while the VIP was announced or the speaker open: %v", announcedAtFlush)
	}
}

// withdrawSignal is a speaker that says when it is told to withdraw:
// the stop's withdraw runs on a goroutine of its own.
type withdrawSignal struct {
	*bgptest.Speaker
	withdrawn chan struct{}
	once      sync.Once
}

func (w *withdrawSignal) Withdraw(p netip.Prefix) error {
	err := w.Speaker.Withdraw(p)
	w.once.Do(func() { close(w.withdrawn) })
	return err
}

// This one runs the real loop (Run): what it proves is that a stop
// withdraws from its own goroutine while the loop is stuck in a write.
func TestBGPWithdrawsAtOnceOnStopWhileTheLoopIsBusy(t *testing.T) {
	f := ipvstest.New()
	sp := &withdrawSignal{Speaker: bgptest.New(), withdrawn: make(chan struct{})}
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
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	writeConfig(t, path, fmt.Sprintf(bgpDaemonConfig, "9", 1))
	ready := make(chan struct{}, 4)
	d, err := NewDaemon(DaemonOptions{
		ConfigPath: path, Client: f, StateDir: t.TempDir(), Clock: clocktest.NewClock(t0),
		Notify: func(state string) {
			if state == "READY=1" {
				ready <- struct{}{}
			}
		},
		BGP: BGPOptions{Open: func(config.BGP, *slog.Logger) (bgp.Speaker, error) { return sp, nil }},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { release(); cancel(); <-done })
	<-ready // the start has made its apply and told the speaker
	if !announced(sp.Speaker) {
		t.Fatalf("not announced once started: %v", sp.Calls())
	}
	writeConfig(t, path, fmt.Sprintf(bgpDaemonConfig, "9", 2))
	reloaded := make(chan error, 1)
	go func() { reloaded <- d.Reload(context.Background()) }()
	<-blocked
	cancel()
	<-sp.withdrawn // while the loop is still in its write
	if announced(sp.Speaker) {
		t.Errorf("the VIP is still announced after the stop's withdraw: %v", sp.Calls())
	}
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
	m, err := NewMetrics(MetricsOptions{ProcRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sp := bgptest.New(bgp.PeerState{Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000, State: bgp.SessionActive})
	s := startBGPStepped(t, fmt.Sprintf(bgpDaemonConfig, "9", 1), sp, DaemonOptions{Metrics: m})

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
	if v, ok := metric("lvsd_bgp_routes_announced"); !ok || v != 1 {
		t.Errorf("lvsd_bgp_routes_announced after the start = %v, %v; want 1", v, ok)
	}
	if v, ok := metric("lvsd_bgp_last_change_timestamp_seconds"); !ok || v != float64(t0.Unix()) {
		t.Errorf("lvsd_bgp_last_change_timestamp_seconds = %v, %v; want %d (the announce at start)", v, ok, t0.Unix())
	}
	s.clk.Advance(time.Second)
	s.step(bgpPollDue{})
	if v, ok := metric("lvsd_bgp_peer_up"); !ok || v != 0 {
		t.Errorf("lvsd_bgp_peer_up with the session active = %v, %v; want 0", v, ok)
	}
	sp.SetPeers(bgp.PeerState{Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000, State: bgp.SessionEstablished})
	s.clk.Advance(time.Second)
	s.step(bgpPollDue{})
	if v, ok := metric("lvsd_bgp_peer_up"); !ok || v != 1 {
		t.Errorf("lvsd_bgp_peer_up with the session established = %v, %v; want 1", v, ok)
	}
	if !slices.Contains(bgpEvents(s.Daemon), "peer 10.0.0.1 (as 65000) up") {
		t.Errorf("no peer-up event: %q", bgpEvents(s.Daemon))
	}
}

func TestBGPReloadSaysSpeakerChangesWaitForARestart(t *testing.T) {
	s := startBGPStepped(t, fmt.Sprintf(bgpDaemonConfig, "9", 1), bgptest.New(), DaemonOptions{})
	wantSaid(t, "the start", s.said(), "announce 192.168.0.100/32")
	if err := s.reload(strings.Replace(fmt.Sprintf(bgpDaemonConfig, "9", 1), `"65001:7"`, `"65001:8"`, 1)); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(bgpEvents(s.Daemon), "reload: changes to the bgp section take effect when lvsd restarts") {
		t.Errorf("no event says the bgp change waits for a restart: %q", bgpEvents(s.Daemon))
	}
	wantSaid(t, "the reload", s.said()) // neither withdrawn nor announced again
	wantWrites(t, "the reload", callStrings(s.f.Writes()))
}

// With announce: both, the VIP is announced only while this director is
// the VRRP master of it.
func TestBGPAnnounceBothFollowsVRRPMaster(t *testing.T) {
	body := `
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
`
	fv := newFakeVRRP()
	sp := bgptest.New()
	s := startBGPStepped(t, body, sp, DaemonOptions{VRRP: fv.options()})
	t.Cleanup(s.stopVRRP)
	d := s.Daemon

	wantSaid(t, "the start", s.said(), "withdraw 192.168.0.100/32") // VI_1 is not master yet
	s.await("VI_1 backup", func() bool { return vrrpState(d) == "backup" })
	if r := vipReason(d); !strings.Contains(r, "not VRRP master") {
		t.Errorf("the VIP's reason as backup = %q, want not VRRP master", r)
	}
	wantSaid(t, "VI_1 backup", s.said())
	fv.clock.Advance(4 * time.Second) // nobody else advertises: master
	s.await("VI_1 master", func() bool { return vrrpState(d) == "master" })
	wantSaid(t, "VI_1 master", s.said(), "announce 192.168.0.100/32")
}

func TestBGPSpeakerErrorsAreRetriedAndReportedOnce(t *testing.T) {
	sp := bgptest.New()
	sp.Fail(errors.New("bgp server hasn't started yet"))
	s := startBGPStepped(t, fmt.Sprintf(bgpDaemonConfig, "9", 1), sp, DaemonOptions{})
	wantSaid(t, "the start", s.said(), "announce 192.168.0.100/32")
	for range 4 { // every step decides again, and tries again
		s.clk.Advance(time.Second)
		s.step(bgpPollDue{})
		wantSaid(t, "a poll", s.said(), "announce 192.168.0.100/32")
	}
	if st := s.Status().BGP; !strings.Contains(st.Error, "hasn't started yet") {
		t.Errorf("status error = %q", st.Error)
	}
	n := 0
	for _, e := range bgpEvents(s.Daemon) {
		if strings.Contains(e, "hasn't started yet") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d timeline events for one repeated error, want 1", n)
	}
	sp.Fail(nil)
	s.clk.Advance(time.Second)
	s.step(bgpPollDue{})
	wantSaid(t, "the poll once the speaker works", s.said(), "announce 192.168.0.100/32")
	if !announced(sp) {
		t.Error("not announced once the speaker works")
	}
	if st := s.Status().BGP; st.Error != "" {
		t.Errorf("status error after success = %q", st.Error)
	}
}
