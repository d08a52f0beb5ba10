//go:build linux && amd64

package probes_test

import (
	"os"
	"testing"
	"time"

	"github.com/lvskit/lvskit/probes"
)

// BenchmarkOpenTracepoints measures Open and Close of the tracer with
// its tracepoints only (receive, queue, drop, consume), the part of a
// trace every kernel with BTF can run: on this host, real hardware,
// and in the VM, where BenchmarkVMAttach measures the whole set. The
// two runs of this benchmark give the emulation's slowdown on the
// tracer's own work (BTF and object parsing, verification, attach),
// which scales the VM's whole-set figure to hardware.
func BenchmarkOpenTracepoints(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (CAP_BPF, CAP_PERFMON) to load BPF programs")
	}
	tracepoints := map[string]bool{"netif_receive_skb": true, "net_dev_queue": true, "kfree_skb": true, "consume_skb": true}
	probes.SetTargets(func(n string) bool { return tracepoints[n] })
	defer probes.SetTargets(nil)
	var open, close time.Duration
	attached := 0
	for b.Loop() {
		start := time.Now()
		tr, err := probes.Open(probes.Options{WithoutIPVS: true})
		if err != nil {
			b.Fatal(err)
		}
		open += time.Since(start)
		attached = len(tr.Attachments())
		start = time.Now()
		if err := tr.Close(); err != nil {
			b.Fatal(err)
		}
		close += time.Since(start)
	}
	if attached != 3 {
		b.Fatalf("attached %d tracepoints, want 3 (receive, queue, drop)", attached)
	}
	b.ReportMetric(open.Seconds()*1000/float64(b.N), "attach-ms")
	b.ReportMetric(close.Seconds()*1000/float64(b.N), "detach-ms")
}
