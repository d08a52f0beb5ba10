package diag

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// arpFacts are what check 5 (ARP for the VIP) decides from.
type arpFacts struct {
	target
	Capture ARPCapture
	// Names says what is known of each MAC (macNames).
	Names map[string]string
	// Masters are the MACs of the VRRP masters that advertise the VIP.
	Masters []string
	// VIPLink is the link of this host that holds the VIP (HaveVIPLink).
	VIPLink     Link
	HaveVIPLink bool
}

func checkARP(ctx context.Context, r *run) outcome {
	capture, err := r.getARP(ctx)
	if err != nil {
		if !r.opts.VIP.Is4() {
			return notApplicable("%v", err)
		}
		return couldNotRun("%v", err)
	}
	f := arpFacts{target: r.target(), Capture: capture, Names: r.macNames(ctx, capture), Masters: r.masterMACs(ctx)}
	f.VIPLink, f.HaveVIPLink = r.vipLink(ctx)
	return arpFindings(f)
}

// macNames maps MAC addresses to what is known about them: real servers
// (from their ARP replies), VRRP routers (their adverts' source MAC),
// this host's links.
func (r *run) macNames(ctx context.Context, capture ARPCapture) map[string]string {
	names := map[string]string{}
	rips := r.getDirector(ctx).realServerAddrs()
	for _, p := range capture.Packets {
		if p.Reply && p.SenderIP != r.opts.VIP && len(p.SenderMAC) > 0 {
			role := "host"
			if slices.Contains(rips, p.SenderIP) {
				role = "real server"
			}
			names[p.SenderMAC.String()] = fmt.Sprintf("%s %s", role, p.SenderIP)
		}
	}
	if c, err := r.getCensus(ctx); err == nil {
		for _, vr := range c.Routers {
			for _, s := range vr.Speakers {
				if s.MAC != "" {
					if _, ok := names[s.MAC]; !ok || !strings.HasPrefix(names[s.MAC], "real server") {
						names[s.MAC] = fmt.Sprintf("VRRP router %s (VRID %d)", s.Source, vr.VRID)
					}
				}
			}
		}
	}
	links, _ := r.getLinks(ctx)
	for _, l := range links {
		if len(l.MAC) > 0 {
			names[l.MAC.String()] = "this host (" + l.Name + ")"
		}
	}
	return names
}

// masterMACs are the MACs of the VRRP master(s) advertising the VIP.
func (r *run) masterMACs(ctx context.Context) []string {
	c, err := r.getCensus(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range vipMasters(c, r.opts.VIP) {
		if s.MAC != "" && !slices.Contains(out, s.MAC) {
			out = append(out, s.MAC)
		}
	}
	return out
}

// arpFindings decides check 5 from its facts: nobody, one host or
// several answer who-has VIP; of several, the director's answer (the
// VRRP master's) is legitimate and real servers' are leaks.
func arpFindings(f arpFacts) outcome {
	var o outcome
	answers := vipAnswers(f.Capture, f.VIP)
	name := func(mac string) string {
		if n := f.Names[mac]; n != "" {
			return mac + " (" + n + ")"
		}
		return mac + " (unknown)"
	}
	for _, mac := range answers {
		o.note("who-has %s: %s", f.VIP, name(mac))
	}
	if l := f.VIPLink; f.HaveVIPLink && !l.Loopback() && l.Kind != "dummy" {
		o.note("this host holds the VIP on %s (%s) and answers for it itself", l.Name, l.MAC)
		answers = append(answers, l.MAC.String())
	}
	switch len(answers) {
	case 0:
		o.add(Finding{ID: "arp-vip-no-answer", Severity: Critical, Subject: "VIP " + f.VIP.String() + " on " + f.Iface,
			Evidence: []string{fmt.Sprintf("nobody answered who-has %s on %s within %s", f.VIP, f.Iface, f.Capture.End.Sub(f.Capture.Start).Round(time.Millisecond))},
			Fix: fmt.Sprintf(`No host holds the VIP. On the director that should be master:
  ip -br addr | grep -w %s
  lvsdiag vrrp --interface %s   # is any VRRP router master?`, f.VIP, f.Iface)})
		return o
	case 1:
		return o
	}
	var leaks []string
	for _, mac := range answers {
		if strings.HasPrefix(f.Names[mac], "real server") || (len(f.Masters) > 0 && !slices.Contains(f.Masters, mac)) {
			leaks = append(leaks, mac)
		}
	}
	if len(leaks) == 0 || len(leaks) == len(answers) {
		var ev []string
		for _, mac := range answers {
			ev = append(ev, "answered by "+name(mac))
		}
		ev = append(ev, "clients and the router learn whichever answered last: some traffic bypasses the director")
		o.add(Finding{ID: "arp-vip-multiple", Severity: Critical, Subject: "VIP " + f.VIP.String() + " on " + f.Iface,
			Evidence: ev, Fix: leakFix(f.target, "each host above that is not the director")})
		return o
	}
	for _, mac := range leaks {
		who := f.Names[mac]
		subject := "MAC " + mac
		if a, ok := strings.CutPrefix(who, "real server "); ok {
			subject = "real server " + a + " (MAC " + mac + ")"
		}
		ev := []string{
			fmt.Sprintf("%s answered who-has %s", name(mac), f.VIP),
			"the director's answer came from " + strings.Join(f.Masters, ", "),
			"clients and the router that learn this MAC send VIP traffic straight to it, bypassing the director (the classic direct-routing ARP problem)",
		}
		if len(f.Masters) == 0 {
			ev[1] = "it is a real server: only the director may answer for the VIP"
		}
		o.add(Finding{ID: "arp-vip-leak", Severity: Critical, Subject: subject, Evidence: ev, Fix: leakFix(f.target, who)})
	}
	return o
}

func leakFix(t target, who string) string {
	return fmt.Sprintf(`On %s, stop answering ARP for the VIP:
  sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
  lvsdiag rs --vip %s        # checks the rest of the real server's setup
Then flush the stale entry where clients learnt it (the router):
  ip neigh del %s dev %s`, who, t.VIP, t.VIP, t.ifaceOr("eth0"))
}
