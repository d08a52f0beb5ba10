package diag

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// probeKind picks how a real server on port is probed.
func (o Options) probeKind(port uint16) ProbeKind {
	if o.Probe != ProbeAuto && o.Probe != "" {
		return o.Probe
	}
	switch port {
	case 443, 8443:
		return ProbeHTTPS
	case 80, 8080:
		return ProbeHTTP
	}
	return ProbeTCP
}

// realServersFacts are what check 3 (Each real server) decides from:
// each real server's address with its probe's result.
type realServersFacts struct {
	target
	// Known says any source of real servers was at hand (this host's
	// IPVS, lvsd or its config).
	Known   bool
	Targets []netip.AddrPort
	Results []ProbeResult
}

func checkRealServers(ctx context.Context, r *run) outcome {
	if r.env.Prober == nil {
		return couldNotRun("no prober on this system")
	}
	v := r.getDirector(ctx)
	f := realServersFacts{target: r.target(), Known: v.haveAny()}
	for _, rs := range v.RealServers {
		ap := rs.Address
		if ap.Port() == 0 {
			ap = netip.AddrPortFrom(ap.Addr(), r.opts.Port)
		}
		if ap.Port() == 0 || slices.Contains(f.Targets, ap) {
			continue
		}
		f.Targets = append(f.Targets, ap)
	}
	f.Results = make([]ProbeResult, len(f.Targets))
	var wg sync.WaitGroup
	for i, t := range f.Targets {
		wg.Go(func() {
			f.Results[i] = r.env.Prober.Probe(ctx, ProbeRequest{Kind: r.opts.probeKind(t.Port()), Address: t, Host: r.opts.host(), Path: r.opts.Path})
		})
	}
	wg.Wait()
	return realServersFindings(f)
}

// realServersFindings decides check 3 from its facts: a real server that
// does not answer, answers with an error, or answers otherwise than the
// others.
func realServersFindings(f realServersFacts) outcome {
	if len(f.Targets) == 0 {
		if !f.Known {
			return couldNotRun("no real servers known: run lvsdiag on the director, or pass --lvsd URL or --config FILE")
		}
		return notApplicable("the director has no real servers for %s", f.vipPort())
	}
	var o outcome
	if kind := f.probeKind(f.Targets[0].Port()); kind != ProbeTCP {
		o.note("%s GET %s with Host: %s, straight to each real server", strings.ToUpper(string(kind)), f.Path, f.Host)
	}
	var good []int
	for i, t := range f.Targets {
		res := f.Results[i]
		subject := "real server " + t.String()
		if res.Err != nil {
			o.note("%s: %v", t, res.Err)
			o.add(Finding{ID: "rs-unreachable", Severity: Critical, Subject: subject,
				Evidence: []string{fmt.Sprintf("%s to %s: %v", f.probeKind(t.Port()), t, res.Err)},
				Fix:      rsFix(f.target, t)})
			continue
		}
		if res.Status == 0 {
			o.note("%s: TCP connect in %s", t, roundRTT(res.Latency))
			continue
		}
		o.note("%s: HTTP %d in %s, %d bytes, sha256 %s", t, res.Status, roundRTT(res.Latency), res.BodyBytes, short(res.Digest))
		if res.Status >= 500 {
			o.add(Finding{ID: "rs-http-error", Severity: Critical, Subject: subject,
				Evidence: []string{fmt.Sprintf("GET %s with Host: %s answered HTTP %d", f.Path, f.Host, res.Status)},
				Fix:      rsFix(f.target, t)})
			continue
		}
		good = append(good, i)
	}
	compareAnswers(f, good, &o)
	return o
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

func rsFix(f target, t netip.AddrPort) string {
	scheme := "http"
	if f.probeKind(t.Port()) == ProbeHTTPS {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s", scheme, f.Host)
	if !(scheme == "http" && t.Port() == 80) && !(scheme == "https" && t.Port() == 443) {
		url += fmt.Sprintf(":%d", t.Port())
	}
	return fmt.Sprintf(`Test it alone, as if pinned in /etc/hosts:
  curl -sv --connect-to %s:%d:%s %s%s
On the real server: is the service running and listening?
  ss -ltnp | grep -w %d
  lvsdiag rs --vip %s --port %d
Until it is fixed, the director should not send it traffic (lvsd's
health check takes it out; by hand: ipvsadm -e -t %s -r %s -w 0).`,
		f.Host, t.Port(), t, url, f.Path, t.Port(), f.VIP, f.Port, f.vipPort(), t)
}

// compareAnswers reports real servers whose status or body differ from
// the majority's: LVS assumes mirrored servers.
func compareAnswers(f realServersFacts, good []int, o *outcome) {
	targets, results := f.Targets, f.Results
	if len(good) < 2 {
		return
	}
	type answer struct {
		status int
		digest string
	}
	counts := map[answer][]int{}
	var order []answer
	for _, i := range good {
		a := answer{results[i].Status, results[i].Digest}
		if counts[a] == nil {
			order = append(order, a)
		}
		counts[a] = append(counts[a], i)
	}
	if len(order) == 1 {
		o.note("all %d real servers gave the same answer", len(good))
		return
	}
	slices.SortStableFunc(order, func(a, b answer) int { return len(counts[b]) - len(counts[a]) })
	majority := order[0]
	describe := func(a answer) string {
		var who []string
		for _, i := range counts[a] {
			who = append(who, targets[i].String())
		}
		return fmt.Sprintf("HTTP %d, sha256 %s from %s", a.status, short(a.digest), strings.Join(who, ", "))
	}
	if len(counts[majority]) == len(counts[order[1]]) {
		var ev []string
		for _, a := range order {
			ev = append(ev, describe(a))
		}
		ev = append(ev, "no majority: the same request gets a different answer depending on which real server IPVS picks")
		o.add(Finding{ID: "rs-content-differs", Severity: Warning, Subject: "real servers of " + f.vipPort(),
			Evidence: ev, Fix: contentFix(f.target)})
		return
	}
	for _, a := range order[1:] {
		for _, i := range counts[a] {
			ev := []string{
				fmt.Sprintf("%s answered HTTP %d, sha256 %s (%d bytes)", targets[i], a.status, short(a.digest), results[i].BodyBytes),
				"the majority answered " + describe(majority),
				"LVS assumes mirrored real servers: clients get different content depending on which one IPVS picks",
			}
			sev := Warning
			if a.status != majority.status {
				sev = Critical
			}
			o.add(Finding{ID: "rs-content-differs", Severity: sev, Subject: "real server " + targets[i].String(), Evidence: ev, Fix: contentFix(f.target)})
		}
	}
}

func contentFix(f target) string {
	return fmt.Sprintf(`Compare what the real servers serve, and deploy the same release to all:
  for rs in RS1 RS2; do curl -s --connect-to %s:%d:$rs:%d http://%s%s | sha256sum; done
If the page is dynamic by design (a date, the server's name), point
lvsdiag at a static one: --path /static/healthz`, f.Host, f.Port, f.Port, f.Host, f.Path)
}
