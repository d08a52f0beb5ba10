package diag

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// The pure findings functions are tested as tables of facts: what a
// check gathered, and the findings (ID and subject) and notes a user
// would read.

var (
	tVIP    = netip.MustParseAddr("10.9.0.100")
	tStart  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tTarget = target{VIP: tVIP, Port: 80, Host: "www.example.com", Path: "/", Probe: ProbeAuto, Iface: "eth0"}
)

func tMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func tAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// idsOf lists "ID subject" of an outcome's findings, sorted as a report
// shows them.
func idsOf(o outcome) []string {
	fs := slices.Clone(o.findings)
	SortFindings(fs)
	var out []string
	for _, f := range fs {
		out = append(out, f.ID+" "+f.Subject)
	}
	return out
}

// checkOutcome compares an outcome's status, findings and (when given)
// notes it must hold.
func checkOutcome(t *testing.T, o outcome, status Status, ids []string, notes ...string) {
	t.Helper()
	if o.status != status {
		t.Errorf("status %q (%s), want %q", o.status, o.reason, status)
	}
	if got := idsOf(o); !slices.Equal(got, ids) {
		t.Errorf("findings\n  %q\nwant\n  %q", got, ids)
	}
	for _, n := range notes {
		if !slices.ContainsFunc(o.notes, func(s string) bool { return strings.Contains(s, n) }) {
			t.Errorf("notes lack %q:\n  %s", n, strings.Join(o.notes, "\n  "))
		}
	}
	for _, f := range o.findings {
		if f.Subject == "" || len(f.Evidence) == 0 || f.Fix == "" {
			t.Errorf("finding %s lacks subject, evidence or fix", f.ID)
		}
	}
}
