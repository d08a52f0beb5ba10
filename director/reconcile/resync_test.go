package reconcile_test

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
	"github.com/lvskit/lvskit/director/reconcile"
	"github.com/lvskit/lvskit/director/reconcile/reconciletest"
)

func calls(f *ipvstest.Fake) []string {
	var out []string
	for _, c := range f.Calls() {
		out = append(out, c.String())
	}
	return out
}

// settled returns a reconciler that has applied desired and resynced
// once since (the resync after lvsd's own writes reads the services it
// wrote again), with the fake's calls reset.
func settled(t *testing.T, f *ipvstest.Fake, opts reconcile.ReconcilerOptions, desired reconcile.Table) *reconcile.Reconciler {
	t.Helper()
	opts.Client = f
	r, err := reconcile.NewReconciler(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ReadKernel(); err != nil {
		t.Fatal(err)
	}
	if res := r.SetDesired(t0, desired); len(res.Failures) > 0 {
		t.Fatalf("applying: %v", res.Failures)
	}
	if _, err := r.Resync(t0); err != nil {
		t.Fatal(err)
	}
	f.ResetCalls()
	return r
}

func resync(t *testing.T, r *reconcile.Reconciler) reconcile.Result {
	t.Helper()
	res, err := r.Resync(t0)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestNoChangeResyncOfTenThousandServicesIsOneProcRead is part 4's
// contract: with nothing changed, a resync reads /proc/net/ip_vs and
// asks netlink nothing.
func TestNoChangeResyncOfTenThousandServicesIsOneProcRead(t *testing.T) {
	f := ipvstest.New()
	r := settled(t, f, reconcile.ReconcilerOptions{FullReadEvery: 1000}, reconciletest.BigTable(10000, 4))
	res := resync(t, r)
	if diff := cmp.Diff([]string{"ServiceTable"}, calls(f)); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if res.FullRead || res.Reread != 0 || res.Drift != 0 {
		t.Errorf("result: full %v, reread %d, drift %d; want none", res.FullRead, res.Reread, res.Drift)
	}
}

// The first resync after lvsd's own writes reads back only the services
// it wrote, and finds no drift in them.
func TestResyncAfterOwnWritesRereadsOnlyThoseServices(t *testing.T) {
	f := ipvstest.New()
	desired := reconciletest.BigTable(100, 4)
	r := settled(t, f, reconcile.ReconcilerOptions{FullReadEvery: 1000}, desired)
	k := desired.Keys()[42]
	changed := &reconcile.Entry{Service: desired[k].Service, RealServers: slices.Clone(desired[k].RealServers)}
	changed.RealServers[1].Weight = 0
	r.SetService(t0, k, changed)
	f.ResetCalls()
	res := resync(t, r)
	want := []string{"ServiceTable", "Service " + k.String(), "RealServers " + k.String()}
	if diff := cmp.Diff(want, calls(f)); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if res.Drift != 0 || len(res.Sent) != 0 {
		t.Errorf("drift %d, writes %v: lvsd's own write is no drift", res.Drift, res.Sent)
	}
}

// Drift that /proc/net/ip_vs shows is repaired by the next resync, which
// reads over netlink only the service that changed.
func TestResyncRepairsDriftReadingOnlyTheChangedService(t *testing.T) {
	rs := func(addr string, w int32) ipvs.RealServer { return real(addr, w) }
	base := func() reconcile.Table {
		return tableOf(
			&reconcile.Entry{Service: svc("192.168.0.100:80"), RealServers: []ipvs.RealServer{rs("10.0.0.1", 1), rs("10.0.0.2", 1)}},
			&reconcile.Entry{Service: svc("192.168.0.101:80"), RealServers: []ipvs.RealServer{rs("10.0.0.3", 1)}},
		)
	}
	target := svc("192.168.0.100:80")
	k := target.ServiceKey
	for _, tc := range []struct {
		name   string
		drift  func(f *ipvstest.Fake) error
		repair []string
	}{
		{"weight changed", func(f *ipvstest.Fake) error { return f.UpdateRealServer(k, rs("10.0.0.2", 7)) },
			[]string{"UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.2:80 Route w=1"}},
		{"forwarding changed", func(f *ipvstest.Fake) error {
			r := rs("10.0.0.2", 1)
			r.Forwarding = ipvs.Masquerade
			return f.UpdateRealServer(k, r)
		}, []string{"UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.2:80 Route w=1"}},
		{"real server deleted", func(f *ipvstest.Fake) error { return f.DeleteRealServer(k, rs("10.0.0.1", 1).Key()) },
			[]string{"AddRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=1"}},
		{"real server added", func(f *ipvstest.Fake) error { return f.AddRealServer(k, rs("10.0.0.9", 1)) },
			[]string{"DeleteRealServer TCP 192.168.0.100:80 -> 10.0.0.9:80"}},
		{"scheduler changed", func(f *ipvstest.Fake) error {
			s := target
			s.Scheduler = "rr"
			return f.UpdateService(s)
		}, []string{"UpdateService TCP 192.168.0.100:80 wrr"}},
		{"persistence set", func(f *ipvstest.Fake) error {
			s := target
			s.Flags, s.Timeout = ipvs.FlagPersistent, 300
			return f.UpdateService(s)
		}, []string{"UpdateService TCP 192.168.0.100:80 wrr"}},
		{"one-packet flag set", func(f *ipvstest.Fake) error {
			s := target
			s.Flags = ipvs.FlagOnePacket
			return f.UpdateService(s)
		}, []string{"UpdateService TCP 192.168.0.100:80 wrr"}},
		{"service deleted", func(f *ipvstest.Fake) error { return f.DeleteService(k) },
			[]string{"AddService TCP 192.168.0.100:80 wrr", "AddRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=1",
				"AddRealServer TCP 192.168.0.100:80 -> 10.0.0.2:80 Route w=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ipvstest.New()
			r := settled(t, f, reconcile.ReconcilerOptions{FullReadEvery: 1000}, base())
			if err := tc.drift(f); err != nil {
				t.Fatal(err)
			}
			f.ResetCalls()
			res := resync(t, r)
			reads := []string{"ServiceTable", "Service " + k.String()}
			if tc.name != "service deleted" {
				reads = append(reads, "RealServers "+k.String())
			}
			if diff := cmp.Diff(reads, calls(f)[:len(reads)]); diff != "" {
				t.Errorf("reads (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.repair, writes(f)); diff != "" {
				t.Errorf("repair (-want +got):\n%s", diff)
			}
			if res.Drift != 1 || res.Reread != 1 || res.FullRead {
				t.Errorf("drift %d, reread %d, full %v; want 1, 1, false", res.Drift, res.Reread, res.FullRead)
			}
			f.ResetCalls()
			if res := resync(t, r); res.Drift != 0 || len(writes(f)) != 0 {
				t.Errorf("the resync after the repair: drift %d, writes %v", res.Drift, writes(f))
			}
		})
	}
}

// A service someone else adds is found (one netlink list of services to
// learn its key), read, and left alone.
func TestResyncFindsAServiceAddedBehindItsBack(t *testing.T) {
	f := ipvstest.New()
	r := settled(t, f, reconcile.ReconcilerOptions{FullReadEvery: 1000}, tableOf(
		&reconcile.Entry{Service: svc("192.168.0.100:80"), RealServers: []ipvs.RealServer{real("10.0.0.1", 1)}}))
	other := svc("192.168.0.200:443")
	if err := f.AddService(other); err != nil {
		t.Fatal(err)
	}
	if err := f.AddRealServer(other.ServiceKey, real("10.0.0.5", 1)); err != nil {
		t.Fatal(err)
	}
	f.ResetCalls()
	res := resync(t, r)
	want := []string{"ServiceTable", "Services", "Service TCP 192.168.0.200:443", "RealServers TCP 192.168.0.200:443"}
	if diff := cmp.Diff(want, calls(f)); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if len(res.Unowned) != 1 || res.Unowned[0] != other.ServiceKey {
		t.Errorf("unowned %v, want %v", res.Unowned, other.ServiceKey)
	}
	if _, ok := r.Kernel()[other.ServiceKey]; !ok {
		t.Error("the new service is not in lvsd's copy of the kernel")
	}
}

// What /proc/net/ip_vs does not show (a threshold here) is found by the
// full read every FullReadEvery resyncs.
func TestDriftProcCannotShowIsRepairedByTheFullRead(t *testing.T) {
	f := ipvstest.New()
	s := svc("192.168.0.100:80")
	r := settled(t, f, reconcile.ReconcilerOptions{FullReadEvery: 3}, tableOf(
		&reconcile.Entry{Service: s, RealServers: []ipvs.RealServer{real("10.0.0.1", 1)}}))
	// settled made the full read at ReadKernel and one resync since.
	changed := real("10.0.0.1", 1)
	changed.UpperThreshold = 100
	if err := f.UpdateRealServer(s.ServiceKey, changed); err != nil {
		t.Fatal(err)
	}
	f.ResetCalls()
	if res := resync(t, r); res.FullRead || res.Drift != 0 || len(writes(f)) != 0 {
		t.Fatalf("second resync: full %v, drift %d, writes %v; want a /proc read that cannot see it", res.FullRead, res.Drift, writes(f))
	}
	res := resync(t, r)
	if !res.FullRead || res.Drift != 1 {
		t.Errorf("third resync: full %v, drift %d; want the full read to find the threshold", res.FullRead, res.Drift)
	}
	if diff := cmp.Diff([]string{"UpdateRealServer TCP 192.168.0.100:80 -> 10.0.0.1:80 Route w=1"}, writes(f)); diff != "" {
		t.Errorf("repair (-want +got):\n%s", diff)
	}
	if st := r.Stats(); st.FullReads != 1 || st.Resyncs != 3 {
		t.Errorf("stats: %d full reads in %d resyncs, want 1 in 3 (ReadKernel's is not a resync)", st.FullReads, st.Resyncs)
	}
}

// Two fwmark services with one mark (IPv4 and IPv6) are one line each in
// /proc/net/ip_vs with no family to tell them apart: both are read over
// netlink at every resync, and nothing is mistaken for drift.
func TestFWMarkServicesOfBothFamiliesAreReadOverNetlink(t *testing.T) {
	f := ipvstest.New()
	v4 := ipvs.Service{ServiceKey: ipvs.FWMarkKey(ipvs.IPv4, 7), Scheduler: "rr", NetmaskBits: 32}
	v6 := ipvs.Service{ServiceKey: ipvs.FWMarkKey(ipvs.IPv6, 7), Scheduler: "rr", NetmaskBits: 128}
	v6only := ipvs.Service{ServiceKey: ipvs.FWMarkKey(ipvs.IPv6, 8), Scheduler: "rr", NetmaskBits: 128}
	r := settled(t, f, reconcile.ReconcilerOptions{FullReadEvery: 1000}, tableOf(
		&reconcile.Entry{Service: v4, RealServers: []ipvs.RealServer{real("10.0.0.1", 1)}},
		&reconcile.Entry{Service: v6, RealServers: []ipvs.RealServer{{Address: netip.MustParseAddr("fd00::1"), Port: 80, Forwarding: ipvs.DirectRoute, Weight: 1}}},
		&reconcile.Entry{Service: v6only}, // no real servers: /proc's guess of its family is IPv4
	))
	for range 2 {
		res := resync(t, r)
		if res.Drift != 0 || len(writes(f)) != 0 {
			t.Fatalf("drift %d, writes %v", res.Drift, writes(f))
		}
		if res.Reread != 2 {
			t.Errorf("reread %d services, want the two sharing mark 7", res.Reread)
		}
	}
}

// A /proc read that fails falls back to reading everything over netlink.
func TestResyncReadsOverNetlinkWhenProcFails(t *testing.T) {
	f := ipvstest.New()
	s := svc("192.168.0.100:80")
	r := settled(t, f, reconcile.ReconcilerOptions{FullReadEvery: 1000}, tableOf(&reconcile.Entry{Service: s, RealServers: []ipvs.RealServer{real("10.0.0.1", 1)}}))
	f.Hook = func(c ipvstest.Call) error {
		if c.Op == ipvstest.OpServiceTable {
			return errors.New("open /proc/thread-self/net/ip_vs: permission denied")
		}
		return nil
	}
	changed := real("10.0.0.1", 1)
	changed.LowerThreshold = 5
	f.UpdateRealServer(s.ServiceKey, changed)
	f.ResetCalls()
	res := resync(t, r)
	if !res.FullRead || res.Drift != 1 || len(writes(f)) != 1 {
		t.Errorf("full %v, drift %d, writes %v; want a full read that repairs", res.FullRead, res.Drift, writes(f))
	}
}
