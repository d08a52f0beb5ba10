package director

import (
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/reconcile"
)

// A service's real servers are described once per config load, not at
// each rebuild of its status: a reload that changes a real server's
// check, weight or forwarding shows the new ones, and so does the up
// weight, while the health a transition gave stays.
func TestReloadShowsTheRealServersAsTheNewConfigSaysThem(t *testing.T) {
	conf := func(path string, weight int, forwarding string) string {
		return `virtual_services:
  - address: 192.168.0.100
    port: 80
    health_check: {type: http, path: ` + path + `, connect_ip: 127.0.0.1, connect_port: 9, interval: 1h, timeout: 1s, rise: 1, fall: 1}
    real_servers:
      - {address: 10.0.0.1, weight: 3}
      - {address: 10.0.0.2, weight: ` + strconv.Itoa(weight) + `, forwarding: ` + forwarding + `}
`
	}
	s := startStepped(t, conf("/a", 2, "direct_route"), DaemonOptions{})
	s.step(s.health("10.0.0.1:80", health.StateUnknown, health.StateDown))
	st := s.Status().Services[0]
	if rs := st.RealServers[1]; rs.Check != "http GET /a on 127.0.0.1:9" || rs.Weight != 2 || rs.Forwarding != "Route" || st.UpWeight != 2 {
		t.Fatalf("before the reload: up weight %d, %+v", st.UpWeight, rs)
	}
	if err := s.reload(conf("/b", 5, "masquerade")); err != nil {
		t.Fatal(err)
	}
	st = s.Status().Services[0]
	rs := st.RealServers[1]
	if rs.Check != "http GET /b on 127.0.0.1:9" || rs.Weight != 5 || rs.Forwarding != "Masq" || rs.KernelWeight != 5 {
		t.Errorf("after the reload: %+v, want check /b, weight 5 (in the kernel too), masquerade", rs)
	}
	if rs := st.RealServers[0]; st.UpWeight != 5 || rs.KernelWeight != -1 || rs.Check != "http GET /b on 127.0.0.1:9" {
		t.Errorf("after the reload: up weight %d (want 5: the first is down still), first real server %+v (want out of the kernel, checked on /b)", st.UpWeight, rs)
	}
}

// kernelWeights finds each real server's weight in the kernel's copy of
// its service whether that lists them in the config's order (as lvsd
// writes them, without the removed ones) or in another (drift read
// back), and -1 for one the kernel does not have.
func TestKernelWeightsInAnyOrder(t *testing.T) {
	var keys []ipvs.RealServerKey
	var rs []ipvs.RealServer
	for i := range 12 {
		r := ipvs.RealServer{Address: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), Port: 80, Weight: int32(i + 1)}
		keys = append(keys, r.Key())
		rs = append(rs, r)
	}
	want := func(missing ...int) []int32 {
		w := make([]int32, len(keys))
		for i := range w {
			w[i] = int32(i + 1)
		}
		for _, i := range missing {
			w[i] = -1
		}
		return w
	}
	inOrder := &reconcile.Entry{RealServers: append(append([]ipvs.RealServer{}, rs[:3]...), rs[5:]...)}
	reversed := &reconcile.Entry{}
	for i := len(rs) - 1; i >= 0; i-- {
		if i != 7 {
			reversed.RealServers = append(reversed.RealServers, rs[i])
		}
	}
	for _, c := range []struct {
		name string
		e    *reconcile.Entry
		want []int32
	}{
		{"in order, 3 and 4 removed", inOrder, want(3, 4)},
		{"reversed, 7 missing", reversed, want(7)},
		{"not in the kernel", nil, []int32{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}},
	} {
		if got := kernelWeights(c.e, keys, nil); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
