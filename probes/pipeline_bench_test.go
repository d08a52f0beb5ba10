package probes

import (
	"io"
	"testing"
	"time"
)

// BenchmarkPipelineRecorded is lvsdiag trace's user-space work per
// event, end to end: the records captured for the DR service on 6.12,
// replayed as many packets one after another, decoded, joined into
// paths and written as JSON lines (what --output json does for every
// traced packet).
func BenchmarkPipelineRecorded(b *testing.B) {
	recs := records(b, "6.12", "dr")
	d := fixtureDecoder(b, "6.12")
	g := NewGrouper(GrouperOptions{})
	jw := NewJSONWriter(io.Discard) // as lvsdiag trace --output json keeps one
	paths := 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for _, r := range recs {
			e, err := d.decode(r)
			if err != nil {
				b.Fatal(err)
			}
			// Each replay is other packets, an hour later.
			e.SKB += uint64(i) << 32
			e.Hop.At += time.Duration(i) * time.Hour
			for _, p := range g.Add(e) {
				if err := jw.WritePath(p); err != nil {
					b.Fatal(err)
				}
				paths++
			}
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "events/s")
	if paths == 0 {
		b.Fatal("no paths")
	}
}
