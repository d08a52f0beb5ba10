//go:build vmtest

package ipvs_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/lab"
)

// benchServices is n TCP services with one direct-route real server each,
// as ipvs.Service values and as the equivalent ipvsadm -R input.
func benchServices(n int) ([]ipvs.Service, []ipvs.RealServer, string) {
	var (
		svcs  []ipvs.Service
		rss   []ipvs.RealServer
		rules strings.Builder
	)
	for i := range n {
		vip := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 100 + byte(i>>16), byte(i >> 8), byte(i)}), 80)
		rip := netip.AddrFrom4([4]byte{10, 200 + byte(i>>16), byte(i >> 8), byte(i)})
		svcs = append(svcs, ipvs.Service{ServiceKey: ipvs.TCPKey(vip), Scheduler: "wrr"})
		rss = append(rss, ipvs.RealServer{Address: rip, Port: 80, Forwarding: ipvs.DirectRoute, Weight: 1})
		fmt.Fprintf(&rules, "-A -t %v -s wrr\n-a -t %v -r %v:80 -g -w 1\n", vip, vip, rip)
	}
	return svcs, rss, rules.String()
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkVMApply10k writes 10,000 services, each with one real server,
// through Client and through ipvsadm -R, alternating in the same VM run,
// and reports both medians and their ratio (lower is better for lvskit).
func BenchmarkVMApply10k(b *testing.B) {
	const n, rounds = 10000, 3
	l := lab.New(b, lab.Options{})
	svcs, rss, rules := benchServices(n)
	file := filepath.Join(b.TempDir(), "rules")
	if err := os.WriteFile(file, []byte(rules), 0o600); err != nil {
		b.Fatal(err)
	}
	// Each run gets a fresh namespace: after a flush the kernel keeps the
	// deleted real servers in a trash list for minutes, and adding real
	// servers searches it, which would slow whichever tool ran second.
	var ours, theirs []time.Duration
	for round := range rounds {
		h := l.AddHost(fmt.Sprintf("ours%d", round))
		c, err := ipvs.New(ipvs.Options{NetNS: h.NetNSPath()})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for i, s := range svcs {
			if err := c.AddService(s); err != nil {
				b.Fatal(err)
			}
			if err := c.AddRealServer(s.ServiceKey, rss[i]); err != nil {
				b.Fatal(err)
			}
		}
		ours = append(ours, time.Since(start))
		if got, _ := c.Services(); len(got) != n {
			b.Fatalf("Client wrote %d services, want %d", len(got), n)
		}
		c.Close()

		h = l.AddHost(fmt.Sprintf("ipvsadm%d", round))
		start = time.Now()
		run(b, h, "sh", "-c", "ipvsadm -R < "+file)
		theirs = append(theirs, time.Since(start))
		if out := run(b, h, "sh", "-c", "ipvsadm -Ln | grep -c '^TCP'"); strings.TrimSpace(out) != fmt.Sprint(n) {
			b.Fatalf("ipvsadm -R wrote %s services, want %d", out, n)
		}
	}
	b.ReportMetric(median(ours).Seconds(), "client-s")
	b.ReportMetric(median(theirs).Seconds(), "ipvsadm-R-s")
	b.ReportMetric(median(ours).Seconds()/median(theirs).Seconds(), "client/ipvsadm")
	b.Logf("10,000 services x 1 real server, each run in a fresh namespace: Client %v, ipvsadm -R %v (medians of %d; all: %v vs %v)",
		median(ours), median(theirs), rounds, ours, theirs)
}
