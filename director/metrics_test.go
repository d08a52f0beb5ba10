package director

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/reconcile"
	"github.com/lvskit/lvskit/director/statusapi"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// procRoot copies a capture under director/ipvs/testdata/proc to a root
// directory laid out as /proc is.
func procRoot(t testing.TB, capture string) string {
	t.Helper()
	root := t.TempDir()
	net := filepath.Join(root, "proc", "net")
	if err := os.MkdirAll(net, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ip_vs", "ip_vs_stats"} {
		b, err := os.ReadFile(filepath.Join("ipvs", "testdata", "proc", capture, name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(net, name), b)
	}
	return root
}

// procRootWith lays out a root with the given ip_vs and the lab's stats.
func procRootWith(t testing.TB, ipVS string) string {
	t.Helper()
	root := procRoot(t, "lab")
	writeFile(t, filepath.Join(root, ipvs.ProcIPVS), []byte(ipVS))
	return root
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func newTestMetrics(t testing.TB, root string, stats func() reconcile.Stats) *Metrics {
	t.Helper()
	m, err := NewMetrics(MetricsOptions{ProcRoot: root, ReconcilerStats: stats})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// gather returns lvsd's and the kernel's families (not the Go runtime's
// nor the process's), as the registry sorts them.
func gather(t testing.TB, m *Metrics) []*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool {
		return !strings.HasPrefix(mf.GetName(), "node_ipvs_") && !strings.HasPrefix(mf.GetName(), "lvsd_")
	})
}

func exposition(t testing.TB, mfs []*dto.MetricFamily) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func family(mfs []*dto.MetricFamily, name string) *dto.MetricFamily {
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	}
	return -12345
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, got)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

func fixtureStats() reconcile.Stats {
	return reconcile.Stats{
		OpsSent:      map[reconcile.OpKind]uint64{reconcile.AddService: 24, reconcile.AddRealServer: 31, reconcile.UpdateRealServer: 2},
		OpsFailed:    map[reconcile.OpKind]uint64{reconcile.AddRealServer: 1},
		Resyncs:      7,
		DriftRepairs: 1,
	}
}

func TestMetricsGolden(t *testing.T) {
	m := newTestMetrics(t, procRoot(t, "lab"), fixtureStats)
	at := time.Date(2026, 3, 1, 12, 0, 3, 0, time.UTC)
	const web, rs1, rs2 = "TCP 10.0.0.100:80", "10.0.2.11:80", "10.0.2.12:80"
	m.SetHealth(web, rs1, health.StateUnknown)
	m.SetHealth(web, rs2, health.StateUnknown)
	for i := range 3 {
		m.ObserveCheck(web, rs1, health.Result{Up: true, Reason: "HTTP 200 from 10.0.2.11:80", Time: at, Duration: time.Duration(i+1) * time.Millisecond})
		m.ObserveCheck(web, rs2, health.Result{Up: false, Reason: "HTTP 503 from 10.0.2.12:80", Time: at, Duration: 2 * time.Second})
	}
	m.SetHealth(web, rs1, health.StateUp)
	m.SetHealth(web, rs2, health.StateDown)
	m.ObserveReload(at.Add(-time.Hour), nil)
	m.ObserveReload(at, errors.New("lvsd.yaml:3:1: unknown key"))
	m.CountError("ipvs")
	checkGolden(t, "metrics.golden", exposition(t, gather(t, m)))
}

