package diag

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// pingTarget is one address check 1 pings and what it is.
type pingTarget struct {
	Addr netip.Addr
	Role string // "VIP", "director", "real server"
}

// reachabilityFacts are what check 1 (Reachability) decides from: each
// target with its ping's result or error.
type reachabilityFacts struct {
	target
	Targets []pingTarget
	Results []PingResult
	Errs    []error
}

func checkReachability(ctx context.Context, r *run) outcome {
	if r.env.Pinger == nil {
		return couldNotRun("no ICMP on this system")
	}
	f := reachabilityFacts{target: r.target(), Targets: []pingTarget{{r.opts.VIP, "VIP"}}}
	seen := map[netip.Addr]bool{r.opts.VIP: true}
	add := func(as []netip.Addr, role string) {
		for _, a := range as {
			if !seen[a] {
				seen[a] = true
				f.Targets = append(f.Targets, pingTarget{a, role})
			}
		}
	}
	add(r.directorAddrs(ctx), "director")
	add(r.getDirector(ctx).realServerAddrs(), "real server")

	f.Results = make([]PingResult, len(f.Targets))
	f.Errs = make([]error, len(f.Targets))
	var wg sync.WaitGroup
	popts := PingOptions{Count: r.opts.PingCount, Interval: 100 * time.Millisecond, Timeout: time.Second}
	if dl, ok := ctx.Deadline(); ok {
		popts.Timeout = min(popts.Timeout, time.Until(dl)/2)
	}
	for i, t := range f.Targets {
		wg.Go(func() { f.Results[i], f.Errs[i] = r.env.Pinger.Ping(ctx, t.Addr, popts) })
	}
	wg.Wait()
	return reachabilityFindings(f)
}

// reachabilityFindings decides check 1 from its facts: loss to any
// target is a finding, total loss a critical one.
func reachabilityFindings(f reachabilityFacts) outcome {
	var o outcome
	ran := false
	for i, t := range f.Targets {
		res, err := f.Results[i], f.Errs[i]
		if err != nil {
			o.note("%s %s: could not ping: %v", t.Role, t.Addr, err)
			continue
		}
		ran = true
		line := fmt.Sprintf("%s %s: %d/%d replies", t.Role, t.Addr, res.Received, res.Sent)
		if len(res.RTTs) > 0 {
			line += ", rtt " + rttSummary(res.RTTs)
		}
		o.notes = append(o.notes, line)
		if res.Sent == 0 || res.Received == res.Sent {
			continue
		}
		loss := 100 * (res.Sent - res.Received) / res.Sent
		sev := Warning
		if res.Received == 0 {
			sev = Critical
		}
		ev := []string{fmt.Sprintf("%d of %d echo requests to %s unanswered (%d%% loss)", res.Sent-res.Received, res.Sent, t.Addr, loss)}
		o.add(Finding{ID: "reach-loss", Severity: sev, Subject: t.Role + " " + t.Addr.String(), Evidence: ev, Fix: pingFix(t, f.ifaceOr("eth0"))})
	}
	if !ran {
		return couldNotRun("ICMP: %v", firstErr(f.Errs))
	}
	if m := f.Results[0].Method; m != "" {
		o.note("(ICMP over %s sockets)", m)
	}
	return o
}
func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func rttSummary(rtts []time.Duration) string {
	lo, hi, sum := rtts[0], rtts[0], time.Duration(0)
	for _, d := range rtts {
		lo, hi, sum = min(lo, d), max(hi, d), sum+d
	}
	return fmt.Sprintf("min/avg/max %s/%s/%s", roundRTT(lo), roundRTT(sum/time.Duration(len(rtts))), roundRTT(hi))
}

func roundRTT(d time.Duration) string {
	return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
}

func pingFix(t pingTarget, iface string) string {
	var b strings.Builder
	switch t.Role {
	case "VIP":
		fmt.Fprintf(&b, `Nobody answers for the VIP. On the director that should hold it:
  ip -br addr | grep -w %s        # is the VIP on a link?
  lvsdiag vrrp --interface %s     # who is VRRP master?
From here: arping -c 3 -I %s %s   # does anyone answer ARP for it?`, t.Addr, iface, iface, t.Addr)
	default:
		fmt.Fprintf(&b, `Check that %s is up and that nothing drops ICMP on the way:
  arping -c 3 -I %s %s      # is it on the link at all?
  ip neigh show %s
A firewall that drops ICMP gives this too: then rely on the other checks.`, t.Addr, iface, t.Addr, t.Addr)
	}
	return b.String()
}
