package diag

// The failover drill (lvsdiag drill): hand a VIP over on purpose and
// measure it from a client. drill_run.go gathers the facts (DrillFacts);
// this file turns them into a measured timeline and findings, as pure
// functions; drill_report.go prints them.

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// DrillKind is how the VIP is handed over.
type DrillKind string

const (
	// DrillVRRP: the master's lvsd steps down (priority-0 advert).
	DrillVRRP DrillKind = "vrrp"
	// DrillBGP: one director's lvsd withdraws the VIP's route.
	DrillBGP DrillKind = "bgp"
)

// DrillFacts is what a drill observed. Times are absolute; zero when the
// thing was not seen.
type DrillFacts struct {
	Kind DrillKind
	VIP  netip.Addr
	Port uint16
	// Director is the lvsd the drill acted on (its address as given);
	// Target the VRRP instance or the VIP; Peers the other directors read.
	Director string
	Target   string
	Peers    []string
	// Hold is the hold the director was given (its safety net).
	Hold time.Duration

	Start time.Time
	// Requested is when the action was sent; Accepted when lvsd answered.
	Requested, Accepted time.Time
	// Released is when the director's status first showed it let go
	// (VRRP: not master; BGP: the VIP withdrawn).
	Released time.Time
	// TookOver is when a peer's status first showed it master (VRRP),
	// and NewDirector which peer.
	TookOver    time.Time
	NewDirector string
	// GARPs are the gratuitous ARPs for the VIP seen on the client's link
	// (VRRP, with --interface).
	GARPs []GARP
	// ARPWatched says whether the link was watched for them.
	ARPWatched bool
	// Ended is when the drill was ended (DELETE); Restored when the
	// original state was seen again, RestoredState what it was.
	Ended, Restored time.Time
	RestoredState   string
	// Probes are the short connections of the bounded loop, in start
	// order; Long the long-lived connections opened before the action.
	Probes []DrillProbe
	Long   []DrillConn
	End    time.Time
	// Notes are facts worth printing that are not findings.
	Notes []string
}

// GARP is one gratuitous ARP for the VIP.
type GARP struct {
	At  time.Time
	MAC net.HardwareAddr
}

// DrillProbe is one short connection: connect, one request, an answer.
type DrillProbe struct {
	Start, End time.Time
	OK         bool
	Err        string
}

// DrillConn is one long-lived connection: opened before the action,
// asked again and again on the same connection until the end or until
// it breaks.
type DrillConn struct {
	Opened   time.Time
	Requests int
	// Broken is when a request on it failed first (zero: it lasted), and
	// Err how.
	Broken time.Time
	Err    string
}

// DrillSummary is the measured timeline, as offsets from the request.
type DrillSummary struct {
	// FirstGARP, TookOver, Released: from Requested; -1 when not seen.
	Released      time.Duration
	TookOver      time.Duration
	FirstGARP     time.Duration
	FirstForward  time.Duration // the first request answered through the new director
	Restored      time.Duration // from Ended
	Requests      int
	Failed        int // failed during the handover (from Requested to Ended)
	FailedRestore int // failed during the restore (from Ended to the end)
	LongestOutage time.Duration
	// Slowest is the longest new connection answered during the
	// handover: a SYN retransmitted to the new director shows here, not
	// as a failure.
	Slowest    time.Duration
	Long       int
	LongBroken int
}

const notSeen = time.Duration(-1)

// firstGARP is the new master's first gratuitous ARP: the first after
// the old master let go (before, the old master may still announce),
// or after the request when the let-go was not seen.
func (f *DrillFacts) firstGARP() (GARP, bool) {
	from := f.Requested
	if !f.Released.IsZero() {
		from = f.Released
	}
	for _, g := range f.GARPs {
		if !g.At.Before(from) {
			return g, true
		}
	}
	return GARP{}, false
}

func since(t0, t time.Time) time.Duration {
	if t.IsZero() || t0.IsZero() {
		return notSeen
	}
	return t.Sub(t0)
}

