package diag

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lvskit/lvskit/probes"
)

// Tracer traces packets through this host's IPVS with eBPF (lvsdiag
// --trace on a director).
type Tracer interface {
	// Trace attaches the probes, calls req.Ready, then traces the
	// packets req.Filter matches in this host's network namespace for
	// req.Window, until req.Count paths ended or ctx ends; it returns the
	// paths that ended and the run's summary.
	Trace(ctx context.Context, req TraceRequest) (TraceResult, error)
}

// TraceRequest is one trace.
type TraceRequest struct {
	Filter probes.Filter
	// Count ends the trace after this many paths; zero: no limit.
	Count int
	// Window is how long to trace once the probes are attached
	// (attaching takes from a fraction of a second to several).
	Window time.Duration
	// Ready is called once the probes are attached, on the goroutine
	// that called Trace, before Trace waits: the check then sends its
	// own connection. It must not block.
	Ready func()
}

// TraceResult is what a trace saw.
type TraceResult struct {
	Paths   []probes.Path
	Summary probes.Summary
}

// tracePathLimit bounds the paths one checklist run keeps: enough for
// the probe connection and a few clients' packets.
const tracePathLimit = 64

// traceFacts are what the Packet path check decides from.
type traceFacts struct {
	VIP  netip.Addr
	Port uint16
	// Window is how long the trace ran at most.
	Window time.Duration
	Paths  []probes.Path
	Sum    probes.Summary
	// Probed says lvsdiag sent its own connection to VIP:port while
	// tracing; ProbeErr is how it ended.
	Probed   bool
	ProbeErr error
	// NAT lists the real servers the director reaches by NAT.
	NAT []netip.AddrPort
}

func checkTrace(ctx context.Context, r *run) outcome {
	if r.env.Tracer == nil {
		if r.env.TracerErr != nil {
			return couldNotRun("%v", r.env.TracerErr)
		}
		return couldNotRun("no eBPF tracer on this system")
	}
	v := r.getDirector(ctx)
	switch {
	case !v.IPVS:
		return couldNotRun("tracing needs this host's IPVS (%s): run lvsdiag --trace on the director", shortErr(v.IPVSErr))
	case len(v.Services) == 0 && len(v.FWMarks) == 0:
		return notApplicable("this host has no IPVS service for %s: run lvsdiag --trace on the director", r.vipPort())
	}
	f := traceFacts{VIP: r.opts.VIP, Port: r.opts.Port, Window: r.opts.Listen}
	for _, rs := range v.RealServers {
		if rs.Forwarding == "Masq" && !slices.Contains(f.NAT, rs.Address) {
			f.NAT = append(f.NAT, rs.Address)
		}
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var probe ProbeResult
	ready := func() {
		if r.env.Prober == nil || r.opts.Port == 0 {
			return
		}
		f.Probed = true
		target := netip.AddrPortFrom(r.opts.VIP, r.opts.Port)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(pctx, r.opts.Listen)
			defer cancel()
			probe = r.env.Prober.Probe(ctx, ProbeRequest{Kind: r.opts.probeKind(r.opts.Port), Address: target, Host: r.opts.host(), Path: r.opts.Path})
		})
	}
	res, err := r.env.Tracer.Trace(ctx, TraceRequest{Filter: probes.Filter{VIP: r.opts.VIP, Port: r.opts.Port},
		Count: tracePathLimit, Window: r.opts.Listen, Ready: ready})
	cancel()
	wg.Wait()
	if err != nil {
		return couldNotRun("tracing: %v", err)
	}
	f.Paths, f.Sum, f.ProbeErr = res.Paths, res.Summary, probe.Err
	return traceFindings(f)
}

