// Package diagtest has fakes of the interfaces diag's checks talk to
// (diag.Env): each answers from what the test set and records what it
// was asked, so a test can assert both the report and the probes sent.
package diagtest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/lvskit/lvskit/diag"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/probes"
)

// Pinger answers pings from Results; an address without one gets no
// replies.
type Pinger struct {
	mu      sync.Mutex
	Results map[netip.Addr]diag.PingResult
	Err     error
	pinged  []netip.Addr
}

var _ diag.Pinger = (*Pinger)(nil)

// Ping implements diag.Pinger.
func (p *Pinger) Ping(_ context.Context, addr netip.Addr, opts diag.PingOptions) (diag.PingResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pinged = append(p.pinged, addr)
	if p.Err != nil {
		return diag.PingResult{}, p.Err
	}
	if r, ok := p.Results[addr]; ok {
		return r, nil
	}
	return diag.PingResult{Sent: opts.Count, Method: "fake"}, nil
}

// Pinged returns the addresses pinged, sorted.
func (p *Pinger) Pinged() []netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Clone(p.pinged)
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Up is a PingResult of n replies out of n.
func Up(n int) diag.PingResult {
	r := diag.PingResult{Sent: n, Received: n, Method: "fake"}
	for range n {
		r.RTTs = append(r.RTTs, 200*time.Microsecond)
	}
	return r
}

// ARP answers who-has from Hosts (address -> MAC) and adds Extra
// packets (leaking replies, gratuitous ARP) to every capture.
type ARP struct {
	mu    sync.Mutex
	Hosts map[netip.Addr][]string
	Extra []diag.ARPPacket
	Start time.Time
	Err   error
	asked [][]netip.Addr
}

var _ diag.ARPProber = (*ARP)(nil)

// Probe implements diag.ARPProber.
func (a *ARP) Probe(_ context.Context, iface string, targets []netip.Addr, wait time.Duration) (diag.ARPCapture, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, slices.Clone(targets))
	if a.Err != nil {
		return diag.ARPCapture{}, a.Err
	}
	c := diag.ARPCapture{Start: a.Start, End: a.Start.Add(wait), Source: netip.MustParseAddr("10.77.0.2")}
	for i, t := range targets {
		for _, mac := range a.Hosts[t] {
			c.Packets = append(c.Packets, diag.ARPPacket{
				At: a.Start.Add(time.Duration(i+1) * time.Millisecond), Reply: true,
				SenderMAC: MAC(mac), SenderIP: t, TargetIP: c.Source,
			})
		}
	}
	c.Packets = append(c.Packets, a.Extra...)
	return c, nil
}

// Asked returns the targets of each Probe.
func (a *ARP) Asked() [][]netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.asked)
}

// MAC parses a MAC address or panics.
func MAC(s string) []byte {
	var b [6]byte
	if _, err := fmt.Sscanf(s, "%02x:%02x:%02x:%02x:%02x:%02x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]); err != nil {
		panic("bad MAC " + s)
	}
	return b[:]
}

// Prober answers probes from Results; an address without one is
// refused.
type Prober struct {
	mu       sync.Mutex
	Results  map[netip.AddrPort]diag.ProbeResult
	requests []diag.ProbeRequest
}

var _ diag.Prober = (*Prober)(nil)

// Probe implements diag.Prober.
func (p *Prober) Probe(_ context.Context, req diag.ProbeRequest) diag.ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = append(p.requests, req)
	if r, ok := p.Results[req.Address]; ok {
		return r
	}
	return diag.ProbeResult{Err: fmt.Errorf("dial tcp %s: connect: connection refused", req.Address)}
}

// Requests returns the probes sent, in address order.
func (p *Prober) Requests() []diag.ProbeRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Clone(p.requests)
	slices.SortFunc(out, func(a, b diag.ProbeRequest) int { return a.Address.Compare(b.Address) })
	return out
}

// OK is an HTTP 200 with a body digest.
func OK(digest string) diag.ProbeResult {
	return diag.ProbeResult{Status: 200, Latency: time.Millisecond, BodyBytes: 6, Digest: digest}
}