// TestNodeExporterNames pins the node_ipvs_* families to node_exporter's
// ipvs collector (collector/ipvs_linux.go with procfs's ipvs.go): names,
// types, label names, and how each kind of service spells its labels.
func TestNodeExporterNames(t *testing.T) {
	mfs := gather(t, newTestMetrics(t, procRoot(t, "lab"), nil))
	backend := []string{"local_address", "local_mark", "local_port", "proto", "remote_address", "remote_port"}
	want := map[string]struct {
		typ    dto.MetricType
		labels []string
	}{
		"node_ipvs_connections_total":            {dto.MetricType_COUNTER, nil},
		"node_ipvs_incoming_packets_total":       {dto.MetricType_COUNTER, nil},
		"node_ipvs_outgoing_packets_total":       {dto.MetricType_COUNTER, nil},
		"node_ipvs_incoming_bytes_total":         {dto.MetricType_COUNTER, nil},
		"node_ipvs_outgoing_bytes_total":         {dto.MetricType_COUNTER, nil},
		"node_ipvs_backend_connections_active":   {dto.MetricType_GAUGE, backend},
		"node_ipvs_backend_connections_inactive": {dto.MetricType_GAUGE, backend},
		"node_ipvs_backend_weight":               {dto.MetricType_GAUGE, backend},
	}
	var got []string
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "node_") {
			continue
		}
		got = append(got, mf.GetName())
		w, ok := want[mf.GetName()]
		if !ok {
			t.Errorf("unexpected family %s", mf.GetName())
			continue
		}
		if mf.GetType() != w.typ {
			t.Errorf("%s is a %v, want %v", mf.GetName(), mf.GetType(), w.typ)
		}
		for _, m := range mf.GetMetric() {
			var names []string
			for _, lp := range m.GetLabel() {
				names = append(names, lp.GetName())
			}
			if !slices.Equal(names, w.labels) {
				t.Errorf("%s has labels %q, want %q", mf.GetName(), names, w.labels)
				break
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("families %q, want the %d of node_exporter", got, len(want))
	}
	if n := len(family(mfs, "node_ipvs_backend_weight").GetMetric()); n != 35 {
		t.Errorf("%d real servers, want the lab capture's 35", n)
	}

	// One real server of each kind of service, labelled as node_exporter
	// labels it.
	find := func(l map[string]string) *dto.Metric {
		for _, m := range family(mfs, "node_ipvs_backend_connections_active").GetMetric() {
			if cmp.Equal(labelMap(m), l) {
				return m
			}
		}
		t.Errorf("no node_ipvs_backend_connections_active%v", l)
		return nil
	}
	for _, c := range []struct {
		labels map[string]string
		active float64
	}{
		{map[string]string{"local_address": "10.0.0.100", "local_port": "80", "remote_address": "10.0.2.12", "remote_port": "80", "proto": "TCP", "local_mark": ""}, 2},
		{map[string]string{"local_address": "10.0.0.104", "local_port": "53", "remote_address": "10.0.2.11", "remote_port": "53", "proto": "UDP", "local_mark": ""}, 0},
		{map[string]string{"local_address": "fd00::100", "local_port": "80", "remote_address": "fd00:2::11", "remote_port": "80", "proto": "TCP", "local_mark": ""}, 1},
		{map[string]string{"local_address": "", "local_port": "0", "remote_address": "10.0.2.11", "remote_port": "8000", "proto": "FWM", "local_mark": "00000001"}, 1},
		{map[string]string{"local_address": "", "local_port": "0", "remote_address": "fd00:2::13", "remote_port": "8000", "proto": "FWM", "local_mark": "00000002"}, 1},
		{map[string]string{"local_address": "10.0.0.106", "local_port": "3868", "remote_address": "10.0.2.11", "remote_port": "3868", "proto": "SCTP", "local_mark": ""}, 1},
	} {
		if m := find(c.labels); m != nil && value(m) != c.active {
			t.Errorf("%v: %v active connections, want %v", c.labels, value(m), c.active)
		}
	}
	if got := value(family(mfs, "node_ipvs_connections_total").GetMetric()[0]); got != 0x25 {
		t.Errorf("node_ipvs_connections_total %v, want 37", got)
	}
	if got := value(family(mfs, "node_ipvs_outgoing_bytes_total").GetMetric()[0]); got != 0x1DF6 {
		t.Errorf("node_ipvs_outgoing_bytes_total %v, want 7670", got)
	}
}