// traceFindings decides from what the trace saw.
func traceFindings(f traceFacts) outcome {
	var o outcome
	vp := f.VIP.String()
	if f.Port != 0 {
		vp = netip.AddrPortFrom(f.VIP, f.Port).String()
	}
	if f.Probed {
		o.note("traced for up to %s while lvsdiag connected to %s from this host", f.Window, vp)
	} else {
		o.note("traced for up to %s, watching for clients' packets to %s", f.Window, vp)
	}
	o.note("%s", summaryLine(f.Sum))
	if f.Sum.Lost > 0 {
		o.note("%d events lost (the ring buffer was full): some paths lack hops", f.Sum.Lost)
	}
	if f.Sum.Missed > 0 {
		o.note("%d probe run%s skipped (a probe fired on a CPU where it was already running): some paths lack hops", f.Sum.Missed, plural(int(f.Sum.Missed)))
	}
	for _, u := range f.Sum.Unseen {
		o.note("not visible on this kernel: %s", u)
	}
	for _, p := range firstOfEachOutcome(f.Paths) {
		o.note("%s", pathLine(p))
	}

	type group struct {
		id, why string
		paths   []probes.Path
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, p := range f.Paths {
		id := pathFindingID(p)
		if id == "" {
			continue
		}
		k := id + "\x00" + p.Why
		if byKey[k] == nil {
			byKey[k] = &group{id: id, why: p.Why}
			groups = append(groups, byKey[k])
		}
		byKey[k].paths = append(byKey[k].paths, p)
	}
	for _, g := range groups {
		o.add(pathFinding(f, g.id, g.why, g.paths))
	}
	if fd, ok := natNoReply(f); ok {
		o.add(fd)
	}
	if len(f.Paths) == 0 {
		o.add(noPacketsFinding(f, vp))
	}
	return o
}

func summaryLine(s probes.Summary) string {
	parts := []string{fmt.Sprintf("%d packet%s traced", s.Packets, plural(s.Packets))}
	for _, oc := range []probes.Outcome{probes.OutcomeForwarded, probes.OutcomeReply, probes.OutcomeLocal, probes.OutcomeDropped, probes.OutcomeUnknown} {
		if n := s.ByOutcome[oc]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, oc))
		}
	}
	line := strings.Join(parts, ", ")
	var rss []string
	for rs, n := range s.ByRealServer {
		rss = append(rss, fmt.Sprintf("%s %d", rs, n))
	}
	slices.Sort(rss)
	if len(rss) > 0 {
		line += "; to " + strings.Join(rss, ", ")
	}
	return line
}

// firstOfEachOutcome picks one path per outcome, in the order seen, to
// show in the notes.
func firstOfEachOutcome(ps []probes.Path) []probes.Path {
	var out []probes.Path
	seen := map[probes.Outcome]bool{}
	for _, p := range ps {
		if !seen[p.Outcome] {
			seen[p.Outcome] = true
			out = append(out, p)
		}
	}
	return out
}

// pathLine is a path on one line: the packet, its hops, its end.
func pathLine(p probes.Path) string {
	var funcs []string
	for _, h := range p.Hops {
		if len(funcs) == 0 || funcs[len(funcs)-1] != h.Func {
			funcs = append(funcs, h.Func)
		}
	}
	return fmt.Sprintf("%s: %s => %s: %s", packetText(p), strings.Join(funcs, " -> "), p.Outcome, p.Why)
}

func packetText(p probes.Path) string {
	if p.Tuple.Protocol == "" {
		return "a packet"
	}
	s := fmt.Sprintf("%s %s -> %s", p.Tuple.Protocol, p.Tuple.Src, p.Tuple.Dst)
	if p.TCPFlags != "" {
		s += " [" + p.TCPFlags + "]"
	}
	return s
}

