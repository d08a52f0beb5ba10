package director

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvskit/lvskit/director/bgp"
	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/reconcile"
	"github.com/lvskit/lvskit/director/statusapi"
)

// BGPOptions open what the config's bgp section talks to.
type BGPOptions struct {
	// Open starts a speaker for the bgp section; nil starts the embedded
	// GoBGP (OpenGoBGP). Tests pass a bgptest fake.
	Open func(cfg config.BGP, log *slog.Logger) (bgp.Speaker, error)
	// Interval is how often peers are polled and the announcements
	// re-decided besides health changes (VRRP state for announce: both);
	// zero means a second.
	Interval time.Duration
}

// OpenGoBGP starts the embedded GoBGP speaker for a bgp section.
func OpenGoBGP(c config.BGP, log *slog.Logger) (bgp.Speaker, error) {
	cfg := bgp.Config{ASN: c.ASN, RouterID: c.RouterID, ListenPort: c.ListenPort, ListenAddresses: c.ListenAddresses}
	for _, p := range c.Peers {
		cfg.Peers = append(cfg.Peers, bgp.PeerConfig{
			Address: p.Address, ASN: p.ASN, Port: p.Port, LocalAddress: p.LocalAddress,
			HoldTime: p.HoldTime, Keepalive: p.Keepalive, Password: p.Password,
			Passive: p.Passive, MultihopTTL: p.MultihopTTL,
		})
	}
	return bgp.NewGoBGP(cfg, bgp.Options{Logger: log})
}

// bgpRuntime is the daemon's BGP side: the speaker, and what it announces
// and why.
type bgpRuntime struct {
	speaker bgp.Speaker
	cfg     config.BGP // as started: a reload does not restart the speaker

	// mu stays: besides the loop, a stop request's goroutine (phase,
	// the decisions), the drills on the status API's goroutines (drills)
	// and the metrics scrape and status (everything) reach these. It is
	// the runtime's own and never held while the loop waits on the
	// daemon's state.
	mu         sync.Mutex
	phase      bgp.Phase
	kernelErr  error
	vips       map[netip.Addr]*vipState
	peers      []bgp.PeerState
	lastChange time.Time
	lastErr    string
	closed     bool // the speaker was stopped
	// drills are the VIPs a drill withdraws, and until when.
	drills map[netip.Addr]time.Time

	// update serialises bgpUpdate's decide-and-tell, which the daemon's
	// loop and a stop request run from different goroutines.
	update sync.Mutex
	// stopping is done once every VIP has been withdrawn for the stop.
	stopping sync.Once
}

type vipState struct {
	announced bool
	reason    string
	since     time.Time
}

func (d *Daemon) startBGP(cfg *config.Config) (*bgpRuntime, error) {
	if cfg.BGP.ASN == 0 {
		return nil, nil
	}
	open := d.opts.BGP.Open
	if open == nil {
		open = OpenGoBGP
	}
	sp, err := open(cfg.BGP, d.log)
	if err != nil {
		return nil, fmt.Errorf("starting bgp: %w", err)
	}
	r := &bgpRuntime{speaker: sp, cfg: cfg.BGP, vips: map[netip.Addr]*vipState{}}
	d.opts.Metrics.registerBGP(r.metricsSnapshot)
	d.event("bgp", "", "", fmt.Sprintf("speaker started as %d, router id %v, %d peers; nothing announced until the first apply succeeds", cfg.BGP.ASN, cfg.BGP.RouterID, len(cfg.BGP.Peers)))
	return r, nil
}

