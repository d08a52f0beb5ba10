package director

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/scripts"
	"github.com/lvskit/lvskit/director/vrrp/vrrptest"
)

func trackConfig(t *testing.T, yaml string) config.VRRP {
	t.Helper()
	cfg, err := config.Parse("lvsd.yaml", []byte(yaml), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg.VRRP
}

func postsString(posts []trackPost) string {
	var b []string
	for _, p := range posts {
		b = append(b, fmt.Sprintf("%s %T%+v", p.instance, p.event, p.event))
	}
	return strings.Join(b, "\n")
}

// The tracked links and scripts decide priority and fault the way
// keepalived's weights do, and a sync group takes every member into the
// fault of one.
func TestTrackStateDecides(t *testing.T) {
	v := trackConfig(t, `vrrp:
  scripts:
    - {name: chk_up, command: [/bin/true], weight: 15}
    - {name: chk_down, command: [/bin/true], weight: -20}
    - {name: chk_fault, command: [/bin/true]}
  sync_groups:
    - {name: G1, instances: [ext, int]}
  instances:
    - name: ext
      interface: eth0
      virtual_router_id: 51
      priority: 100
      virtual_addresses: [192.168.0.100]
      track_interfaces: [eth2, {name: eth3, weight: -30}, {name: eth4, weight: 200}]
      track_scripts: [chk_up, chk_down, {name: chk_fault, weight: 0}]
    - {name: int, interface: eth1, virtual_router_id: 52, virtual_addresses: [10.0.0.1]}
    - {name: owner, interface: eth1, virtual_router_id: 53, priority: 255, virtual_addresses: [10.0.0.2], track_scripts: [chk_down]}
`)
	s := newTrackState(v)
	if got := s.links(); !slices.Equal(got, []string{"eth0", "eth2", "eth3", "eth4", "eth1"}) {
		t.Errorf("links() = %v", got)
	}
	set := func(kind, name string, up bool, reason string) string {
		s.inputs[[2]string{kind, name}] = trackInput{known: true, up: up, reason: reason}
		return postsString(s.decide())
	}
	steps := []struct {
		what string
		got  string
		want string
	}{
		{"nothing known yet", postsString(s.decide()), ""},
		{"eth4 up adds 200, capped at 254", set("interface", "eth4", true, "link up"), "ext vrrp.PriorityChanged{Priority:254}"},
		{"eth3 up adds nothing", set("interface", "eth3", true, "link up"), ""},
		{"eth4 down removes it", set("interface", "eth4", false, "link set down"), "ext vrrp.PriorityChanged{Priority:100}"},
		{"chk_up passing adds 15", set("script", "chk_up", true, ""), "ext vrrp.PriorityChanged{Priority:115}"},
		{"chk_down failing subtracts 20, also from the owner, whose priority is fixed", set("script", "chk_down", false, "exit status 1"), "ext vrrp.PriorityChanged{Priority:95}"},
		{"eth3 down subtracts 30", set("interface", "eth3", false, "link set down"), "ext vrrp.PriorityChanged{Priority:65}"},
		{"eth2 down: fault, and the group follows", set("interface", "eth2", false, "link set down"),
			"ext vrrp.FaultDetected{Reason:interface eth2 is down (link set down)}\n" +
				"int vrrp.FaultDetected{Reason:sync group G1: ext is in fault: interface eth2 is down (link set down)}"},
		{"a second fault on ext only changes the reasons", set("script", "chk_fault", false, "exit status 2"),
			"ext vrrp.FaultDetected{Reason:interface eth2 is down (link set down); script chk_fault is down (exit status 2)}\n" +
				"int vrrp.FaultDetected{Reason:sync group G1: ext is in fault: interface eth2 is down (link set down); script chk_fault is down (exit status 2)}"},
		{"eth2 back: still in fault by the script", set("interface", "eth2", true, "link up"),
			"ext vrrp.FaultDetected{Reason:script chk_fault is down (exit status 2)}\n" +
				"int vrrp.FaultDetected{Reason:sync group G1: ext is in fault: script chk_fault is down (exit status 2)}"},
		{"script passes: both leave fault", set("script", "chk_fault", true, ""), "ext vrrp.FaultCleared{}\nint vrrp.FaultCleared{}"},
		{"int's own link down: ext follows", set("interface", "eth1", false, "no such link"),
			"int vrrp.FaultDetected{Reason:interface eth1 is down (no such link)}\n" +
				"owner vrrp.FaultDetected{Reason:interface eth1 is down (no such link)}\n" +
				"ext vrrp.FaultDetected{Reason:sync group G1: int is in fault: interface eth1 is down (no such link)}"},
	}
	for _, st := range steps {
		// ext's fault is detected after int's in the last step: decide
		// walks instances in config order, so sort for comparison.
		got, want := strings.Split(st.got, "\n"), strings.Split(st.want, "\n")
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got: %s\nwant: %s", st.what, st.got, st.want)
		}
	}
	fault, tracks := s.status("ext")
	if !strings.HasPrefix(fault, "sync group G1") || len(tracks) != 7 {
		t.Errorf("status(ext) = %q, %+v", fault, tracks)
	}
	effects := map[string]string{}
	for _, tr := range tracks {
		effects[tr.Name] = tr.State + " " + tr.Effect
	}
	if effects["eth3"] != "down -30" || effects["chk_up"] != "up +15" || effects["chk_fault"] != "up " || effects["eth0"] != "unknown " {
		t.Errorf("tracks: %v", effects)
	}
}

