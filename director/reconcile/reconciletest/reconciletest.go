// Package reconciletest builds tables for the tests and benchmarks of
// lvsd's reconciler and of what reads the kernel it fills.
package reconciletest

import (
	"net/netip"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/reconcile"
)

// BigTable is a synthetic table of services TCP services on distinct
// IPv4 VIPs, port 80, each with realServers direct-routed real servers of
// weight 1: the size lvsd's benchmarks and scale tests run at.
func BigTable(services, realServers int) reconcile.Table {
	t := reconcile.Table{}
	for i := range services {
		vip := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 100 + byte(i>>16), byte(i >> 8), byte(i)}), 80)
		e := &reconcile.Entry{Service: ipvs.Service{ServiceKey: ipvs.TCPKey(vip), Scheduler: "wrr", NetmaskBits: 32}}
		for j := range realServers {
			e.RealServers = append(e.RealServers, ipvs.RealServer{
				Address: netip.AddrFrom4([4]byte{10, 200 + byte(j), byte(i >> 8), byte(i)}), Port: 80,
				Forwarding: ipvs.DirectRoute, Weight: 1,
			})
		}
		t[e.Service.ServiceKey] = e
	}
	return t
}