// The same mark in an IPv4 and an IPv6 service can give two real servers
// the same labels: they are summed, as node_exporter sums them, rather
// than failing the scrape with a duplicate.
func TestMetricsFWMarkSum(t *testing.T) {
	root := procRootWith(t, `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
FWM  00000007 rr
  -> 0A00020B:0050      Tunnel  2      3          4
FWM  00000007 rr
  -> 0A00020B:0050      Tunnel  5      6          7
  -> [0000:0000:0000:0000:0000:ffff:0a00:020c]:0050      Tunnel  1      1          1
TCP  0A000064:0050 rr
`)
	mfs := gather(t, newTestMetrics(t, root, nil))
	var got []string
	for _, name := range []string{"node_ipvs_backend_weight", "node_ipvs_backend_connections_active", "node_ipvs_backend_connections_inactive"} {
		for _, m := range family(mfs, name).GetMetric() {
			l := labelMap(m)
			got = append(got, fmt.Sprintf("%s %s:%s %v", name, l["remote_address"], l["remote_port"], value(m)))
		}
	}
	want := []string{
		"node_ipvs_backend_weight 10.0.2.11:80 7",
		"node_ipvs_backend_weight 10.0.2.12:80 1",
		"node_ipvs_backend_connections_active 10.0.2.11:80 9",
		"node_ipvs_backend_connections_active 10.0.2.12:80 1",
		"node_ipvs_backend_connections_inactive 10.0.2.11:80 11",
		"node_ipvs_backend_connections_inactive 10.0.2.12:80 1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func scrapeSuccess(t *testing.T, mfs []*dto.MetricFamily) float64 {
	t.Helper()
	f := family(mfs, "lvsd_ipvs_scrape_success")
	if f == nil {
		t.Fatal("no lvsd_ipvs_scrape_success")
	}
	return value(f.GetMetric()[0])
}

func errorCount(mfs []*dto.MetricFamily, kind string) float64 {
	for _, m := range family(mfs, "lvsd_errors_total").GetMetric() {
		if labelMap(m)["kind"] == kind {
			return value(m)
		}
	}
	return 0
}

// Without IPVS in the namespace there are no node_ipvs_* metrics and no
// error, as with node_exporter.
func TestMetricsWithoutIPVS(t *testing.T) {
	mfs := gather(t, newTestMetrics(t, t.TempDir(), nil))
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "node_") {
			t.Errorf("unexpected %s without IPVS", mf.GetName())
		}
	}
	if v := scrapeSuccess(t, mfs); v != 0 {
		t.Errorf("lvsd_ipvs_scrape_success %v, want 0", v)
	}
	if n := errorCount(mfs, "metrics"); n != 0 {
		t.Errorf("%v metrics errors, want none for a missing IPVS", n)
	}
}

