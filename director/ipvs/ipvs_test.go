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
