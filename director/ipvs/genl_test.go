package ipvs

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
)

// nest wraps attributes the way the kernel's replies do: one top-level
// IPVS_CMD_ATTR_SERVICE or IPVS_CMD_ATTR_DEST.
func nest(t testing.TB, typ uint16, fn func(ae *netlink.AttributeEncoder)) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.Nested(typ, func(nae *netlink.AttributeEncoder) error { fn(nae); return nil })
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServiceRoundTrip(t *testing.T) {
	for _, s := range []Service{
		{ServiceKey: TCPKey(netip.MustParseAddrPort("192.168.0.100:80")), Scheduler: "wrr"},
		{ServiceKey: UDPKey(netip.MustParseAddrPort("[2001:db8::1]:53")), Scheduler: "sh", Flags: SchedFlag1 | SchedFlag2 | FlagOnePacket},
		{ServiceKey: SCTPKey(netip.MustParseAddrPort("10.1.2.3:3868")), Scheduler: "mh", Flags: FlagPersistent, Timeout: 300, NetmaskBits: 24, PersistenceEngine: "sip"},
		{ServiceKey: FWMarkKey(IPv4, 21), Scheduler: "rr", Flags: FlagPersistent, Timeout: 600, NetmaskBits: 32},
		{ServiceKey: FWMarkKey(IPv6, 7), Scheduler: "lc", Flags: FlagPersistent, Timeout: 60, NetmaskBits: 64},
	} {
		t.Run(s.String(), func(t *testing.T) {
			got, err := decodeService(nest(t, attrService, func(ae *netlink.AttributeEncoder) { encodeService(ae, s) }))
			if err != nil {
				t.Fatal(err)
			}
			want := s
			if want.NetmaskBits == 0 {
				want.NetmaskBits = map[Family]uint8{IPv4: 32, IPv6: 128}[s.Family]
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("decode(encode(s)) differs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNetmaskWireIsNetworkOrderForIPv4(t *testing.T) {
	// ipvsadm -M 255.255.255.0 puts the address's bytes in a native u32.
	b := []byte{255, 255, 255, 0}
	want := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24 // little-endian host
	if got := netmaskWire(IPv4, 24); got != want {
		t.Errorf("netmaskWire(IPv4, 24) = %#x, want %#x", got, want)
	}
	if got := netmaskBits(IPv4, want); got != 24 {
		t.Errorf("netmaskBits(IPv4, %#x) = %d, want 24", want, got)
	}
	if got := netmaskWire(IPv6, 0); got != 128 {
		t.Errorf("netmaskWire(IPv6, 0) = %d, want 128 (the kernel rejects 0)", got)
	}
}

func TestRealServerRoundTrip(t *testing.T) {
	for _, r := range []RealServer{
		{Address: netip.MustParseAddr("10.0.0.2"), Port: 80, Forwarding: DirectRoute, Weight: 1},
		{Address: netip.MustParseAddr("10.0.0.3"), Port: 8080, Forwarding: Masquerade, Weight: 100, UpperThreshold: 1000, LowerThreshold: 500},
		{Address: netip.MustParseAddr("2001:db8::2"), Port: 53, Forwarding: Tunnel, Weight: 0, TunnelType: TunnelGUE, TunnelPort: 6080, TunnelFlags: TunnelRemoteChecksum},
		{Address: netip.MustParseAddr("10.0.0.4"), Port: 80, Forwarding: Tunnel, Weight: 5, TunnelType: TunnelGRE},
	} {
		t.Run(r.Key().String(), func(t *testing.T) {
			got, err := decodeRealServer(nest(t, attrDest, func(ae *netlink.AttributeEncoder) { encodeRealServer(ae, r) }), IPv4)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(r, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("decode(encode(r)) differs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlainTunnelSendsNoTunnelAttributes(t *testing.T) {
	// Kernels before 5.2 reject unknown attributes on strict parsing, and
	// IPIP is the default: encode nothing for it.
	b := nest(t, attrDest, func(ae *netlink.AttributeEncoder) {
		encodeRealServer(ae, RealServer{Address: netip.MustParseAddr("10.0.0.2"), Forwarding: Tunnel})
	})
	ad, _ := netlink.NewAttributeDecoder(b)
	for ad.Next() {
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			for nad.Next() {
				if nad.Type() == destTunType || nad.Type() == destTunPort || nad.Type() == destTunFlags {
					t.Errorf("attribute %d sent for a plain IPIP tunnel", nad.Type())
				}
			}
			return nil
		})
	}
}

func TestStats64WinsOverStats32(t *testing.T) {
	big := uint64(1) << 40
	b := nest(t, attrDest, func(ae *netlink.AttributeEncoder) {
		ae.Bytes(destAddr, addrBytes(netip.MustParseAddr("10.0.0.2")))
		ae.Bytes(destPort, be16(80))
		// The kernel sends STATS (u32 counters, wrapped) before STATS64.
		ae.Nested(destStats, func(n *netlink.AttributeEncoder) error {
			n.Uint32(statsConns, uint32(big))
			n.Uint32(statsInPkts, 7)
			n.Uint64(statsInBytes, 9)
			return nil
		})
		ae.Nested(destStats64, func(n *netlink.AttributeEncoder) error {
			n.Uint64(statsConns, big)
			n.Uint64(statsInPkts, big+1)
			n.Uint64(statsInBytes, big+2)
			n.Uint64(statsOutBPS, 42)
			return nil
		})
		ae.Uint32(destActiveConns, 3)
		ae.Uint32(destInactConns, 4)
		ae.Uint32(destPersistConns, 5)
	})
	r, err := decodeRealServer(b, IPv4)
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Conns: big, PacketsIn: big + 1, BytesIn: big + 2, BPSOut: 42}
	if r.Stats != want {
		t.Errorf("stats = %+v, want %+v", r.Stats, want)
	}
	if r.ActiveConns != 3 || r.InactiveConns != 4 || r.PersistentConns != 5 {
		t.Errorf("conns = %d/%d/%d, want 3/4/5", r.ActiveConns, r.InactiveConns, r.PersistentConns)
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"truncated header":    {0x08, 0x00},
		"length past end":     {0x20, 0x00, 0x01, 0x00, 0x00},
		"service without af":  nest(t, attrService, func(ae *netlink.AttributeEncoder) { ae.String(svcSchedName, "rr") }),
		"short service addr":  nest(t, attrService, func(ae *netlink.AttributeEncoder) { ae.Uint16(svcAF, 2); ae.Bytes(svcAddr, []byte{1, 2}) }),
		"ipv6 with 4-byte ip": nest(t, attrService, func(ae *netlink.AttributeEncoder) { ae.Uint16(svcAF, 10); ae.Bytes(svcAddr, []byte{1, 2, 3, 4}) }),
	} {
		if _, err := decodeService(b); err == nil {
			t.Errorf("%s: decodeService succeeded, want an error", name)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(nest(f, attrService, func(ae *netlink.AttributeEncoder) {
		encodeService(ae, Service{ServiceKey: TCPKey(netip.MustParseAddrPort("1.2.3.4:80")), Scheduler: "rr"})
	}))
	f.Add(nest(f, attrDest, func(ae *netlink.AttributeEncoder) {
		encodeRealServer(ae, RealServer{Address: netip.MustParseAddr("2001:db8::1"), Forwarding: Tunnel, TunnelType: TunnelGUE})
	}))
	f.Add([]byte{4, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeService(b)
		decodeRealServer(b, IPv4)
		decodeRealServer(b, IPv6)
		decodeDaemon(b)
		decodeInfo(b)
		decodeTimeouts(b)
	})
}

func TestServiceKeyString(t *testing.T) {
	for k, want := range map[ServiceKey]string{
		TCPKey(netip.MustParseAddrPort("192.168.0.100:80")): "TCP 192.168.0.100:80",
		UDPKey(netip.MustParseAddrPort("[2001:db8::1]:53")): "UDP [2001:db8::1]:53",
		FWMarkKey(IPv4, 1): "FWM 1",
		FWMarkKey(IPv6, 2): "FWM 2 IPv6",
	} {
		if got := k.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", k, got, want)
		}
	}
}
