package bgp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	vip := func(up ...[2]int) VIP {
		v := VIP{Address: netip.MustParseAddr("192.0.2.1")}
		for i, u := range up {
			v.Services = append(v.Services, ServiceHealth{Name: "svc" + string(rune('A'+i)), Up: u[0], Total: u[1]})
		}
		return v
	}
	run := Inputs{Phase: Running, Low: 0.5, High: 0.75}
	cases := []struct {
		name      string
		in        Inputs
		vip       VIP
		announced bool
		want      bool
		reason    string
	}{
		{"starting withdraws even when healthy", Inputs{Phase: Starting}, vip([2]int{4, 4}), true, false, "first apply"},
		{"stopping withdraws", Inputs{Phase: Stopping}, vip([2]int{4, 4}), true, false, "stopping"},
		{"lost kernel withdraws", Inputs{Phase: Running, KernelErr: errors.New("netlink: no such family")}, vip([2]int{4, 4}), true, false, "IPVS writes failing: netlink"},
		{"healthy is announced", run, vip([2]int{4, 4}, [2]int{2, 2}), false, true, "high watermark 75%"},
		{"no service is withdrawn", run, vip(), false, false, "no service"},
		{"announced stays above low", run, vip([2]int{2, 4}), true, true, "low watermark 50%"},
		{"announced goes below low", run, vip([2]int{4, 4}, [2]int{1, 4}), true, false, "svcB has 1 of 4 real servers up, below the low watermark 50%"},
		{"withdrawn stays between watermarks", run, vip([2]int{2, 4}), false, false, "svcA has 2 of 4 real servers up, below the high watermark 75%"},
		{"withdrawn comes back at high", run, vip([2]int{3, 4}), false, true, "high watermark"},
		{"default watermarks: one up is enough", Inputs{Phase: Running}, vip([2]int{1, 9}), false, true, ""},
		{"default watermarks: none up withdraws", Inputs{Phase: Running}, vip([2]int{1, 9}, [2]int{0, 3}), true, false, "svcB has no real server up"},
		{"no real servers configured is withdrawn", Inputs{Phase: Running}, vip([2]int{0, 0}), false, false, "no real server up"},
		{"both: backup withdraws", run, VIP{NeedMaster: true, Services: vip([2]int{4, 4}).Services}, true, false, "not VRRP master"},
		{"both: master announces", run, VIP{NeedMaster: true, Master: true, Services: vip([2]int{4, 4}).Services}, false, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.in, c.vip, c.announced)
			if d.Announce != c.want || !strings.Contains(d.Reason, c.reason) {
				t.Errorf("Decide = %+v, want announce=%v with a reason containing %q", d, c.want, c.reason)
			}
		})
	}
}

// TestWatermarksDoNotFlap walks a service's health down and up: the route
// changes only at the watermarks, not on every step.
func TestWatermarksDoNotFlap(t *testing.T) {
	in := Inputs{Phase: Running, Low: 0.5, High: 0.75}
	ups := []int{4, 3, 2, 1, 2, 3, 2, 1, 2, 3, 4}
	want := []bool{true, true, true, false, false, true, true, false, false, true, true}
	announced := false
	for i, up := range ups {
		announced = Decide(in, VIP{Services: []ServiceHealth{{Name: "s", Up: up, Total: 4}}}, announced).Announce
		if announced != want[i] {
			t.Fatalf("step %d (%d of 4 up): announced=%v, want %v", i, up, announced, want[i])
		}
	}
}
