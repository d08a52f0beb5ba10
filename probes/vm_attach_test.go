//go:build vmtest && linux && amd64

package probes_test

import (
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/probes"
)

// TestVMAttachEverything: on the VM's kernels (kprobes, fentry, ip_vs)
// every function the tracer knows attaches with the automatic backend,
// except those the kernel lacks, each named with its reason: on 6.12
// with fentry; on 6.1, whose fentry refuses functions with more than 6
// arguments, IPVS's functions with kprobes (their shared programs verify
// in a fraction of the time of one fentry program per function), with or
// without a filter, and the stack's functions (every hop) with fentry.
func TestVMAttachEverything(t *testing.T) {
	stack := []string{"ip_forward", "ip_local_deliver", "ip_local_out", "ip_output",
		"ip6_forward", "ip6_input", "ip6_local_out", "ip6_output"}
	for _, tc := range []struct {
		name string
		opts probes.Options
	}{
		{"no filter", probes.Options{}},
		{"filter", probes.Options{Filter: probes.Filter{VIP: netip.MustParseAddr("10.77.0.200"), Port: 80}}},
		{"every hop", probes.Options{Hops: probes.HopsAll}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			opts := tc.opts
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
			tr, err := probes.Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			t.Logf("open: %v", time.Since(start))
			for _, a := range tr.Attachments() {
				t.Logf("attached: %s %s", a.Target, a.Backend)
				want := "fentry"
				switch {
				case strings.HasPrefix(a.Backend, "tp_btf"), a.Backend == "raw_tp":
					continue
				case !slices.Contains(stack, a.Target) && kernelRelease(t) == "6.1":
					want = "kprobe"
				}
				if a.Backend != want {
					t.Errorf("%s attached with %s, want %s", a.Target, a.Backend, want)
				}
			}
			for _, u := range tr.Unseen() {
				t.Errorf("unseen: %s", u)
			}
		})
	}
}

// TestVMForcedBackendNamesWhatItCannotSee: a forced backend the kernel
// cannot use for a function skips it with one line naming it, why, and
// the hop it hides (Debian's 6.1: fentry refuses 7-argument functions,
// and there is no kprobe-multi); on 6.12 everything attaches.
func TestVMForcedBackendNamesWhatItCannotSee(t *testing.T) {
	old := kernelRelease(t) == "6.1"
	for backend, want := range map[probes.Backend]string{
		probes.BackendFentry:      "ip_vs_conn_new: fentry on this kernel refuses functions with more than 6 arguments (it has 7): the connection IPVS creates is not shown",
		probes.BackendKprobeMulti: "ip_vs_in_hook: kprobe-multi is not available on this kernel: packets entering IPVS and its verdicts are not shown",
	} {
		tr, err := probes.Open(probes.Options{Backend: backend})
		if err != nil {
			t.Fatalf("%s: %v", backend, err)
		}
		unseen := tr.Unseen()
		tr.Close()
		switch {
		case old && !slices.Contains(unseen, want):
			t.Errorf("%s on 6.1: Unseen does not say %q:\n%s", backend, want, strings.Join(unseen, "\n"))
		case !old && len(unseen) != 0:
			t.Errorf("%s on %s: %s", backend, kernelRelease(t), strings.Join(unseen, "\n"))
		}
	}
}
