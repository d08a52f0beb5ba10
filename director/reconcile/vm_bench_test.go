//go:build vmtest

package reconcile_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/reconcile"
	"github.com/lvskit/lvskit/director/reconcile/reconciletest"
	"github.com/lvskit/lvskit/internal/lab"
)

// countingClient counts the writes that reach the kernel.
type countingClient struct {
	ipvs.Client
	writes atomic.Int64
}

func (c *countingClient) AddService(s ipvs.Service) error {
	c.writes.Add(1)
	return c.Client.AddService(s)
}
func (c *countingClient) UpdateService(s ipvs.Service) error {
	c.writes.Add(1)
	return c.Client.UpdateService(s)
}
func (c *countingClient) DeleteService(k ipvs.ServiceKey) error {
	c.writes.Add(1)
	return c.Client.DeleteService(k)
}
func (c *countingClient) AddRealServer(k ipvs.ServiceKey, r ipvs.RealServer) error {
	c.writes.Add(1)
	return c.Client.AddRealServer(k, r)
}
func (c *countingClient) UpdateRealServer(k ipvs.ServiceKey, r ipvs.RealServer) error {
	c.writes.Add(1)
	return c.Client.UpdateRealServer(k, r)
}
func (c *countingClient) DeleteRealServer(k ipvs.ServiceKey, r ipvs.RealServerKey) error {
	c.writes.Add(1)
	return c.Client.DeleteRealServer(k, r)
}

// ipvsadmRules renders a table as ipvsadm -R input.
func ipvsadmRules(t reconcile.Table) string {
	var b strings.Builder
	for _, k := range t.Keys() {
		e := t[k]
		vip := fmt.Sprintf("%v:%d", k.Address, k.Port)
		fmt.Fprintf(&b, "-A -t %s -s %s\n", vip, e.Service.Scheduler)
		for _, r := range e.RealServers {
			fmt.Fprintf(&b, "-a -t %s -r %v:%d -g -w %d\n", vip, r.Address, r.Port, r.Weight)
		}
	}
	return b.String()
}

func medianOf(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkVMReconcile10kx4 measures, in one VM run against the real
// kernel: a cold apply of 10,000 services x 4 real servers through the
// reconciler against ipvsadm -R of the same rules (ratio; goal <= 1.0),
// one real server's weight change in that table (goal <= 5 ms), and the
// writes a no-change reload sends (goal 0).
func BenchmarkVMReconcile10kx4(b *testing.B) {
	l := lab.New(b, lab.Options{})
	table := reconciletest.BigTable(10000, 4)
	for _, e := range table {
		for i := range e.RealServers {
			e.RealServers[i].Address = e.RealServers[i].Address.Next() // never x.y.z.0 or .255 of a local net
		}
	}
	rules := filepath.Join(b.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte(ipvsadmRules(table)), 0o600); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	// Each run gets a fresh namespace: after a flush the kernel keeps the
	// deleted real servers in a trash list for minutes, and adding real
	// servers searches it, which would slow whichever tool ran second.
	var (
		ours, theirs []time.Duration
		rec          *reconcile.Reconciler
		c            *countingClient
	)
	for round := range 3 {
		h := l.AddHost(fmt.Sprintf("ipvsadm%d", round))
		start := time.Now()
		if out, err := h.Run(ctx, "sh", "-c", "ipvsadm -R < "+rules); err != nil {
			b.Fatalf("ipvsadm -R: %v %s", err, out)
		}
		theirs = append(theirs, time.Since(start))

		h = l.AddHost(fmt.Sprintf("lvsd%d", round))
		kernel, err := ipvs.New(ipvs.Options{NetNS: h.NetNSPath()})
		if err != nil {
			b.Fatal(err)
		}
		defer kernel.Close()
		c = &countingClient{Client: kernel}
		rec, err = reconcile.NewReconciler(reconcile.ReconcilerOptions{Client: c})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if err := rec.ReadKernel(); err != nil {
			b.Fatal(err)
		}
		res := rec.SetDesired(time.Now(), table)
		ours = append(ours, time.Since(start))
		if len(res.Failures) > 0 || len(res.Sent) != 50000 {
			b.Fatalf("round %d: %d writes sent, %d failed (first: %v)", round, len(res.Sent), len(res.Failures), res.Failures[:min(1, len(res.Failures))])
		}
	}
	ratio := medianOf(ours).Seconds() / medianOf(theirs).Seconds()
	b.ReportMetric(medianOf(ours).Seconds(), "lvsd-cold-s")
	b.ReportMetric(medianOf(theirs).Seconds(), "ipvsadm-R-s")
	b.ReportMetric(ratio, "cold-ratio")
	b.Logf("cold apply 10,000 x 4: reconciler %v, ipvsadm -R %v, ratio %.2f (all: %v vs %v)", medianOf(ours), medianOf(theirs), ratio, ours, theirs)

	// One real server's change, as a health transition makes it.
	keys := table.Keys()
	var one []time.Duration
	for i := range 200 {
		k := keys[(i*37)%len(keys)]
		e := table[k]
		changed := &reconcile.Entry{Service: e.Service, RealServers: slices.Clone(e.RealServers)}
		changed.RealServers[i%4].Weight = int32(i % 2)
		before := c.writes.Load()
		start := time.Now()
		res := rec.SetService(time.Now(), k, changed)
		one = append(one, time.Since(start))
		table[k] = changed
		if n := c.writes.Load() - before; len(res.Failures) > 0 || n > 1 {
			b.Fatalf("one change sent %d writes, failures %v", n, res.Failures)
		}
	}
	slices.Sort(one)
	b.ReportMetric(float64(medianOf(one).Microseconds())/1000, "one-change-ms")
	b.ReportMetric(float64(one[len(one)*99/100].Microseconds())/1000, "one-change-p99-ms")
	b.Logf("one real server's change: median %v, p99 %v", medianOf(one), one[len(one)*99/100])

	before := c.writes.Load()
	start := time.Now()
	rec.SetDesired(time.Now(), table)
	if _, err := rec.Resync(time.Now()); err != nil {
		b.Fatal(err)
	}
	noChange := c.writes.Load() - before
	b.ReportMetric(float64(noChange), "no-change-writes")
	b.Logf("no-change reload + resync: %d writes, %v", noChange, time.Since(start))
	if noChange != 0 {
		b.Errorf("a no-change reload sent %d writes", noChange)
	}
}
