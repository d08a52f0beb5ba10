//go:build vmtest && linux && amd64

package probes_test

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/lvskit/lvskit/probes"
)

// BenchmarkVMAttach measures Open (resolve, load, attach every target)
// and Close (detach) per backend, on the VM's kernel. Backends the kernel
// lacks are skipped. Goal: attach <= 1 s (on hardware; the VM is TCG).
func BenchmarkVMAttach(b *testing.B) {
	for _, backend := range []probes.Backend{probes.BackendAuto, probes.BackendFentry, probes.BackendKprobe, probes.BackendKprobeMulti} {
		b.Run(string(backend), func(b *testing.B) {
			var open, close time.Duration
			attached := 0
			for range b.N {
				start := time.Now()
				tr, err := probes.Open(probes.Options{Backend: backend, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
				if err != nil {
					b.Fatal(err)
				}
				open += time.Since(start)
				attached = 0
				for _, a := range tr.Attachments() {
					if a.Backend == string(backend) || backend == probes.BackendAuto {
						attached++
					}
				}
				start = time.Now()
				if err := tr.Close(); err != nil {
					b.Fatal(err)
				}
				close += time.Since(start)
			}
			if attached < 3 {
				b.Skipf("%s: only %d targets attach on this kernel", backend, attached)
			}
			b.ReportMetric(open.Seconds()/float64(b.N), "attach-s")
			b.ReportMetric(close.Seconds()/float64(b.N), "detach-s")
			b.ReportMetric(float64(attached), "targets")
		})
	}
}
