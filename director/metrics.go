package director

// Prometheus metrics of lvsd.
//
// The kernel side uses node_exporter's ipvs collector names and labels
// (node_ipvs_*), so dashboards built on node_exporter keep working when
// lvsd replaces it on a director: the same family names, label names,
// and label value spellings. It is read from /proc at scrape time; no
// goroutine polls. lvsd's own metrics are lvsd_*.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/reconcile"
	"github.com/lvskit/lvskit/director/statusapi"
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
	// block for long. Nil leaves the reconcile metrics out, unless a
	// Daemon is given these Metrics: NewDaemon registers its own
	// reconciler's (leave this nil then).
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
// are safe for concurrent use. The methods the daemon calls (Observe,
// Set, Forget, Count) are no-ops on a nil *Metrics, so the daemon may run
// without metrics; on nil, Registry returns nil, Handler answers 404 and
// Serve returns ErrNoMetrics.
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
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.registry
}

// Handler serves the metrics in the Prometheus text, OpenMetrics or
// protobuf formats, as the scraper asks. A scrape that fails in part
// (a /proc file that cannot be parsed) serves what it could and logs.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "lvsd runs without metrics", http.StatusNotFound)
		})
	}
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:            slogPrinter{m.log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
}

// ErrNoMetrics is Serve's error on a nil *Metrics.
var ErrNoMetrics = errors.New("metrics are off")

// Serve serves the metrics at /metrics on ln until ctx is done (see
// statusapi.Serve).
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	if m == nil {
		ln.Close()
		return fmt.Errorf("serving metrics on %v: %w", ln.Addr(), ErrNoMetrics)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return statusapi.Serve(ctx, ln, mux, m.log)
}

// registerReconcile adds the reconciler's totals (NewDaemon); a no-op on
// nil Metrics.
func (m *Metrics) registerReconcile(stats func() reconcile.Stats) {
	if m == nil {
		return
	}
	if err := m.registry.Register(newReconcileCollector(stats)); err != nil {
		m.log.Error("registering reconcile metrics", "err", err)
	}
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
