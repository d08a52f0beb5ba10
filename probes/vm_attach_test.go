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
// every IPVS function the tracer knows attaches with the automatic
// backend, except those the kernel lacks, each named with its reason:
// fentry where the kernel allows it; on 6.1 kprobes for the functions
// with more than 6 arguments, whose fentry trampolines it refuses, and,
// with a filter, for the functions that share ip_vs_conn_new's kprobe
// program (kretprobe_conn, loaded for it anyway; without a filter their
// fexit programs verify in less time than their kprobes take to attach).
// On 6.12 the functions that share an entry program with two or more
// others (the transmitters, the protocols' scheduling entries) attach
// with kprobe-multi, one link for each program.
func TestVMAttachEverything(t *testing.T) {
	manyArgs := []string{"tcp_conn_schedule", "udp_conn_schedule", "sctp_conn_schedule", "ip_vs_conn_new"}
	shared := []string{"ip_vs_conn_in_get", "ip_vs_schedule", "ip_vs_conn_out_get"}
	multiOn612 := []string{"tcp_conn_schedule", "udp_conn_schedule", "sctp_conn_schedule",
		"ip_vs_nat_xmit", "ip_vs_dr_xmit", "ip_vs_tunnel_xmit", "ip_vs_bypass_xmit", "ip_vs_null_xmit",
		"ip_vs_nat_xmit_v6", "ip_vs_dr_xmit_v6", "ip_vs_tunnel_xmit_v6", "ip_vs_bypass_xmit_v6"}
	for _, tc := range []struct {
		name       string
		filter     probes.Filter
		kprobeOn61 []string
	}{
		{"no filter", probes.Filter{}, manyArgs},
		{"filter", probes.Filter{VIP: netip.MustParseAddr("10.77.0.200"), Port: 80}, append(slices.Clone(manyArgs), shared...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			tr, err := probes.Open(probes.Options{Filter: tc.filter, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
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
				case slices.Contains(tc.kprobeOn61, a.Target) && kernelRelease(t) == "6.1":
					want = "kprobe"
				case slices.Contains(multiOn612, a.Target) && kernelRelease(t) == "6.12":
					want = "kprobe-multi"
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
