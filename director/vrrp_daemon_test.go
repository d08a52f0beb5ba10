package director

import (
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
	"github.com/lvskit/lvskit/director/vrrp"
	"github.com/lvskit/lvskit/director/vrrp/vrrptest"
)

const vrrpConfig = plainConfigVRRP + `
vrrp:
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: 51
      priority: 150
      source_address: 192.0.2.2
      virtual_addresses:
        - 192.168.0.100
        - {address: 192.168.0.101, dev: eth1, label: eth1:vip}
`

const plainConfigVRRP = `
lvsd:
  resync_interval: 1h
virtual_services:
  - address: 192.168.0.100
    port: 80
    real_servers: [{address: 10.0.0.1}]
`

// fakeVRRP is a daemon's VRRP world made of vrrptest fakes: one wire,
// a hand-moved clock, and a recording address manager per device.
type fakeVRRP struct {
	clock      *vrrptest.Clock
	wire       *vrrptest.Wire
	mu         sync.Mutex
	addrs      map[string]*vrrptest.Addresses // by "dev label"
	announcers map[string]*vrrptest.Announcer // by dev
	opens      []string
}

func newFakeVRRP() *fakeVRRP {
	return &fakeVRRP{
		clock:      vrrptest.NewClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)),
		wire:       vrrptest.NewWire(),
		addrs:      map[string]*vrrptest.Addresses{},
		announcers: map[string]*vrrptest.Announcer{},
	}
}

func (f *fakeVRRP) options() VRRPOptions {
	return VRRPOptions{
		Listen: func(ifname string, fam vrrp.Family, multicast bool) (vrrp.PacketConn, error) {
			if ifname == "missing0" {
				return nil, errors.New("no such network interface")
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			f.opens = append(f.opens, ifname+" "+fam.String())
			return f.wire.Port(netip.MustParseAddr("192.0.2.2")), nil
		},
		Addresses: func(dev, label string) (vrrp.AddressManager, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			a := vrrptest.NewAddresses()
			f.addrs[dev+" "+label] = a
			return a, nil
		},
		Announcer: func(dev string) (vrrp.Announcer, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			a := vrrptest.NewAnnouncer(f.clock)
			f.announcers[dev] = a
			return a, nil
		},
		Clock: f.clock,
	}
}

func vrrpState(d *Daemon) string {
	st := d.Status().VRRP
	if len(st) != 1 {
		return ""
	}
	return st[0].State
}

func TestDaemonVRRPBecomesMasterAndHandsOverOnStop(t *testing.T) {
	fv := newFakeVRRP()
	metrics := newTestMetrics(t, t.TempDir(), nil)
	s := startVRRPStepped(t, vrrpConfig, fv, DaemonOptions{Metrics: metrics})
	d := s.Daemon

	wantWrites(t, "VI_1 backup", s.await("VI_1 backup", func() bool { return vrrpState(d) == "backup" }))
	// Nobody else advertises: after Master_Down_Interval it takes over.
	fv.clock.Advance(4 * time.Second)
	wantWrites(t, "VI_1 master", s.await("VI_1 master", func() bool { return vrrpState(d) == "master" }))
	// The instance posts its transition once its addresses are added.
	if held := fv.addrs["eth0 "].Held(); !slices.Equal(held, []netip.Addr{netip.MustParseAddr("192.168.0.100")}) {
		t.Errorf("eth0 holds %v as master, want 192.168.0.100", held)
	}
	if held := fv.addrs["eth1 eth1:vip"].Held(); !slices.Equal(held, []netip.Addr{netip.MustParseAddr("192.168.0.101")}) {
		t.Errorf("eth1 (label eth1:vip) holds %v as master, want 192.168.0.101", held)
	}
	if sent := fv.wire.Sent(); len(sent) == 0 || sent[len(sent)-1].Advert().Priority != 150 {
		t.Errorf("adverts sent as master: %v, want the last of priority 150", sent)
	}

	st := d.Status().VRRP[0]
	if st.Name != "VI_1" || st.VRID != 51 || st.Interface != "eth0" || st.Version != 3 || st.Priority != 150 ||
		st.Master != "192.0.2.2" || st.MasterSince.IsZero() || st.Since != st.MasterSince || st.BecameMaster != 1 ||
		strings.Join(st.VIPs, " ") != "192.168.0.100 192.168.0.101" {
		t.Errorf("status: %+v", st)
	}
	var vrrpEvents []string
	for _, e := range d.Status().Events {
		if e.Kind == "vrrp" {
			vrrpEvents = append(vrrpEvents, e.Message)
		}
	}
	if got := strings.Join(vrrpEvents, "\n"); !strings.Contains(got, "VI_1 (vrid 51 on eth0): initialize -> backup") ||
		!strings.Contains(got, "VI_1 (vrid 51 on eth0): backup -> master") {
		t.Errorf("timeline's vrrp events:\n%s", got)
	}
	mfs := gather(t, metrics)
	if f := family(mfs, "lvsd_vrrp_state"); f == nil || f.Metric[0].GetGauge().GetValue() != 2 {
		t.Errorf("lvsd_vrrp_state: %v", f)
	}
	if f := family(mfs, "lvsd_vrrp_became_master_total"); f == nil || f.Metric[0].GetCounter().GetValue() != 1 {
		t.Errorf("lvsd_vrrp_became_master_total: %v", f)
	}

	// A clean stop, as Run makes it after its loop: a priority-0 advert,
	// then the addresses go.
	if !s.handle(s.clk.Now(), stopRequested{}) {
		t.Fatal("stopRequested did not stop the daemon")
	}
	s.stopVRRP()
	sent := fv.wire.Sent()
	if last := sent[len(sent)-1].Advert(); last.Priority != 0 || last.VRID != 51 {
		t.Errorf("last advert on stop: %v, want priority 0", &last)
	}
	for k, a := range fv.addrs {
		if held := a.Held(); len(held) > 0 {
			t.Errorf("%s still holds %v after stop", k, held)
		}
	}
	if len(fv.opens) != 1 || fv.opens[0] != "eth0 IPv4" {
		t.Errorf("transports opened: %v, want one on eth0 IPv4", fv.opens)
	}
}

func TestDaemonVRRPNeedsOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	writeConfig(t, path, vrrpConfig)
	d, err := NewDaemon(DaemonOptions{ConfigPath: path, Client: ipvstest.New(), StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "starting 1 vrrp instances: vrrp is not available") {
		t.Errorf("Run without VRRP options: %v", err)
	}
}

func TestInterfaceSourceAddress(t *testing.T) {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Skipf("listing interfaces: %v", err)
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback == 0 {
			continue
		}
		got, err := InterfaceSourceAddress(ifi.Name, vrrp.IPv4)
		if err != nil || got != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("InterfaceSourceAddress(%s, IPv4) = %v, %v; want 127.0.0.1", ifi.Name, got, err)
		}
		return
	}
	t.Skip("no loopback interface")
}

func TestInterfaceSourceAddressErrors(t *testing.T) {
	if _, err := InterfaceSourceAddress("no-such-if0", vrrp.IPv4); err == nil {
		t.Error("no error for a missing interface")
	}
}
