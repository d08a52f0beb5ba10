package tui

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/lvskit/lvskit/director/ipvs"
)

// benchTree is a saved tree with the lab's services and a generated
// 1,000,000-entry connection table (bench/conntable.sh's format).
var benchTree = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "lvstop-bench-")
	if err != nil {
		return "", err
	}
	net := filepath.Join(dir, "proc", "net")
	if err := os.MkdirAll(net, 0o755); err != nil {
		return "", err
	}
	for _, name := range []string{"ip_vs", "ip_vs_stats"} {
		b, err := os.ReadFile(filepath.Join("..", "director", "ipvs", "testdata", "proc", "lab", name))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(net, name), b, 0o644); err != nil {
			return "", err
		}
	}
	f, err := os.Create(filepath.Join(net, "ip_vs_conn"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	return dir, ipvs.GenerateConnTable(f, 1_000_000, 1)
})

func benchSource(b *testing.B) *ProcSource {
	dir, err := benchTree()
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewProcSource(dir)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// reportHeap adds the live heap after a collection, what the TUI holds
// between refreshes.
func reportHeap(b *testing.B, keep any) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MB-heap-inuse")
	runtime.KeepAlive(keep)
}

// BenchmarkSnapshot1M is one refresh of the services views on a
// 1,000,000-entry table: services, totals, the table aggregated.
func BenchmarkSnapshot1M(b *testing.B) {
	src := benchSource(b)
	b.ReportAllocs()
	var s *Snapshot
	for b.Loop() {
		var err error
		if s, err = src.Collect(context.Background(), ConnQuery{}); err != nil {
			b.Fatal(err)
		}
		if s.ConnEntries != 1_000_000 {
			b.Fatalf("%d entries", s.ConnEntries)
		}
	}
	reportHeap(b, s)
}

// BenchmarkConnPage1M is one refresh of the connection view on a
// 1,000,000-entry table, sorted by expiry: a page of 50 rows.
func BenchmarkConnPage1M(b *testing.B) {
	src := benchSource(b)
	b.ReportAllocs()
	var s *Snapshot
	for b.Loop() {
		var err error
		s, err = src.Collect(context.Background(), ConnQuery{Sort: ConnByExpires, Offset: 1000, Limit: 50})
		if err != nil {
			b.Fatal(err)
		}
		if len(s.Conns.Rows) != 50 || s.Conns.Matched != 1_000_000 {
			b.Fatalf("%d rows of %d", len(s.Conns.Rows), s.Conns.Matched)
		}
	}
	reportHeap(b, s)
}
