package diag

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/internal/schematest"
)

var drillT0 = time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return drillT0.Add(time.Duration(ms) * time.Millisecond) }

// drillProbes returns a probe every 50 ms from startMs to endMs (exclusive),
// each taking 5 ms, failing (timing out after 1 s) when fail says so.
func drillProbes(startMs, endMs int, fail func(ms int) bool) []DrillProbe {
	var out []DrillProbe
	for m := startMs; m < endMs; m += 50 {
		if fail != nil && fail(m) {
			out = append(out, DrillProbe{Start: at(m), End: at(m + 1000), Err: "dial tcp 10.90.0.100:80: i/o timeout"})
			continue
		}
		out = append(out, DrillProbe{Start: at(m), End: at(m + 5), OK: true})
	}
	return out
}

func longConns(n int, broken ...int) []DrillConn {
	out := make([]DrillConn, n)
	for i := range out {
		out[i] = DrillConn{Opened: at(-900), Requests: 40}
	}
	for _, i := range broken {
		out[i].Broken, out[i].Err = at(700), "read tcp 10.90.0.2:40012->10.90.0.100:80: connection reset by peer"
	}
	return out
}

var mac2 = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x12}

// drillCases are facts as the runner gathers them, with what the
// summary must say.
var drillCases = []struct {
	name  string
	facts DrillFacts
	want  DrillSummary
	ids   string
}{
	{
		name: "vrrp-clean",
		facts: DrillFacts{
			Kind: DrillVRRP, VIP: netip.MustParseAddr("10.90.0.100"), Port: 80, Director: "unix:/run/lvs1/status.sock", Target: "VI_1",
			Peers: []string{"http://10.90.0.12:9120"}, Hold: time.Minute, Start: at(-1000),
			Requested: at(0), Accepted: at(3), Released: at(40), TookOver: at(690), NewDirector: "http://10.90.0.12:9120",
			ARPWatched: true, GARPs: []GARP{{At: at(-5000), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x11}}, {At: at(688), MAC: mac2}},
			Ended: at(3000), Restored: at(6800), RestoredState: "unix:/run/lvs1/status.sock master again",
			Probes: drillProbes(-1000, 8000, func(m int) bool { return m >= 50 && m < 700 }),
			Long:   longConns(4), End: at(8000),
		},
		want: DrillSummary{Released: 40 * time.Millisecond, TookOver: 690 * time.Millisecond, FirstGARP: 688 * time.Millisecond,
			FirstForward: 705 * time.Millisecond, Restored: 3800 * time.Millisecond, Requests: 160, Failed: 13, FailedRestore: 0,
			LongestOutage: 700 * time.Millisecond, Slowest: 5 * time.Millisecond, Long: 4, LongBroken: 0},
		ids: "drill-requests-failed",
	},
	{
		name: "vrrp-broken",
		facts: DrillFacts{
			Kind: DrillVRRP, VIP: netip.MustParseAddr("10.90.0.100"), Port: 80, Director: "unix:/run/lvs1/status.sock", Target: "VI_1",
			Peers: []string{"http://10.90.0.12:9120"}, Hold: time.Minute, Start: at(-1000),
			Requested: at(0), Accepted: at(3), Released: at(40), TookOver: at(690), NewDirector: "http://10.90.0.12:9120",
			ARPWatched: true, Ended: at(3000), Restored: at(6800), RestoredState: "unix:/run/lvs1/status.sock master again",
			Probes: drillProbes(-1000, 8000, func(m int) bool { return m >= 50 && m < 700 || m >= 3500 && m < 3600 }),
			Long:   longConns(4, 1, 3), End: at(8000),
		},
		want: DrillSummary{Released: 40 * time.Millisecond, TookOver: 690 * time.Millisecond, FirstGARP: notSeen,
			FirstForward: 705 * time.Millisecond, Restored: 3800 * time.Millisecond, Requests: 160, Failed: 13, FailedRestore: 2,
			LongestOutage: 700 * time.Millisecond, Slowest: 5 * time.Millisecond, Long: 4, LongBroken: 2},
		ids: "drill-connections-broken drill-no-garp drill-requests-failed",
	},
	{
		name: "bgp-not-restored",
		facts: DrillFacts{
			Kind: DrillBGP, VIP: netip.MustParseAddr("10.83.100.1"), Port: 80, Director: "unix:/run/d1/status.sock", Target: "10.83.100.1",
			Peers: []string{"unix:/run/d2/status.sock", "unix:/run/d3/status.sock"}, Hold: 30 * time.Second, Start: at(-1000),
			Requested: at(0), Accepted: at(2), Released: at(30), Ended: at(5000),
			Probes: drillProbes(-1000, 10000, nil), Long: longConns(6), End: at(10000),
			Notes: []string{"the route change is seen at the router: run the drill there, or read its FIB"},
		},
		want: DrillSummary{Released: 30 * time.Millisecond, TookOver: notSeen, FirstGARP: notSeen, FirstForward: 55 * time.Millisecond,
			Restored: notSeen, Requests: 200, Slowest: 5 * time.Millisecond, Long: 6},
		ids: "drill-not-restored",
	},
	{
		name: "vrrp-no-takeover",
		facts: DrillFacts{
			Kind: DrillVRRP, VIP: netip.MustParseAddr("10.90.0.100"), Port: 80, Director: "unix:/run/lvs1/status.sock", Target: "VI_1",
			Hold: time.Minute, Start: at(-1000), Requested: at(0), Accepted: at(3), Released: at(40),
			Probes: drillProbes(-1000, 2000, func(m int) bool { return m >= 50 }), End: at(3000),
		},
		want: DrillSummary{Released: 40 * time.Millisecond, TookOver: notSeen, FirstGARP: notSeen, FirstForward: notSeen,
			Restored: notSeen, Requests: 40, Failed: 39, LongestOutage: 2995 * time.Millisecond, Slowest: 5 * time.Millisecond},
		ids: "drill-no-takeover drill-requests-failed",
	},
}

func TestDrillSummaryAndFindings(t *testing.T) {
	for _, tc := range drillCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.facts.Summarize(); got != tc.want {
				t.Errorf("Summarize:\n got  %+v\n want %+v", got, tc.want)
			}
			var ids []string
			for _, f := range tc.facts.Findings() {
				ids = append(ids, f.ID)
			}
			if got := strings.Join(sortedCopy(ids), " "); got != tc.ids {
				t.Errorf("findings %q, want %q", got, tc.ids)
			}
		})
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestDrillReportGolden renders every case in every format and compares
// with testdata/drill/CASE.{txt,json,md}; -update rewrites them. The
// JSON must match drill.schema.json.
func TestDrillReportGolden(t *testing.T) {
	schema := schematest.Load(t, "drill.schema.json")
	exts := map[Format]string{Text: "txt", JSON: "json", Markdown: "md"}
	for _, tc := range drillCases {
		for format, ext := range exts {
			t.Run(tc.name+"/"+string(format), func(t *testing.T) {
				var b bytes.Buffer
				if err := WriteDrillReport(&b, &tc.facts, tc.facts.Findings(), format); err != nil {
					t.Fatal(err)
				}
				if format == JSON {
					var v any
					if err := json.Unmarshal(b.Bytes(), &v); err != nil {
						t.Fatal(err)
					}
					if errs := schematest.Validate(schema, v); len(errs) > 0 {
						t.Errorf("the drill report does not match drill.schema.json:\n%s", strings.Join(errs, "\n"))
					}
				}
				golden(t, filepath.Join("testdata", "drill", tc.name+"."+ext), b.Bytes())
			})
		}
	}
}