// A /proc file that cannot be parsed is an error the scrape survives: the
// other metrics are served, the error counted and logged.
func TestMetricsBadProc(t *testing.T) {
	m := newTestMetrics(t, procRootWith(t, "IP Virtual Server version 1.2.1 (size=4096)\nTCP  nonsense rr\n"), nil)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, want := range []string{"lvsd_ipvs_scrape_success 0", "node_ipvs_connections_total 37"} {
		if !bytes.Contains(body, []byte(want+"\n")) {
			t.Errorf("no %q in\n%s", want, body)
		}
	}
	// Collectors run concurrently, so the error a scrape counts may show
	// only in the next scrape.
	resp, err = http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^lvsd_errors_total\{kind="metrics"\} [1-9]`).Match(again) {
		t.Errorf("the failed read of /proc was not counted in lvsd_errors_total:\n%s", again)
	}
	if bytes.Contains(body, []byte("node_ipvs_backend_")) {
		t.Errorf("backend metrics from a table that did not parse")
	}
}

func TestMetricsHandler(t *testing.T) {
	m := newTestMetrics(t, procRoot(t, "lab"), fixtureStats)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("content type %q", ct)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`node_ipvs_backend_weight{local_address="10.0.0.103",local_mark="",local_port="443",proto="TCP",remote_address="10.0.2.11",remote_port="443"} 5`,
		`lvsd_reconcile_ops_total{kind="add-service"} 24`,
		"lvsd_ipvs_scrape_success 1",
		"go_goroutines ",
		"process_",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in the scrape", want)
		}
	}
}

func TestForgetRealServer(t *testing.T) {
	m := newTestMetrics(t, procRoot(t, "empty"), nil)
	m.ObserveCheck("TCP 10.0.0.1:80", "10.0.2.1:80", health.Result{Up: true})
	m.ObserveCheck("TCP 10.0.0.1:80", "10.0.2.2:80", health.Result{Up: false})
	m.SetHealth("TCP 10.0.0.1:80", "10.0.2.1:80", health.StateUp)
	m.SetHealth("TCP 10.0.0.1:80", "10.0.2.2:80", health.StateDown)
	m.ForgetRealServer("TCP 10.0.0.1:80", "10.0.2.1:80")
	mfs := gather(t, m)
	for _, name := range []string{"lvsd_check_total", "lvsd_real_server_health"} {
		for _, mm := range family(mfs, name).GetMetric() {
			if labelMap(mm)["real_server"] != "10.0.2.2:80" {
				t.Errorf("%s%v left after ForgetRealServer", name, labelMap(mm))
			}
		}
	}
	// Both results exist from the first check on.
	if n := len(family(mfs, "lvsd_check_total").GetMetric()); n != 2 {
		t.Errorf("%d lvsd_check_total series, want up and down of the one left", n)
	}
}

func TestMetricsNil(t *testing.T) {
	var m *Metrics
	m.ObserveCheck("s", "r", health.Result{})
	m.SetHealth("s", "r", health.StateUp)
	m.ForgetRealServer("s", "r")
	m.ObserveReload(time.Now(), nil)
	m.CountError("ipvs")
}

// Two Metrics live side by side: no global registry.
func TestMetricsTwoRegistries(t *testing.T) {
	a := newTestMetrics(t, procRoot(t, "lab"), nil)
	b := newTestMetrics(t, procRoot(t, "lab"), nil)
	a.CountError("ipvs")
	if n := errorCount(gather(t, b), "ipvs"); n != 0 {
		t.Errorf("an error counted in one Metrics shows in another")
	}
}

// writeTable writes a /proc/net/ip_vs with services x realServers, as
// the kernel prints it: IPv4 TCP services on port 80 with distinct real
// servers.
func writeTable(t testing.TB, root string, services, realServers int) {
	t.Helper()
	path := filepath.Join(root, ipvs.ProcIPVS)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n")
	for s := range services {
		fmt.Fprintf(w, "TCP  %08X:0050 wlc  \n", 0x0A000000|uint32(s))
		for r := range realServers {
			fmt.Fprintf(w, "  -> %08X:0050      Route   %-6d %-10d %-10d\n", 0x0B000000|uint32(s*realServers+r), 1+r, s%97, (s*7+r)%1013)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkScrape10000x4 times one /metrics scrape of a 10,000-service
// table with 4 real servers each, through the HTTP handler (text
// format, no compression, as curl asks).
func BenchmarkScrape10000x4(b *testing.B) {
	root := procRoot(b, "lab")
	writeTable(b, root, 10000, 4)
	m := newTestMetrics(b, root, fixtureStats)
	h := m.Handler()
	req := httptest.NewRequest("GET", "/metrics", nil)
	var w discardResponse
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w = discardResponse{header: http.Header{}}
		h.ServeHTTP(&w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/scrape")
	b.ReportMetric(float64(w.size), "bytes/scrape")
}

// discardResponse is a ResponseWriter that counts the body and drops it,
// so that a benchmark does not time a growing buffer.
type discardResponse struct {
	header http.Header
	code   int
	size   int
}

func (w *discardResponse) Header() http.Header { return w.header }

func (w *discardResponse) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *discardResponse) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.size += len(b)
	return len(b), nil
}

// BenchmarkCollectIPVS10000x4 times reading and turning the table into
// metrics, without the registry's gathering and encoding.
func BenchmarkCollectIPVS10000x4(b *testing.B) {
	root := procRoot(b, "lab")
	writeTable(b, root, 10000, 4)
	c := newIPVSCollector(root, slog.New(slog.DiscardHandler), prometheus.NewCounter(prometheus.CounterOpts{Name: "errors"}))
	b.ReportAllocs()
	for b.Loop() {
		table, err := ipvs.ReadServiceTable(root)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(c.backendMetrics(table.Services)); n != 3*40000 {
			b.Fatalf("%d metrics", n)
		}
	}
}

func TestMetricsServe(t *testing.T) {
	m := newTestMetrics(t, procRoot(t, "lab"), nil)
	ln, err := statusapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "node_ipvs_backend_weight{") {
		t.Errorf("/metrics: %d %.200s", resp.StatusCode, b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}
