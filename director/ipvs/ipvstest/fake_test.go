package ipvstest

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/lvskit/lvskit/director/ipvs"
)

var (
	vip = ipvs.TCPKey(netip.MustParseAddrPort("192.168.0.100:80"))
	rs1 = ipvs.RealServer{Address: netip.MustParseAddr("10.0.0.2"), Port: 80, Forwarding: ipvs.DirectRoute, Weight: 1}
)

func TestFakeBehavesLikeTheKernel(t *testing.T) {
	f := New()
	if err := f.AddService(ipvs.Service{ServiceKey: vip, Scheduler: "wrr"}); err != nil {
		t.Fatal(err)
	}
	if err := f.AddService(ipvs.Service{ServiceKey: vip, Scheduler: "rr"}); !errors.Is(err, ipvs.ErrServiceExists) {
		t.Errorf("second AddService: %v, want ErrServiceExists", err)
	}
	if err := f.AddRealServer(vip, rs1); err != nil {
		t.Fatal(err)
	}
	if err := f.AddRealServer(vip, rs1); !errors.Is(err, ipvs.ErrRealServerExists) {
		t.Errorf("second AddRealServer: %v, want ErrRealServerExists", err)
	}
	other := ipvs.UDPKey(netip.MustParseAddrPort("192.168.0.100:53"))
	if err := f.AddRealServer(other, rs1); !errors.Is(err, ipvs.ErrServiceNotFound) {
		t.Errorf("AddRealServer to a missing service: %v, want ErrServiceNotFound", err)
	}
	if err := f.DeleteRealServer(vip, ipvs.RealServerKey{Address: netip.MustParseAddr("10.9.9.9"), Port: 80}); !errors.Is(err, ipvs.ErrRealServerNotFound) {
		t.Errorf("DeleteRealServer of a missing one: %v, want ErrRealServerNotFound", err)
	}

	// Counters survive a weight change, as in the kernel.
	if err := f.SetCounters(vip, rs1.Key(), 7, 3, ipvs.Stats{Conns: 10}); err != nil {
		t.Fatal(err)
	}
	quiesced := rs1
	quiesced.Weight = 0
	if err := f.UpdateRealServer(vip, quiesced); err != nil {
		t.Fatal(err)
	}
	got, _ := f.RealServers(vip)
	if len(got) != 1 || got[0].Weight != 0 || got[0].ActiveConns != 7 || got[0].Stats.Conns != 10 {
		t.Errorf("after quiesce: %+v, want weight 0 with 7 active conns kept", got)
	}

	// Read back as the kernel reports: full netmask, no hashed flag.
	s, _ := f.Service(vip)
	if s.NetmaskBits != 32 {
		t.Errorf("NetmaskBits = %d, want 32", s.NetmaskBits)
	}

	if err := f.DeleteService(vip); err != nil {
		t.Fatal(err)
	}
	if svcs, _ := f.Services(); len(svcs) != 0 {
		t.Errorf("Services after delete = %v, want none", svcs)
	}
}

func TestFakeRecordsWritesInOrder(t *testing.T) {
	f := New()
	f.AddService(ipvs.Service{ServiceKey: vip, Scheduler: "rr"})
	f.Services()
	f.AddRealServer(vip, rs1)
	f.RealServers(vip)
	var got []string
	for _, c := range f.Writes() {
		got = append(got, c.String())
	}
	want := []string{"AddService TCP 192.168.0.100:80 rr", "AddRealServer TCP 192.168.0.100:80 -> 10.0.0.2:80 Route w=1"}
	if !slices.Equal(got, want) {
		t.Errorf("Writes() = %q, want %q", got, want)
	}
	if n := len(f.Calls()); n != 4 {
		t.Errorf("Calls() has %d entries, want 4 (reads too)", n)
	}
}

func TestFakeHookFailsACallUnapplied(t *testing.T) {
	f := New()
	boom := errors.New("netlink: no buffer space")
	f.Hook = func(c Call) error {
		if c.Op == OpAddService {
			return boom
		}
		return nil
	}
	if err := f.AddService(ipvs.Service{ServiceKey: vip, Scheduler: "rr"}); !errors.Is(err, boom) {
		t.Fatalf("AddService: %v, want the hook's error", err)
	}
	if _, err := f.Service(vip); !errors.Is(err, ipvs.ErrServiceNotFound) {
		t.Errorf("a failed AddService left a service behind: %v", err)
	}
}

func TestFakeRejectsSchedulersTheKernelLacks(t *testing.T) {
	f := New()
	f.SetSchedulers("rr", "wrr")
	if err := f.AddService(ipvs.Service{ServiceKey: vip, Scheduler: "twos"}); !errors.Is(err, ipvs.ErrNotSupported) {
		t.Errorf("AddService with twos: %v, want ErrNotSupported", err)
	}
}

func TestFakeValidatesRealServers(t *testing.T) {
	f := New()
	f.AddService(ipvs.Service{ServiceKey: vip, Scheduler: "rr"})
	both := ipvs.RealServer{Address: netip.MustParseAddr("10.0.0.9"), Port: 80, Forwarding: ipvs.Tunnel,
		TunnelType: ipvs.TunnelGUE, TunnelPort: 6080, TunnelFlags: ipvs.TunnelChecksum | ipvs.TunnelRemoteChecksum}
	if err := f.AddRealServer(vip, both); err == nil {
		t.Error("a gue real server with csum and remcsum was accepted; ipvsadm 1.31 crashes listing it")
	}
}
