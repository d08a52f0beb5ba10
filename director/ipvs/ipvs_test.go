package ipvs

import (
	"net/netip"
	"strings"
	"testing"
)

func TestRealServerValidate(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.2")
	for _, tc := range []struct {
		r    RealServer
		want string // substring of the error; empty: valid
	}{
		{RealServer{Address: a, Forwarding: DirectRoute}, ""},
		{RealServer{Address: a, Forwarding: Tunnel, TunnelType: TunnelGUE, TunnelPort: 6080, TunnelFlags: TunnelRemoteChecksum}, ""},
		{RealServer{Address: a, Forwarding: Tunnel, TunnelType: TunnelGRE, TunnelFlags: TunnelChecksum}, ""},
		{RealServer{Forwarding: DirectRoute}, "without an address"},
		{RealServer{Address: a, Forwarding: Tunnel, TunnelType: TunnelGUE, TunnelPort: 1, TunnelFlags: TunnelChecksum | TunnelRemoteChecksum}, "exclusive"},
		{RealServer{Address: a, Forwarding: Masquerade, TunnelType: TunnelGRE}, "need tunnel forwarding"},
		{RealServer{Address: a, Forwarding: Tunnel, TunnelType: TunnelGUE}, "needs a port"},
		{RealServer{Address: a, Forwarding: Tunnel, TunnelFlags: TunnelChecksum}, "ipip tunnels have no checksum"},
		{RealServer{Address: a, Forwarding: Tunnel, TunnelType: TunnelGRE, TunnelFlags: TunnelRemoteChecksum}, "only for gue"},
	} {
		err := tc.r.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tc.r, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one containing %q", tc.r, err, tc.want)
		}
	}
}

func TestParseServiceKeyReadsWhatStringWrites(t *testing.T) {
	for _, k := range []ServiceKey{
		TCPKey(netip.MustParseAddrPort("192.168.0.100:80")),
		SCTPKey(netip.MustParseAddrPort("192.168.0.100:9")),
		FWMarkKey(IPv4, 1),
		FWMarkKey(IPv6, 7),
		UDPKey(netip.MustParseAddrPort("[2001:db8::1]:53")),
	} {
		got, err := ParseServiceKey(k.String())
		if err != nil || got != k {
			t.Errorf("ParseServiceKey(%q) = %v, %v; want %v", k.String(), got, err, k)
		}
	}
	for _, bad := range []string{"", "TCP", "FWM x", "FWM 0", "FWM 1 IPv4", "ICMP 1.2.3.4:5", "TCP 1.2.3.4", "TCP 1.2.3.4:80 extra"} {
		if _, err := ParseServiceKey(bad); err == nil || !strings.Contains(err.Error(), "service key") {
			t.Errorf("ParseServiceKey(%q) = %v, want an error naming the service key", bad, err)
		}
	}
}

// FuzzParseServiceKey: whatever parses prints back to a key that parses
// to the same value.
func FuzzParseServiceKey(f *testing.F) {
	for _, s := range []string{"TCP 192.168.0.100:80", "UDP [2001:db8::1]:53", "FWM 1", "FWM 1 IPv6", "sctp 1.2.3.4:9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseServiceKey(s)
		if err != nil {
			return
		}
		again, err := ParseServiceKey(k.String())
		if err != nil || again != k {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, k, k.String(), again, err)
		}
	})
}
