package director

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/vrrp/vrrptest"
	"go.uber.org/goleak"
)

// Reloading VRRP in place, as keepalived does: an instance that still
// exists keeps its state (a master stays master, its addresses stay),
// takes its new settings, and only what changed reaches the wire.

// vrrpInstanceYAML is one instance of the tests' configs.
func vrrpInstanceYAML(name string, vrid, priority int, vips ...string) string {
	return fmt.Sprintf(`    - name: %s
      interface: eth0
      virtual_router_id: %d
      priority: %d
      source_address: 192.0.2.2
      virtual_addresses: [%s]
`, name, vrid, priority, strings.Join(vips, ", "))
}

func vrrpSection(instances ...string) string {
	return plainConfigVRRP + "vrrp:\n  instances:\n" + strings.Join(instances, "")
}

type reloadHarness struct {
	t    *testing.T
	s    *stepped // the daemon, stepped by the test (step_vrrp_test.go)
	fv   *fakeVRRP
	d    *Daemon
	ctx  context.Context
	stop func() // stops the daemon as Run does (once)
}

func startReloadHarness(t *testing.T, cfg string) *reloadHarness {
	fv := newFakeVRRP()
	s := startVRRPStepped(t, cfg, fv, DaemonOptions{})
	stop := sync.OnceFunc(func() {
		if !s.handle(s.clk.Now(), stopRequested{}) {
			t.Error("stopRequested did not stop the daemon")
		}
		s.stopVRRP()
	})
	t.Cleanup(stop)
	return &reloadHarness{t: t, s: s, fv: fv, d: s.Daemon, ctx: context.Background(), stop: stop}
}

func (h *reloadHarness) reload(cfg string) error {
	h.t.Helper()
	return h.s.reload(cfg)
}

func (h *reloadHarness) state(name string) string {
	for _, st := range h.d.Status().VRRP {
		if st.Name == name {
			return st.State
		}
	}
	return "absent"
}

func (h *reloadHarness) status(name string) VRRPStatus {
	for _, st := range h.d.Status().VRRP {
		if st.Name == name {
			return st
		}
	}
	h.t.Fatalf("no instance %s in the status", name)
	return VRRPStatus{}
}

// events returns the timeline's messages of a kind.
func (h *reloadHarness) events(kind string) []string {
	var out []string
	for _, e := range h.d.Status().Events {
		if e.Kind == kind {
			out = append(out, e.Message)
		}
	}
	return out
}

// adverts renders the adverts sent since the nth as "vrid/priority".
func (h *reloadHarness) adverts(from int) []string {
	var out []string
	for _, s := range h.fv.wire.Sent()[from:] {
		a := s.Advert()
		out = append(out, fmt.Sprintf("%d/%d", a.VRID, a.Priority))
	}
	return out
}

func (h *reloadHarness) eth0() *vrrptest.Addresses {
	h.fv.mu.Lock()
	defer h.fv.mu.Unlock()
	return h.fv.addrs["eth0 "]
}

func (h *reloadHarness) announcer() *vrrptest.Announcer {
	h.fv.mu.Lock()
	defer h.fv.mu.Unlock()
	return h.fv.announcers["eth0"]
}

func (h *reloadHarness) waitSent(what string, cond func([]vrrptest.Sent) bool) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	if err := h.fv.wire.WaitSent(ctx, what, cond); err != nil {
		h.t.Fatal(err)
	}
}

func (h *reloadHarness) becomeMaster(name string) {
	h.t.Helper()
	h.s.await(name+" backup", func() bool { return h.state(name) == "backup" })
	h.fv.clock.Advance(4 * time.Second) // nobody else advertises
	h.s.await(name+" master", func() bool { return h.state(name) == "master" })
}