// fakeLinks is a WatchLinks the test drives.
type fakeLinks struct {
	mu      sync.Mutex
	changed func(name string, up bool, reason string)
	names   []string
	ready   chan struct{}
}

func newFakeLinks() *fakeLinks { return &fakeLinks{ready: make(chan struct{})} }

func (f *fakeLinks) watch(ctx context.Context, names []string, changed func(string, bool, string)) error {
	f.mu.Lock()
	f.changed, f.names = changed, names
	f.mu.Unlock()
	for _, n := range names {
		changed(n, true, "link up")
	}
	close(f.ready)
	<-ctx.Done()
	return nil
}

func (f *fakeLinks) set(t *testing.T, name string, up bool) {
	t.Helper()
	<-f.ready
	f.mu.Lock()
	defer f.mu.Unlock()
	reason := "link up"
	if !up {
		reason = "link set down"
	}
	f.changed(name, up, reason)
}

// commandLog records the commands the daemon runs.
type commandLog struct {
	mu   sync.Mutex
	runs []string
}

func (c *commandLog) run(_ context.Context, p scripts.Program) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs = append(c.runs, strings.Join(p.Args, " "))
	return nil
}

func (c *commandLog) has(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.runs, s)
}

func vrrpStates(d *Daemon) map[string]string {
	out := map[string]string{}
	for _, v := range d.Status().VRRP {
		out[v.Name] = fmt.Sprintf("%s %d", v.State, v.Priority)
	}
	return out
}

// trackChain is the daemon of TestDaemonVRRPTrackingNotifyAndSyncDaemon:
// VI_1 and VI_2 in sync group G1, VI_1 tracking a script (okFile) and
// the links eth2 and eth3, the connection sync daemon following VI_1.
type trackChain struct {
	t       *testing.T
	s       *stepped
	fv      *fakeVRRP
	links   *fakeLinks
	cmds    *commandLog
	metrics *Metrics
	okFile  string
}