// pathFindingID names the problem a path shows, or "" when it shows
// none.
func pathFindingID(p probes.Path) string {
	switch p.Outcome {
	case probes.OutcomeLocal:
		if strings.HasPrefix(p.Tuple.Protocol, "ICMP") {
			// A ping to the VIP, or an ICMP error about the flow, is
			// the director's own stack's to answer: not a missing
			// service. (The reachability check pings the VIP while
			// the trace runs.)
			return ""
		}
		return "trace-local-stack"
	case probes.OutcomeDropped:
		switch {
		case strings.HasPrefix(p.Why, "IPVS found no destination"):
			return "trace-no-destination"
		case strings.HasPrefix(p.Why, "IPVS "):
			return "trace-ipvs-dropped"
		case strings.HasPrefix(p.Why, "netfilter "):
			return "trace-netfilter-dropped"
		}
		return "trace-kernel-dropped"
	}
	return ""
}

func pathFinding(f traceFacts, id, why string, ps []probes.Path) Finding {
	ev := []string{fmt.Sprintf("%d of %d traced packets: %s", len(ps), len(f.Paths), why)}
	for _, p := range ps[:min(len(ps), 3)] {
		ev = append(ev, pathLine(p))
	}
	fd := Finding{ID: id, Severity: Critical, Evidence: ev}
	svc := "IPVS service for " + netip.AddrPortFrom(f.VIP, f.Port).String()
	if ps[0].Service != nil {
		svc = "IPVS service " + ps[0].Service.String()
	}
	switch id {
	case "trace-no-destination":
		fd.Subject = svc
		fd.Fix = noDestinationFix(ps[0], why)
	case "trace-local-stack":
		dst := ps[0].Tuple.Dst
		proto := strings.ToLower(ps[0].Tuple.Protocol)
		fd.Subject = "packets to " + dst.String()
		if proto == "" {
			proto, dst = "tcp", netip.AddrPortFrom(f.VIP, f.Port)
		}
		fd.Fix = fmt.Sprintf(`No IPVS service matched: the director's own stack answered (or reset) the
connection. Check the protocol and port of the service:
  ipvsadm -Ln
Add the service (in lvsd's config, or by hand):
  ipvsadm -A --%s-service %s -s wlc
  ipvsadm -a --%s-service %s -r REAL_SERVER -g -w 1`, proto, dst, proto, dst)
	case "trace-ipvs-dropped":
		fd.Subject = svc
		fd.Fix = `IPVS itself dropped the packet in its hook. Look at the connection
and the service's state, and at the kernel log:
  ipvsadm -Lnc | grep ` + f.VIP.String() + `
  dmesg | grep -i ipvs
  lvsdiag trace --vip ` + f.VIP.String() + ` --count 5     # every hop of the next packets`
	case "trace-netfilter-dropped":
		fd.Subject = "firewall on the director"
		fd.Fix = `A netfilter rule dropped the packet on the IPVS path. Find the rule:
  nft list ruleset
  iptables-save -c | grep -i drop
IPVS needs the packets to the VIP accepted in INPUT (and, for NAT, the
replies in FORWARD).`
	default:
		fd.Subject = "packets to " + netip.AddrPortFrom(f.VIP, f.Port).String()
		fd.Fix = kernelDropFix(why)
	}
	return fd
}

func noDestinationFix(p probes.Path, why string) string {
	svc := "-t VIP:PORT"
	if p.Service != nil && p.Service.FWMark != 0 {
		svc = fmt.Sprintf("-f %d", p.Service.FWMark)
	} else if p.Service != nil {
		svc = "--" + strings.ToLower(p.Service.Protocol) + "-service " + p.Service.Address.String()
	}
	switch {
	case strings.Contains(why, "weight 0"):
		return `Every real server is quiesced: IPVS sends new connections nowhere.
Are lvsd's health checks failing? (lvsdiag --lvsd URL, lvstop)
Give a healthy real server its weight back:
  ipvsadm -e ` + svc + ` -r REAL_SERVER -w 1`
	case strings.Contains(why, "threshold"):
		return `Every real server has reached its upper connection threshold (-x).
Raise the thresholds, or add real servers:
  ipvsadm -Ln --thresholds
  ipvsadm -e ` + svc + ` -r REAL_SERVER -x 0`
	case strings.Contains(why, "no real servers"):
		return `The service has no real servers. Add them (in lvsd's config, or):
  ipvsadm -a ` + svc + ` -r REAL_SERVER -g -w 1`
	}
	return `The scheduler found no real server it may use. Look at weights and
thresholds:
  ipvsadm -Ln --thresholds`
}

