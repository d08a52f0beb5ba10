//go:build vmtest && linux && amd64

package probes_test

import (
	"testing"

	"github.com/lvskit/lvskit/probes"
)

// TestVMOpenLoadsSideBySideWithoutRace: Open loads programs in several
// collections at once, some relocated against ip_vs's BTF and attached
// to ip_vs's functions, some against vmlinux's. cilium/ebpf's module BTF
// decoder writes the kernel decoder's maps without its lock when it
// inflates a type for the first time, so unless Open made every such
// lookup before the loads, the race detector reports it here (and a
// build without it may die of "concurrent map writes"). Every backend,
// every hop: the most programs, the most collections side by side.
//
//	VM_KERNEL=6.1 go test -race -tags vmtest -run '^TestVMOpenLoadsSideBySideWithoutRace$' -exec $PWD/scripts/vm/run ./probes/
func TestVMOpenLoadsSideBySideWithoutRace(t *testing.T) {
	if !probes.RaceDetector {
		t.Skip("proves nothing without the race detector: run it with go test -race")
	}
	for _, b := range []probes.Backend{probes.BackendAuto, probes.BackendFentry, probes.BackendKprobe} {
		t.Run(string(b), func(t *testing.T) {
			tr, err := probes.Open(probes.Options{Backend: b, Hops: probes.HopsAll})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if len(tr.Attachments()) == 0 {
				t.Fatal("nothing attached")
			}
			t.Logf("%d targets attached, %d unseen", len(tr.Attachments()), len(tr.Unseen()))
		})
	}
}
