package director

import (
	"slices"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// The status of a service, once built, is kept; it must still follow
// every change: a health transition, a write lvsd makes, a repair of
// drift, a reload.
func TestStatusFollowsChangesOfACachedService(t *testing.T) {
	f := ipvstest.New()
	d, ids := statusBenchDaemon(t, f, 3, 2)
	rsOf := func(svc, rs int) RealServerStatus { return d.Status().Services[svc].RealServers[rs] }
	if got := rsOf(1, 0); got.KernelWeight != 1 || got.Health != "unknown" {
		t.Fatalf("before any change: %+v", got)
	}
	first := d.Status()

	// A transition removes the real server (on_failure's default):
	// the kernel weight follows the write.
	id := ids[slices.IndexFunc(ids, func(id string) bool {
		ref := d.targets[id]
		return ref.services[0] == d.order[1] && ref.rs.Address == d.desired[d.order[1]].RealServers[0].Address
	})]
	d.onTransition(health.Transition{Target: id, From: health.StateUp, To: health.StateDown, Time: t0, Reason: "2 of 2 failures: connection refused"})
	if got := rsOf(1, 0); got.KernelWeight != 1 {
		t.Errorf("before the write the kernel weight is %d, want 1 still", got.KernelWeight)
	}
	d.applyDirty()
	if got := rsOf(1, 0); got.KernelWeight != -1 {
		t.Errorf("after the removal the kernel weight is %d, want -1 (not in the kernel)", got.KernelWeight)
	}
	if st := d.Status(); st.Services[1].UpWeight != 1 {
		t.Errorf("up weight %d, want 1 of 2", st.Services[1].UpWeight)
	}

	// Drift repaired by a resync shows the kernel as lvsd left it.
	k := d.order[2]
	if err := f.DeleteService(k); err != nil {
		t.Fatal(err)
	}
	if _, err := d.rec.Resync(t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st := d.Status(); !st.Services[2].InKernel || st.Services[2].RealServers[1].KernelWeight != 1 {
		t.Errorf("after the repair: %+v", st.Services[2])
	}
	// What an earlier request got is its own: later changes do not
	// reach into it.
	if first.Services[1].RealServers[0].KernelWeight != 1 {
		t.Errorf("an earlier snapshot changed: %+v", first.Services[1].RealServers[0])
	}
}
