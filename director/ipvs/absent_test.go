package ipvs_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/lvskit/lvskit/director/ipvs"
)

// The client of a kernel without IPVS reads as empty and refuses every
// write with the reason, so a VRRP-only lvsd that is later given a
// virtual service says why it cannot install it.
func TestAbsentRefusesWritesWithTheReason(t *testing.T) {
	c := ipvs.Absent(ipvs.ErrIPVSUnavailable)
	if svcs, err := c.Services(); err != nil || len(svcs) != 0 {
		t.Errorf("Services() = %v, %v; want none", svcs, err)
	}
	if ds, err := c.SyncDaemons(); err != nil || len(ds) != 0 {
		t.Errorf("SyncDaemons() = %v, %v; want none", ds, err)
	}
	svc := ipvs.Service{ServiceKey: ipvs.ServiceKey{Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.0.0.1"), Port: 80}, Scheduler: "wlc"}
	if _, err := c.Service(svc.ServiceKey); !errors.Is(err, ipvs.ErrServiceNotFound) {
		t.Errorf("Service() = %v, want ErrServiceNotFound", err)
	}
	if err := c.AddService(svc); !errors.Is(err, ipvs.ErrIPVSUnavailable) {
		t.Errorf("AddService() = %v, want ErrIPVSUnavailable", err)
	}
	if _, err := c.Info(); !errors.Is(err, ipvs.ErrIPVSUnavailable) {
		t.Errorf("Info() = %v, want ErrIPVSUnavailable", err)
	}
}
