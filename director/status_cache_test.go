package director

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
	"github.com/lvskit/lvskit/director/statusapi"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// The status of a service, once built, is kept; it must still follow
// every change: a health transition, a write lvsd makes, a repair of
// drift, a reload. The test drives the daemon's parts by hand and
// publishes after each, as handle does.
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
	d.publish()
	if got := rsOf(1, 0); got.KernelWeight != 1 {
		t.Errorf("before the write the kernel weight is %d, want 1 still", got.KernelWeight)
	}
	d.applyDirty()
	d.publish()
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
	d.handle(t0.Add(time.Minute), resyncDue{})
	if st := d.Status(); !st.Services[2].InKernel || st.Services[2].RealServers[1].KernelWeight != 1 {
		t.Errorf("after the repair: %+v", st.Services[2])
	}
	// What an earlier request got is its own: later changes do not
	// reach into it.
	if first.Services[1].RealServers[0].KernelWeight != 1 {
		t.Errorf("an earlier snapshot changed: %+v", first.Services[1].RealServers[0])
	}
}

// The status API serves lvsd's services from their cached encodings:
// its bytes are encoding/json's encoding of Daemon.Status, before and
// after changes (a flap, a write, a reload), and the ETag changes with
// them.
func TestEncodedStatusIsTheStatusAsEncodingJSONWritesIt(t *testing.T) {
	f := ipvstest.New()
	d, ids := statusBenchDaemon(t, f, 20, 3)
	h := statusapi.NewEncodedStatusHandler(d.EncodedStatus)
	serve := func(header ...string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/status", nil)
		if len(header) == 2 {
			req.Header.Set(header[0], header[1])
		}
		h.ServeHTTP(rec, req)
		return rec
	}
	check := func(what string) string {
		t.Helper()
		rec := serve()
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(d.Status()); err != nil {
			t.Fatal(err)
		}
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), want.Bytes()) {
			t.Fatalf("%s: GET /status (%d) differs from encoding/json's Status:\n got %.300s\nwant %.300s", what, rec.Code, rec.Body.Bytes(), want.Bytes())
		}
		if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(want.Len()) {
			t.Errorf("%s: Content-Length %s, body %d bytes", what, got, want.Len())
		}
		return rec.Header().Get("ETag")
	}
	tags := map[string]string{}
	tag := func(what string) {
		t.Helper()
		e := check(what)
		if prev, ok := tags[e]; ok {
			t.Errorf("%s: ETag %s is the one of %s", what, e, prev)
		}
		tags[e] = what
	}
	tag("start")
	if again := check("again"); tags[again] != "start" {
		t.Errorf("an unchanged status got a new ETag %s", again)
	}
	d.onTransition(health.Transition{Target: ids[7], From: health.StateUp, To: health.StateDown, Time: time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC), Reason: "2 of 2 failures: <connection> refused & \"gone\""})
	d.publish()
	tag("a transition")
	d.applyDirty()
	d.publish()
	tag("its write")
	path := d.opts.ConfigPath
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Replace(cfg, []byte("scheduler: wrr"), []byte("scheduler: rr"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.reload(); err != nil {
		t.Fatal(err)
	}
	d.publish()
	tag("a reload")

	// A client that has the current status is told so, with no body.
	cur := serve().Header().Get("ETag")
	if rec := serve("If-None-Match", cur); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("If-None-Match: %s: %d with %d bytes, want 304 and none", cur, rec.Code, rec.Body.Len())
	}
	if rec := serve("If-None-Match", `"0000000000000000"`); rec.Code != 200 {
		t.Errorf("If-None-Match with an old tag: %d, want 200", rec.Code)
	}
}

// Requests encode services outside the daemon's lock while transitions
// change them: run under -race, with two clients and flaps at once.
func TestEncodedStatusUnderConcurrentRequestsAndFlaps(t *testing.T) {
	d, ids := statusBenchDaemon(t, ipvstest.New(), 50, 4)
	h := statusapi.NewEncodedStatusHandler(d.EncodedStatus)
	done := make(chan []int)
	go func() {
		var codes []int
		for range 30 {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
			codes = append(codes, rec.Code)
		}
		done <- codes
	}()
	statusLatencies(t, d, ids, h, 30, 500, new(sync.Mutex), nil)
	if codes := <-done; slices.ContainsFunc(codes, func(c int) bool { return c != 200 }) {
		t.Errorf("the other client's answers: %v", codes)
	}
	// Once the flaps stop, what is served is the status again.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	var want bytes.Buffer
	json.NewEncoder(&want).Encode(d.Status())
	if !bytes.Equal(rec.Body.Bytes(), want.Bytes()) {
		t.Error("after concurrent requests and flaps, GET /status differs from encoding/json's Status")
	}
}

