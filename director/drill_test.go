package director

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/bgp/bgptest"
	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/director/vrrp/vrrptest"
)

// serveAPI serves d's API on a unix socket and returns a client of it.
func serveAPI(t *testing.T, d *Daemon) *statusapi.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "status.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: statusapi.NewAPIHandler("unix", d.EncodedStatus, d)}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	c, err := statusapi.NewClient("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// startVRRPDaemon starts a stepped daemon whose VI_1 has become master.
func startVRRPDaemon(t *testing.T, fv *fakeVRRP) *stepped {
	t.Helper()
	s := startVRRPStepped(t, vrrpConfig, fv, DaemonOptions{})
	s.await("VI_1 backup", func() bool { return vrrpState(s.Daemon) == "backup" })
	fv.clock.Advance(4 * time.Second)
	s.await("VI_1 master", func() bool { return vrrpState(s.Daemon) == "master" })
	return s
}

func holds(fv *fakeVRRP, addr string) bool {
	for _, a := range fv.addrs["eth0 "].Held() {
		if a == netip.MustParseAddr(addr) {
			return true
		}
	}
	return false
}

// A master asked through the socket to step down tells the backups with
// a priority-0 advert, drops its VIPs and waits as a backup at priority
// 1; it still takes the VIPs if nobody advertises; at the hold's end its
// priority comes back.
func TestDrillStepDownHandsOverAndRestoresThePriorityAfterTheHold(t *testing.T) {
	fv := newFakeVRRP()
	s := startVRRPDaemon(t, fv)
	d := s.Daemon
	c := serveAPI(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	a, err := c.StepDown(ctx, "VI_1", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Active || a.Kind != "vrrp-step-down" || !a.Until.Equal(fv.clock.Now().Add(30*time.Second)) || strings.Join(a.Instances, ",") != "VI_1" {
		t.Errorf("answer: %+v", a)
	}
	if err := fv.wire.WaitSent(ctx, "a priority-0 advert", func(s []vrrptest.Sent) bool {
		return len(s) > 0 && s[len(s)-1].Advert().Priority == 0
	}); err != nil {
		t.Fatal(err)
	}
	s.await("VI_1 backup", func() bool { return vrrpState(d) == "backup" })
	if holds(fv, "192.168.0.100") {
		t.Error("VI_1 stepped down to backup still holds 192.168.0.100")
	}
	// The step-down's priority follows the transition and posts nothing
	// to the daemon (the instance's goroutine, outside the loop, owns
	// it): polled.
	waitFor(t, "VI_1 at priority 1", func() bool { return d.Status().VRRP[0].Priority == 1 })
	st := d.Status().VRRP[0]
	if !st.SteppedDownUntil.Equal(a.Until) || !strings.Contains(st.Reason, "stepped down: drill") {
		t.Errorf("status while stepped down: until %v reason %q", st.SteppedDownUntil, st.Reason)
	}
	// Nobody took over: a stepped-down director is still a backup and
	// takes the VIPs again rather than leave them unserved.
	fv.clock.Advance(5 * time.Second)
	s.await("VI_1 master again with nobody advertising", func() bool { return vrrpState(d) == "master" })
	if !holds(fv, "192.168.0.100") {
		t.Error("VI_1 master again does not hold 192.168.0.100")
	}
	if p := d.Status().VRRP[0].Priority; p != 1 {
		t.Errorf("priority during the hold = %d, want 1", p)
	}
	fv.clock.Advance(26 * time.Second)
	// A priority alone, as above: polled.
	waitFor(t, "priority 150 after the hold", func() bool {
		st := d.Status().VRRP[0]
		return st.Priority == 150 && st.SteppedDownUntil.IsZero()
	})
}

func TestDrillEndStepDownRestoresAtOnce(t *testing.T) {
	fv := newFakeVRRP()
	s := startVRRPDaemon(t, fv)
	d := s.Daemon
	c := serveAPI(t, d)
	ctx := context.Background()
	if _, err := c.StepDown(ctx, "VI_1", time.Hour); err != nil {
		t.Fatal(err)
	}
	s.await("stepped down", func() bool { return vrrpState(d) == "backup" })
	// The priorities post nothing to the daemon (the instance's goroutine
	// owns them): polled.
	waitFor(t, "priority 1", func() bool { return d.Status().VRRP[0].Priority == 1 })
	if _, err := c.EndStepDown(ctx, "VI_1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "priority 150 again", func() bool { st := d.Status().VRRP[0]; return st.Priority == 150 && st.SteppedDownUntil.IsZero() })
	// Nobody else advertises: with its priority back it becomes master.
	fv.clock.Advance(4 * time.Second)
	s.await("master again", func() bool { return vrrpState(d) == "master" })
}

func TestDrillRefusalsSayWhy(t *testing.T) {
	fv := newFakeVRRP()
	d := startVRRPDaemon(t, fv).Daemon
	c := serveAPI(t, d)
	ctx := context.Background()
	for _, tc := range []struct {
		call func() error
		want []string
	}{
		{func() error { _, err := c.StepDown(ctx, "VI_9", time.Minute); return err }, []string{"404", `"VI_9"`, "runs VI_1"}},
		{func() error { _, err := c.StepDown(ctx, "VI_1", time.Millisecond); return err }, []string{"409", "hold 1ms"}},
		{func() error { _, err := c.StepDown(ctx, "VI_1", 2*time.Hour); return err }, []string{"409", "between 1s and 1h0m0s"}},
		{func() error { _, err := c.Withdraw(ctx, "192.168.0.100", time.Minute); return err }, []string{"404", "no bgp section"}},
	} {
		err := tc.call()
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("error %v, want it to contain %q", err, w)
			}
		}
	}
	if st := d.Status().VRRP[0]; st.State != "master" || st.Priority != 150 {
		t.Errorf("a refused drill changed the instance: %+v", st)
	}
}

// On TCP the actions answer 403 and name the socket; nothing changes.
func TestDrillActionsAreNotServedOnTCP(t *testing.T) {
	fv := newFakeVRRP()
	d := startVRRPDaemon(t, fv).Daemon
	srv := httptest.NewServer(statusapi.NewAPIHandler("tcp", d.EncodedStatus, d))
	defer srv.Close()
	c, err := statusapi.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.StepDown(context.Background(), "VI_1", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "unix socket") {
		t.Errorf("step-down over TCP = %v, want 403 naming the unix socket", err)
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Errorf("the status is still served on TCP: %v", err)
	}
	if st := d.Status().VRRP[0]; st.State != "master" || st.Priority != 150 {
		t.Errorf("a refused drill changed the instance: %+v", st)
	}
}

func TestDrillWithdrawsAVIPAndAnnouncesItAgain(t *testing.T) {
	s := startBGPStepped(t, fmt.Sprintf(bgpDaemonConfig, "9", 1), bgptest.New(), DaemonOptions{})
	c := serveAPI(t, s.Daemon)
	ctx := context.Background()
	wantSaid(t, "the start", s.said(), "announce 192.168.0.100/32")

	a, err := c.Withdraw(ctx, "192.168.0.100", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Active || a.Kind != "bgp-withdraw" || !a.Until.Equal(t0.Add(time.Hour)) {
		t.Errorf("answer: %+v", a)
	}
	wantWrites(t, "the drill", s.stepPosted())
	wantSaid(t, "the drill", s.said(), "withdraw 192.168.0.100/32")
	if r := vipReason(s.Daemon); !strings.Contains(r, "withdrawn by a drill") {
		t.Errorf("reason = %q", r)
	}
	if _, err := c.EndWithdraw(ctx, "192.168.0.100"); err != nil {
		t.Fatal(err)
	}
	s.stepPosted()
	wantSaid(t, "the drill's end", s.said(), "announce 192.168.0.100/32")

	// A hold that ends by itself, at the first step after it.
	if _, err := c.Withdraw(ctx, "192.168.0.100", time.Second); err != nil {
		t.Fatal(err)
	}
	s.stepPosted()
	wantSaid(t, "a 1s drill", s.said(), "withdraw 192.168.0.100/32")
	s.clk.Advance(999 * time.Millisecond)
	s.step(bgpPollDue{})
	wantSaid(t, "a poll within the hold", s.said())
	s.clk.Advance(time.Millisecond)
	s.step(bgpPollDue{})
	wantSaid(t, "the poll at the hold's end", s.said(), "announce 192.168.0.100/32")

	for _, tc := range []struct{ vip, want string }{
		{"192.168.0.101", "not announced over bgp"},
		{"not-an-ip", "want an IP address"},
	} {
		if _, err := c.Withdraw(ctx, tc.vip, time.Minute); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Withdraw(%s) = %v, want %q", tc.vip, err, tc.want)
		}
	}
}

// A step-down takes the members of the instance's sync group down with
// it (they hand over together), lowers them to priority 1 after the
// StepDown, and gives them their priority back when it ends by its hold.
func TestTrackStateStepDownTakesTheSyncGroup(t *testing.T) {
	v := trackConfig(t, `vrrp:
  sync_groups:
    - {name: G1, instances: [ext, int]}
  instances:
    - {name: ext, interface: eth0, virtual_router_id: 51, priority: 150, virtual_addresses: [192.168.0.100]}
    - {name: int, interface: eth1, virtual_router_id: 52, priority: 120, virtual_addresses: [10.0.0.1]}
    - {name: other, interface: eth1, virtual_router_id: 53, priority: 110, virtual_addresses: [10.0.0.2]}
`)
	s := newTrackState(v)
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	s.stepDowns["ext"] = stepDown{until: t0.Add(30 * time.Second), reason: "drill"}
	got := postsString(s.decide())
	want := "ext vrrp.StepDown{Reason:drill}\next vrrp.PriorityChanged{Priority:1}\n" +
		"int vrrp.StepDown{Reason:drill}\nint vrrp.PriorityChanged{Priority:1}"
	if got != want {
		t.Errorf("step-down of ext:\n got: %s\nwant: %s", got, want)
	}
	if got := postsString(s.decide()); got != "" {
		t.Errorf("deciding again posts %q, want nothing", got)
	}
	if next := s.nextStepDownEnd(); !next.Equal(t0.Add(30 * time.Second)) {
		t.Errorf("nextStepDownEnd = %v", next)
	}
	s.endStepDowns(t0.Add(29 * time.Second))
	if got := postsString(s.decide()); got != "" {
		t.Errorf("before the hold's end: %q", got)
	}
	s.endStepDowns(t0.Add(30 * time.Second))
	if got := postsString(s.decide()); got != "ext vrrp.PriorityChanged{Priority:150}\nint vrrp.PriorityChanged{Priority:120}" {
		t.Errorf("at the hold's end: %q", got)
	}
	if !s.nextStepDownEnd().IsZero() {
		t.Errorf("a drill is left: %v", s.stepDowns)
	}
}