func TestVRRPReloadKeepsTheMasterAndItsAddressesAppliesPriorityAndVIPsInPlace(t *testing.T) {
	vi := func(priority int, vips ...string) string {
		return vrrpSection(vrrpInstanceYAML("VI_1", 51, priority, vips...))
	}
	h := startReloadHarness(t, vi(150, "192.168.0.100", "192.168.0.101"))
	h.becomeMaster("VI_1")
	h.waitSent("the first advert", func(s []vrrptest.Sent) bool { return len(s) >= 1 })
	ann := h.announcer()
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	if err := ann.WaitRounds(ctx, 5); err != nil {
		t.Fatal(err)
	}

	// (a) The same VRRP section: nothing reaches the instance.
	sent := len(h.fv.wire.Sent())
	if err := h.reload(vi(150, "192.168.0.100", "192.168.0.101")); err != nil {
		t.Fatal(err)
	}
	if got := h.adverts(sent); len(got) != 0 {
		t.Errorf("an unchanged reload sent adverts %v", got)
	}

	// (b) A lower priority: one advert at once, still master.
	if err := h.reload(vi(50, "192.168.0.100", "192.168.0.101")); err != nil {
		t.Fatal(err)
	}
	if got := h.adverts(sent); !slices.Equal(got, []string{"51/50"}) {
		t.Errorf("adverts after lowering the priority: %v, want one of priority 50", got)
	}
	if st := h.status("VI_1"); st.State != "master" || st.Priority != 50 || st.ConfiguredPriority != 50 {
		t.Errorf("after the priority reload: %+v", st)
	}

	// (c) An added VIP: added alone, then all announced (keepalived's
	// garp burst for a reload that adds addresses).
	sent = len(h.fv.wire.Sent())
	rounds := len(ann.Rounds())
	if err := h.reload(vi(50, "192.168.0.100", "192.168.0.101", "192.168.0.102")); err != nil {
		t.Fatal(err)
	}
	if err := h.eth0().WaitHeld(ctx, addr("192.168.0.100"), addr("192.168.0.101"), addr("192.168.0.102")); err != nil {
		t.Fatal(err)
	}
	if err := ann.WaitRounds(ctx, rounds+5); err != nil {
		t.Fatal(err)
	}
	h.waitSent("an advert listing 3 addresses", func(s []vrrptest.Sent) bool {
		return len(s) > sent && len(s[len(s)-1].Advert().Addresses) == 3
	})

	// (d) A removed VIP: removed alone, no announcement.
	rounds = len(ann.Rounds())
	if err := h.reload(vi(50, "192.168.0.100", "192.168.0.102")); err != nil {
		t.Fatal(err)
	}
	if err := h.eth0().WaitHeld(ctx, addr("192.168.0.100"), addr("192.168.0.102")); err != nil {
		t.Fatal(err)
	}
	if got := len(ann.Rounds()); got != rounds {
		t.Errorf("removing a VIP sent %d announcement rounds", got-rounds)
	}

	h.wantReloadedInPlace()
}