// A check result is in the status from the moment it is out, without
// the loop: the status API reads the scheduler's last results for the
// services checked since their status was built, and encodes again
// only those.
func TestStatusShowsCheckResultsWithoutTheLoop(t *testing.T) {
	d, ids := statusBenchDaemon(t, ipvstest.New(), 3, 2)
	checks := map[string]health.Status{}
	d.status.lookup = func(id string) (health.Status, bool) { // the scheduler's Lookup
		c, ok := checks[id]
		return c, ok
	}
	snap := d.snapshot()
	encoded := func() statusapi.Encoded {
		t.Helper()
		e, err := d.EncodedStatus()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	service := func(e statusapi.Encoded, i int) ServiceStatus {
		t.Helper()
		var st ServiceStatus
		if err := json.Unmarshal(e.Spans[0].Services[i].JSON, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	before := encoded()

	// A result of the second service's first real server.
	svc := d.order[1]
	rs := d.desired[svc].RealServers[0].Key()
	id := ids[slices.IndexFunc(ids, func(id string) bool { return d.targets[id].services[0] == svc && d.targets[id].rs == rs })]
	at := t0.Add(3 * time.Second)
	checks[id] = health.Status{ID: id, State: health.StateUp, Since: t0, Checked: true, Last: health.Result{Up: true, Reason: "connected to " + rs.String(), Time: at}}
	d.onResult(id, checks[id].Last)

	if d.snapshot() != snap {
		t.Error("a check result published a snapshot; the loop has nothing to do for it")
	}
	if evs := d.inbox.take(); len(evs) != 0 {
		t.Errorf("a check result posted %v to the loop, want nothing", evs)
	}
	want := func(what string, got RealServerStatus) {
		t.Helper()
		if got.LastResult != "connected to "+rs.String() || !got.LastCheck.Equal(at) || got.Health != "up" {
			t.Errorf("%s: %s shows last result %q at %v, health %s; want the result just out", what, rs, got.LastResult, got.LastCheck, got.Health)
		}
	}
	want("Status", d.Status().Services[1].RealServers[0])
	after := encoded()
	want("the encoded status", service(after, 1).RealServers[0])
	if a, b := after.Spans[0].Services, before.Spans[0].Services; a[0].Gen != b[0].Gen || a[2].Gen != b[2].Gen || a[1].Gen == b[1].Gen {
		t.Errorf("encodings' generations before %d %d %d, after %d %d %d: want only the checked service's encoded again", b[0].Gen, b[1].Gen, b[2].Gen, a[0].Gen, a[1].Gen, a[2].Gen)
	}
	if again := encoded(); again.Spans[0].Gen != after.Spans[0].Gen {
		t.Error("with no result since, the next request joined the services again")
	}

	// The next result replaces it; a transition's rebuild by the loop
	// keeps it.
	at = at.Add(time.Second)
	c := checks[id]
	c.Last.Time = at
	checks[id] = c
	d.onResult(id, c.Last)
	want("Status after the next result", d.Status().Services[1].RealServers[0])
	want("the encoded status after the next result", service(encoded(), 1).RealServers[0])
	d.status.invalidate([]ipvs.ServiceKey{svc})
	d.publish()
	want("rebuilt by the loop", service(encoded(), 1).RealServers[0])
}

// A large service's kernel weights (looked up in a map, not searched
// for one by one) are each real server's own, and -1 for one the
// kernel does not have.
func TestStatusKernelWeightsOfALargeService(t *testing.T) {
	f := ipvstest.New()
	d, _ := statusBenchDaemon(t, f, 1, 40)
	k := d.order[0]
	gone := d.desired[k].RealServers[17]
	if err := f.DeleteRealServer(k, gone.Key()); err != nil {
		t.Fatal(err)
	}
	rss, err := f.RealServers(k)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rss { // drift: each real server at a weight of its own
		r.Weight = int32(100 + i)
		if err := f.UpdateRealServer(k, r); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int32{gone.Key().String(): -1}
	for i, r := range rss {
		want[r.Key().String()] = int32(100 + i)
	}
	d.status.kernelAll = true // as a resync that read the kernel back would
	if err := d.rec.ReadKernel(); err != nil {
		t.Fatal(err)
	}
	d.publish()
	for _, rs := range d.Status().Services[0].RealServers {
		if w, ok := want[rs.Address]; !ok || rs.KernelWeight != w {
			t.Errorf("%s: kernel weight %d, want %d", rs.Address, rs.KernelWeight, w)
		}
	}
}
