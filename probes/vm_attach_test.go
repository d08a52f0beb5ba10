//go:build vmtest && linux && amd64

package probes_test

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/lvskit/lvskit/probes"
)

// TestVMAttachEverything: on the VM's kernels (kprobes, fentry, ip_vs)
// every IPVS function the tracer knows attaches with the automatic
// backend, except those the kernel lacks, each named with its reason.
func TestVMAttachEverything(t *testing.T) {
	start := time.Now()
	tr, err := probes.Open(probes.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	t.Logf("open: %v", time.Since(start))
	for _, a := range tr.Attachments() {
		t.Logf("attached: %s %s", a.Target, a.Backend)
	}
	for _, u := range tr.Unseen() {
		t.Errorf("unseen: %s", u)
	}
}
