package director

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
	"github.com/lvskit/lvskit/director/scripts"
	"github.com/lvskit/lvskit/internal/clock/clocktest"
)

// stepped is a daemon driven by hand, as vrrp's machine is in its tests:
// started as Run starts it, then fed events at the fake clock's time by
// the test's goroutine, which so owns it. Nothing runs in between: each
// step's writes are exactly what that event caused.
type stepped struct {
	*Daemon
	t    *testing.T
	f    *ipvstest.Fake
	clk  *clocktest.Clock
	path string
}

func startStepped(t *testing.T, body string, opts DaemonOptions) *stepped {
	t.Helper()
	s := &stepped{t: t, f: ipvstest.New(), clk: clocktest.NewClock(t0), path: filepath.Join(t.TempDir(), "lvsd.yaml")}
	if f, ok := opts.Client.(*ipvstest.Fake); ok { // a test's fake, hooked before the start
		s.f = f
	}
	writeConfig(t, s.path, body)
	opts.ConfigPath, opts.Client, opts.StateDir, opts.Clock = s.path, s.f, t.TempDir(), s.clk
	d, err := NewDaemon(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.cmds.Wait)
	s.Daemon = d
	return s
}

// step hands ev to the daemon at the clock's time and returns the IPVS
// writes it made.
func (s *stepped) step(ev event) []string {
	s.t.Helper()
	s.f.ResetCalls()
	if s.handle(s.clk.Now(), ev) {
		s.t.Fatalf("%T stopped the daemon", ev)
	}
	return callStrings(s.f.Writes())
}

// health is the event of a real server's transition, as the scheduler
// would post it now.
func (s *stepped) health(rs string, from, to health.State) healthChanged {
	s.t.Helper()
	return healthChanged{[]health.Transition{s.transition(rs, from, to, s.clk.Now())}}
}

func (s *stepped) transition(rs string, from, to health.State, at time.Time) health.Transition {
	s.t.Helper()
	for id, ref := range s.targets {
		if ref.rs.String() == rs {
			return health.Transition{Target: id, From: from, To: to, Time: at, Reason: fmt.Sprintf("%v -> %v", from, to)}
		}
	}
	s.t.Fatalf("no health target for %s", rs)
	return health.Transition{}
}

func (s *stepped) reload(body string) error {
	s.t.Helper()
	writeConfig(s.t, s.path, body)
	reply := make(chan error, 1)
	s.step(reloadRequested{reply})
	return <-reply
}

func callStrings(calls []ipvstest.Call) []string {
	out := []string{}
	for _, c := range calls {
		out = append(out, c.String())
	}
	return out
}

