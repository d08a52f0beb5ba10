//go:build vmtest

package reconcile_test

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/reconcile"
	"github.com/lvskit/lvskit/director/reconcile/reconciletest"
	"github.com/lvskit/lvskit/internal/lab"
)

// TestVMResyncRepairsDriftMadeWithIpvsadm edits the kernel behind the
// reconciler's back with ipvsadm, one edit at a time, and checks the
// next resync repairs it. Resyncs read /proc/net/ip_vs and netlink for
// the changed service only; what the file cannot show (a threshold) is
// repaired by the full read every FullReadEvery resyncs.
func TestVMResyncRepairsDriftMadeWithIpvsadm(t *testing.T) {
	l := lab.New(t, lab.Options{})
	h := l.AddHost("director")
	h.AddDummy("rs0", "10.200.0.1/16", "fd00:200::1/64")
	kernel, err := ipvs.New(ipvs.Options{NetNS: h.NetNSPath()})
	if err != nil {
		t.Fatal(err)
	}
	defer kernel.Close()
	const fullEvery = 20
	rec, err := reconcile.NewReconciler(reconcile.ReconcilerOptions{Client: kernel, FullReadEvery: fullEvery})
	if err != nil {
		t.Fatal(err)
	}
	rs := func(a string, w int32) ipvs.RealServer {
		return ipvs.RealServer{Address: netip.MustParseAddr(a), Port: 80, Forwarding: ipvs.DirectRoute, Weight: w}
	}
	v4 := ipvs.Service{ServiceKey: ipvs.TCPKey(netip.MustParseAddrPort("10.100.0.1:80")), Scheduler: "wrr", NetmaskBits: 32}
	v6 := ipvs.Service{ServiceKey: ipvs.TCPKey(netip.MustParseAddrPort("[fd00:100::1]:80")), Scheduler: "wlc", NetmaskBits: 128}
	fwm := ipvs.Service{ServiceKey: ipvs.FWMarkKey(ipvs.IPv4, 9), Scheduler: "rr", NetmaskBits: 32}
	desired := tableOf(
		&reconcile.Entry{Service: v4, RealServers: []ipvs.RealServer{rs("10.200.0.11", 1), rs("10.200.0.12", 2)}},
		&reconcile.Entry{Service: v6, RealServers: []ipvs.RealServer{rs("fd00:200::11", 1)}},
		&reconcile.Entry{Service: fwm, RealServers: []ipvs.RealServer{rs("10.200.0.21", 1)}},
	)
	if err := rec.ReadKernel(); err != nil {
		t.Fatal(err)
	}
	if res := rec.SetDesired(time.Now(), desired); len(res.Failures) > 0 {
		t.Fatalf("applying: %v", res.Failures)
	}
	ctx := context.Background()
	ipvsadm := func(args ...string) {
		t.Helper()
		if out, err := h.Run(ctx, "ipvsadm", args...); err != nil {
			t.Fatalf("ipvsadm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	saved := func() string {
		out, err := h.Run(ctx, "ipvsadm", "-Sn")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		slices.Sort(lines)
		return strings.Join(lines, "\n")
	}
	want := saved()
	resyncs := 0
	resync := func() reconcile.Result {
		t.Helper()
		res, err := rec.Resync(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Failures) > 0 {
			t.Fatalf("repair failed: %v", res.Failures)
		}
		resyncs++
		return res
	}
	resync() // reads back what lvsd wrote

	for _, tc := range []struct {
		name string
		edit []string
	}{
		{"weight change", []string{"-e", "-t", "10.100.0.1:80", "-r", "10.200.0.12:80", "-g", "-w", "9"}},
		{"deleted real server", []string{"-d", "-t", "10.100.0.1:80", "-r", "10.200.0.11:80"}},
		{"forwarding change", []string{"-e", "-t", "[fd00:100::1]:80", "-r", "[fd00:200::11]:80", "-m", "-w", "1"}},
		{"persistence flag", []string{"-E", "-t", "10.100.0.1:80", "-s", "wrr", "-p", "60"}},
		{"scheduler change", []string{"-E", "-f", "9", "-s", "wlc"}},
		{"deleted service", []string{"-D", "-t", "[fd00:100::1]:80"}},
	} {
		ipvsadm(tc.edit...)
		res := resync()
		if res.Drift != 1 || (!res.FullRead && res.Reread != 1) {
			t.Errorf("%s: drift %d, full read %v, %d services read over netlink; want drift 1 found reading 1 service", tc.name, res.Drift, res.FullRead, res.Reread)
		}
		if got := saved(); got != want {
			t.Errorf("%s not repaired: ipvsadm -Sn\n%s\nwant\n%s", tc.name, got, want)
		}
		resync() // reads back the repaired service
	}

	// Someone else's service is found, read, and left alone.
	ipvsadm("-A", "-u", "10.100.9.9:53", "-s", "rr")
	if res := resync(); res.Drift != 0 || len(res.Unowned) != 1 || len(res.Sent) != 0 {
		t.Errorf("added service: drift %d, unowned %v, writes %v; want it found and untouched", res.Drift, res.Unowned, res.Sent)
	}
	ipvsadm("-D", "-u", "10.100.9.9:53")
	resync()

	// A threshold is not in /proc/net/ip_vs: the full read repairs it.
	ipvsadm("-e", "-t", "10.100.0.1:80", "-r", "10.200.0.12:80", "-g", "-w", "2", "-x", "100")
	repaired := false
	for range fullEvery {
		res := resync()
		if res.Drift > 0 {
			if !res.FullRead {
				t.Errorf("the threshold was repaired by a resync that did not read everything")
			}
			repaired = true
			break
		}
	}
	if !repaired {
		t.Errorf("the threshold change was not repaired within %d resyncs", fullEvery)
	}
	if got := saved(); got != want {
		t.Errorf("threshold not repaired: ipvsadm -Sn\n%s\nwant\n%s", got, want)
	}
	t.Logf("%d resyncs, stats %+v", resyncs, rec.Stats())
}

// BenchmarkVMResync10kx4 measures, in one VM run against the real
// kernel at 10,000 services x 4 real servers, side by side: reading
// /proc/net/ip_vs once (the baseline), a no-change resync as lvsd makes
// it (/proc plus netlink for changed services), and the full netlink
// read every resync made before (and every FullReadEvery-th still
// makes). Goal: no-change resync <= 2x the /proc read.
func BenchmarkVMResync10kx4(b *testing.B) {
	const rounds = 5
	l := lab.New(b, lab.Options{})
	h := l.AddHost("director")
	kernel, err := ipvs.New(ipvs.Options{NetNS: h.NetNSPath()})
	if err != nil {
		b.Fatal(err)
	}
	defer kernel.Close()
	table := reconciletest.BigTable(10000, 4)
	for _, e := range table {
		for i := range e.RealServers {
			e.RealServers[i].Address = e.RealServers[i].Address.Next() // never x.y.z.0 or .255 of a local net
		}
	}
	incremental, err := reconcile.NewReconciler(reconcile.ReconcilerOptions{Client: kernel, FullReadEvery: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	if err := incremental.ReadKernel(); err != nil {
		b.Fatal(err)
	}
	if res := incremental.SetDesired(time.Now(), table); len(res.Failures) > 0 || len(res.Sent) != 50000 {
		b.Fatalf("installing: %d writes, %d failures", len(res.Sent), len(res.Failures))
	}
	full, err := reconcile.NewReconciler(reconcile.ReconcilerOptions{Client: kernel, FullReadEvery: 1})
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range []*reconcile.Reconciler{incremental, full} {
		r.SetDesired(time.Now(), table) // no writes: both see the kernel equal to it after a resync
		if _, err := r.Resync(time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	var procRead, procParse, noChange, fullRead []time.Duration
	var size int
	for range rounds {
		start := time.Now()
		if err := h.Do(func() error {
			data, err := os.ReadFile("/proc/thread-self/net/ip_vs")
			size = len(data)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		procRead = append(procRead, time.Since(start))

		start = time.Now()
		if _, err := kernel.ServiceTable(); err != nil {
			b.Fatal(err)
		}
		procParse = append(procParse, time.Since(start))

		start = time.Now()
		res, err := incremental.Resync(time.Now())
		if err != nil {
			b.Fatal(err)
		}
		noChange = append(noChange, time.Since(start))
		if res.FullRead || res.Reread != 0 || len(res.Sent) != 0 {
			b.Fatalf("no-change resync: full %v, reread %d, writes %d", res.FullRead, res.Reread, len(res.Sent))
		}

		start = time.Now()
		if res, err := full.Resync(time.Now()); err != nil || !res.FullRead {
			b.Fatalf("full resync: %v (full %v)", err, res.FullRead)
		}
		fullRead = append(fullRead, time.Since(start))
	}
	ratio := medianOf(noChange).Seconds() / medianOf(procRead).Seconds()
	b.ReportMetric(medianOf(procRead).Seconds()*1000, "proc-read-ms")
	b.ReportMetric(medianOf(procParse).Seconds()*1000, "proc-read-parse-ms")
	b.ReportMetric(medianOf(noChange).Seconds()*1000, "no-change-resync-ms")
	b.ReportMetric(medianOf(fullRead).Seconds()*1000, "full-netlink-resync-ms")
	b.ReportMetric(ratio, "no-change/proc-read")
	b.Logf("10,000 x 4 (%d bytes of /proc/net/ip_vs), medians of %d rounds: /proc read %v, read+parse %v, no-change resync %v (%.2fx the read; goal <= 2), full netlink resync (before) %v (%.0fx the new resync)",
		size, rounds, medianOf(procRead), medianOf(procParse), medianOf(noChange), ratio, medianOf(fullRead),
		medianOf(fullRead).Seconds()/medianOf(noChange).Seconds())
	b.Logf("all rounds: proc %v; parse %v; no-change %v; full %v", procRead, procParse, noChange, fullRead)
	if ratio > 2 {
		b.Errorf("a no-change resync took %.2fx a /proc/net/ip_vs read, goal <= 2", ratio)
	}
}
