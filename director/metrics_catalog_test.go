package director

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/director/vrrp"
)

// TestMetricsCatalogGolden writes every family lvsd exports (all but the
// Go runtime's and the process's), each with its labels filled in, to
// testdata/metrics_catalog.golden. The Grafana dashboard and the alerting
// rules under packaging/ are checked against this file: a metric or
// label they use must be in it.
func TestMetricsCatalogGolden(t *testing.T) {
	m, err := NewMetrics(MetricsOptions{
		ProcRoot:        procRoot(t, "lab"),
		ReconcilerStats: fixtureStats,
		Version:         "1.2.0",
		GoVersion:       "go1.26.8",
	})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 3, 0, time.UTC)
	const web, rs1, rs2 = "TCP 10.0.0.100:80", "10.0.2.11:80", "10.0.2.12:80"
	m.ObserveCheck(web, rs1, health.Result{Up: true, Time: at, Duration: time.Millisecond})
	m.ObserveCheck(web, rs2, health.Result{Err: fmt.Errorf("connect %s: %w", rs2, health.ErrTimeout), Time: at, Duration: time.Second})
	m.SetHealth(web, rs1, health.StateUp)
	m.SetHealth(web, rs2, health.StateDown)
	m.ObserveReload(at, nil)
	m.CountError("ipvs")
	m.registerVRRP(func() vrrpSnapshot {
		return vrrpSnapshot{
			instances: []vrrpMetricRow{{
				name: "VI_1", iface: "eth0", vrid: 51, state: vrrp.Master, priority: 150,
				stats:  vrrp.InstanceStats{AdvertsSent: 10, BecameMaster: 1},
				tracks: []statusapi.VRRPTrack{{Kind: "interface", Name: "eth1", State: "up"}},
			}},
			transports: []vrrpTransportRow{{iface: "eth0", family: "IPv4"}},
		}
	})
	checkGolden(t, "metrics_catalog.golden", exposition(t, gather(t, m)))
}

// TestOnlyTimedOutChecksCountAsTimeouts: lvsd_check_timeouts_total is
// what the "checks timing out" alert reads; a refused connection is a
// failure but not a timeout.
func TestOnlyTimedOutChecksCountAsTimeouts(t *testing.T) {
	m := newTestMetrics(t, procRoot(t, "lab"), nil)
	const web, rs = "TCP 10.0.0.100:80", "10.0.2.11:80"
	m.ObserveCheck(web, rs, health.Result{Err: errors.New("connect: connection refused")})
	m.ObserveCheck(web, rs, health.Result{Err: fmt.Errorf("reading body: %w", health.ErrTimeout)})
	m.ObserveCheck(web, rs, health.Result{Err: fmt.Errorf("connect: %w", health.ErrTimeout)})
	m.ObserveCheck(web, rs, health.Result{Up: true})
	f := family(gather(t, m), "lvsd_check_timeouts_total")
	if f == nil || len(f.Metric) != 1 {
		t.Fatalf("lvsd_check_timeouts_total: %v, want one series", f)
	}
	if got := value(f.Metric[0]); got != 2 {
		t.Errorf("lvsd_check_timeouts_total = %v, want 2 (of 3 failures, 2 timed out)", got)
	}
	m.ForgetRealServer(web, rs)
	if f := family(gather(t, m), "lvsd_check_timeouts_total"); f != nil {
		t.Errorf("after ForgetRealServer, lvsd_check_timeouts_total still has %v", f.Metric)
	}
}

// TestBuildInfoOnlyWhenStamped: without a version there is no build-info
// series to join on, rather than one labelled "".
func TestBuildInfoOnlyWhenStamped(t *testing.T) {
	if f := family(gather(t, newTestMetrics(t, procRoot(t, "lab"), nil)), "lvsd_build_info"); f != nil {
		t.Errorf("lvsd_build_info without a version: %v", f)
	}
}
