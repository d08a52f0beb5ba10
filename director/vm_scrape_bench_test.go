//go:build vmtest

package director

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/reconcile"
	"github.com/lvskit/lvskit/director/reconcile/reconciletest"
	"github.com/lvskit/lvskit/internal/lab"
)

// BenchmarkVMScrape10kx4 measures, in one VM run against the real
// kernel, a /metrics scrape of a 10,000 services x 4 real servers table
// served by lvsd's Metrics against Debian's prometheus-node-exporter
// with only its ipvs collector (ratio; goal <= 1.0). Both read the same
// kernel table: the table lives in a lab namespace, node_exporter runs
// there, and our collector reads that namespace's /proc/net through
// node_exporter's /proc/PID/net. Both serve on the namespace's loopback
// and are scraped from it alternately, as Prometheus does: text format,
// gzip, the whole body read.
func BenchmarkVMScrape10kx4(b *testing.B) {
	const (
		services, realServers = 10000, 4
		rounds                = 5
		exporterAddr          = "127.0.0.1:9100"
	)
	exporter, err := exec.LookPath("prometheus-node-exporter")
	if err != nil {
		b.Skipf("needs Debian's prometheus-node-exporter (scripts/install-deps.sh): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	l := lab.New(b, lab.Options{})
	h := l.AddHost("director")
	kernel, err := ipvs.New(ipvs.Options{NetNS: h.NetNSPath()})
	if err != nil {
		b.Fatal(err)
	}
	defer kernel.Close()
	table := reconciletest.BigTable(services, realServers)
	for _, e := range table {
		for i := range e.RealServers {
			e.RealServers[i].Address = e.RealServers[i].Address.Next() // never x.y.z.0 or .255 of a local net
		}
	}
	rec, err := reconcile.NewReconciler(reconcile.ReconcilerOptions{Client: kernel})
	if err != nil {
		b.Fatal(err)
	}
	if err := rec.ReadKernel(); err != nil {
		b.Fatal(err)
	}
	if res := rec.SetDesired(time.Now(), table); len(res.Failures) > 0 || len(res.Sent) != services*(1+realServers) {
		b.Fatalf("installing the table: %d writes sent, %d failed (first: %v)", len(res.Sent), len(res.Failures), res.Failures[:min(1, len(res.Failures))])
	}

	ne := h.Start(ctx, exporter, "--collector.disable-defaults", "--collector.ipvs",
		"--web.listen-address="+exporterAddr)
	if err := h.WaitTCP(ctx, exporterAddr); err != nil {
		b.Fatalf("%v; node_exporter's output:\n%s", err, ne.Output())
	}

	// /proc/net is the network namespace of the reading process, which
	// is not the lab's; root/proc -> /proc/PID of node_exporter, which
	// is, makes root/proc/net/ip_vs the lab's table.
	root := b.TempDir()
	if err := os.Symlink(fmt.Sprintf("/proc/%d", ne.Pid()), filepath.Join(root, "proc")); err != nil {
		b.Fatal(err)
	}
	if t, err := ipvs.ReadServiceTable(root); err != nil || len(t.Services) != services {
		b.Fatalf("reading the lab's table through %s: %d services, %v", root, len(t.Services), err)
	}
	m, err := NewMetrics(MetricsOptions{ProcRoot: root, ReconcilerStats: rec.Stats})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := h.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: m.Handler()}
	go srv.Serve(ln)
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			return h.DialContext(ctx, network, address)
		},
	}}
	defer client.CloseIdleConnections()
	targets := []struct {
		name, url string
		times     []time.Duration
	}{
		{name: "lvsd", url: "http://" + ln.Addr().String() + "/metrics"},
		{name: "node_exporter", url: "http://" + exporterAddr + "/metrics"},
	}
	// A first scrape of each warms up (connections, caches); then
	// rounds of one scrape each, alternating.
	for round := -1; round < rounds; round++ {
		for i := range targets {
			t := &targets[i]
			d, body, err := scrapeBody(ctx, client, t.url)
			if err != nil {
				b.Fatalf("scraping %s: %v", t.name, err)
			}
			if n := countPrefixed(body, "node_ipvs_backend_weight{"); n != services*realServers {
				b.Fatalf("scrape of %s: %d node_ipvs_backend_weight series, want %d", t.name, n, services*realServers)
			}
			if round >= 0 {
				t.times = append(t.times, d)
			}
		}
	}
	ours, theirs := medianDuration(targets[0].times), medianDuration(targets[1].times)
	ratio := ours.Seconds() / theirs.Seconds()
	b.ReportMetric(ours.Seconds(), "lvsd-scrape-s")
	b.ReportMetric(theirs.Seconds(), "node-exporter-scrape-s")
	b.ReportMetric(ratio, "scrape-ratio")
	b.Logf("scrape of 10,000 x 4 (%d backend series each): lvsd %v, node_exporter %v, ratio %.2f (all: %v vs %v)",
		services*realServers, ours, theirs, ratio, targets[0].times, targets[1].times)
}

// scrapeBody GETs url as Prometheus does (text format; gzip, which the
// transport asks for and undoes) and reads the body to its end.
func scrapeBody(ctx context.Context, c *http.Client, url string) (time.Duration, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	d := time.Since(start)
	resp.Body.Close()
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("%s: %s", resp.Status, body[:min(len(body), 512)])
	}
	return d, body, nil
}

// countPrefixed counts the lines of a text exposition that start with
// prefix.
func countPrefixed(body []byte, prefix string) int {
	n := 0
	s := bufio.NewScanner(bytes.NewReader(body))
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		if bytes.HasPrefix(s.Bytes(), []byte(prefix)) {
			n++
		}
	}
	return n
}

func medianDuration(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