func wantWrites(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s wrote\n  %s\nwant\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestStepStartInstallsTheConfigAndSetsTheFirstResync(t *testing.T) {
	s := startStepped(t, fmt.Sprintf(daemonConfig, "quiesce", "9", ""), DaemonOptions{})
	wantWrites(t, "start", callStrings(s.f.Writes()),
		"AddService TCP 192.168.0.100:80 wrr",
		"AddRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=3",
		"AddRealServer TCP 192.168.0.100:80 -> 10.0.0.2:80 Route w=2")
	if want := t0.Add(time.Hour); !s.due.resync.Equal(want) || !s.due.retry.IsZero() || !s.due.bgpPoll.IsZero() {
		t.Errorf("deadlines after start %+v, want a resync at %v (resync_interval 1h) and nothing else", s.due, want)
	}
}

func TestStepADownRealServerIsQuiescedWithOneWriteAndRestoredWithOne(t *testing.T) {
	s := startStepped(t, fmt.Sprintf(daemonConfig, "quiesce", "9", ""), DaemonOptions{})
	wantWrites(t, "10.0.0.1 down", s.step(s.health("10.0.0.1:80", health.StateUnknown, health.StateDown)),
		"UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=0")
	st := s.Status()
	if rs := st.Services[0].RealServers; rs[0].KernelWeight != 0 || rs[1].KernelWeight != 2 {
		t.Errorf("kernel weights in the status %d and %d, want 0 and 2", rs[0].KernelWeight, rs[1].KernelWeight)
	}
	wantWrites(t, "10.0.0.1 up", s.step(s.health("10.0.0.1:80", health.StateDown, health.StateUp)),
		"UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=3")
	var checks []string
	for _, e := range s.Status().Events {
		if e.Kind == "check" {
			checks = append(checks, e.RealServer+" "+e.Message)
		}
	}
	if want := []string{"10.0.0.1:80 unknown -> down: unknown -> down", "10.0.0.1:80 down -> up: down -> up"}; !slices.Equal(checks, want) {
		t.Errorf("check events %q, want %q", checks, want)
	}
}

func TestStepRemoveOnFailureDeletesTheRealServerAndAddsItBack(t *testing.T) {
	s := startStepped(t, fmt.Sprintf(daemonConfig, "remove", "9", ""), DaemonOptions{})
	wantWrites(t, "10.0.0.1 down", s.step(s.health("10.0.0.1:80", health.StateUnknown, health.StateDown)),
		"DeleteRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80")
	wantWrites(t, "10.0.0.1 up", s.step(s.health("10.0.0.1:80", health.StateDown, health.StateUp)),
		"AddRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=3")
}

// The scheduler may publish a target's transitions out of order; the
// latest by time stands (see health_order_test.go), within one batch too.
func TestStepTransitionsOfOneBatchAreOneWrite(t *testing.T) {
	s := startStepped(t, fmt.Sprintf(daemonConfig, "quiesce", "9", ""), DaemonOptions{})
	down := s.transition("10.0.0.1:80", health.StateUnknown, health.StateDown, t0)
	up := s.transition("10.0.0.1:80", health.StateDown, health.StateUp, t0.Add(time.Second))
	down2 := s.transition("10.0.0.1:80", health.StateUp, health.StateDown, t0.Add(2*time.Second))
	wantWrites(t, "down, up in one batch", s.step(healthChanged{[]health.Transition{down, up}}))
	wantWrites(t, "down, then a late up", s.step(healthChanged{[]health.Transition{down2, up}}),
		"UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=0")
}

// A group's real server is one health target: its transition is one
// event, written to every service of the group.
func TestStepAGroupsRealServerIsCheckedOnceAndQuiescedInEveryService(t *testing.T) {
	s := startStepped(t, `
lvsd:
  resync_interval: 1h
virtual_services:
  - name: web
    group:
      - {address: 192.168.0.100, port: 80}
      - {address: 192.168.0.101, port: 80}
    scheduler: wrr
    on_failure: quiesce
    health_check: {type: tcp, connect_ip: 127.0.0.1, connect_port: 9, interval: 1s, timeout: 1s, rise: 1, fall: 2}
    real_servers:
      - {address: 10.0.0.1, weight: 3}
`, DaemonOptions{})
	if n := len(s.sched.Status()); n != 1 {
		t.Errorf("%d health targets, want 1 for the group's one real server", n)
	}
	wantWrites(t, "10.0.0.1 down", s.step(s.health("10.0.0.1:80", health.StateUp, health.StateDown)),
		"UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=0",
		"UpdateRealServer TCP 192.168.0.101:80 -> 10.0.0.1:80 Route w=0")
	for _, svc := range s.Status().Services {
		if rs := svc.RealServers[0]; rs.KernelWeight != 0 {
			t.Errorf("%s: 10.0.0.1 at kernel weight %d in the status, want 0", svc.Key, rs.KernelWeight)
		}
	}
	wantWrites(t, "10.0.0.1 up", s.step(s.health("10.0.0.1:80", health.StateDown, health.StateUp)),
		"UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=3",
		"UpdateRealServer TCP 192.168.0.101:80 -> 10.0.0.1:80 Route w=3")
}

func TestStepResyncDueRepairsDriftAndSetsTheNextResync(t *testing.T) {
	s := startStepped(t, fmt.Sprintf(plainConfig, ""), DaemonOptions{})
	wantWrites(t, "a resync with no drift", s.step(resyncDue{}))
	vip := s.order[0]
	if err := s.f.DeleteRealServer(vip, s.desired[vip].RealServers[0].Key()); err != nil { // behind lvsd's back
		t.Fatal(err)
	}
	s.clk.Advance(30 * time.Second)
	wantWrites(t, "a resync after drift", s.step(resyncDue{}),
		"AddRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=3")
	if want := s.clk.Now().Add(30 * time.Second); !s.due.resync.Equal(want) {
		t.Errorf("next resync at %v, want %v (resync_interval's default 30s after this one)", s.due.resync, want)
	}
	st := s.Status()
	if e := st.Events[len(st.Events)-2]; e.Kind != "drift" {
		t.Errorf("events end with %+v, want the drift before the repair", st.Events[len(st.Events)-2:])
	}
}

func TestStepAFailedWriteIsRetriedWhenItsBackoffIsDue(t *testing.T) {
	s := startStepped(t, fmt.Sprintf(daemonConfig, "quiesce", "9", ""), DaemonOptions{})
	refused := errors.New("refused")
	s.f.Hook = func(c ipvstest.Call) error {
		if c.Op == ipvstest.OpUpdateRealServer {
			return refused
		}
		return nil
	}
	s.step(s.health("10.0.0.1:80", health.StateUnknown, health.StateDown))
	if want := t0.Add(time.Second); !s.due.retry.Equal(want) {
		t.Fatalf("retry due at %v, want %v (RetryMin 1s)", s.due.retry, want)
	}
	wantWrites(t, "a retry not yet due", s.step(retryDue{}))
	s.f.Hook = nil
	s.clk.Advance(time.Second)
	wantWrites(t, "the due retry", s.step(retryDue{}),
		"UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=0")
	if !s.due.retry.IsZero() {
		t.Errorf("a retry still due at %v after the write went through", s.due.retry)
	}
}

func TestStepBadReloadKeepsServingAndAGoodOneWritesOnlyTheChange(t *testing.T) {
	s := startStepped(t, fmt.Sprintf(plainConfig, ""), DaemonOptions{})
	writeConfig(t, s.path, "virtual_services:\n  - protocol: tcp\n    adress: 1.2.3.4\n")
	reply := make(chan error, 1)
	wantWrites(t, "a rejected reload", s.step(reloadRequested{reply}))
	if err := <-reply; err == nil || !strings.Contains(err.Error(), "lvsd.yaml:3:5") {
		t.Fatalf("bad reload: %v, want an error naming lvsd.yaml:3:5", err)
	}
	if st := s.Status(); st.LastReloadError == "" || len(st.Services) != 1 {
		t.Errorf("status after a bad reload: %+v", st)
	}

	extra := `  - protocol: udp
    address: 192.168.0.100
    port: 53
    scheduler: rr
    real_servers:
      - address: 10.0.0.9
`
	reply = make(chan error, 1)
	writeConfig(t, s.path, fmt.Sprintf(plainConfig, extra))
	wantWrites(t, "a good reload", s.step(reloadRequested{reply}),
		"AddService UDP 192.168.0.100:53 rr",
		"AddRealServer UDP 192.168.0.100:53 -> 10.0.0.9:53 Route w=1")
	if err := <-reply; err != nil {
		t.Fatalf("good reload: %v", err)
	}
	if s.Status().LastReloadError != "" {
		t.Error("a good reload did not clear the last reload error")
	}
	if err := s.reload(fmt.Sprintf(plainConfig, extra)); err != nil {
		t.Fatal(err)
	}
	wantWrites(t, "a no-change reload", callStrings(s.f.Writes()))
}

func TestStepStopLeavesRulesUnlessFlushOnStop(t *testing.T) {
	for _, flush := range []bool{false, true} {
		t.Run(fmt.Sprint("flush_on_stop=", flush), func(t *testing.T) {
			s := startStepped(t, fmt.Sprintf(`
lvsd:
  flush_on_stop: %v
virtual_services:
  - protocol: tcp
    address: 192.168.0.100
    port: 80
    scheduler: rr
    real_servers:
      - address: 10.0.0.1
`, flush), DaemonOptions{})
			s.f.ResetCalls()
			if !s.handle(s.clk.Now(), stopRequested{}) {
				t.Fatal("stopRequested did not stop the daemon")
			}
			var want []string
			if flush {
				want = []string{"DeleteRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80", "DeleteService TCP 192.168.0.100:80"}
			}
			wantWrites(t, "stop", callStrings(s.f.Writes()), want...)
		})
	}
}

// The up command runs when the up weight reaches the quorum, the down
// command when it falls below.
func TestStepQuorumCommandsRunOnCrossings(t *testing.T) {
	var ran []string
	commands := make(chan string, 10)
	s := startStepped(t, `
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
    health_check: {type: tcp, connect_ip: 127.0.0.1, connect_port: 9, interval: 1s, timeout: 1s, rise: 1, fall: 1}
    real_servers:
      - address: 10.0.0.1
        weight: 3
      - address: 10.0.0.2
        weight: 2
        health_check: {type: none}
`, DaemonOptions{RunCommand: func(_ context.Context, p scripts.Program) error {
		commands <- strings.Join(p.Args, " ")
		return nil
	}})
	took := func() []string {
		s.cmds.Wait()
		for len(commands) > 0 {
			ran = append(ran, <-commands)
		}
		return ran
	}
	if got := took(); !slices.Equal(got, []string{"/usr/local/bin/quorum up"}) { // 3 + 2 >= 4
		t.Fatalf("at start ran %q", got)
	}
	s.step(s.health("10.0.0.1:80", health.StateUnknown, health.StateDown))
	if got := took(); !slices.Equal(got, []string{"/usr/local/bin/quorum up", "/usr/local/bin/quorum down"}) { // 2 < 4
		t.Fatalf("after 10.0.0.1 went down ran %q", got)
	}
	if q := s.Status().Services[0].Quorum; q != "down" {
		t.Errorf("status quorum %q, want down", q)
	}
	s.step(s.health("10.0.0.1:80", health.StateDown, health.StateUp))
	if got := took(); len(got) != 3 || got[2] != "/usr/local/bin/quorum up" {
		t.Fatalf("after 10.0.0.1 came back ran %q", got)
	}
}

// lvsd loads its config once at start, to open the kernel it needs, and
// hands it over: the daemon must install that config, not whatever the
// file says by the time it starts.
func TestNewDaemonInstallsTheConfigItIsGivenWithoutReadingTheFileAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	writeConfig(t, path, fmt.Sprintf(plainConfig, ""))
	cfg, err := config.Load(path, config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeConfig(t, path, strings.Replace(fmt.Sprintf(plainConfig, ""), "weight: 3", "weight: 5", 1))
	f := ipvstest.New()
	d, err := NewDaemon(DaemonOptions{ConfigPath: path, Config: cfg, Client: f, StateDir: t.TempDir(), Clock: clocktest.NewClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantWrites(t, "start", callStrings(f.Writes()),
		"AddService TCP 192.168.0.100:80 wrr",
		"AddRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=3")
}

// The daemon registers its reconciler's totals with the Metrics it is
// given: the writes of its start are counted at the next scrape.
func TestDaemonCountsItsWritesInTheMetricsItIsGiven(t *testing.T) {
	m, err := NewMetrics(MetricsOptions{ProcRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	startStepped(t, fmt.Sprintf(daemonConfig, "quiesce", "9", ""), DaemonOptions{Metrics: m})
	got := map[string]float64{}
	if f := family(gather(t, m), "lvsd_reconcile_ops_total"); f != nil {
		for _, mt := range f.Metric {
			got[labelMap(mt)["kind"]] = value(mt)
		}
	}
	if got["add-service"] != 1 || got["add-real-server"] != 2 {
		t.Errorf("lvsd_reconcile_ops_total by kind %v, want 1 add-service and 2 add-real-server", got)
	}
}

// Other goroutines read only what the loop published: each handled
// event is in the next snapshot, a snapshot taken earlier never changes,
// and an event that changes nothing rebuilds nothing.
func TestStepEachHandledEventIsVisibleInTheNextSnapshot(t *testing.T) {
	s := startStepped(t, fmt.Sprintf(daemonConfig, "quiesce", "9", "")+`  - name: api
    protocol: tcp
    address: 192.168.0.101
    port: 443
    scheduler: rr
    real_servers:
      - address: 10.0.0.3
`, DaemonOptions{})
	before, beforeSnap := s.Status(), s.snapshot()
	if rs := before.Services[0].RealServers; rs[0].KernelWeight != 3 || before.Services[0].UpWeight != 5 {
		t.Fatalf("after start: kernel weight %d, up weight %d, want 3 and 5", rs[0].KernelWeight, before.Services[0].UpWeight)
	}

	wantWrites(t, "10.0.0.1 down", s.step(s.health("10.0.0.1:80", health.StateUnknown, health.StateDown)),
		"UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=0")
	after := s.Status()
	if got := after.Services[0]; got.RealServers[0].KernelWeight != 0 || got.UpWeight != 2 {
		t.Errorf("the next snapshot: kernel weight %d, up weight %d, want 0 and 2", got.RealServers[0].KernelWeight, got.UpWeight)
	}
	if got := before.Services[0]; got.RealServers[0].KernelWeight != 3 || got.UpWeight != 5 {
		t.Errorf("the snapshot taken before changed: kernel weight %d, up weight %d", got.RealServers[0].KernelWeight, got.UpWeight)
	}
	if s.snapshot().services[1] != beforeSnap.services[1] {
		t.Error("the service the transition did not touch was rebuilt")
	}

	// An event that changes nothing rebuilds no status.
	prev := s.snapshot()
	wantWrites(t, "a retry with nothing to retry", s.step(retryDue{}))
	if now := s.snapshot(); now.services[0] != prev.services[0] || now.services[1] != prev.services[1] {
		t.Error("an event that changed nothing rebuilt a service's status")
	}

	// A rejected reload is in the snapshot by the time its reply comes.
	if err := s.reload("virtual_services: [{protocol: tcp}]\n"); err == nil {
		t.Fatal("a bad config reloaded")
	}
	if st := s.Status(); st.LastReloadError == "" || len(st.Services) != 2 {
		t.Errorf("after a rejected reload: error %q, %d services; want the error and the 2 running services", st.LastReloadError, len(st.Services))
	}
}
