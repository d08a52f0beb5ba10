package director

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/director/vrrp"
)

// vrrpMetricRow is one instance's state and counters at a scrape.
type vrrpMetricRow struct {
	name, iface string
	vrid        uint8
	state       vrrp.State
	priority    uint8
	stats       vrrp.InstanceStats
	tracks      []statusapi.VRRPTrack
}

// vrrpTransportRow is one transport's counters at a scrape.
type vrrpTransportRow struct {
	iface, family string
	stats         vrrp.TransportStats
}

type vrrpSnapshot struct {
	instances  []vrrpMetricRow
	transports []vrrpTransportRow
}

func (r *vrrpRuntime) metricsSnapshot() vrrpSnapshot {
	var s vrrpSnapshot
	for _, in := range r.list() {
		c := in.config()
		st := in.inst.Status()
		r.trackMu.Lock()
		_, tracks := r.tracking.status(c.Name)
		r.trackMu.Unlock()
		s.instances = append(s.instances, vrrpMetricRow{
			name: c.Name, iface: c.Interface, vrid: uint8(c.VirtualRouterID),
			state: st.State, priority: st.Priority, stats: in.inst.Stats(), tracks: tracks,
		})
	}
	r.instMu.Lock()
	transports := r.transports
	r.instMu.Unlock()
	for _, t := range transports {
		s.transports = append(s.transports, vrrpTransportRow{t.ifname, t.family.String(), t.Stats()})
	}
	return s
}

// vrrpCollector reports the VRRP instances in the style of the
// keepalived exporters: lvsd_vrrp_state is 0 initialize, 1 backup, 2
// master, 3 fault.
type vrrpCollector struct {
	snapshot func() vrrpSnapshot

	state, priority, sent, received, prio0Sent, prio0Received *prometheus.Desc
	becameMaster, discarded, dropped, track                   *prometheus.Desc
}

var vrrpLabels = []string{"instance", "vrid", "interface"}

func newVRRPCollector(snapshot func() vrrpSnapshot) *vrrpCollector {
	desc := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string(nil), vrrpLabels...), extra...), nil)
	}
	return &vrrpCollector{
		snapshot:      snapshot,
		state:         desc("lvsd_vrrp_state", "VRRP state of the instance: 0 initialize, 1 backup, 2 master, 3 fault."),
		priority:      desc("lvsd_vrrp_priority", "Effective VRRP priority of the instance."),
		sent:          desc("lvsd_vrrp_adverts_sent_total", "VRRP advertisements sent."),
		received:      desc("lvsd_vrrp_adverts_received_total", "VRRP advertisements received for the instance's VRID."),
		prio0Sent:     desc("lvsd_vrrp_priority_zero_sent_total", "Priority-0 advertisements sent (clean handovers)."),
		prio0Received: desc("lvsd_vrrp_priority_zero_received_total", "Priority-0 advertisements received (the master stepped down)."),
		becameMaster:  desc("lvsd_vrrp_became_master_total", "Transitions to master."),
		discarded:     desc("lvsd_vrrp_adverts_discarded_total", "Advertisements discarded by the instance, by reason.", "reason"),
		track:         desc("lvsd_vrrp_track_up", "Tracked link or script of the instance: 1 up, 0 down (absent until known).", "kind", "name"),
		dropped: prometheus.NewDesc("lvsd_vrrp_packets_dropped_total",
			"VRRP packets the transport dropped before any instance saw them, by reason.", []string{"interface", "family", "reason"}, nil),
	}
}

func (c *vrrpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.priority, c.sent, c.received, c.prio0Sent, c.prio0Received, c.becameMaster, c.discarded, c.dropped, c.track} {
		ch <- d
	}
}

func (c *vrrpCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	for _, in := range s.instances {
		l := []string{in.name, strconv.Itoa(int(in.vrid)), in.iface}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
		}
		counter := func(d *prometheus.Desc, v uint64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append(l[:3:3], extra...)...)
		}
		gauge(c.state, float64(in.state))
		for _, tr := range in.tracks {
			if tr.State == "unknown" {
				continue
			}
			v := 0.0
			if tr.State == "up" {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.track, prometheus.GaugeValue, v, append(l[:3:3], tr.Kind, tr.Name)...)
		}
		gauge(c.priority, float64(in.priority))
		st := in.stats
		counter(c.sent, st.AdvertsSent)
		counter(c.received, st.AdvertsReceived)
		counter(c.prio0Sent, st.PriorityZeroSent)
		counter(c.prio0Received, st.PriorityZeroReceived)
		counter(c.becameMaster, st.BecameMaster)
		for _, r := range []struct {
			reason string
			n      uint64
		}{
			{"auth", st.AuthErrors}, {"interval", st.IntervalErrors}, {"version", st.VersionErrors},
			{"vrid", st.VRIDErrors}, {"own", st.OwnAdverts}, {"address_mismatch", st.AddressMismatch},
			{"other", st.OtherDiscarded},
		} {
			counter(c.discarded, r.n, r.reason)
		}
	}
	for _, t := range s.transports {
		st := t.stats
		for _, r := range []struct {
			reason string
			n      uint64
		}{
			{"ttl", st.BadHopLimit}, {"truncated", st.Truncated}, {"checksum", st.BadChecksum},
			{"version", st.BadVersion}, {"type", st.BadType}, {"address_count", st.AddressCount},
			{"family", st.BadFamily}, {"other", st.OtherInvalid}, {"unknown_vrid", st.UnknownVRID},
			{"queue_overflow", st.QueueOverflow},
		} {
			ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(r.n), t.iface, t.family, r.reason)
		}
	}
}

// registerVRRP adds the VRRP metrics; a no-op on nil Metrics.
func (m *Metrics) registerVRRP(snapshot func() vrrpSnapshot) {
	if m == nil {
		return
	}
	if err := m.registry.Register(newVRRPCollector(snapshot)); err != nil {
		m.log.Error("registering vrrp metrics", "err", err)
	}
}
