package diag_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/lvskit/lvskit/diag"
)

func TestRealServerChecks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(w *world)
		want  []idSubject
		// evidence, when set, must appear in the first finding's evidence.
		evidence []string
	}{
		{"clean", func(*world) {}, nil, nil},
		{"arp_ignore 0", func(w *world) {
			w.sysctls(map[string]string{"all/arp_ignore": "0", "eth0/arp_ignore": "0"})
		}, []idSubject{{"rs-arp-ignore", "arp_ignore on eth0"}}, []string{"net.ipv4.conf.all.arp_ignore = 0", "net.ipv4.conf.eth0.arp_ignore = 0"}},
		{"the all-vs-interface trap: lo and default set, all and eth0 not", func(w *world) {
			w.sysctls(map[string]string{"all/arp_ignore": "0", "eth0/arp_ignore": "0", "lo/arp_ignore": "1", "default/arp_ignore": "1"})
		}, []idSubject{{"rs-arp-ignore", "arp_ignore on eth0"}}, []string{
			"net.ipv4.conf.default.arp_ignore = 1 does not help: it applies only to links created after it was set",
			"net.ipv4.conf.lo.arp_ignore = 1 does not help: ARP requests arrive on eth0, not on lo"}},
		{"all set, eth0 not: the kernel takes the larger", func(w *world) {
			w.sysctls(map[string]string{"all/arp_ignore": "1", "eth0/arp_ignore": "0", "all/arp_announce": "0", "eth0/arp_announce": "2"})
		}, nil, nil},
		{"arp_announce 0", func(w *world) {
			w.sysctls(map[string]string{"all/arp_announce": "0", "eth0/arp_announce": "1"})
		}, []idSubject{{"rs-arp-announce", "arp_announce on eth0"}}, nil},
		{"VIP on lo as /24", func(w *world) {
			w.links[0].Prefixes[1] = netip.MustParsePrefix("10.77.0.100/24")
		}, []idSubject{{"rs-vip-prefix", "VIP 10.77.0.100 on lo"}}, []string{"the VIP is on lo as 10.77.0.100/24, not /32"}},
		{"VIP missing", func(w *world) {
			w.links[0].Prefixes = w.links[0].Prefixes[:1]
		}, []idSubject{{"rs-vip-missing", "VIP 10.77.0.100 on this real server"}}, nil},
		{"VIP on the LAN link", func(w *world) {
			w.links[0].Prefixes = w.links[0].Prefixes[:1]
			w.links[1].Prefixes = append(w.links[1].Prefixes, netip.MustParsePrefix("10.77.0.100/32"))
		}, []idSubject{{"rs-vip-on-interface", "VIP 10.77.0.100 on eth0"}}, nil},
		{"nothing listens on port 80", func(w *world) {
			w.files["proc/net/tcp"].Data = []byte("  sl  local_address rem_address   st\n   0: 0100007F:0050 00000000:0000 0A 0\n")
		}, []idSubject{{"rs-not-listening", "port 80 on this real server"}}, nil},
		{"TUN: rp_filter on the tunnel", func(w *world) {
			w.links[0].Prefixes = w.links[0].Prefixes[:1]
			w.links = append(w.links, diag.Link{Name: "tunl0", Kind: "ipip", Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.77.0.100/32")}})
			w.sysctls(map[string]string{"tunl0/rp_filter": "1"})
		}, []idSubject{{"rs-tunnel-rp-filter", "rp_filter on tunl0"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			w.onRealServer()
			tc.setup(w)
			rep := w.run(t)
			if len(rep.Checks) != 1 || rep.Checks[0].ID != diag.CheckRealServer {
				t.Fatalf("lvsdiag rs ran %v", rep.Checks)
			}
			if got := findingsOf(rep); !slices.Equal(got, tc.want) {
				t.Errorf("findings\n  %v\nwant\n  %v\n%s", got, tc.want, dump(t, rep))
			}
			for _, e := range tc.evidence {
				if fs := rep.Findings(); len(fs) == 0 || !slices.Contains(fs[0].Evidence, e) {
					t.Errorf("evidence lacks %q:\n%s", e, dump(t, rep))
				}
			}
		})
	}
}

// The route note names the gateway when there is one, and says "out of"
// a link when the VIP's subnet is on it, never an empty address.
func TestRealServerRouteNote(t *testing.T) {
	for _, tc := range []struct {
		route diag.Route
		want  string
	}{
		{diag.Route{Interface: "eth0", Gateway: netip.MustParseAddr("10.77.0.1")}, "route to the VIP: via 10.77.0.1 on eth0 (not local: packets for the VIP are forwarded or dropped)"},
		{diag.Route{Interface: "eth0"}, "route to the VIP: out of eth0 (not local: packets for the VIP are forwarded or dropped)"},
	} {
		w := newWorld()
		w.onRealServer()
		w.links[0].Prefixes = w.links[0].Prefixes[:1] // the VIP is not local
		w.route = &tc.route
		rep := w.run(t)
		if !slices.Contains(rep.Checks[0].Notes, tc.want) {
			t.Errorf("notes lack %q:\n%s", tc.want, strings.Join(rep.Checks[0].Notes, "\n"))
		}
	}
}
