package director

// Prometheus metrics of lvsd.
//
// The kernel side uses node_exporter's ipvs collector names and labels
// (node_ipvs_*), so dashboards built on node_exporter keep working when
// lvsd replaces it on a director: the same family names, label names,
// and label value spellings. It is read from /proc at scrape time; no
// goroutine polls. lvsd's own metrics are lvsd_*.

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/reconcile"
)

// MetricsOptions configure Metrics.
type MetricsOptions struct {
	Logger *slog.Logger
	// ProcRoot is the directory holding proc/net/ip_vs and
	// proc/net/ip_vs_stats: "/" (the default) for the running kernel,
	// or a saved tree.
	ProcRoot string
	// ReconcilerStats returns the reconciler's running totals
	// (Reconciler.Stats); it is called at each scrape and must not
	// block for long. Nil leaves the reconcile metrics out.
	ReconcilerStats func() reconcile.Stats
	// CheckBuckets are the upper bounds, in seconds, of the check
	// duration histogram; nil uses DefaultCheckBuckets.
	CheckBuckets []float64
	// Version and GoVersion label lvsd_build_info (always 1), so a
	// dashboard can show which build each director runs; an empty
	// Version leaves the metric out.
	Version, GoVersion string
}

// DefaultCheckBuckets are the check duration histogram's buckets, in
// seconds: from a loopback TCP connect to a check that hit a long
// timeout.
var DefaultCheckBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics holds lvsd's Prometheus metrics in a registry of its own (the
// global registry is not used). The daemon calls its Observe and Set
// methods as things happen; they are cheap, never block on a scrape, and
// are safe for concurrent use. Every method is a no-op on a nil
// *Metrics, so the daemon may run without metrics.
type Metrics struct {
	log      *slog.Logger
	registry *prometheus.Registry

	checks        *prometheus.CounterVec
	checkTimeouts *prometheus.CounterVec
	checkDuration [2]prometheus.Observer // down, up
	healthState   *prometheus.GaugeVec
	reloads       [2]prometheus.Counter // failure, success
	lastReloadOK  prometheus.Gauge
	lastReloadTS  prometheus.Gauge
	errs          *prometheus.CounterVec

	mu      sync.Mutex
	targets map[targetLabels]*targetMetrics
}

type targetLabels struct{ service, realServer string }

// targetMetrics are one real server's check counters, created together
// so that rate() sees a zero before the first failure.
type targetMetrics struct {
	down, up, timeout prometheus.Counter
}

// Label values of lvsd_* metrics.
const (
	labelService    = "service"
	labelRealServer = "real_server"
	labelResult     = "result"
	labelKind       = "kind"
)

// Health state values of lvsd_real_server_health.
const (
	healthValueUp      = 1
	healthValueDown    = 0
	healthValueUnknown = -1
)

// NewMetrics builds the registry: the kernel's IPVS tables, the
// reconciler's totals, lvsd's own counters, and the Go runtime and
// process metrics.
func NewMetrics(opts MetricsOptions) (*Metrics, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/"
	}
	if opts.CheckBuckets == nil {
		opts.CheckBuckets = DefaultCheckBuckets
	}
	m := &Metrics{
		log:      opts.Logger,
		registry: prometheus.NewRegistry(),
		targets:  map[targetLabels]*targetMetrics{},
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_check_total",
			Help: "Health checks of a real server by result: up (passed) or down (failed). Retries count too.",
		}, []string{labelService, labelRealServer, labelResult}),
		checkTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_check_timeouts_total",
			Help: "Health checks of a real server that failed by not finishing within their timeout (counted in lvsd_check_total{result=\"down\"} too).",
		}, []string{labelService, labelRealServer}),
		healthState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lvsd_real_server_health",
			Help: "Health state of a checked real server after rise/fall: 1 up, 0 down, -1 not decided yet.",
		}, []string{labelService, labelRealServer}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lvsd_config_last_reload_successful",
			Help: "1 when the last config load or reload succeeded, 0 when it was rejected (the previous config keeps serving).",
		}),
		lastReloadTS: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lvsd_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last config load or reload that succeeded.",
		}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_errors_total",
			Help: "Errors lvsd logged, by kind: ipvs (a kernel write or read), resync, state (the state file), health, command (a quorum command), metrics (reading /proc for a scrape), and others the daemon names.",
		}, []string{labelKind}),
	}
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "lvsd_check_duration_seconds",
		Help:    "How long health checks took, by result: up (passed) or down (failed).",
		Buckets: opts.CheckBuckets,
	}, []string{labelResult})
	m.checkDuration = [2]prometheus.Observer{durations.WithLabelValues("down"), durations.WithLabelValues("up")}
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lvsd_config_reloads_total",
		Help: "Config loads and reloads by result: success, or failure (rejected; the previous config keeps serving).",
	}, []string{labelResult})
	m.reloads = [2]prometheus.Counter{reloads.WithLabelValues("failure"), reloads.WithLabelValues("success")}

	cs := []prometheus.Collector{
		m.checks, m.checkTimeouts, durations, m.healthState, reloads, m.lastReloadOK, m.lastReloadTS, m.errs,
		newIPVSCollector(opts.ProcRoot, opts.Logger, m.errs.WithLabelValues("metrics")),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	if opts.ReconcilerStats != nil {
		cs = append(cs, newReconcileCollector(opts.ReconcilerStats))
	}
	if opts.Version != "" {
		cs = append(cs, buildInfo(opts.Version, opts.GoVersion))
	}
	for _, c := range cs {
		if err := m.registry.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return m, nil
}

// Registry returns the registry, for the daemon to add metrics of its
// own or for a test to gather from.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the metrics in the Prometheus text, OpenMetrics or
// protobuf formats, as the scraper asks. A scrape that fails in part
// (a /proc file that cannot be parsed) serves what it could and logs.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:            slogPrinter{m.log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
}

