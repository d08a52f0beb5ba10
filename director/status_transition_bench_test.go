package director

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
)

// transitionBenchDaemon is a daemon with one service of realServers
// HTTP-checked real servers on the fake kernel, applied and published,
// and its real servers' health target IDs in config order. Its health
// scheduler does not run: transitions are handed to the loop's step
// function as the scheduler posts them.
func transitionBenchDaemon(tb testing.TB, realServers int) (*Daemon, []string) {
	var b strings.Builder
	b.WriteString("lvsd:\n  resync_interval: 1h\nvirtual_services:\n")
	b.WriteString("  - {protocol: tcp, address: 10.100.0.1, port: 80, scheduler: wrr, health_check: {type: http, path: /health, interval: 1h}, real_servers: [")
	for j := range realServers {
		if j > 0 {
			b.WriteString(", ")
		}
		rip := netip.AddrFrom4([4]byte{10, 201, byte(j >> 8), byte(j%250 + 1)})
		fmt.Fprintf(&b, "{address: %v, port: %d, forwarding: masquerade}", rip, 8000+j)
	}
	b.WriteString("]}\n")
	d := appliedDaemon(tb, ipvstest.New(), b.String())
	k := d.order[0]
	ds := d.desired[k]
	ids := make([]string, len(ds.RealServers))
	for i, r := range ds.RealServers {
		ids[i] = targetID(ds.HealthKey(), r.Key())
		if _, ok := d.targets[ids[i]]; !ok {
			tb.Fatalf("no health target %q", ids[i])
		}
	}
	return d, ids
}

// benchTransition measures what the daemon's loop does for one health
// transition of one real server of a service of realServers: the
// transition's state, metrics and timeline, the status published before
// and after the write it causes, the expansion and the write to the
// (fake) kernel, as handle does for a healthChanged event. Each
// operation takes the next real server down, or up again once all are
// down, as a rack failing and coming back would.
func benchTransition(b *testing.B, realServers int) {
	d, ids := transitionBenchDaemon(b, realServers)
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	down := make([]bool, len(ids))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		at = at.Add(time.Millisecond)
		tr := health.Transition{Target: ids[i], From: health.StateUp, To: health.StateDown, Time: at, Reason: "2 of 2 failures: HTTP 503"}
		if down[i] {
			tr.From, tr.To, tr.Reason = health.StateDown, health.StateUp, "1 of 1 successes"
		}
		down[i] = !down[i]
		d.handle(at, healthChanged{[]health.Transition{tr}})
		i = (i + 1) % len(ids)
	}
	b.StopTimer()
	// The last transition shows: the benchmark measured the real path.
	last := (i + len(ids) - 1) % len(ids)
	if got, want := d.Status().Services[0].RealServers[last].KernelWeight, map[bool]int32{true: -1, false: 1}[down[last]]; got != want {
		b.Fatalf("real server %d: kernel weight %d after its transition, want %d", last, got, want)
	}
}

// BenchmarkTransition1000 is one real server's health transition in a
// service of 1,000 (a rack dying: n transitions, each publishing the
// service's status).
func BenchmarkTransition1000(b *testing.B) { benchTransition(b, 1000) }

// BenchmarkTransition10 is the same in a service of 10.
func BenchmarkTransition10(b *testing.B) { benchTransition(b, 10) }
