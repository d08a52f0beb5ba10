package reconcile

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
)

// serviceWith is a wrr service at vip with n direct-routed real servers
// 10.1.x.y:80 of weight 1.
func serviceWith(vip string, n int) *Entry {
	e := &Entry{Service: ipvs.Service{ServiceKey: ipvs.TCPKey(netip.MustParseAddrPort(vip)), Scheduler: "wrr", NetmaskBits: 32}}
	for i := range n {
		e.RealServers = append(e.RealServers, realServer(fmt.Sprintf("10.1.%d.%d", i/250, 1+i%250), 1))
	}
	return e
}

func realServer(addr string, w int32) ipvs.RealServer {
	return ipvs.RealServer{Address: netip.MustParseAddr(addr), Port: 80, Forwarding: ipvs.DirectRoute, Weight: w}
}

// kernelWith is a fake kernel holding e, and a cache that knows it.
func kernelWith(t testing.TB, e *Entry) (*ipvstest.Fake, Table) {
	f := ipvstest.New()
	if failures := Apply(f, DiffService(e, nil), Table{}); len(failures) > 0 {
		t.Fatal(failures)
	}
	cache, err := ReadTable(f)
	if err != nil {
		t.Fatal(err)
	}
	return f, cache
}

// A batch of health transitions is one Apply with many real-server ops
// on one service: updates, deletes and adds mixed, some on the same
// real server, some on one the batch added. The cache must still equal
// what the kernel holds after it, real server for real server.
func TestApplyKeepsTheCacheTrueThroughABatchOfRealServerOps(t *testing.T) {
	e := serviceWith("192.168.0.100:80", 40)
	f, cache := kernelWith(t, e)
	k := e.Service.ServiceKey
	rs := realServer
	op := func(kind OpKind, r ipvs.RealServer) Op {
		return Op{Kind: kind, Service: keyOnly(e.Service), RealServer: r}
	}
	ops := []Op{
		op(UpdateRealServer, rs("10.1.0.5", 0)),
		op(DeleteRealServer, keyOnlyRS(rs("10.1.0.1", 0))), // the first: the others move down
		op(UpdateRealServer, rs("10.1.0.6", 0)),            // after the move
		op(AddRealServer, rs("10.2.0.1", 3)),
		op(UpdateRealServer, rs("10.2.0.1", 7)), // one this batch added
		op(DeleteRealServer, keyOnlyRS(rs("10.1.0.20", 0))),
		op(UpdateRealServer, rs("10.1.0.40", 2)), // the last
		op(AddRealServer, rs("10.2.0.2", 1)),
		op(DeleteRealServer, keyOnlyRS(rs("10.2.0.2", 0))), // added, then deleted
		op(UpdateRealServer, rs("10.1.0.5", 4)),            // twice in one batch
	}
	if failures := Apply(f, ops, cache); len(failures) > 0 {
		t.Fatal(failures)
	}
	kernel, err := ReadTable(f)
	if err != nil {
		t.Fatal(err)
	}
	if !sameEntry(cache[k], kernel[k]) {
		t.Fatalf("cache after the batch:\n%v\nkernel:\n%v", cache[k].RealServers, kernel[k].RealServers)
	}
	if got, want := len(cache[k].RealServers), 39; got != want {
		t.Fatalf("cache holds %d real servers, want %d", got, want)
	}
	// A later plan on the same cache finds every real server where it
	// is now: a weight change of the moved last one is one write.
	want := &Entry{Service: cache[k].Service, RealServers: append([]ipvs.RealServer(nil), cache[k].RealServers...)}
	for i := range want.RealServers {
		if want.RealServers[i].Address == netip.MustParseAddr("10.1.0.40") {
			want.RealServers[i].Weight = 9
		}
	}
	plan := DiffService(want, cache[k])
	if len(plan) != 1 || plan[0].Kind != UpdateRealServer {
		t.Fatalf("plan after the batch: %v, want one UpdateRealServer", plan)
	}
}

// acceptingClient takes every real-server write and does nothing: the
// benchmark below measures Apply's own work, not a fake kernel's.
type acceptingClient struct{ ipvs.Client }

func (acceptingClient) AddRealServer(ipvs.ServiceKey, ipvs.RealServer) error    { return nil }
func (acceptingClient) UpdateRealServer(ipvs.ServiceKey, ipvs.RealServer) error { return nil }
func (acceptingClient) DeleteRealServer(ipvs.ServiceKey, ipvs.RealServerKey) error {
	return nil
}

// BenchmarkApplyTransitionBatch is the reconciler's cache work for one
// batch of health transitions: 100 weight changes (quiesce) on one
// service of 1,000 real servers, sent to a client that accepts them.
func BenchmarkApplyTransitionBatch(b *testing.B) {
	e := serviceWith("192.168.0.100:80", 1000)
	_, cache := kernelWith(b, e)
	var ops [2][]Op
	for i := range 100 {
		r := e.RealServers[i*10]
		for w := range 2 {
			r.Weight = int32(w)
			ops[w] = append(ops[w], Op{Kind: UpdateRealServer, Service: keyOnly(e.Service), RealServer: r})
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if failures := Apply(acceptingClient{}, ops[i%2], cache); len(failures) > 0 {
			b.Fatal(failures)
		}
	}
}