// ObserveCheck counts one check result of a real server and records its
// duration. service is the service's key as the status API shows it
// ("TCP 192.168.0.100:80", ServiceKey.String) and realServer its address
// ("10.0.0.2:80"). Call it from health.SchedulerOptions.OnResult.
func (m *Metrics) ObserveCheck(service, realServer string, r health.Result) {
	if m == nil {
		return
	}
	t := m.target(service, realServer)
	up := 0
	if r.Up {
		t.up.Inc()
		up = 1
	} else {
		t.down.Inc()
		if errors.Is(r.Err, health.ErrTimeout) {
			t.timeout.Inc()
		}
	}
	m.checkDuration[up].Observe(r.Duration.Seconds())
}

func (m *Metrics) target(service, realServer string) *targetMetrics {
	k := targetLabels{service, realServer}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.targets[k]
	if t == nil {
		t = &targetMetrics{
			down:    m.checks.WithLabelValues(service, realServer, "down"),
			up:      m.checks.WithLabelValues(service, realServer, "up"),
			timeout: m.checkTimeouts.WithLabelValues(service, realServer),
		}
		m.targets[k] = t
	}
	return t
}

// SetHealth records a checked real server's state after rise/fall. Call
// it for every checked real server when a config is applied (with
// health.StateUnknown for a new one) and on every transition.
func (m *Metrics) SetHealth(service, realServer string, s health.State) {
	if m == nil {
		return
	}
	v := float64(healthValueUnknown)
	switch s {
	case health.StateUp:
		v = healthValueUp
	case health.StateDown:
		v = healthValueDown
	}
	m.healthState.WithLabelValues(service, realServer).Set(v)
}

// ForgetRealServer drops a real server's check and health series, when a
// reload removes it (or its check).
func (m *Metrics) ForgetRealServer(service, realServer string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	delete(m.targets, targetLabels{service, realServer})
	m.mu.Unlock()
	m.checks.DeleteLabelValues(service, realServer, "down")
	m.checks.DeleteLabelValues(service, realServer, "up")
	m.checkTimeouts.DeleteLabelValues(service, realServer)
	m.healthState.DeleteLabelValues(service, realServer)
}

// ObserveReload records a config load or reload at time at: err is nil
// when it was applied, the load's error when it was rejected.
func (m *Metrics) ObserveReload(at time.Time, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.reloads[0].Inc()
		m.lastReloadOK.Set(0)
		return
	}
	m.reloads[1].Inc()
	m.lastReloadOK.Set(1)
	m.lastReloadTS.Set(float64(at.UnixNano()) / 1e9)
}

// CountError counts an error of a kind ("ipvs", "resync", "state",
// "health", "command"); keep the kinds few and fixed, they are label
// values.
func (m *Metrics) CountError(kind string) {
	if m == nil {
		return
	}
	m.errs.WithLabelValues(kind).Inc()
}

// buildInfo is lvsd_build_info{version,goversion} = 1, in the style of
// Prometheus's own *_build_info metrics: join on it to label other
// series with the version.
func buildInfo(version, goVersion string) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lvsd_build_info",
		Help: "Always 1; its labels say which lvsd build this is: version (git describe) and goversion (the Go toolchain).",
	}, []string{"version", "goversion"})
	g.WithLabelValues(version, goVersion).Set(1)
	return g
}

