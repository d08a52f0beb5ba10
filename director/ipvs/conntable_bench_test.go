package ipvs

import (
	"bytes"
	"sync"
	"testing"
)

const benchLines = 1_000_000

// reportLines adds ns/line and lines/s to a benchmark of benchLines lines.
func reportLines(b *testing.B) {
	perLine := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / benchLines
	b.ReportMetric(perLine, "ns/line")
	b.ReportMetric(1e9/perLine, "lines/s")
}

// benchTable is a synthetic 1,000,000-entry ip_vs_conn in the captured
// kernel format (see GenerateConnTable).
var benchTable = sync.OnceValue(func() []byte {
	var b bytes.Buffer
	if err := GenerateConnTable(&b, benchLines, 1); err != nil {
		panic(err)
	}
	return b.Bytes()
})

func BenchmarkScanConnections(b *testing.B) {
	data := benchTable()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		err := ScanConnections(bytes.NewReader(data), func(c *Connection) error { n++; return nil })
		if err != nil || n != benchLines {
			b.Fatalf("n=%d err=%v", n, err)
		}
	}
	reportLines(b)
}

func BenchmarkAggregate(b *testing.B) {
	data := benchTable()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s, err := Aggregate(bytes.NewReader(data))
		if err != nil || s.Entries != benchLines {
			b.Fatalf("n=%d err=%v", s.Entries, err)
		}
	}
	reportLines(b)
}

// BenchmarkAggregateOneCPU is Aggregate's per-line work on one CPU, on
// input already in memory: no reading, no goroutines.
func BenchmarkAggregateOneCPU(b *testing.B) {
	data := benchTable()
	var chunks [][]byte
	for len(data) > 0 {
		n := min(len(data), 1<<20)
		if n < len(data) {
			n = bytes.LastIndexByte(data[:n], '\n') + 1
		}
		chunks = append(chunks, data[:n])
		data = data[n:]
	}
	b.ResetTimer()
	for b.Loop() {
		t := newCountTable()
		cache := newGroupCache()
		for i, c := range chunks {
			if r := countChunk(aggChunk{seq: i, data: c}, cache, t); r.errMsg != "" {
				b.Fatal(r.errMsg)
			}
		}
	}
	reportLines(b)
}
