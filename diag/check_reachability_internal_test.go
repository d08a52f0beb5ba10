package diag

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestReachabilityFindings(t *testing.T) {
	targets := []pingTarget{{tVIP, "VIP"}, {tAddr("10.9.0.10"), "director"}, {tAddr("10.9.0.21"), "real server"}}
	up := PingResult{Sent: 3, Received: 3, RTTs: []time.Duration{time.Millisecond, 3 * time.Millisecond}, Method: "datagram"}
	for _, tc := range []struct {
		name    string
		results []PingResult
		errs    []error
		status  Status
		ids     []string
		notes   []string
	}{
		{"all answer", []PingResult{up, up, up}, nil, "", nil,
			[]string{"VIP 10.9.0.100: 3/3 replies, rtt min/avg/max 1.000ms/2.000ms/3.000ms", "(ICMP over datagram sockets)"}},
		{"some loss to the VIP is a warning", []PingResult{{Sent: 3, Received: 2}, up, up}, nil, "", []string{"reach-loss VIP 10.9.0.100"}, nil},
		{"a silent real server is critical", []PingResult{up, up, {Sent: 3}}, nil, "", []string{"reach-loss real server 10.9.0.21"}, nil},
		{"one target could not be pinged", []PingResult{up, {}, up}, []error{nil, errors.New("no route"), nil}, "", nil,
			[]string{"director 10.9.0.10: could not ping: no route"}},
		{"nothing could be pinged", make([]PingResult, 3), []error{ErrNotRoot, ErrNotRoot, ErrNotRoot}, StatusCouldNotRun, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.errs
			if errs == nil {
				errs = make([]error, len(targets))
			}
			o := reachabilityFindings(reachabilityFacts{target: tTarget, Targets: targets, Results: tc.results, Errs: errs})
			checkOutcome(t, o, tc.status, tc.ids, tc.notes...)
		})
	}
	sev := reachabilityFindings(reachabilityFacts{target: tTarget, Targets: targets[:1], Results: []PingResult{{Sent: 3}}, Errs: []error{nil}}).findings[0].Severity
	if sev != Critical {
		t.Errorf("no reply at all from the VIP: severity %s, want critical", sev)
	}
}

func TestRealServersFindings(t *testing.T) {
	a, b, c := netip.MustParseAddrPort("10.9.0.21:80"), netip.MustParseAddrPort("10.9.0.22:80"), netip.MustParseAddrPort("10.9.0.23:80")
	ok := func(digest string) ProbeResult { return ProbeResult{Status: 200, Digest: digest, BodyBytes: 10} }
	for _, tc := range []struct {
		name    string
		known   bool
		targets []netip.AddrPort
		results []ProbeResult
		status  Status
		ids     []string
	}{
		{"all the same", true, []netip.AddrPort{a, b, c}, []ProbeResult{ok("aa"), ok("aa"), ok("aa")}, "", nil},
		{"no real servers known", false, nil, nil, StatusCouldNotRun, nil},
		{"the director has none", true, nil, nil, StatusNotApplicable, nil},
		{"one unreachable", true, []netip.AddrPort{a, b}, []ProbeResult{ok("aa"), {Err: errors.New("connection refused")}}, "",
			[]string{"rs-unreachable real server 10.9.0.22:80"}},
		{"one answers 503", true, []netip.AddrPort{a, b}, []ProbeResult{ok("aa"), {Status: 503}}, "",
			[]string{"rs-http-error real server 10.9.0.22:80"}},
		{"one serves other content", true, []netip.AddrPort{a, b, c}, []ProbeResult{ok("aa"), ok("aa"), ok("bb")}, "",
			[]string{"rs-content-differs real server 10.9.0.23:80"}},
		{"no majority", true, []netip.AddrPort{a, b}, []ProbeResult{ok("aa"), ok("bb")}, "",
			[]string{"rs-content-differs real servers of 10.9.0.100:80"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := realServersFindings(realServersFacts{target: tTarget, Known: tc.known, Targets: tc.targets, Results: tc.results})
			checkOutcome(t, o, tc.status, tc.ids)
		})
	}
}
