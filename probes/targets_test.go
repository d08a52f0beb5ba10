package probes

import (
	"slices"
	"strings"
	"testing"
)

// Options.Forwarding and Protocols leave out the transmitters and
// scheduling entries no packet of the matched services reaches, and
// nothing else.
func TestOptionsAttachOnlyWhatTheServicesReach(t *testing.T) {
	attached := func(o Options) []string {
		var out []string
		for _, tg := range targets {
			if o.mayPass(tg) && (tg.xmit || tg.proto != 0) {
				out = append(out, tg.name)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"direct route, tcp", Options{Forwarding: []Forwarding{DirectRoute}, Protocols: []string{"tcp"}},
			[]string{"tcp_conn_schedule", "ip_vs_dr_xmit", "ip_vs_dr_xmit_v6"}},
		{"nat and tunnel, udp", Options{Forwarding: []Forwarding{Masquerade, Tunnel}, Protocols: []string{"UDP"}},
			[]string{"udp_conn_schedule", "ip_vs_nat_xmit", "ip_vs_tunnel_xmit", "ip_vs_nat_xmit_v6", "ip_vs_tunnel_xmit_v6"}},
		{"unknown: everything", Options{},
			[]string{"tcp_conn_schedule", "udp_conn_schedule", "sctp_conn_schedule", "ip_vs_nat_xmit", "ip_vs_dr_xmit", "ip_vs_tunnel_xmit",
				"ip_vs_bypass_xmit", "ip_vs_null_xmit", "ip_vs_nat_xmit_v6", "ip_vs_dr_xmit_v6", "ip_vs_tunnel_xmit_v6", "ip_vs_bypass_xmit_v6"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := attached(tc.opts); !slices.Equal(got, tc.want) {
				t.Errorf("attached %v, want %v", got, tc.want)
			}
		})
	}
	for _, tg := range targets {
		if !tg.xmit && tg.proto == 0 && !(Options{Forwarding: []Forwarding{LocalNode}, Protocols: []string{"sctp"}}).mayPass(tg) {
			t.Errorf("%s left out, though it is neither a transmitter nor a protocol's", tg.name)
		}
	}
}

func TestOptionsRefuseUnknownProtocolsAndMethods(t *testing.T) {
	for _, o := range []Options{{Protocols: []string{"icmp"}}, {Forwarding: []Forwarding{7}}} {
		err := o.validShape()
		if err == nil || !strings.Contains(err.Error(), "want") {
			t.Errorf("%+v: %v, want an error saying what is accepted", o, err)
		}
	}
}

// The kernel's release decides whether auto tries fentry on functions
// with more than 6 arguments: Debian's and upstream's ways of writing it
// read as their version, and anything else is not read as one.
func TestParseRelease(t *testing.T) {
	for release, want := range map[string][2]int{
		"6.1.0-41-amd64":      {6, 1},
		"6.12.57+deb12-amd64": {6, 12},
		"6.6":                 {6, 6},
		"5.15.0-91-generic":   {5, 15},
	} {
		major, minor, ok := parseRelease(release)
		if !ok || major != want[0] || minor != want[1] {
			t.Errorf("parseRelease(%q) = %d, %d, %v; want %d, %d", release, major, minor, ok, want[0], want[1])
		}
	}
	for _, bad := range []string{"", "6", "6.", "x.1", "6-1"} {
		if _, _, ok := parseRelease(bad); ok {
			t.Errorf("parseRelease(%q) reads as a version", bad)
		}
	}
}