func kernelDropFix(why string) string {
	switch {
	case strings.Contains(why, "rp_filter"):
		return `The reverse path filter dropped it: the packet came in on an interface
the route back to its source does not use. On the director:
  sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf.IFACE.rp_filter
  sysctl -w net.ipv4.conf.IFACE.rp_filter=2    # loose mode (or 0)`
	case strings.Contains(why, "no route"):
		return `The director has no route for it:
  ip route get DESTINATION
Add the missing route (to the real servers' network, or back to clients).`
	case strings.Contains(why, "could not transmit"):
		return `IPVS could not send the packet to the real server. Check the route
and the MTU to it:
  ip route get REAL_SERVER
  ip link show    # a tunnel's MTU must leave room for the outer header`
	}
	return `The kernel dropped the packet on its way through the director. Trace
the next packets hop by hop to see where:
  lvsdiag trace --vip VIP --port PORT --count 5`
}

// natNoReply finds NAT connections whose replies never came back
// through the director within the window.
func natNoReply(f traceFacts) (Finding, bool) {
	replied := map[netip.AddrPort]bool{}
	for _, p := range f.Paths {
		if p.Outcome == probes.OutcomeReply && p.Conn != nil {
			replied[p.Conn.RealServer] = true
		}
	}
	var silent []netip.AddrPort
	counts := map[netip.AddrPort]int{}
	for _, p := range f.Paths {
		if p.Outcome != probes.OutcomeForwarded || p.Conn == nil || p.Conn.Forwarding != probes.Masquerade {
			continue
		}
		rs := p.Conn.RealServer
		if !replied[rs] {
			if counts[rs] == 0 {
				silent = append(silent, rs)
			}
			counts[rs]++
		}
	}
	if len(silent) == 0 {
		return Finding{}, false
	}
	var ev []string
	for _, rs := range silent {
		ev = append(ev, fmt.Sprintf("%d packet%s sent by NAT to %s; no reply from it passed ip_vs_out_hook within %s", counts[rs], plural(counts[rs]), rs, f.Window))
	}
	return Finding{ID: "trace-nat-no-reply", Severity: Critical, Subject: "NAT replies from " + joinAddrPorts(silent), Evidence: ev,
		Fix: `With NAT the replies must come back through the director, which rewrites
their source to the VIP. On each real server, the route back to the
clients must go via the director:
  ip route show default          # on the real server: via the director's address
  lvsdiag rs --vip ` + f.VIP.String() + `
On the director, see whether the replies arrive at all:
  tcpdump -ni any host REAL_SERVER and port PORT`}, true
}

func joinAddrPorts(as []netip.AddrPort) string {
	var s []string
	for _, a := range as {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}

func noPacketsFinding(f traceFacts, vp string) Finding {
	ev := []string{fmt.Sprintf("no packet to %s passed this host's IPVS in %s", vp, f.Window)}
	if f.Probed {
		ev = append(ev, "not even lvsdiag's own connection from this host")
		if f.ProbeErr != nil {
			ev = append(ev, fmt.Sprintf("the connection: %v", f.ProbeErr))
		}
	}
	if len(f.Sum.Unseen) > 0 {
		ev = append(ev, fmt.Sprintf("%d hop%s cannot be seen on this kernel (see the notes)", len(f.Sum.Unseen), plural(len(f.Sum.Unseen))))
	}
	return Finding{ID: "trace-no-packets", Severity: Warning, Subject: "packets to " + vp, Evidence: ev,
		Fix: `Is this the director that holds the VIP, and do packets reach it?
  ip -br addr | grep -w ` + f.VIP.String() + `
  lvsdiag trace --vip ` + f.VIP.String() + ` --duration 30s    # while a client connects`}
}