// wantReloadedInPlace checks what the reloads of
// TestVRRPReloadKeepsTheMasterAndItsAddressesAppliesPriorityAndVIPsInPlace
// leave: the
// addresses never left, and VI_1 changed state only at its start.
func (h *reloadHarness) wantReloadedInPlace() {
	t := h.t
	t.Helper()
	// The addresses never left: the manager's calls are the start's
	// cleanup, the takeover, and the reloads' one-address changes.
	want := []string{
		"remove [192.168.0.100 192.168.0.101]", "add [192.168.0.100 192.168.0.101]",
		"add [192.168.0.102]", "remove [192.168.0.101]",
	}
	if got := h.eth0().Log(); !slices.Equal(got, want) {
		t.Errorf("address calls:\n got  %q\n want %q", got, want)
	}
	if got := h.events("vrrp"); !slices.Equal(got, []string{
		"VI_1 (vrid 51 on eth0): initialize -> backup: startup",
		"VI_1 (vrid 51 on eth0): backup -> master: no advertisement from a master",
	}) {
		t.Errorf("state changes: %q, want the start's alone", got)
	}
	if st := h.status("VI_1"); st.BecameMaster != 1 {
		t.Errorf("became master %d times", st.BecameMaster)
	}
	config := strings.Join(h.events("config"), "\n")
	for _, w := range []string{
		"VI_1: reloaded in place, still master: configured priority 150 -> 50",
		"VI_1: reloaded in place, still master: +192.168.0.102",
		"VI_1: reloaded in place, still master: -192.168.0.101",
	} {
		if !strings.Contains(config, w) {
			t.Errorf("the timeline lacks %q:\n%s", w, config)
		}
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// New instances start; removed ones stop as at shutdown (a master sends
// priority 0 and drops its addresses); the others are not touched; no
// goroutine of the removed ones is left.
func TestVRRPReloadStartsAddedInstancesAndStopsRemovedOnes(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the daemon's stop
	one := vrrpInstanceYAML("VI_1", 51, 150, "192.168.0.100")
	two := vrrpInstanceYAML("VI_2", 52, 150, "192.168.0.110")
	h := startReloadHarness(t, vrrpSection(one))
	h.becomeMaster("VI_1")

	sent := len(h.fv.wire.Sent())
	if err := h.reload(vrrpSection(two, one)); err != nil {
		t.Fatal(err)
	}
	h.s.await("VI_2 backup", func() bool { return h.state("VI_2") == "backup" })
	if st := h.d.Status().VRRP; len(st) != 2 || st[0].Name != "VI_2" || st[1].Name != "VI_1" {
		t.Errorf("status lists %+v, want VI_2 then VI_1 as the config does", st)
	}
	if got := h.adverts(sent); len(got) != 0 {
		t.Errorf("adding VI_2 sent adverts %v (VI_1 must not be touched)", got)
	}
	vrid51 := func(s []vrrptest.Sent) int {
		n := 0
		for _, x := range s {
			if x.Advert().VRID == 51 {
				n++
			}
		}
		return n
	}
	before := vrid51(h.fv.wire.Sent())
	h.fv.clock.Advance(4 * time.Second)
	h.s.await("VI_2 master", func() bool { return h.state("VI_2") == "master" })
	// VI_1, master all along, sends the advert those 4 s made due from its
	// own goroutine: it must not count as the reload's below.
	h.waitSent("VI_1's advert of those 4s", func(s []vrrptest.Sent) bool { return vrid51(s) > before })
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	if err := h.eth0().WaitHeld(ctx, addr("192.168.0.100"), addr("192.168.0.110")); err != nil {
		t.Fatal(err)
	}

	sent = len(h.fv.wire.Sent())
	if err := h.reload(vrrpSection(two)); err != nil {
		t.Fatal(err)
	}
	if err := h.eth0().WaitHeld(ctx, addr("192.168.0.110")); err != nil {
		t.Fatal(err)
	}
	if got := h.adverts(sent); !slices.Equal(got, []string{"51/0"}) {
		t.Errorf("adverts on removing VI_1: %v, want its priority-0 advert alone", got)
	}
	if h.state("VI_1") != "absent" || h.state("VI_2") != "master" || len(h.d.Status().VRRP) != 1 {
		t.Errorf("after the reload: %+v", h.d.Status().VRRP)
	}
	if got := strings.Join(h.events("config"), "\n"); !strings.Contains(got, "vrrp: 1 instances kept, 0 started, 1 stopped") {
		t.Errorf("the timeline does not say VI_1 stopped:\n%s", got)
	}
}

// keepalived knows an instance by its interface, VRID and family: a new
// VRID is another instance, whatever the name; a new name on the same
// VRID is the same one.
func TestVRRPReloadIdentityIsInterfaceAndVRIDNotName(t *testing.T) {
	h := startReloadHarness(t, vrrpSection(vrrpInstanceYAML("VI_1", 51, 150, "192.168.0.100")))
	h.becomeMaster("VI_1")

	sent := len(h.fv.wire.Sent())
	if err := h.reload(vrrpSection(vrrpInstanceYAML("web", 51, 150, "192.168.0.100"))); err != nil {
		t.Fatal(err)
	}
	if st := h.status("web"); st.State != "master" || st.BecameMaster != 1 {
		t.Errorf("renamed instance: %+v, want the same master", st)
	}
	if got := h.adverts(sent); !slices.Equal(got, []string{"51/150"}) {
		t.Errorf("adverts on a rename: %v", got)
	}

	sent = len(h.fv.wire.Sent())
	if err := h.reload(vrrpSection(vrrpInstanceYAML("web", 61, 150, "192.168.0.100"))); err != nil {
		t.Fatal(err)
	}
	h.s.await("web on vrid 61 backup", func() bool {
		st := h.d.Status().VRRP
		return len(st) == 1 && st[0].VRID == 61 && st[0].State == "backup"
	})
	if got := h.adverts(sent); !slices.Equal(got, []string{"51/0"}) {
		t.Errorf("adverts on a new VRID: %v, want vrid 51's priority-0 advert", got)
	}
}

// A reload whose VRRP part cannot be carried out is rejected before
// anything changed.
func TestVRRPReloadThatCannotOpenAnInterfaceIsRejectedWhole(t *testing.T) {
	one := vrrpInstanceYAML("VI_1", 51, 150, "192.168.0.100")
	h := startReloadHarness(t, vrrpSection(one))
	h.becomeMaster("VI_1")
	bad := strings.Replace(vrrpInstanceYAML("VI_2", 52, 150, "192.168.0.110"), "interface: eth0", "interface: missing0", 1)
	lowered := vrrpInstanceYAML("VI_1", 51, 50, "192.168.0.100")
	err := h.reload(vrrpSection(lowered, bad))
	if err == nil || !strings.Contains(err.Error(), "vrrp instance VI_2: listening on missing0") {
		t.Fatalf("reload: %v, want the listening error", err)
	}
	if st := h.d.Status().VRRP; len(st) != 1 || st[0].Priority != 150 || st[0].State != "master" {
		t.Errorf("a rejected reload changed VRRP: %+v", st)
	}
}

// multiLinks is a WatchLinks that may be called again (a reload that
// tracks other links starts a new watcher): each watcher reports the
// links' current states first, then every change.
type multiLinks struct {
	mu       sync.Mutex
	up       map[string]bool
	watchers []func(string, bool, string)
	calls    [][]string
}

func (m *multiLinks) watch(ctx context.Context, names []string, changed func(string, bool, string)) error {
	m.mu.Lock()
	m.calls = append(m.calls, names)
	for _, n := range names {
		changed(n, m.up[n], "initial")
	}
	i := len(m.watchers)
	m.watchers = append(m.watchers, changed)
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	m.watchers[i] = nil
	m.mu.Unlock()
	return nil
}

func (m *multiLinks) set(name string, up bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.up[name] = up
	for _, w := range m.watchers {
		if w != nil {
			w(name, up, "set")
		}
	}
}

func (m *multiLinks) watched() [][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

// Tracking carries over a reload: an instance in fault for a tracked
// link stays in fault through a priority change (no fault -> backup ->
// fault), and a link newly tracked is watched at once.
func TestVRRPReloadKeepsTrackingState(t *testing.T) {
	links := &multiLinks{up: map[string]bool{"eth0": true, "eth2": false, "eth3": false}}
	withTrack := func(priority int, track string) string {
		return vrrpSection(vrrpInstanceYAML("VI_1", 51, priority, "192.168.0.100") + "      track_interfaces: [" + track + "]\n")
	}
	fv := newFakeVRRP()
	opts := fv.options()
	opts.WatchLinks = links.watch
	s := startVRRPStepped(t, withTrack(150, "eth2"), fv, DaemonOptions{VRRP: opts})
	d := s.Daemon
	s.await("VI_1 in fault (eth2 down)", func() bool { return vrrpStates(d)["VI_1"] == "fault 150" })

	if err := s.reload(withTrack(120, "eth2")); err != nil {
		t.Fatal(err)
	}
	if got := vrrpStates(d)["VI_1"]; got != "fault 120" {
		t.Errorf("after the reload: %s, want fault 120", got)
	}
	links.set("eth2", true)
	s.await("VI_1 backup at 120", func() bool { return vrrpStates(d)["VI_1"] == "backup 120" })

	// eth3 (down) newly tracked with a weight: watched at once, and the
	// priority follows.
	if err := s.reload(withTrack(120, "eth2, {name: eth3, weight: -30}")); err != nil {
		t.Fatal(err)
	}
	// A priority change alone posts nothing to the daemon (the instance's
	// goroutine, outside the loop, owns it): polled.
	waitFor(t, "VI_1 backup at 90", func() bool { return vrrpStates(d)["VI_1"] == "backup 90" })
	if w := links.watched(); len(w) != 2 || !slices.Equal(w[1], []string{"eth0", "eth2", "eth3"}) {
		t.Errorf("links watched: %v, want a second watch of eth0 eth2 eth3", w)
	}
	var transitions []string
	for _, e := range d.Status().Events {
		if e.Kind == "vrrp" {
			transitions = append(transitions, e.Message)
		}
	}
	if len(transitions) != 3 { // initialize -> backup -> fault -> backup
		t.Errorf("transitions: %q", transitions)
	}
}

// A config without VRRP that a reload gives an instance starts VRRP
// then, and stopping lvsd still hands over with a priority-0 advert.
func TestVRRPReloadStartsVRRPWhereThereWasNone(t *testing.T) {
	h := startReloadHarness(t, plainConfigVRRP)
	if got := h.events("daemon"); len(got) != 1 {
		t.Errorf("daemon events after the start: %q, want one", got)
	}
	if err := h.reload(vrrpSection(vrrpInstanceYAML("VI_1", 51, 150, "192.168.0.100"))); err != nil {
		t.Fatal(err)
	}
	h.becomeMaster("VI_1")
	h.waitSent("an advert", func(s []vrrptest.Sent) bool { return len(s) > 0 })
	h.stop()
	if got := h.adverts(0); got[len(got)-1] != "51/0" {
		t.Errorf("adverts %v, want the last of priority 0 (a clean stop)", got)
	}
	if held := h.eth0().Held(); len(held) != 0 {
		t.Errorf("still held after stop: %v", held)
	}
}

// A drill's step-down goes on through a reload that changes the
// instance: it stays a backup at the drill's priority until the hold
// ends, then runs at its reloaded priority.
func TestVRRPReloadKeepsADrillsStepDown(t *testing.T) {
	h := startReloadHarness(t, vrrpSection(vrrpInstanceYAML("VI_1", 51, 150, "192.168.0.100")))
	h.becomeMaster("VI_1")
	if _, err := h.d.StepDown(h.ctx, "VI_1", time.Minute); err != nil {
		t.Fatal(err)
	}
	h.s.await("VI_1 backup", func() bool { return h.state("VI_1") == "backup" })
	// The step-down's priority comes after the transition, and posts
	// nothing to the daemon (the instance's goroutine owns it): polled.
	waitFor(t, "VI_1 stepped down", func() bool { return h.status("VI_1").Priority == stepDownPriority })
	if err := h.reload(vrrpSection(vrrpInstanceYAML("VI_1", 51, 120, "192.168.0.100", "192.168.0.101"))); err != nil {
		t.Fatal(err)
	}
	if st := h.status("VI_1"); st.State != "backup" || st.Priority != stepDownPriority || st.SteppedDownUntil.IsZero() {
		t.Errorf("after the reload: %+v, want still stepped down", st)
	}
	h.fv.clock.Advance(time.Minute)
	// The hold's end changes the priority alone: polled, as above.
	waitFor(t, "VI_1 back at 120", func() bool { return h.status("VI_1").Priority == 120 })
}