func startTrackChain(t *testing.T) *trackChain {
	okFile := filepath.Join(t.TempDir(), "ok")
	if err := os.WriteFile(okFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := plainConfigVRRP + fmt.Sprintf(`ipvs:
  sync_daemon: {interface: eth1, vrrp_instance: VI_1, sync_id: 7}
vrrp:
  scripts:
    - {name: chk, command: [/usr/bin/test, -e, %s], interval: 100ms, weight: -20}
  sync_groups:
    - name: G1
      instances: [VI_1, VI_2]
      notify: {master: [/notify, group-master], fault: [/notify, group-fault]}
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: 51
      priority: 150
      source_address: 192.0.2.2
      virtual_addresses: [192.168.0.100]
      track_interfaces: [eth2, {name: eth3, weight: -30}]
      track_scripts: [chk]
      notify: {master: [/notify, master], fault: [/notify, fault], stop: [/notify, stop], any: [/notify-any]}
    - {name: VI_2, interface: eth1, virtual_router_id: 52, priority: 150, source_address: 192.0.2.2, virtual_addresses: [10.0.0.1]}
`, okFile)
	c := &trackChain{t: t, fv: newFakeVRRP(), links: newFakeLinks(), cmds: &commandLog{}, metrics: newTestMetrics(t, t.TempDir(), nil), okFile: okFile}
	opts := c.fv.options()
	opts.WatchLinks = c.links.watch
	c.s = startVRRPStepped(t, cfg, c.fv, DaemonOptions{VRRP: opts, RunCommand: c.cmds.run, Metrics: c.metrics})
	return c
}

// syncRoles are the kernel's connection sync daemons: "master eth1 7".
func (c *trackChain) syncRoles() string {
	ds, _ := c.s.f.SyncDaemons()
	var out []string
	for _, s := range ds {
		out = append(out, fmt.Sprintf("%v %s %d", s.Role, s.Interface, s.SyncID))
	}
	return strings.Join(out, ",")
}

// ran waits for the notify commands the handled transitions started and
// checks that want ran.
func (c *trackChain) ran(want ...string) {
	c.t.Helper()
	c.s.vrrp.Load().notify.wait()
	for _, w := range want {
		if !c.cmds.has(w) {
			c.t.Errorf("notify command %q did not run; ran %q", w, c.cmds.runs)
		}
	}
}

// both checks the two instances' states (and priorities, with a space).
func (c *trackChain) both(what, prefix1, prefix2 string) {
	c.t.Helper()
	st := vrrpStates(c.s.Daemon)
	if !strings.HasPrefix(st["VI_1"], prefix1) || !strings.HasPrefix(st["VI_2"], prefix2) {
		c.t.Errorf("%s: %v, want VI_1 %q and VI_2 %q", what, st, prefix1, prefix2)
	}
}

// trackUp is lvsd_vrrp_track_up by "kind name".
func (c *trackChain) trackUp() map[string]float64 {
	tracksUp := map[string]float64{}
	if f := family(gather(c.t, c.metrics), "lvsd_vrrp_track_up"); f != nil {
		for _, m := range f.Metric {
			l := labelMap(m)
			tracksUp[l["kind"]+" "+l["name"]] = m.GetGauge().GetValue()
		}
	}
	return tracksUp
}

// The whole chain in the daemon: a tracked script and links move the
// priority and put the instance in fault, the sync group follows, notify
// commands run with keepalived's arguments, and the connection sync
// daemon follows the instance's state.
func TestDaemonVRRPTrackingNotifyAndSyncDaemon(t *testing.T) {
	c := startTrackChain(t)
	s := c.s
	wantWrites(t, "the start", callStrings(s.f.Writes()), // the globals before the services
		"StartSyncDaemon backup eth1 7",
		"AddService TCP 192.168.0.100:80 wlc",
		"AddRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=1")
	wantWrites(t, "both backup", s.awaitPosts("both backup", "VI_1", "VI_2"))
	c.both("after the start", "backup 150", "backup 150")
	if got := c.syncRoles(); got != "backup eth1 7" {
		t.Errorf("sync daemons while backup: %q, want the backup one", got)
	}
	c.fv.clock.Advance(4 * time.Second)
	wantWrites(t, "both master", s.awaitPosts("both master", "VI_1", "VI_2"),
		"StopSyncDaemon backup", "StartSyncDaemon master eth1 7")
	c.both("after 4s without adverts", "master 150", "master 150")
	if got := c.syncRoles(); got != "master eth1 7" {
		t.Errorf("sync daemons as master: %q, want the master one", got)
	}
	c.ran("/notify master", "/notify-any INSTANCE VI_1 MASTER 150", "/notify group-master")

	c.scriptAndLinkLowerThePriority()
	c.eth2DownPutsTheGroupInFault()

	// eth2 back: both leave fault as backups, then take over again.
	c.links.set(t, "eth2", true)
	wantWrites(t, "both backup again", s.awaitPosts("both backup again", "VI_1", "VI_2"))
	c.both("with eth2 back", "backup", "backup")
	c.fv.clock.Advance(4 * time.Second)
	wantWrites(t, "both master again", s.awaitPosts("both master again", "VI_1", "VI_2"),
		"StopSyncDaemon backup", "StartSyncDaemon master eth1 7")
	c.both("after 4s more", "master", "master")

	// A stop, as Run makes it after its loop.
	if !s.handle(s.clk.Now(), stopRequested{}) {
		t.Fatal("stopRequested did not stop the daemon")
	}
	s.stopVRRP()
	if !c.cmds.has("/notify stop") || !c.cmds.has("/notify-any INSTANCE VI_1 STOP 0") {
		t.Errorf("stop notifications missing: %q", c.cmds.runs)
	}
}

// scriptAndLinkLowerThePriority: the script fails (minus 20, told to the
// backups at once), then eth3 goes down (minus 30).
func (c *trackChain) scriptAndLinkLowerThePriority() {
	t, d := c.t, c.s.Daemon
	if err := os.Remove(c.okFile); err != nil {
		t.Fatal(err)
	}
	// The script runs on the real clock, and a priority change alone
	// posts nothing to the daemon (the instance's goroutine, outside the
	// loop, owns it): polled.
	waitFor(t, "VI_1 at priority 130", func() bool { return vrrpStates(d)["VI_1"] == "master 130" })
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := c.fv.wire.WaitSent(wctx, "an advert of priority 130", func(s []vrrptest.Sent) bool {
		return slices.ContainsFunc(s, func(x vrrptest.Sent) bool { a := x.Advert(); return a.VRID == 51 && a.Priority == 130 })
	}); err != nil {
		t.Fatal(err)
	}
	c.links.set(t, "eth3", false)
	waitFor(t, "VI_1 at priority 100", func() bool { return vrrpStates(d)["VI_1"] == "master 100" }) // a priority alone: polled, as above
	if got, want := c.trackUp(), map[string]float64{"interface eth0": 1, "interface eth1": 1, "interface eth2": 1, "interface eth3": 0, "script chk": 0}; !maps.Equal(got, want) {
		t.Errorf("lvsd_vrrp_track_up = %v, want %v", got, want)
	}
}

// eth2DownPutsTheGroupInFault: VI_1 in fault for its link, VI_2 with it
// (sync group), the VIPs gone, the sync daemon back to backup.
func (c *trackChain) eth2DownPutsTheGroupInFault() {
	t, s := c.t, c.s
	c.links.set(t, "eth2", false)
	wantWrites(t, "both in fault", s.awaitPosts("both in fault", "VI_1", "VI_2"),
		"StopSyncDaemon master", "StartSyncDaemon backup eth1 7")
	var v1, v2 VRRPStatus
	for _, v := range s.Status().VRRP {
		if v.Name == "VI_1" {
			v1 = v
		} else {
			v2 = v
		}
	}
	if v1.State != "fault" || v2.State != "fault" {
		t.Errorf("states with eth2 down: VI_1 %s, VI_2 %s, want both fault", v1.State, v2.State)
	}
	if v1.Fault != "interface eth2 is down (link set down)" || !strings.Contains(v2.Fault, "sync group G1: VI_1 is in fault") || v2.SyncGroup != "G1" {
		t.Errorf("fault reasons: VI_1 %q, VI_2 %q (group %q)", v1.Fault, v2.Fault, v2.SyncGroup)
	}
	if held := c.fv.addrs["eth0 "].Held(); len(held) != 0 {
		t.Errorf("VI_1 in fault still holds %v", held)
	}
	if got := c.syncRoles(); got != "backup eth1 7" {
		t.Errorf("sync daemons in fault: %q, want the backup one", got)
	}
	c.ran("/notify fault", "/notify-any INSTANCE VI_1 FAULT 100", "/notify group-fault")
}

// A reload that makes the sync daemon follow an instance that is master
// now starts the master daemon at once, not at the next transition.
func TestDaemonReloadIntoSyncDaemonFollowingVRRP(t *testing.T) {
	fixed := "ipvs:\n  sync_daemon: {interface: eth1, role: backup, sync_id: 7}\n"
	follow := "ipvs:\n  sync_daemon: {interface: eth1, vrrp_instance: VI_1, sync_id: 7}\n"
	fv := newFakeVRRP()
	s := startVRRPStepped(t, vrrpConfig+fixed, fv, DaemonOptions{})
	f := s.f
	roles := func() string {
		ds, _ := f.SyncDaemons()
		var out []string
		for _, s := range ds {
			out = append(out, s.Role.String())
		}
		return strings.Join(out, ",")
	}
	wantWrites(t, "VI_1 backup", s.awaitPosts("VI_1 backup", "VI_1"))
	fv.clock.Advance(4 * time.Second)
	wantWrites(t, "VI_1 master (role: backup whatever VRRP says)", s.awaitPosts("VI_1 master", "VI_1"))
	if st := vrrpState(s.Daemon); st != "master" {
		t.Fatalf("VI_1 %s after 4s without adverts, want master", st)
	}
	if got := roles(); got != "backup" {
		t.Fatalf("sync daemons with role: backup: %q", got)
	}
	if err := s.reload(vrrpConfig + follow); err != nil {
		t.Fatal(err)
	}
	wantWrites(t, "the reload to vrrp_instance while master", callStrings(f.Writes()),
		"StopSyncDaemon backup", "StartSyncDaemon master eth1 7")
	if got := roles(); got != "master" {
		t.Errorf("sync daemons after the reload to vrrp_instance while master: %q, want master only", got)
	}
}