// Summarize measures the drill.
func (f *DrillFacts) Summarize() DrillSummary {
	s := DrillSummary{
		Released: since(f.Requested, f.Released), TookOver: since(f.Requested, f.TookOver),
		FirstGARP: notSeen, FirstForward: notSeen, Restored: since(f.Ended, f.Restored),
	}
	if g, ok := f.firstGARP(); ok {
		s.FirstGARP = g.At.Sub(f.Requested)
	}
	// The new director forwards the first request started after the old
	// one let go (VRRP: only one director holds the VIP; BGP: the route
	// the router uses no longer includes it) and answered.
	if !f.Released.IsZero() {
		for _, p := range f.Probes {
			if p.OK && !p.Start.Before(f.Released) {
				s.FirstForward = p.End.Sub(f.Requested)
				break
			}
		}
	}
	ended := f.Ended
	if ended.IsZero() {
		ended = f.End
	}
	var lastOK time.Time
	failing := false
	for _, p := range f.Probes {
		if p.Start.Before(f.Requested) {
			if p.OK {
				lastOK = p.End
			}
			continue
		}
		s.Requests++
		switch {
		case !p.OK && p.Start.Before(ended):
			s.Failed++
		case !p.OK:
			s.FailedRestore++
		}
		if !p.OK {
			failing = true
			continue
		}
		if p.Start.Before(ended) {
			s.Slowest = max(s.Slowest, p.End.Sub(p.Start))
		}
		if failing && !lastOK.IsZero() {
			s.LongestOutage = max(s.LongestOutage, p.End.Sub(lastOK))
		}
		failing = false
		lastOK = p.End
	}
	if failing && !lastOK.IsZero() {
		s.LongestOutage = max(s.LongestOutage, f.End.Sub(lastOK))
	}
	s.Long = len(f.Long)
	for _, c := range f.Long {
		if !c.Broken.IsZero() {
			s.LongBroken++
		}
	}
	return s
}

func drillMs(d time.Duration) string {
	if d == notSeen {
		return "not seen"
	}
	return d.Round(time.Millisecond).String()
}

// Findings judges the drill: a VIP nobody took over, requests that
// failed, connections that broke, state not restored.
func (f *DrillFacts) Findings() []Finding {
	s := f.Summarize()
	subject := fmt.Sprintf("VIP %v port %d, %s drill on %s", f.VIP, f.Port, f.Kind, f.Director)
	var out []Finding
	switch {
	case f.Released.IsZero():
		out = append(out, Finding{ID: "drill-not-released", Severity: Critical, Subject: subject,
			Evidence: []string{fmt.Sprintf("%s accepted the action, but its status never showed %s", f.Director, map[DrillKind]string{DrillVRRP: "the instance leaving master", DrillBGP: "the VIP withdrawn"}[f.Kind])},
			Fix:      "Read lvsd's log and `lvsdiag --vip " + f.VIP.String() + "` on " + f.Director + "."})
	case f.Kind == DrillVRRP && f.TookOver.IsZero():
		out = append(out, Finding{ID: "drill-no-takeover", Severity: Critical, Subject: subject,
			Evidence: []string{fmt.Sprintf("%s stepped down %s after the request; no peer (%s) became master", f.Director, drillMs(s.Released), strings.Join(f.Peers, ", "))},
			Fix: "Give the drill every director's status (--lvsd for each); check that the backup hears the master's adverts:\n" +
				"lvsdiag vrrp --interface IF   (on the backup)"})
	}
	if f.Kind == DrillVRRP && f.ARPWatched && s.FirstGARP == notSeen && !f.TookOver.IsZero() {
		out = append(out, Finding{ID: "drill-no-garp", Severity: Warning, Subject: subject,
			Evidence: []string{fmt.Sprintf("%s took over %s after the request, but no gratuitous ARP for %v reached this link", f.NewDirector, drillMs(s.TookOver), f.VIP)},
			Fix:      "Clients and routers keep the old MAC until their ARP entry expires: check garp settings of the instance and that the link is the VIP's segment."})
	}
	if s.Failed > 0 {
		out = append(out, Finding{ID: "drill-requests-failed", Severity: Warning, Subject: subject,
			Evidence: []string{
				fmt.Sprintf("%d of %d new connections failed between the request and the drill's end; the longest outage lasted %s", s.Failed, s.Requests, drillMs(s.LongestOutage)),
				"first failure: " + firstFailedProbe(f.Probes, f.Requested),
			},
			Fix: map[DrillKind]string{
				DrillVRRP: "A shorter advert_interval shortens the takeover (Skew_Time after a priority-0 advert); check that the new master's gratuitous ARP reaches the clients' router.",
				DrillBGP:  "Withdrawing before stopping lets the router move flows; check the router's ECMP (multipath) and that the other directors serve the VIP.",
			}[f.Kind]})
	}
	if s.LongBroken > 0 {
		out = append(out, Finding{ID: "drill-connections-broken", Severity: Warning, Subject: subject,
			Evidence: []string{fmt.Sprintf("%d of %d connections opened before the handover broke: first %s", s.LongBroken, s.Long, firstBroken(f.Long))},
			Fix: map[DrillKind]string{
				DrillVRRP: "The new master does not know the connections: run the connection sync daemon (ipvs: sync_daemon: {interface: IF, vrrp_instance: NAME}) or set ipvs: sloppy_tcp: true so it takes them over mid-flight.",
				DrillBGP:  "Flows that move to another director survive only with the same real server picked there: scheduler mh with [mh-port], identical real servers and weights, and ipvs: sloppy_tcp: true on every director.",
			}[f.Kind]})
	}
	if !f.Ended.IsZero() && f.Restored.IsZero() {
		out = append(out, Finding{ID: "drill-not-restored", Severity: Critical, Subject: subject,
			Evidence: []string{fmt.Sprintf("the drill ended at %s; the original state was not seen again by %s", f.Ended.UTC().Format("15:04:05.000"), f.End.UTC().Format("15:04:05.000"))},
			Fix:      fmt.Sprintf("Look at %s's status (lvstop --lvsd %s); it restores by itself when the hold (%s) ends.", f.Director, f.Director, f.Hold)})
	}
	SortFindings(out)
	return out
}

