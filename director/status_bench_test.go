package director

import (
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
	"github.com/lvskit/lvskit/director/reconcile"
	"github.com/lvskit/lvskit/director/statusapi"
)

// statusCopyingEverything is Daemon.Status as it was before the
// per-service cache (issue 14 part 4): it copies the kernel table and
// every health status, sorted, and builds every service, per request.
// Kept as the benchmark's baseline.
func (d *Daemon) statusCopyingEverything() Status {
	checks := map[string]health.Status{}
	for _, s := range d.sched.Status() {
		checks[s.ID] = s
	}
	kernel := d.rec.Kernel()
	d.mu.Lock()
	defer d.mu.Unlock()
	st := Status{Config: d.opts.ConfigPath, Loaded: d.loaded, Events: d.timeline.Events()}
	for _, k := range d.order {
		ds := d.desired[k]
		ke := kernel[k]
		ss := ServiceStatus{Key: k.String(), Name: ds.Name, Source: ds.Source, Scheduler: ds.Service.Scheduler, InKernel: ke != nil}
		ss.UpWeight = reconcile.UpWeight(ds, d.upLocked(k))
		for _, r := range ds.RealServers {
			rs := RealServerStatus{
				Address: r.Key().String(), Forwarding: r.Forwarding.String(), Weight: r.Weight,
				KernelWeight: kernelWeight(ke, r.Key()), Health: "up",
				Check: describeCheck(r.HealthCheck, r.CheckTarget),
			}
			if c, ok := checks[targetID(ds.HealthKey(), r.Key())]; ok {
				rs.Health, rs.Since = c.State.String(), c.Since
				if c.Checked {
					rs.LastResult, rs.LastCheck = c.Last.Reason, c.Last.Time
				}
				if tr, ok := d.downs[targetID(ds.HealthKey(), r.Key())]; ok && c.State == health.StateDown {
					rs.Why = tr.Reason + " at " + tr.Time.Format("15:04:05")
				}
			}
			ss.RealServers = append(ss.RealServers, rs)
		}
		st.Services = append(st.Services, ss)
	}
	return st
}

// statusBenchDaemon is a daemon with services x realServers, every real
// server TCP-checked, applied through client. Its health scheduler does
// not run: flaps are fed to it as the scheduler would (onTransition,
// then applyDirty as the daemon's loop does).
func statusBenchDaemon(tb testing.TB, client ipvs.Client, services, realServers int) (*Daemon, []string) {
	var b strings.Builder
	b.WriteString("lvsd:\n  resync_interval: 1h\nvirtual_services:\n")
	for i := range services {
		vip := netip.AddrFrom4([4]byte{10, 100 + byte(i>>16), byte(i >> 8), byte(i)})
		fmt.Fprintf(&b, "  - {protocol: tcp, address: %v, port: 80, scheduler: wrr, health_check: {type: tcp, interval: 1h}, real_servers: [", vip)
		for j := range realServers {
			// Outside the lab's subnets, where .0 and .255 are no broadcast.
			rip := netip.AddrFrom4([4]byte{10, 200 + byte(j), byte(i >> 8), byte(i)})
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "{address: %v}", rip)
		}
		b.WriteString("]}\n")
	}
	path := filepath.Join(tb.TempDir(), "lvsd.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	d, err := NewDaemon(DaemonOptions{ConfigPath: path, Client: client, StateDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.rec.ReadKernel(); err != nil {
		tb.Fatal(err)
	}
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	if err := d.apply(cfg); err != nil {
		tb.Fatal(err)
	}
	d.mu.Lock()
	ids := make([]string, 0, len(d.targets))
	for id := range d.targets {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	slices.Sort(ids)
	return d, ids
}

// statusLatencies serves the status API's GET /status from status, as
// lvstop polls it, n times while real servers flap at about flapsPerSec,
// and returns each request's latency, sorted.
func statusLatencies(tb testing.TB, d *Daemon, ids []string, status func() Status, n int, flapsPerSec float64) []time.Duration {
	h := statusapi.NewStatusHandler(status)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		down := map[string]bool{}
		tick := time.NewTicker(time.Duration(float64(time.Second) / flapsPerSec))
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			id := ids[rng.IntN(len(ids))]
			tr := health.Transition{Target: id, From: health.StateUp, To: health.StateDown, Time: time.Now(), Reason: "2 of 2 failures: connection refused"}
			if down[id] {
				tr.From, tr.To, tr.Reason = health.StateDown, health.StateUp, "1 of 1 successes"
			}
			down[id] = !down[id]
			d.onTransition(tr)
			d.applyDirty()
		}
	})
	lat := make([]time.Duration, 0, n)
	for range n {
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
		lat = append(lat, time.Since(start))
		if rec.Code != 200 {
			tb.Fatalf("GET /status: %d %s", rec.Code, rec.Body.String()[:min(200, rec.Body.Len())])
		}
	}
	close(stop)
	wg.Wait()
	slices.Sort(lat)
	return lat
}

func pct(sorted []time.Duration, p int) time.Duration { return sorted[(len(sorted)-1)*p/100] }

// benchStatus measures GET /status at services x 4 while health flaps:
// the cached Status against the baseline that copies everything, in
// turns, side by side.
func benchStatus(b *testing.B, client ipvs.Client, services, requests int) {
	d, ids := statusBenchDaemon(b, client, services, 4)
	var before, after []time.Duration
	for range 3 {
		before = append(before, statusLatencies(b, d, ids, d.statusCopyingEverything, requests, 50)...)
		after = append(after, statusLatencies(b, d, ids, d.Status, requests, 50)...)
	}
	slices.Sort(before)
	slices.Sort(after)
	ms := func(t time.Duration) float64 { return float64(t.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(before, 50)), "before-p50-ms")
	b.ReportMetric(ms(pct(before, 99)), "before-p99-ms")
	b.ReportMetric(ms(pct(after, 50)), "after-p50-ms")
	b.ReportMetric(ms(pct(after, 99)), "after-p99-ms")
	b.Logf("GET /status at %d x 4, %d requests each, 50 flaps/s: copying everything p50 %v p99 %v; cached p50 %v p99 %v (p99 %.1fx faster)",
		services, len(after), pct(before, 50), pct(before, 99), pct(after, 50), pct(after, 99),
		pct(before, 99).Seconds()/pct(after, 99).Seconds())
}

// BenchmarkStatus10kx4 is benchStatus on the fake kernel (make bench).
func BenchmarkStatus10kx4(b *testing.B) {
	benchStatus(b, ipvstest.New(), 10000, 30)
}