// Net serves fixed links and routes.
type Net struct {
	LinkList []diag.Link
	// Routes maps a destination to its route; others go via Default.
	Routes  map[netip.Addr]diag.Route
	Default diag.Route
}

var _ diag.NetInfo = (*Net)(nil)

// Links implements diag.NetInfo.
func (n *Net) Links(context.Context) ([]diag.Link, error) { return n.LinkList, nil }

// RouteTo implements diag.NetInfo: local for an address of a link.
func (n *Net) RouteTo(_ context.Context, dst netip.Addr) (diag.Route, error) {
	if r, ok := n.Routes[dst]; ok {
		return r, nil
	}
	for _, l := range n.LinkList {
		for _, p := range l.Prefixes {
			if p.Addr() == dst {
				return diag.Route{Interface: "lo", Local: true}, nil
			}
		}
	}
	if n.Default.Interface == "" {
		return diag.Route{}, errors.New("network is unreachable")
	}
	return n.Default, nil
}

// Firewall serves fixed rules.
type Firewall struct {
	Ruleset diag.FirewallRules
}

// Rules implements diag.Firewall.
func (f *Firewall) Rules(context.Context) (diag.FirewallRules, error) { return f.Ruleset, nil }

// Status serves a fixed lvsd status.
type Status struct {
	S   statusapi.Status
	Err error
	// VIPs are the addresses StatusOfVIP was asked for.
	VIPs []netip.Addr
}

// Status implements diag.StatusSource.
func (s *Status) Status(context.Context) (statusapi.Status, error) { return s.S, s.Err }

// StatusOfVIP implements diag.VIPStatusSource as lvsd's GET
// /status?vip= does: S with only the services on vip.
func (s *Status) StatusOfVIP(_ context.Context, vip netip.Addr) (statusapi.Status, error) {
	s.VIPs = append(s.VIPs, vip)
	st := s.S
	st.Services = nil
	for _, svc := range s.S.Services {
		if k, err := ipvs.ParseServiceKey(svc.Key); err == nil && !k.IsFWMark() && k.Address == vip {
			st.Services = append(st.Services, svc)
		}
	}
	return st, s.Err
}

// VRRP returns a fixed census.
type VRRP struct {
	Census *diag.VRRPCensus
	Err    error
}

// Listen implements diag.VRRPListener.
func (v *VRRP) Listen(_ context.Context, iface string, _ time.Duration) (*diag.VRRPCensus, error) {
	if v.Err != nil {
		return nil, v.Err
	}
	c := *v.Census
	c.Interface = iface
	return &c, nil
}

// Tracer answers a trace with fixed paths, as if they passed while it
// ran, and records the requests.
type Tracer struct {
	mu       sync.Mutex
	Paths    []probes.Path
	Lost     uint64
	Unseen   []string
	Err      error
	requests []diag.TraceRequest
}

var _ diag.Tracer = (*Tracer)(nil)

// Trace implements diag.Tracer: it calls req.Ready, then returns the
// paths (at most req.Count) and their summary.
func (t *Tracer) Trace(_ context.Context, req diag.TraceRequest) (diag.TraceResult, error) {
	t.mu.Lock()
	t.requests = append(t.requests, req)
	paths, err := slices.Clone(t.Paths), t.Err
	t.mu.Unlock()
	if err != nil {
		return diag.TraceResult{}, err
	}
	if req.Ready != nil {
		req.Ready()
	}
	if req.Count > 0 && len(paths) > req.Count {
		paths = paths[:req.Count]
	}
	sum := probes.NewGrouper(probes.GrouperOptions{}).Summary()
	for _, p := range paths {
		sum.Add(p)
	}
	sum.Lost, sum.Unseen = t.Lost, t.Unseen
	return diag.TraceResult{Paths: paths, Summary: sum}, nil
}

// Requests returns the traces asked for.
func (t *Tracer) Requests() []diag.TraceRequest {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.requests)
}