// slogPrinter lets promhttp log through slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("serving metrics", "err", fmt.Sprint(v...))
}

// reconcileCollector reads the reconciler's totals at scrape time.
type reconcileCollector struct {
	stats                 func() reconcile.Stats
	opsSent, opsFailed    *prometheus.Desc
	resyncs, driftRepairs *prometheus.Desc
	kinds                 []reconcile.OpKind
	kindNames             []string
}

func newReconcileCollector(stats func() reconcile.Stats) *reconcileCollector {
	c := &reconcileCollector{
		stats: stats,
		opsSent: prometheus.NewDesc("lvsd_reconcile_ops_total",
			"IPVS writes the kernel accepted, by kind.", []string{labelKind}, nil),
		opsFailed: prometheus.NewDesc("lvsd_reconcile_ops_failed_total",
			"IPVS writes the kernel refused or that were skipped, by kind; they are retried with backoff.", []string{labelKind}, nil),
		resyncs: prometheus.NewDesc("lvsd_resyncs_total",
			"Times lvsd read the whole kernel table back to find drift.", nil, nil),
		driftRepairs: prometheus.NewDesc("lvsd_drift_repairs_total",
			"Owned services found changed behind lvsd's back (ipvsadm, a module reload) and rewritten.", nil, nil),
	}
	for k := reconcile.AddService; k <= reconcile.DeleteRealServer; k++ {
		c.kinds = append(c.kinds, k)
		c.kindNames = append(c.kindNames, k.String())
	}
	return c
}

func (c *reconcileCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.opsSent
	ch <- c.opsFailed
	ch <- c.resyncs
	ch <- c.driftRepairs
}

func (c *reconcileCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for i, k := range c.kinds {
		ch <- prometheus.MustNewConstMetric(c.opsSent, prometheus.CounterValue, float64(s.OpsSent[k]), c.kindNames[i])
		ch <- prometheus.MustNewConstMetric(c.opsFailed, prometheus.CounterValue, float64(s.OpsFailed[k]), c.kindNames[i])
	}
	ch <- prometheus.MustNewConstMetric(c.resyncs, prometheus.CounterValue, float64(s.Resyncs))
	ch <- prometheus.MustNewConstMetric(c.driftRepairs, prometheus.CounterValue, float64(s.DriftRepairs))
}

// node_exporter's ipvs collector labels, in its order.
const (
	labelLocalAddress  = "local_address"
	labelLocalPort     = "local_port"
	labelRemoteAddress = "remote_address"
	labelRemotePort    = "remote_port"
	labelProto         = "proto"
	labelLocalMark     = "local_mark"
)

var ipvsBackendLabels = []string{labelLocalAddress, labelLocalPort, labelRemoteAddress, labelRemotePort, labelProto, labelLocalMark}

// The label names every backend metric points to, in the sorted order
// client_golang wants a metric's label pairs in. Never assigned; the
// label values emptyString and the rest below are shared the same way.
var (
	nameLocalAddress  = labelLocalAddress
	nameLocalMark     = labelLocalMark
	nameLocalPort     = labelLocalPort
	nameProto         = labelProto
	nameRemoteAddress = labelRemoteAddress
	nameRemotePort    = labelRemotePort
)

// ipvsCollector reads /proc/net/ip_vs_stats and /proc/net/ip_vs at
// scrape time and reports them as node_exporter does.
//
// It builds its metrics itself rather than through NewConstMetric: the
// three metrics of a real server share one set of label pairs, and every
// metric of a scrape comes from a few slabs, which keeps a scrape of a
// 10,000-service table to about one allocation per real server (its
// address as a string) besides the parser's.
type ipvsCollector struct {
	root  string
	log   *slog.Logger
	errs  prometheus.Counter
	stats [5]*prometheus.Desc // conns, packets in, out, bytes in, out
	// active, inactive connections and weight of each real server
	active, inactive, weight *prometheus.Desc
	success                  *prometheus.Desc
}

func newIPVSCollector(root string, log *slog.Logger, errs prometheus.Counter) *ipvsCollector {
	counter := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("node_ipvs_"+name, help, nil, nil)
	}
	backend := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("node_ipvs_backend_"+name, help, ipvsBackendLabels, nil)
	}
	return &ipvsCollector{
		root: root,
		log:  log,
		errs: errs,
		stats: [5]*prometheus.Desc{
			counter("connections_total", "Connections IPVS has scheduled since it was loaded."),
			counter("incoming_packets_total", "Packets IPVS has received from clients."),
			counter("outgoing_packets_total", "Packets IPVS has sent back to clients (NAT replies)."),
			counter("incoming_bytes_total", "Bytes IPVS has received from clients."),
			counter("outgoing_bytes_total", "Bytes IPVS has sent back to clients (NAT replies)."),
		},
		active:   backend("connections_active", "Active connections of a real server of a virtual service."),
		inactive: backend("connections_inactive", "Inactive connections of a real server of a virtual service."),
		weight:   backend("weight", "Weight of a real server of a virtual service, as the kernel has it."),
		success: prometheus.NewDesc("lvsd_ipvs_scrape_success",
			"1 when this scrape read the kernel's IPVS tables from /proc, 0 when it could not (IPVS not loaded, or a read or parse error).", nil, nil),
	}
}