func firstFailedProbe(ps []DrillProbe, from time.Time) string {
	for _, p := range ps {
		if !p.OK && !p.Start.Before(from) {
			return fmt.Sprintf("%s after the request: %s", drillMs(p.Start.Sub(from)), p.Err)
		}
	}
	return "none"
}

func firstBroken(cs []DrillConn) string {
	var first *DrillConn
	for i := range cs {
		if !cs[i].Broken.IsZero() && (first == nil || cs[i].Broken.Before(first.Broken)) {
			first = &cs[i]
		}
	}
	if first == nil {
		return "none"
	}
	return fmt.Sprintf("at %s: %s", first.Broken.UTC().Format("15:04:05.000"), first.Err)
}

// timeline is the drill's events in order, as offsets from the request.
func (f *DrillFacts) timeline() [][2]string {
	type ev struct {
		at   time.Time
		what string
	}
	var evs []ev
	add := func(t time.Time, what string) {
		if !t.IsZero() {
			evs = append(evs, ev{t, what})
		}
	}
	verb := map[DrillKind]string{DrillVRRP: "step-down", DrillBGP: "withdraw"}[f.Kind]
	add(f.Requested, fmt.Sprintf("%s asked to %s %s (hold %s)", f.Director, verb, f.Target, f.Hold))
	add(f.Accepted, "lvsd accepted")
	add(f.Released, map[DrillKind]string{DrillVRRP: f.Director + " left master", DrillBGP: f.Director + " withdrew " + f.VIP.String()}[f.Kind])
	add(f.TookOver, f.NewDirector+" became master")
	if g, ok := f.firstGARP(); ok {
		add(g.At, fmt.Sprintf("first gratuitous ARP for %v from %v", f.VIP, g.MAC))
	}
	s := f.Summarize()
	if s.FirstForward != notSeen {
		add(f.Requested.Add(s.FirstForward), "first request answered through the new path")
	}
	add(f.Ended, "drill ended")
	add(f.Restored, "restored: "+f.RestoredState)
	slices.SortStableFunc(evs, func(a, b ev) int { return a.at.Compare(b.at) })
	out := make([][2]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, [2]string{fmt.Sprintf("%+.3fs", e.at.Sub(f.Requested).Seconds()), e.what})
	}
	return out
}
