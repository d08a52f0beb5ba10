package ipvs

import (
	"bytes"
	"io"
	"sync"
	"testing"
)

const benchLines = 1_000_000

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
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchLines, "ns/line")
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
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchLines, "ns/line")
}

func BenchmarkCopy(b *testing.B) {
	data := benchTable()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		io.Copy(io.Discard, bytes.NewReader(data))
	}
}