func (c *ipvsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.stats {
		ch <- d
	}
	ch <- c.active
	ch <- c.inactive
	ch <- c.weight
	ch <- c.success
}

func (c *ipvsCollector) Collect(ch chan<- prometheus.Metric) {
	ok := c.collect(ch)
	v := 0.0
	if ok {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(c.success, prometheus.GaugeValue, v)
}

func (c *ipvsCollector) collect(ch chan<- prometheus.Metric) bool {
	stats, err := ipvs.ReadStats(c.root)
	if err != nil {
		c.failed(err)
		return false
	}
	for i, v := range [5]uint64{stats.Conns, stats.PacketsIn, stats.PacketsOut, stats.BytesIn, stats.BytesOut} {
		ch <- prometheus.MustNewConstMetric(c.stats[i], prometheus.CounterValue, float64(v))
	}
	table, err := ipvs.ReadServiceTable(c.root)
	if err != nil {
		c.failed(err)
		return false
	}
	for _, m := range c.backendMetrics(table.Services) {
		ch <- m
	}
	return true
}

func (c *ipvsCollector) failed(err error) {
	if errors.Is(err, fs.ErrNotExist) {
		// No IPVS in this network namespace: no data, as node_exporter.
		c.log.Debug("no IPVS metrics", "err", err)
		return
	}
	c.errs.Inc()
	c.log.Warn("reading IPVS metrics", "err", err)
}

// backendMetrics turns the table into three metrics per real server.
//
// Label values follow node_exporter (procfs): local_address is the
// virtual address, "" for a fwmark service; local_port its port, "0" for
// a fwmark service; local_mark the mark as /proc prints it (8 upper-case
// hex digits, "00000001"), "" otherwise; proto "TCP", "UDP" or "FWM";
// addresses as Go prints them ("10.0.0.1", "fd00::1", an IPv4-mapped
// IPv6 address as IPv4). Two real servers with the same labels (the same
// mark in an IPv4 and an IPv6 service) are summed, as node_exporter
// does. node_exporter's parser skips SCTP services (and gives their real
// servers to the service before); lvsd labels them proto "SCTP".
//
// The metrics come out sorted by their labels, the order the registry
// sorts each family into: sorting once here, on plain strings, leaves
// the registry three already-sorted families, which it checks in linear
// time, instead of three sorts comparing label pairs.
func (c *ipvsCollector) backendMetrics(svcs []ipvs.ServiceEntry) []prometheus.Metric {
	n := 0
	for i := range svcs {
		n += len(svcs[i].RealServers)
	}
	locals := make([]localLabels, len(svcs))
	rows := make([]backendRow, 0, n)
	for i := range svcs {
		s := &svcs[i]
		if len(s.RealServers) == 0 {
			continue
		}
		l := &locals[i]
		if s.IsFWMark() {
			l.address, l.mark, l.port, l.proto = &emptyString, new(string), &zeroString, &fwmString
			*l.mark = procMark(s.FWMark)
		} else {
			l.address, l.mark, l.port, l.proto = new(string), &emptyString, portString(s.Port), protoString(s.Protocol)
			*l.address = labelAddr(s.Address)
		}
		for j := range s.RealServers {
			rs := &s.RealServers[j]
			rows = append(rows, backendRow{
				local:      l,
				remoteAddr: labelAddr(rs.Address),
				remotePort: portString(rs.Port),
				active:     float64(rs.ActiveConns),
				inactive:   float64(rs.InactiveConns),
				// The kernel refuses negative weights; node_exporter
				// would fail the scrape on one.
				weight: float64(max(rs.Weight, 0)),
			})
		}
	}
	slices.SortFunc(rows, compareRows)
	rows = mergeRows(rows)

	var (
		metrics = make([]backendMetric, 3*len(rows))
		pairs   = make([]dto.LabelPair, 6*len(rows))
		ptrs    = make([]*dto.LabelPair, 6*len(rows))
		out     = make([]prometheus.Metric, 3*len(rows))
	)
	for i := range rows {
		r := &rows[i]
		p := pairs[6*i : 6*i+6]
		p[0].Name, p[0].Value = &nameLocalAddress, r.local.address
		p[1].Name, p[1].Value = &nameLocalMark, r.local.mark
		p[2].Name, p[2].Value = &nameLocalPort, r.local.port
		p[3].Name, p[3].Value = &nameProto, r.local.proto
		p[4].Name, p[4].Value = &nameRemoteAddress, &r.remoteAddr
		p[5].Name, p[5].Value = &nameRemotePort, r.remotePort
		labels := ptrs[6*i : 6*i+6 : 6*i+6]
		for k := range p {
			labels[k] = &p[k]
		}
		m := metrics[3*i : 3*i+3]
		m[0] = backendMetric{desc: c.active, labels: labels, value: r.active}
		m[1] = backendMetric{desc: c.inactive, labels: labels, value: r.inactive}
		m[2] = backendMetric{desc: c.weight, labels: labels, value: r.weight}
		// One family after another, each in label order.
		out[i], out[len(rows)+i], out[2*len(rows)+i] = &m[0], &m[1], &m[2]
	}
	return out
}

// localLabels are the label values a service gives its real servers.
type localLabels struct {
	address, mark, port, proto *string
}

// backendRow is one real server's label values and metric values.
type backendRow struct {
	local                    *localLabels
	remoteAddr               string
	remotePort               *string
	active, inactive, weight float64
}

// compareRows orders rows as client_golang orders metrics: by label
// values, in the order of the sorted label names.
func compareRows(a, b backendRow) int {
	if a.local != b.local {
		if c := cmp.Compare(*a.local.address, *b.local.address); c != 0 {
			return c
		}
		if c := cmp.Compare(*a.local.mark, *b.local.mark); c != 0 {
			return c
		}
		if c := cmp.Compare(*a.local.port, *b.local.port); c != 0 {
			return c
		}
		if c := cmp.Compare(*a.local.proto, *b.local.proto); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(a.remoteAddr, b.remoteAddr); c != 0 {
		return c
	}
	return cmp.Compare(*a.remotePort, *b.remotePort)
}

// mergeRows sums sorted rows with the same labels into the first.
func mergeRows(rows []backendRow) []backendRow {
	if len(rows) == 0 {
		return rows
	}
	w := 0
	for _, r := range rows[1:] {
		if compareRows(rows[w], r) == 0 {
			rows[w].active += r.active
			rows[w].inactive += r.inactive
			rows[w].weight += r.weight
			continue
		}
		w++
		rows[w] = r
	}
	return rows[:w+1]
}

var (
	emptyString = ""
	zeroString  = "0"
	fwmString   = "FWM"
	tcpString   = "TCP"
	udpString   = "UDP"
	sctpString  = "SCTP"
)

func protoString(p ipvs.Protocol) *string {
	switch p {
	case ipvs.TCP:
		return &tcpString
	case ipvs.UDP:
		return &udpString
	case ipvs.SCTP:
		return &sctpString
	}
	s := p.String()
	return &s
}

// commonPorts are label values shared across scrapes for the ports a
// table is full of.
var commonPorts = func() map[uint16]*string {
	m := map[uint16]*string{}
	for _, p := range []uint16{0, 21, 22, 25, 53, 80, 110, 123, 143, 389, 443, 465, 587, 636, 993, 995, 3306, 5432, 6379, 8000, 8080, 8443} {
		s := strconv.Itoa(int(p))
		m[p] = &s
	}
	return m
}()

func portString(p uint16) *string {
	if s, ok := commonPorts[p]; ok {
		return s
	}
	s := strconv.Itoa(int(p))
	return &s
}

// labelAddr spells an address as node_exporter does (Go's net.IP): an
// IPv4-mapped IPv6 address as IPv4.
func labelAddr(a netip.Addr) string {
	return a.Unmap().String()
}

// procMark spells a firewall mark as /proc/net/ip_vs prints it.
func procMark(mark uint32) string {
	const hex = "0123456789ABCDEF"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = hex[mark&0xf]
		mark >>= 4
	}
	return string(b[:])
}

// backendMetric is one gauge of a real server. Its label pairs are
// shared with the other metrics of the same real server: client_golang
// treats a written metric's labels as immutable.
type backendMetric struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
}

func (m *backendMetric) Desc() *prometheus.Desc { return m.desc }

func (m *backendMetric) Write(out *dto.Metric) error {
	out.Label = m.labels
	out.Gauge = &dto.Gauge{Value: &m.value}
	return nil
}
