//go:build linux

package ipvs

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"testing"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	"github.com/mdlayher/netlink"
	moby "github.com/moby/ipvs"
	"golang.org/x/sys/unix"
)

// TestMissingIPVSIsAnError runs on kernels without IPVS (the build host):
// moby/ipvs would "succeed" there; lvskit must say what to do.
func TestMissingIPVSIsAnError(t *testing.T) {
	if _, err := os.Stat("/sys/module/ip_vs"); err == nil {
		t.Skip("this kernel has IPVS loaded; the missing-IPVS path cannot be seen here")
	}
	c, err := New(Options{})
	if err == nil {
		c.Close()
		t.Fatal("New succeeded on a kernel without IPVS")
	}
	if !errors.Is(err, ErrIPVSUnavailable) {
		t.Fatalf("New: %v, want ErrIPVSUnavailable", err)
	}
	if want := "IPVS is not available in this kernel: load ip_vs (modprobe ip_vs)"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestNewNamesABadNamespace(t *testing.T) {
	_, err := New(Options{NetNS: "/nonexistent/netns/x"})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("New with a missing netns: %v, want a not-exist error", err)
	}
}

// recordingMoby stands in for moby/ipvs and records writes.
type recordingMoby struct {
	ops []string
	err error
}

func (m *recordingMoby) NewService(*moby.Service) error {
	m.ops = append(m.ops, "NewService")
	return m.err
}
func (m *recordingMoby) UpdateService(*moby.Service) error {
	m.ops = append(m.ops, "UpdateService")
	return m.err
}
func (m *recordingMoby) DelService(*moby.Service) error {
	m.ops = append(m.ops, "DelService")
	return m.err
}
func (m *recordingMoby) NewDestination(*moby.Service, *moby.Destination) error {
	m.ops = append(m.ops, "NewDestination")
	return m.err
}
func (m *recordingMoby) UpdateDestination(*moby.Service, *moby.Destination) error {
	m.ops = append(m.ops, "UpdateDestination")
	return m.err
}
func (m *recordingMoby) DelDestination(*moby.Service, *moby.Destination) error {
	m.ops = append(m.ops, "DelDestination")
	return m.err
}
func (m *recordingMoby) Flush() error { m.ops = append(m.ops, "Flush"); return m.err }
func (m *recordingMoby) Close()       {}

const fakeFamily = 0x42

func TestServicesDecodesADump(t *testing.T) {
	want := []Service{
		{ServiceKey: TCPKey(netip.MustParseAddrPort("192.168.0.100:80")), Scheduler: "wrr", NetmaskBits: 32},
		{ServiceKey: FWMarkKey(IPv4, 1), Scheduler: "rr", Flags: FlagPersistent, Timeout: 300, NetmaskBits: 24},
	}
	conn := genltest.Dial(genltest.CheckRequest(fakeFamily, cmdGetService, netlink.Request|netlink.Dump,
		func(genetlink.Message, netlink.Message) ([]genetlink.Message, error) {
			var out []genetlink.Message
			for _, s := range want {
				out = append(out, genetlink.Message{Data: nest(t, attrService, func(ae *netlink.AttributeEncoder) { encodeService(ae, s) })})
			}
			return out, nil
		}))
	c := newClient(conn, fakeFamily, &recordingMoby{})
	got, err := c.Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ServiceKey != want[0].ServiceKey || got[1].Timeout != 300 || got[1].NetmaskBits != 24 {
		t.Errorf("Services() = %+v, want %+v", got, want)
	}
}

func TestKernelErrorsBecomeSentinels(t *testing.T) {
	key := TCPKey(netip.MustParseAddrPort("192.168.0.100:80"))
	rs := RealServer{Address: netip.MustParseAddr("10.0.0.2"), Port: 80, Forwarding: DirectRoute, Weight: 1}
	for _, tc := range []struct {
		name  string
		errno unix.Errno
		call  func(Client) error
		want  error
	}{
		{"add existing service", unix.EEXIST, func(c Client) error { return c.AddService(Service{ServiceKey: key, Scheduler: "rr"}) }, ErrServiceExists},
		{"unknown scheduler", unix.ENOENT, func(c Client) error { return c.AddService(Service{ServiceKey: key, Scheduler: "nope"}) }, ErrNotSupported},
		{"delete missing service", unix.ESRCH, func(c Client) error { return c.DeleteService(key) }, ErrServiceNotFound},
		{"add existing real server", unix.EEXIST, func(c Client) error { return c.AddRealServer(key, rs) }, ErrRealServerExists},
		{"update missing real server", unix.ENOENT, func(c Client) error { return c.UpdateRealServer(key, rs) }, ErrRealServerNotFound},
		{"real server of missing service", unix.ESRCH, func(c Client) error { return c.DeleteRealServer(key, rs.Key()) }, ErrServiceNotFound},
		{"no capability", unix.EPERM, func(c Client) error { return c.Flush() }, ErrPermission},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(genltest.Dial(nil), fakeFamily, &recordingMoby{err: tc.errno})
			if err := tc.call(c); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTunnelTypesBypassMoby(t *testing.T) {
	key := TCPKey(netip.MustParseAddrPort("192.168.0.100:80"))
	var sent []uint8
	conn := genltest.Dial(func(m genetlink.Message, _ netlink.Message) ([]genetlink.Message, error) {
		if m.Header.Command == 0 {
			return nil, io.EOF // the receive loop after the reply: nothing more
		}
		sent = append(sent, m.Header.Command)
		return []genetlink.Message{{}}, nil
	})
	m := &recordingMoby{}
	c := newClient(conn, fakeFamily, m)
	plain := RealServer{Address: netip.MustParseAddr("10.0.0.2"), Port: 80, Forwarding: Tunnel}
	gue := RealServer{Address: netip.MustParseAddr("10.0.0.3"), Port: 80, Forwarding: Tunnel, TunnelType: TunnelGUE, TunnelPort: 6080}
	if err := c.AddRealServer(key, plain); err != nil {
		t.Fatal(err)
	}
	if err := c.AddRealServer(key, gue); err != nil {
		t.Fatal(err)
	}
	if len(m.ops) != 1 || m.ops[0] != "NewDestination" {
		t.Errorf("moby got %v, want one NewDestination (the IPIP one)", m.ops)
	}
	if len(sent) != 1 || sent[0] != cmdNewDest {
		t.Errorf("own socket sent %v, want one NEW_DEST (the GUE one)", sent)
	}
}
