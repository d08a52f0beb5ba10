package reconcile_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
	"github.com/lvskit/lvskit/director/reconcile"
	"github.com/lvskit/lvskit/director/reconcile/reconciletest"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func svc(vip string) ipvs.Service {
	return ipvs.Service{ServiceKey: ipvs.TCPKey(netip.MustParseAddrPort(vip)), Scheduler: "wrr", NetmaskBits: 32}
}

func real(addr string, w int32) ipvs.RealServer {
	return ipvs.RealServer{Address: netip.MustParseAddr(addr), Port: 80, Forwarding: ipvs.DirectRoute, Weight: w}
}

func tableOf(entries ...*reconcile.Entry) reconcile.Table {
	t := reconcile.Table{}
	for _, e := range entries {
		t[e.Service.ServiceKey] = e
	}
	return t
}

func writes(f *ipvstest.Fake) []string {
	var out []string
	for _, c := range f.Writes() {
		out = append(out, c.String())
	}
	return out
}

func newTestReconciler(t *testing.T, f *ipvstest.Fake, dir string) *reconcile.Reconciler {
	t.Helper()
	r, err := reconcile.NewReconciler(reconcile.ReconcilerOptions{Client: f, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resync(t0); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestColdApplyOrdersServicesBeforeTheirRealServers(t *testing.T) {
	f := ipvstest.New()
	r := newTestReconciler(t, f, "")
	res := r.SetDesired(t0, tableOf(
		&reconcile.Entry{Service: svc("192.168.0.101:80"), RealServers: []ipvs.RealServer{real("10.0.0.3", 1), real("10.0.0.2", 1)}},
		&reconcile.Entry{Service: svc("192.168.0.100:80"), RealServers: []ipvs.RealServer{real("10.0.0.1", 2)}},
	))
	want := []string{
		"AddService TCP 192.168.0.100:80 wrr",
		"AddRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=2",
		"AddService TCP 192.168.0.101:80 wrr",
		"AddRealServer TCP 192.168.0.101:80 -> 10.0.0.2:80 Route w=1",
		"AddRealServer TCP 192.168.0.101:80 -> 10.0.0.3:80 Route w=1",
	}
	if diff := cmp.Diff(want, writes(f)); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	if len(res.Sent) != 5 || len(res.Failures) != 0 {
		t.Errorf("result: %d sent, %v failures", len(res.Sent), res.Failures)
	}
}

func TestReloadWithNoChangeSendsNoWrites(t *testing.T) {
	f := ipvstest.New()
	r := newTestReconciler(t, f, "")
	desired := tableOf(&reconcile.Entry{Service: svc("192.168.0.100:80"), RealServers: []ipvs.RealServer{real("10.0.0.1", 1)}})
	r.SetDesired(t0, desired)
	f.ResetCalls()
	r.SetDesired(t0, desired)
	if _, err := r.Resync(t0); err != nil {
		t.Fatal(err)
	}
	if w := writes(f); len(w) != 0 {
		t.Errorf("a no-change reload and resync sent %v", w)
	}
}

func TestEditsAreInPlace(t *testing.T) {
	f := ipvstest.New()
	r := newTestReconciler(t, f, "")
	s := svc("192.168.0.100:80")
	r.SetDesired(t0, tableOf(&reconcile.Entry{Service: s, RealServers: []ipvs.RealServer{real("10.0.0.1", 1), real("10.0.0.2", 1)}}))
	f.ResetCalls()

	s.Scheduler, s.Flags, s.Timeout = "wlc", ipvs.FlagPersistent, 300
	r.SetDesired(t0, tableOf(&reconcile.Entry{Service: s, RealServers: []ipvs.RealServer{real("10.0.0.1", 5), real("10.0.0.3", 1)}}))
	want := []string{
		"UpdateService TCP 192.168.0.100:80 wlc",
		"UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=5",
		"AddRealServer TCP 192.168.0.100:80 -> 10.0.0.3:80 Route w=1",
		"DeleteRealServer TCP 192.168.0.100:80 -> 10.0.0.2:80",
	}
	if diff := cmp.Diff(want, writes(f)); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
}

func TestRemovalDeletesRealServersBeforeTheirService(t *testing.T) {
	f := ipvstest.New()
	r := newTestReconciler(t, f, "")
	keep := &reconcile.Entry{Service: svc("192.168.0.100:80"), RealServers: []ipvs.RealServer{real("10.0.0.1", 1)}}
	gone := &reconcile.Entry{Service: svc("192.168.0.99:80"), RealServers: []ipvs.RealServer{real("10.0.0.8", 1), real("10.0.0.9", 1)}}
	r.SetDesired(t0, tableOf(keep, gone))
	f.ResetCalls()
	r.SetDesired(t0, tableOf(keep, &reconcile.Entry{Service: svc("192.168.0.200:80")}))
	want := []string{
		"AddService TCP 192.168.0.200:80 wrr",
		"DeleteRealServer TCP 192.168.0.99:80 -> 10.0.0.8:80",
		"DeleteRealServer TCP 192.168.0.99:80 -> 10.0.0.9:80",
		"DeleteService TCP 192.168.0.99:80",
	}
	if diff := cmp.Diff(want, writes(f)); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	if r.Owned()[gone.Service.ServiceKey] {
		t.Error("a removed service is still owned")
	}
}

// TestRestartWithTheSameConfigWritesNothing: a restarted lvsd finds its
// services in the kernel and its state file, and must not touch them
// (deleting them "because nothing is desired yet" would drop traffic).
func TestRestartWithTheSameConfigWritesNothing(t *testing.T) {
	dir := t.TempDir()
	f := ipvstest.New()
	desired := tableOf(
		&reconcile.Entry{Service: svc("192.168.0.100:80"), RealServers: []ipvs.RealServer{real("10.0.0.1", 1), real("10.0.0.2", 2)}},
		&reconcile.Entry{Service: svc("192.168.0.101:80"), RealServers: []ipvs.RealServer{real("10.0.0.3", 1)}},
	)
	first := newTestReconciler(t, f, dir)
	first.SetDesired(t0, desired)
	f.ResetCalls()

	again, err := reconcile.NewReconciler(reconcile.ReconcilerOptions{Client: f, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Resync(t0); err != nil { // a resync before the config is known only reads
		t.Fatal(err)
	}
	again.SetDesired(t0, desired)
	if w := writes(f); len(w) != 0 {
		t.Errorf("restart with the same config wrote %v", w)
	}
}

func TestUnownedRulesAreNeverTouched(t *testing.T) {
	f := ipvstest.New()
	theirs := svc("172.16.0.1:443")
	f.AddService(theirs)
	f.AddRealServer(theirs.ServiceKey, real("172.16.0.2", 1))
	r := newTestReconciler(t, f, "")
	f.ResetCalls()
	res := r.SetDesired(t0, tableOf(&reconcile.Entry{Service: svc("192.168.0.100:80")}))
	for _, c := range f.Writes() {
		if c.Service.ServiceKey == theirs.ServiceKey {
			t.Errorf("touched an unowned service: %v", c)
		}
	}
	if !slices.Contains(res.Unowned, theirs.ServiceKey) {
		t.Errorf("unowned service not reported: %v", res.Unowned)
	}
}

func TestStateFileOwnershipSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	f := ipvstest.New()
	old := &reconcile.Entry{Service: svc("192.168.0.50:80"), RealServers: []ipvs.RealServer{real("10.0.0.5", 1)}}
	r := newTestReconciler(t, f, dir)
	r.SetDesired(t0, tableOf(old))
	theirs := svc("172.16.0.1:443")
	f.AddService(theirs)

	// lvsd restarts with a config that no longer has the old service: it
	// is still owned through the state file and so removed; theirs stays.
	f.ResetCalls()
	r2 := newTestReconciler(t, f, dir)
	r2.SetDesired(t0, tableOf(&reconcile.Entry{Service: svc("192.168.0.100:80")}))
	got := writes(f)
	if !slices.Contains(got, "DeleteService TCP 192.168.0.50:80") {
		t.Errorf("the previously owned service was not removed: %v", got)
	}
	if _, err := f.Service(theirs.ServiceKey); err != nil {
		t.Errorf("unowned service gone: %v", err)
	}
	owned, err := reconcile.LoadOwned(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(owned) != 1 || !owned[svc("192.168.0.100:80").ServiceKey] {
		t.Errorf("state file owns %v, want only the new service", owned)
	}
	fi, err := os.Stat(filepath.Join(dir, reconcile.StateFileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestStateFileIsNeverWrittenThroughASymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An attacker plants the temp name and the final name as links.
	os.Symlink(target, filepath.Join(dir, reconcile.StateFileName+".new"))
	if err := reconcile.SaveOwned(dir, map[ipvs.ServiceKey]bool{svc("192.168.0.1:80").ServiceKey: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Errorf("the link target was written: %q", b)
	}
	os.Remove(filepath.Join(dir, reconcile.StateFileName))
	os.Symlink(target, filepath.Join(dir, reconcile.StateFileName))
	if _, err := reconcile.LoadOwned(dir); err == nil {
		t.Error("LoadOwned followed a symlink")
	}
	linkDir := filepath.Join(t.TempDir(), "state")
	os.Symlink(t.TempDir(), linkDir)
	if err := reconcile.SaveOwned(linkDir, nil); err == nil {
		t.Error("SaveOwned wrote into a symlinked state directory")
	}
}

func TestResyncRepairsDrift(t *testing.T) {
	f := ipvstest.New()
	r := newTestReconciler(t, f, "")
	s := svc("192.168.0.100:80")
	r.SetDesired(t0, tableOf(&reconcile.Entry{Service: s, RealServers: []ipvs.RealServer{real("10.0.0.1", 1)}}))
	f.DeleteService(s.ServiceKey) // someone ran ipvsadm -D
	f.ResetCalls()
	res, err := r.Resync(t0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Drift != 1 || r.Stats().DriftRepairs != 1 {
		t.Errorf("drift = %d (stats %d), want 1", res.Drift, r.Stats().DriftRepairs)
	}
	want := []string{"AddService TCP 192.168.0.100:80 wrr", "AddRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=1"}
	if diff := cmp.Diff(want, writes(f)); diff != "" {
		t.Errorf("repair writes (-want +got):\n%s", diff)
	}
}

func TestAFailedOpIsRetriedWithBackoffAndDoesNotStopOthers(t *testing.T) {
	f := ipvstest.New()
	r := newTestReconciler(t, f, "")
	bad := real("10.0.0.66", 1)
	refuse := true
	f.Hook = func(c ipvstest.Call) error {
		if refuse && c.Op == ipvstest.OpAddRealServer && c.RealServer.Address == bad.Address {
			return errors.New("netlink: no buffer space available")
		}
		return nil
	}
	res := r.SetDesired(t0, tableOf(
		&reconcile.Entry{Service: svc("192.168.0.100:80"), RealServers: []ipvs.RealServer{real("10.0.0.1", 1), bad}},
		&reconcile.Entry{Service: svc("192.168.0.101:80"), RealServers: []ipvs.RealServer{real("10.0.0.2", 1)}},
	))
	if len(res.Failures) != 1 || res.Failures[0].Op.RealServer.Address != bad.Address {
		t.Fatalf("failures = %v, want the one real server", res.Failures)
	}
	if got, _ := f.RealServers(svc("192.168.0.101:80").ServiceKey); len(got) != 1 {
		t.Errorf("the other service was not written: %v", got)
	}

	f.ResetCalls()
	if res, next := r.Retry(t0.Add(500 * time.Millisecond)); len(res.Sent)+len(res.Failures) != 0 || !next.Equal(t0.Add(time.Second)) {
		t.Errorf("retried before the backoff: %+v, next %v", res, next)
	}
	res, _ = r.Retry(t0.Add(time.Second)) // still refused: backoff doubles
	if len(res.Failures) != 1 {
		t.Fatalf("second attempt: %+v", res)
	}
	refuse = false
	if res, next := r.Retry(t0.Add(2 * time.Second)); len(res.Sent) != 0 || !next.Equal(t0.Add(3*time.Second)) {
		t.Errorf("retried inside the doubled backoff: %+v next %v", res, next)
	}
	res, next := r.Retry(t0.Add(3 * time.Second))
	if len(res.Sent) != 1 || !next.IsZero() {
		t.Errorf("third attempt: sent %v, next %v; want the real server added and nothing left", res.Sent, next)
	}
}

func TestRealServersOfAFailedServiceAreSkipped(t *testing.T) {
	f := ipvstest.New()
	f.SetSchedulers("rr")
	r := newTestReconciler(t, f, "")
	res := r.SetDesired(t0, tableOf(&reconcile.Entry{Service: svc("192.168.0.100:80"), RealServers: []ipvs.RealServer{real("10.0.0.1", 1)}}))
	if len(res.Failures) != 2 || !errors.Is(res.Failures[0].Err, ipvs.ErrNotSupported) || res.Failures[1].Err != reconcile.ErrSkipped {
		t.Errorf("failures = %v, want the scheduler error then a skipped real server", res.Failures)
	}
	if n := len(f.Writes()); n != 1 {
		t.Errorf("%d writes, want only the AddService the kernel refused", n)
	}
}

// TestOneWeightChangeInTenThousandServicesIsOneWrite is the reconciler's
// scaling contract: a health transition touches one service, not the table.
func TestOneWeightChangeInTenThousandServicesIsOneWrite(t *testing.T) {
	f := ipvstest.New()
	r := newTestReconciler(t, f, "")
	desired := reconciletest.BigTable(10000, 4)
	r.SetDesired(t0, desired)
	f.ResetCalls()

	k := desired.Keys()[5000]
	e := desired[k]
	changed := &reconcile.Entry{Service: e.Service, RealServers: slices.Clone(e.RealServers)}
	changed.RealServers[2].Weight = 0
	r.SetService(t0, k, changed)
	if w := writes(f); len(w) != 1 || f.Calls()[0].Op != ipvstest.OpUpdateRealServer {
		t.Errorf("writes = %v, want one UpdateRealServer", w)
	}
	if n := len(f.Calls()); n != 1 {
		t.Errorf("%d calls, want 1: no reads of the kernel for a health change", n)
	}
	desired[k] = changed
	f.ResetCalls()
	r.SetDesired(t0, desired)
	if w := writes(f); len(w) != 0 {
		t.Errorf("reload after the change sent %v", w)
	}
}

func TestExpandAppliesHealth(t *testing.T) {
	ds := config.DesiredService{
		Service: svc("192.168.0.100:80"),
		RealServers: []config.DesiredRealServer{
			{RealServer: real("10.0.0.1", 3)}, {RealServer: real("10.0.0.2", 2)},
		},
		SorryServer: &ipvs.RealServer{Address: netip.MustParseAddr("10.0.0.99"), Port: 80, Forwarding: ipvs.Masquerade},
	}
	down := func(addrs ...string) func(ipvs.RealServerKey) bool {
		return func(k ipvs.RealServerKey) bool { return !slices.Contains(addrs, k.Address.String()) }
	}
	show := func(e *reconcile.Entry) string {
		s := ""
		for _, r := range e.RealServers {
			s += fmt.Sprintf("%v=%d ", r.Address, r.Weight)
		}
		return s
	}
	for _, tc := range []struct {
		onFailure config.OnFailure
		down      []string
		want      string
	}{
		{config.Quiesce, nil, "10.0.0.1=3 10.0.0.2=2 "},
		{config.Quiesce, []string{"10.0.0.2"}, "10.0.0.1=3 10.0.0.2=0 "},
		{config.Remove, []string{"10.0.0.2"}, "10.0.0.1=3 "},
		{config.Quiesce, []string{"10.0.0.1", "10.0.0.2"}, "10.0.0.1=0 10.0.0.2=0 10.0.0.99=1 "},
		{config.Remove, []string{"10.0.0.1", "10.0.0.2"}, "10.0.0.99=1 "},
	} {
		ds.OnFailure = tc.onFailure
		if got := show(reconcile.Expand(ds, down(tc.down...))); got != tc.want {
			t.Errorf("%s with %v down: %q, want %q", tc.onFailure, tc.down, got, tc.want)
		}
	}
	if w := reconcile.UpWeight(ds, down("10.0.0.1")); w != 2 {
		t.Errorf("UpWeight = %d, want 2", w)
	}
}

// BenchmarkOneChangeIn10000Services is the cost of a health transition in
// a large table, on the fake kernel: it must not grow with the table.
func BenchmarkOneChangeIn10000Services(b *testing.B) {
	f := ipvstest.New()
	r, err := reconcile.NewReconciler(reconcile.ReconcilerOptions{Client: f, StateDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	desired := reconciletest.BigTable(10000, 4)
	r.SetDesired(t0, desired)
	keys := desired.Keys()
	b.ResetTimer()
	for i := range b.N {
		k := keys[(i*37)%len(keys)]
		e := desired[k]
		changed := &reconcile.Entry{Service: e.Service, RealServers: slices.Clone(e.RealServers)}
		changed.RealServers[i%4].Weight = int32(i % 2)
		r.SetService(t0, k, changed)
		desired[k] = changed
	}
}
