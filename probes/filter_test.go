package probes

import (
	"net/netip"
	"strings"
	"testing"
)

func TestFilterCompilesToKernelAddressLayout(t *testing.T) {
	c, err := Filter{
		VIP:        netip.MustParseAddr("192.168.0.100"),
		Port:       80,
		Client:     netip.MustParsePrefix("10.1.2.0/23"),
		RealServer: netip.MustParseAddr("10.0.0.12"),
		Protocol:   "TCP",
		NetNS:      4026531840,
		Interface:  3,
	}.compile()
	if err != nil {
		t.Fatal(err)
	}
	// nf_inet_addr.all[0] of 192.168.0.100 read on a little-endian CPU.
	if c.VIP != [4]uint32{0x6400a8c0} || c.VIPAF != afInet {
		t.Errorf("VIP words %#x family %d, want [0x6400a8c0 0 0 0] AF_INET", c.VIP, c.VIPAF)
	}
	// 10.1.2.0/23: mask 255.255.254.0, network 10.1.2.0.
	if c.ClientMask != [4]uint32{0x00feffff} || c.ClientNet != [4]uint32{0x0002010a} {
		t.Errorf("client mask %#x net %#x", c.ClientMask, c.ClientNet)
	}
	if c.Port != 80 || c.Proto != 6 || c.RSAF != afInet || c.NetNS != 4026531840 || c.Ifindex != 3 || c.All != 0 {
		t.Errorf("constants %+v", c)
	}
}

func TestFilterIPv6AndMasking(t *testing.T) {
	c, err := Filter{VIP: netip.MustParseAddr("2001:db8::1"), Client: netip.MustParsePrefix("2001:db8:1::5/48")}.compile()
	if err != nil {
		t.Fatal(err)
	}
	if c.VIPAF != afInet6 || c.VIP[0] != 0xb80d0120 || c.VIP[3] != 0x01000000 {
		t.Errorf("VIP words %#x family %d", c.VIP, c.VIPAF)
	}
	// the host bits of the prefix are cleared
	if c.ClientNet != [4]uint32{0xb80d0120, 0x00000100, 0, 0} || c.ClientMask != [4]uint32{0xffffffff, 0x0000ffff, 0, 0} {
		t.Errorf("client net %#x mask %#x", c.ClientNet, c.ClientMask)
	}
}

func TestEmptyFilterTracesEverythingWithoutTheSKBMap(t *testing.T) {
	for _, f := range []Filter{{}, {NetNS: 7}, {Interface: 2}} {
		c, err := f.compile()
		if err != nil || c.All != 1 {
			t.Errorf("%+v: All=%d err=%v, want 1 (no address, port or protocol to match)", f, c.All, err)
		}
	}
	for _, f := range []Filter{{Port: 80}, {Protocol: "udp"}, {RealServer: netip.MustParseAddr("10.0.0.1")}} {
		if c, _ := f.compile(); c.All != 0 {
			t.Errorf("%+v compiled to trace everything", f)
		}
	}
}

func TestBadFilterSaysWhatToFix(t *testing.T) {
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{Protocol: "icmp"}, `protocol "icmp": want tcp, udp or sctp`},
		{Filter{Interface: -1}, "interface index -1"},
		{Filter{VIP: netip.MustParseAddr("10.0.0.1"), Client: netip.MustParsePrefix("2001:db8::/32")}, "different address families"},
	} {
		_, err := tc.f.compile()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error saying %q", tc.f, err, tc.want)
		}
	}
}
