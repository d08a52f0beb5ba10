package probes

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/internal/schematest"
)

// Events recorded in the VM on Debian's 6.1 and 6.12 (testdata/records-*,
// captured by TestVMCaptureFixtures), grouped into paths and printed as
// lvsdiag trace prints them: each scenario's outcome must be what the
// lab did, and the output is kept as goldens (-update rewrites them).
func TestRecordedPaths(t *testing.T) {
	weight0 := func(Service) ([]Destination, bool) {
		return []Destination{{Weight: 0}}, true
	}
	for _, k := range kernels {
		for _, tc := range []struct {
			name string
			// want is an outcome and the start of its why that some path
			// of the scenario must have.
			want []string
			// outer: a forwarded path carries the outer IPIP header.
			outer bool
		}{
			{name: "dr", want: []string{"forwarded: IPVS sent it to 10.77.0.2", "by direct route"}},
			{name: "nat", want: []string{"forwarded: IPVS sent it to 10.78.0.11:80 by NAT", "reply: a NAT reply from 10.78.0.11:80"}},
			{name: "tun", want: []string{"forwarded: IPVS sent it to 10.77.0.31:80 by tunnel"}, outer: true},
			{name: "weight0", want: []string{"dropped: IPVS found no destination (all real servers of TCP 10.77.0.250:80 have weight 0)"}},
			{name: "noservice", want: []string{"local: it went to the local stack: no IPVS service took TCP 10.77.0.200:81"}},
		} {
			t.Run(k+"/"+tc.name, func(t *testing.T) {
				g := NewGrouper(GrouperOptions{Destinations: weight0})
				var paths []Path
				for _, e := range recorded(t, k, tc.name) {
					paths = append(paths, g.Add(e)...)
				}
				paths = append(paths, g.Close()...)
				var text, jsonl bytes.Buffer
				var ends []string
				outer := false
				for _, p := range paths {
					if err := WriteText(&text, p, TextOptions{}); err != nil {
						t.Fatal(err)
					}
					if err := WriteJSON(&jsonl, p); err != nil {
						t.Fatal(err)
					}
					ends = append(ends, string(p.Outcome)+": "+p.Why)
					outer = outer || p.Outcome == OutcomeForwarded && p.Outer != nil && p.Outer.Protocol == "IPIP"
				}
				all := strings.Join(ends, "\n")
				for _, w := range tc.want {
					if !strings.Contains(all, w) {
						t.Errorf("no path ends %q; the paths end:\n%s", w, all)
					}
				}
				if tc.outer && !outer {
					t.Errorf("no forwarded path with its outer IPIP header")
				}
				for _, line := range strings.Split(strings.TrimSpace(jsonl.String()), "\n") {
					schematest.Check(t, "trace.schema.json", []byte(line))
				}
				golden(t, fmt.Sprintf("testdata/render/recorded-%s-%s.txt", k, tc.name), text.Bytes())
			})
		}
	}
}

// BenchmarkGroupRecorded replays the events recorded for the DR service
// on 6.12, as many packets one after another, through a Grouper: the
// user-space cost of a trace per event.
func BenchmarkGroupRecorded(b *testing.B) {
	evs := recorded(b, "6.12", "dr")
	span := evs[len(evs)-1].Hop.At - evs[0].Hop.At + time.Millisecond
	g := NewGrouper(GrouperOptions{})
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := range b.N {
		shift := time.Duration(i) * span
		for _, e := range evs {
			e.SKB += uint64(i) << 32
			e.Hop.At += shift
			e.Entry.At += shift
			n += len(g.Add(e))
		}
	}
	n += len(g.Close())
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
	if n == 0 {
		b.Fatal("no paths")
	}
}