// bgpObserve follows the kernel: a result whose writes all failed (or a
// failed read) means lvsd lost its kernel; the first clean result after
// the first apply starts announcing.
func (d *Daemon) bgpObserve(res reconcile.Result, readErr error) {
	r := d.bgpRT()
	if r == nil {
		return
	}
	var failed error
	for _, f := range res.Failures {
		if f.Err != reconcile.ErrSkipped {
			failed = f
			break
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case readErr != nil:
		r.kernelErr = readErr
	case failed != nil && len(res.Sent) == 0:
		r.kernelErr = failed
	case failed == nil && len(res.Sent) > 0:
		r.kernelErr = nil // the kernel takes writes again
	}
	// An empty result (nothing to write, nothing failed) after the first
	// apply also means the kernel holds the services.
	if failed == nil && r.kernelErr == nil && r.phase == bgp.Starting && d.applied.Load() {
		r.phase = bgp.Running
	}
}

func (d *Daemon) bgpRT() *bgpRuntime { return d.bgp.Load() }

// bgpVIPs gathers, for every address announced over BGP, its services'
// health (for the snapshot: the loop's goroutine only).
func (d *Daemon) bgpVIPs() []bgp.VIP {
	if len(d.bgpKeys) == 0 {
		return nil
	}
	byAddr := map[netip.Addr]*bgp.VIP{}
	var order []netip.Addr
	for _, k := range d.bgpKeys {
		ds := d.desired[k]
		v := byAddr[k.Address]
		if v == nil {
			v = &bgp.VIP{Address: k.Address, NeedMaster: ds.Announce == config.AnnounceBoth}
			byAddr[k.Address] = v
			order = append(order, k.Address)
		}
		up := d.up(k)
		sh := bgp.ServiceHealth{Name: k.String(), Total: len(ds.RealServers)}
		for _, rs := range ds.RealServers {
			if up(rs.Key()) {
				sh.Up++
			}
		}
		v.Services = append(v.Services, sh)
	}
	out := make([]bgp.VIP, 0, len(order))
	for _, a := range order {
		out = append(out, *byAddr[a])
	}
	return out
}

// bgpUpdate decides every VIP again and tells the speaker what changed.
func (d *Daemon) bgpUpdate() {
	r := d.bgpRT()
	if r == nil {
		return
	}
	vips, low, high := d.bgpInputs()
	r.update.Lock()
	defer r.update.Unlock()
	r.mu.Lock()
	in := bgp.Inputs{Phase: r.phase, KernelErr: r.kernelErr, Low: low, High: high}
	changes, seen := r.decideLocked(in, vips, d.now())
	attrs := bgp.Attributes{MED: r.cfg.MED}
	for _, c := range r.cfg.Communities {
		attrs.Communities = append(attrs.Communities, bgp.Community(c))
	}
	r.mu.Unlock()
	for _, c := range changes {
		d.bgpTell(r, c, attrs, seen[c.addr])
	}
}

// bgpInputs are the VIPs announced over BGP with their services' health
// as last published and whether this director is VRRP master of each,
// and the config's watermarks. None when a reload removed the bgp
// section: every VIP is then withdrawn.
func (d *Daemon) bgpInputs() (vips []bgp.VIP, low, high float64) {
	masters := map[netip.Addr]bool{}
	for _, in := range d.vrrpStatus() {
		if in.State != "master" {
			continue
		}
		for _, v := range in.VIPs {
			if a, err := netip.ParseAddr(v); err == nil {
				masters[a] = true
			}
		}
	}
	snap := d.snapshot() // a stop request runs this from its own goroutine
	if snap.cfg.BGP.ASN == 0 {
		return nil, 0, 0
	}
	vips = slices.Clone(snap.bgpVIPs)
	for i := range vips {
		vips[i].Master = masters[vips[i].Address]
	}
	return vips, float64(snap.cfg.BGP.LowWatermark), float64(snap.cfg.BGP.HighWatermark)
}

// vipChange is a VIP whose announcement must change.
type vipChange struct {
	addr netip.Addr
	d    bgp.Decision
}

// decideLocked decides every VIP (a drill's withdraw wins until its
// hold ends) and returns those whose announcement changes, including
// announced VIPs no longer in vips, and the VIPs of vips. A VIP that
// stays as it is keeps its state with the new reason.
func (r *bgpRuntime) decideLocked(in bgp.Inputs, vips []bgp.VIP, now time.Time) ([]vipChange, map[netip.Addr]bool) {
	var changes []vipChange
	seen := map[netip.Addr]bool{}
	for _, v := range vips {
		seen[v.Address] = true
		st := r.vips[v.Address]
		was := st != nil && st.announced
		dec := bgp.Decide(in, v, was)
		if until, ok := r.drills[v.Address]; ok {
			if now.Before(until) {
				dec = bgp.Decision{Announce: false, Reason: "withdrawn by a drill until " + until.Format("15:04:05") + " (status API)"}
			} else {
				delete(r.drills, v.Address)
			}
		}
		if st == nil || st.announced != dec.Announce {
			changes = append(changes, vipChange{v.Address, dec})
		} else {
			st.reason = dec.Reason
		}
	}
	for a, st := range r.vips {
		if !seen[a] && st.announced {
			changes = append(changes, vipChange{a, bgp.Decision{Announce: false, Reason: "no longer announced over bgp in the config"}})
		} else if !seen[a] {
			delete(r.vips, a)
		}
	}
	return changes, seen
}

// bgpTell tells the speaker one change and records it, or its error
// (said once while it repeats: it is retried at every step). configured
// says whether the VIP is still announced over BGP in the config: a
// withdrawn one that is not is forgotten.
func (d *Daemon) bgpTell(r *bgpRuntime, c vipChange, attrs bgp.Attributes, configured bool) {
	prefix := bgp.HostPrefix(c.addr)
	var err error
	d.log.Debug("bgp: telling the speaker", "vip", c.addr.String(), "announce", c.d.Announce)
	if c.d.Announce {
		err = r.speaker.Announce(prefix, attrs)
	} else {
		err = r.speaker.Withdraw(prefix)
	}
	now := d.now()
	r.mu.Lock()
	if err != nil {
		repeated := r.lastErr == err.Error()
		r.lastErr = err.Error()
		r.mu.Unlock()
		if !repeated {
			d.log.Error("bgp", "vip", c.addr.String(), "err", err)
			d.event("bgp", "", "", err.Error())
		}
		return
	}
	verb := "withdrawn"
	if c.d.Announce {
		verb = "announced"
	}
	if !c.d.Announce && !configured {
		delete(r.vips, c.addr)
	} else {
		r.vips[c.addr] = &vipState{announced: c.d.Announce, reason: c.d.Reason, since: now}
	}
	r.lastChange = now
	r.lastErr = ""
	r.mu.Unlock()
	d.log.Info("bgp: "+prefix.String()+" "+verb, "vip", c.addr.String(), "reason", c.d.Reason)
	d.event("bgp", "", "", fmt.Sprintf("%v %s: %s", prefix, verb, c.d.Reason))
}

// bgpReloaded says so when a reload changes the bgp section: the speaker
// keeps running as started (which services are announced does follow).
func (d *Daemon) bgpReloaded(cfg *config.Config) {
	r := d.bgpRT()
	switch {
	case r == nil && cfg.BGP.ASN != 0:
		d.log.Warn("bgp: the reloaded config adds a bgp section; it takes effect when lvsd restarts")
		d.event("bgp", "", "", "reload: the bgp section takes effect when lvsd restarts")
	case r != nil && !reflect.DeepEqual(r.cfg, cfg.BGP):
		d.log.Warn("bgp: the reloaded config changes the bgp section; the speaker keeps its settings until lvsd restarts")
		d.event("bgp", "", "", "reload: changes to the bgp section take effect when lvsd restarts")
	}
}

// bgpPollPeers records the peers' sessions, with an event when one
// changes state.
func (d *Daemon) bgpPollPeers() {
	r := d.bgpRT()
	if r == nil {
		return
	}
	peers, err := r.speaker.Peers()
	if err != nil {
		return
	}
	r.mu.Lock()
	old := r.peers
	r.peers = peers
	r.mu.Unlock()
	for _, p := range peers {
		i := slices.IndexFunc(old, func(o bgp.PeerState) bool { return o.Address == p.Address })
		if i >= 0 && old[i].Up() == p.Up() {
			continue
		}
		if i < 0 && !p.Up() {
			continue
		}
		state := "down (" + string(p.State) + ")"
		if p.Up() {
			state = "up"
		}
		d.log.Info("bgp peer "+state, "peer", p.Address.String(), "asn", p.ASN)
		d.event("bgp", "", "", fmt.Sprintf("peer %v (as %d) %s", p.Address, p.ASN, state))
	}
}

// bgpWithdrawOnStop withdraws every VIP as soon as ctx ends (SIGTERM),
// from a goroutine of its own, rather than when the daemon's loop gets to
// its shutdown: the loop may be in a resync or waiting on the speaker, and
// the routers should stop sending at once. The returned func waits for
// that goroutine (or cancels it if ctx has not ended).
func (d *Daemon) bgpWithdrawOnStop(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	stop := context.AfterFunc(ctx, func() {
		defer wg.Done()
		d.bgpWithdrawAll("stop requested")
	})
	return func() {
		if stop() {
			wg.Done() // never ran
		}
		wg.Wait()
	}
}

// bgpWithdrawAll enters the stopping phase and withdraws every VIP, once;
// a second call waits for the first to finish.
func (d *Daemon) bgpWithdrawAll(why string) {
	r := d.bgpRT()
	if r == nil {
		return
	}
	r.stopping.Do(func() {
		r.mu.Lock()
		r.phase = bgp.Stopping
		r.mu.Unlock()
		d.log.Info("bgp: stopping: withdrawing every VIP first", "trigger", why)
		d.bgpUpdate()
	})
}

// stopBGP withdraws every VIP (unless a stop request did already), waits
// stop_drain, then stops the speaker: the routers stop sending traffic
// before IPVS is flushed or left.
func (d *Daemon) stopBGP() {
	r := d.bgpRT()
	if r == nil {
		return
	}
	d.log.Debug("bgp: the daemon's loop reached its shutdown")
	d.bgpWithdrawAll("shutdown")
	r.mu.Lock()
	closed := r.closed
	r.closed = true
	r.mu.Unlock()
	if closed {
		return // stopped already
	}
	if drain := r.cfg.StopDrain; drain > 0 {
		// The routers need a moment to move the flows: until then they
		// still arrive here, and must find IPVS in place.
		d.log.Info("bgp: withdrawn; waiting before stopping", "stop_drain", drain)
		time.Sleep(drain)
	}
	if err := r.speaker.Close(); err != nil {
		d.log.Error("stopping bgp", "err", err)
	}
	d.event("bgp", "", "", "speaker stopped")
}

func phaseName(p bgp.Phase) string {
	switch p {
	case bgp.Running:
		return "running"
	case bgp.Stopping:
		return "stopping"
	}
	return "starting"
}

func (d *Daemon) bgpStatus() *statusapi.BGPStatus {
	r := d.bgpRT()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := &statusapi.BGPStatus{ASN: r.cfg.ASN, RouterID: r.cfg.RouterID.String(), Phase: phaseName(r.phase), LastChange: r.lastChange, Error: r.lastErr}
	for _, p := range r.peers {
		st.Peers = append(st.Peers, statusapi.BGPPeerStatus{Address: p.Address.String(), ASN: p.ASN, State: string(p.State), Up: p.Up(), Since: p.Since, Advertised: p.Advertised})
	}
	for _, a := range slices.SortedFunc(mapsKeys(r.vips), func(a, b netip.Addr) int { return a.Compare(b) }) {
		v := r.vips[a]
		st.VIPs = append(st.VIPs, statusapi.BGPVIPStatus{Address: a.String(), Prefix: bgp.HostPrefix(a).String(), Announced: v.announced, Reason: v.reason, Since: v.since, DrillUntil: r.drills[a]})
	}
	return st
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// bgpSnapshot is what a scrape reports.
type bgpSnapshot struct {
	peers      []bgp.PeerState
	announced  []netip.Addr
	lastChange time.Time
}

func (r *bgpRuntime) metricsSnapshot() bgpSnapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := bgpSnapshot{peers: slices.Clone(r.peers), lastChange: r.lastChange}
	for a, v := range r.vips {
		if v.announced {
			s.announced = append(s.announced, a)
		}
	}
	return s
}

type bgpCollector struct {
	snapshot                   func() bgpSnapshot
	peerUp, routes, lastChange *prometheus.Desc
}

func (c *bgpCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.peerUp
	ch <- c.routes
	ch <- c.lastChange
}

func (c *bgpCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	for _, p := range s.peers {
		v := 0.0
		if p.Up() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.peerUp, prometheus.GaugeValue, v, p.Address.String(), fmt.Sprint(p.ASN))
	}
	ch <- prometheus.MustNewConstMetric(c.routes, prometheus.GaugeValue, float64(len(s.announced)))
	if !s.lastChange.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.lastChange, prometheus.GaugeValue, float64(s.lastChange.UnixNano())/1e9)
	}
}

// registerBGP adds the BGP metrics; a no-op on nil Metrics.
func (m *Metrics) registerBGP(snapshot func() bgpSnapshot) {
	if m == nil {
		return
	}
	c := &bgpCollector{
		snapshot:   snapshot,
		peerUp:     prometheus.NewDesc("lvsd_bgp_peer_up", "BGP session with the peer: 1 established, 0 not.", []string{"peer", "asn"}, nil),
		routes:     prometheus.NewDesc("lvsd_bgp_routes_announced", "VIPs announced over BGP now.", nil, nil),
		lastChange: prometheus.NewDesc("lvsd_bgp_last_change_timestamp_seconds", "Unix time a VIP was last announced or withdrawn.", nil, nil),
	}
	if err := m.registry.Register(c); err != nil {
		m.log.Error("registering bgp metrics", "err", err)
	}
}
