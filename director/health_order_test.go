package director

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
)

// The health scheduler hands transitions over from the goroutines that
// ran the checks, after releasing its lock: a check that fails and the
// next one that passes can reach the daemon in the wrong order. The BGP
// lab saw "down -> up" arrive before "unknown -> down" and a real server
// left at weight 0 while its checker said up. The daemon keeps the
// latest transition of each target, whatever the order of delivery.
func TestHealthTransitionsDeliveredOutOfOrderLeaveTheLatestState(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order []int // indexes into the transitions, in delivery order
		want  int32
	}{
		{"in order", []int{0, 1}, 3},
		{"reversed", []int{1, 0}, 3},
		{"down again, middle one late", []int{0, 2, 1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lvsd.yaml")
			writeConfig(t, path, fmt.Sprintf(daemonConfig, "quiesce", "9", ""))
			f := ipvstest.New()
			d, err := NewDaemon(DaemonOptions{ConfigPath: path, Client: f, StateDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.rec.ReadKernel(); err != nil {
				t.Fatal(err)
			}
			if err := d.apply(d.cfg); err != nil {
				t.Fatal(err)
			}
			id := ""
			for k := range d.targets {
				if d.targets[k].rs.String() == "10.0.0.1:80" {
					id = k
				}
			}
			if id == "" {
				t.Fatalf("no health target for 10.0.0.1:80 in %v", d.targets)
			}
			t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
			trs := []health.Transition{
				{Target: id, From: health.StateUnknown, To: health.StateDown, Reason: "2 of 2 failures", Time: t0},
				{Target: id, From: health.StateDown, To: health.StateUp, Reason: "1 of 1 successes", Time: t0.Add(100 * time.Millisecond)},
				{Target: id, From: health.StateUp, To: health.StateDown, Reason: "2 of 2 failures", Time: t0.Add(300 * time.Millisecond)},
			}
			var batch []health.Transition
			for _, i := range tc.order {
				batch = append(batch, trs[i])
			}
			d.handle(t0, healthChanged{batch})
			if w := weightOf(f, "192.168.0.100:80", "10.0.0.1"); w != tc.want {
				t.Errorf("weight of 10.0.0.1 after delivering %v = %d, want %d (the latest transition's)", tc.order, w, tc.want)
			}
		})
	}
}
