package director

// The kernel's IPVS tables as node_exporter's ipvs collector shows
// them (node_ipvs_*), read from /proc at each scrape.

import (
	"cmp"
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lvskit/lvskit/director/ipvs"
)

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
