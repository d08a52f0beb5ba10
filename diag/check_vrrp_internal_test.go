package diag

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/lvskit/lvskit/director/config"
)

// TestVRRPFindings: check 7 reports the census's own findings, adds the
// routers foreign to lvsd's config when one is given, and says when no
// router advertises the VIP.
func TestVRRPFindings(t *testing.T) {
	clash, _ := buildCase(t, caseIndex("clash"))
	ours := []config.VRRPInstance{{Name: "VI_1", Interface: "eth0", VirtualRouterID: 51,
		VirtualAddresses: []config.VirtualAddress{{Address: netip.MustParseAddr("10.77.0.100")}}}}
	for _, tc := range []struct {
		name      string
		vip       string
		instances []config.VRRPInstance
		ids       []string
		note      string
	}{
		{"the census alone", "10.77.0.100", nil, []string{"vrrp-vrid-clash VRID 51 (IPv4) on eth0"}, ""},
		{"with lvsd's config", "10.77.0.100", ours,
			[]string{"vrrp-foreign-router VRID 51 (IPv4) on eth0, source 10.77.0.4", "vrrp-vrid-clash VRID 51 (IPv4) on eth0"}, ""},
		{"another VIP", "10.77.0.150", nil, []string{"vrrp-vrid-clash VRID 51 (IPv4) on eth0"}, "no virtual router advertises 10.77.0.150"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := vrrpFindings(vrrpFacts{VIP: netip.MustParseAddr(tc.vip), Census: clash, Instances: tc.instances})
			checkOutcome(t, o, "", tc.ids)
			if !slices.ContainsFunc(o.notes, func(n string) bool { return strings.HasPrefix(n, "listened on") }) {
				t.Errorf("no listen note: %q", o.notes)
			}
			if tc.note != "" && !slices.Contains(o.notes, tc.note) {
				t.Errorf("notes lack %q: %q", tc.note, o.notes)
			}
		})
	}
}
