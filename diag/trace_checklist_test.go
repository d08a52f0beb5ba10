package diag_test

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/diag"
	"github.com/lvskit/lvskit/diag/diagtest"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/probes"
	"github.com/lvskit/lvskit/probes/probestest"
)

func tracePacket(skb uint64) probestest.Packet {
	return probestest.Packet{SKB: skb, At: time.Duration(skb) * time.Millisecond,
		Client: netip.MustParseAddrPort("10.77.0.10:51000"), VIP: netip.AddrPortFrom(vip, 80)}
}

// quiesceAll sets every real server's weight to 0 in the fake IPVS and
// returns the trace of a packet IPVS then drops.
func (w *world) quiesceAll(t *testing.T) []probes.Path {
	t.Helper()
	key := ipvs.TCPKey(netip.AddrPortFrom(vip, 80))
	var dests []probes.Destination
	for _, a := range rips {
		if err := w.ipvs.UpdateRealServer(key, ipvs.RealServer{Address: a, Port: 80, Forwarding: ipvs.DirectRoute, Weight: 0}); err != nil {
			t.Fatal(err)
		}
		dests = append(dests, probes.Destination{Address: rsPort(a)})
	}
	return probestest.Group(probes.GrouperOptions{Destinations: func(probes.Service) ([]probes.Destination, bool) { return dests, true }},
		tracePacket(1).NoDestination("wlc"))
}

func traceCheck(rep *diag.Report) *diag.CheckResult {
	for i := range rep.Checks {
		if rep.Checks[i].ID == diag.CheckPacketPath {
			return &rep.Checks[i]
		}
	}
	return nil
}

func TestTraceCheckOnAHealthyDirector(t *testing.T) {
	w := newWorld()
	w.onDirector(t)
	w.opts.Trace = true
	w.tracer = &diagtest.Tracer{Paths: probestest.Group(probes.GrouperOptions{}, tracePacket(1).Forwarded(rsPort(rips[0]), probes.DirectRoute, "wlc"))}
	env, _, prober := w.env()
	rep, err := diag.Run(t.Context(), env, w.opts)
	if err != nil {
		t.Fatal(err)
	}
	c := traceCheck(rep)
	if c == nil || c.Number != 9 || c.Status != diag.StatusOK {
		t.Fatalf("packet path check: %+v\n%s", c, dump(t, rep))
	}
	if !slices.ContainsFunc(c.Notes, func(n string) bool {
		return strings.HasSuffix(n, "=> forwarded: IPVS sent it to 10.77.0.21:80 by direct route")
	}) {
		t.Errorf("notes lack the forwarded path: %q", c.Notes)
	}
	reqs := w.tracer.Requests()
	if len(reqs) != 1 || reqs[0].Filter.VIP != vip || reqs[0].Filter.Port != 80 {
		t.Errorf("trace requests %+v, want one for %s:80", reqs, vip)
	}
	// lvsdiag's own connection to the VIP, through IPVS, while tracing.
	if !slices.ContainsFunc(prober.Requests(), func(r diag.ProbeRequest) bool { return r.Address == netip.AddrPortFrom(vip, 80) }) {
		t.Errorf("no probe connection to the VIP: %+v", prober.Requests())
	}
}

func TestTraceCheckFindsWeightZeroDrops(t *testing.T) {
	w := newWorld()
	w.onDirector(t)
	w.opts.Trace = true
	w.tracer = &diagtest.Tracer{Paths: w.quiesceAll(t)}
	rep := w.run(t)
	c := traceCheck(rep)
	if c == nil || c.Status != diag.StatusFindings || len(c.Findings) != 1 {
		t.Fatalf("packet path check: %+v\n%s", c, dump(t, rep))
	}
	f := c.Findings[0]
	if f.ID != "trace-no-destination" || f.Severity != diag.Critical || f.Subject != "IPVS service TCP 10.77.0.100:80" ||
		!strings.Contains(f.Evidence[0], "all real servers of TCP 10.77.0.100:80 have weight 0") {
		t.Errorf("finding %+v", f)
	}
}

func TestTraceCheckOnlyWithTrace(t *testing.T) {
	w := newWorld()
	w.onDirector(t)
	w.tracer = &diagtest.Tracer{}
	if c := traceCheck(w.run(t)); c != nil {
		t.Errorf("without --trace: %+v", c)
	}
	if n := len(w.tracer.Requests()); n != 0 {
		t.Errorf("%d traces without --trace", n)
	}
}

func TestTraceCheckCannotRun(t *testing.T) {
	// No tracer here (not root, or not Linux): the reason is the report's.
	w := newWorld()
	w.onDirector(t)
	w.opts.Trace = true
	env, _, _ := w.env()
	env.TracerErr = errors.New("loading eBPF programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN): run lvsdiag as root")
	rep, err := diag.Run(t.Context(), env, w.opts)
	if err != nil {
		t.Fatal(err)
	}
	if c := traceCheck(rep); c == nil || c.Status != diag.StatusCouldNotRun || !strings.Contains(c.Reason, "CAP_BPF") {
		t.Errorf("no tracer: %+v", c)
	}
	// On a client (no IPVS service for the VIP here): not applicable.
	w = newWorld()
	w.opts.Trace = true
	w.tracer = &diagtest.Tracer{}
	if c := traceCheck(w.run(t)); c == nil || c.Status != diag.StatusCouldNotRun && c.Status != diag.StatusNotApplicable {
		t.Errorf("on a client: %+v", c)
	} else if !strings.Contains(c.Reason, "run lvsdiag --trace on the director") {
		t.Errorf("on a client: reason %q", c.Reason)
	}
	// The tracer fails.
	w = newWorld()
	w.onDirector(t)
	w.opts.Trace = true
	w.tracer = &diagtest.Tracer{Err: errors.New("attaching tp_btf/kfree_skb: permission denied")}
	if c := traceCheck(w.run(t)); c == nil || c.Status != diag.StatusCouldNotRun || c.Reason != "tracing: attaching tp_btf/kfree_skb: permission denied" {
		t.Errorf("tracer failure: %+v", c)
	}
}
