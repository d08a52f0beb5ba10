package diag

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// getARP asks who-has the VIP and every known real server and director
// address once, and watches the link's ARP for the listen window (the
// same window as the VRRP census, so a failover's gratuitous ARP is
// seen).
func (r *run) getARP(ctx context.Context) (ARPCapture, error) {
	r.arpOnce.Do(func() {
		switch {
		case !r.opts.VIP.Is4():
			r.arpErr = errors.New("the VIP is IPv6: ARP is IPv4 only")
			return
		case r.env.ARP == nil:
			r.arpErr = errors.New("no ARP on this system")
			return
		case r.iface == "":
			r.arpErr = errors.New("no interface toward the VIP: pass --interface")
			return
		}
		targets := []netip.Addr{r.opts.VIP}
		v := r.getDirector(ctx)
		for _, a := range v.realServerAddrs() {
			if a.Is4() && !slices.Contains(targets, a) {
				targets = append(targets, a)
			}
		}
		if v.Status != nil {
			for _, in := range v.Status.VRRP {
				if a, err := netip.ParseAddr(in.Master); err == nil && a.Is4() && !slices.Contains(targets, a) {
					targets = append(targets, a)
				}
			}
		}
		r.arp, r.arpErr = r.env.ARP.Probe(ctx, r.iface, targets, r.opts.Listen)
	})
	return r.arp, r.arpErr
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

// vipAnswers are the distinct MACs that answered who-has VIP, in order.
func vipAnswers(capture ARPCapture, vip netip.Addr) []string {
	var out []string
	for _, p := range capture.Packets {
		if p.Reply && p.SenderIP == vip && !p.Gratuitous() && !slices.Contains(out, p.SenderMAC.String()) {
			out = append(out, p.SenderMAC.String())
		}
	}
	return out
}

func checkARP(ctx context.Context, r *run) outcome {
	capture, err := r.getARP(ctx)
	if err != nil {
		if !r.opts.VIP.Is4() {
			return notApplicable("%v", err)
		}
		return couldNotRun("%v", err)
	}
	var o outcome
	names := r.macNames(ctx, capture)
	answers := vipAnswers(capture, r.opts.VIP)
	name := func(mac string) string {
		if n := names[mac]; n != "" {
			return mac + " (" + n + ")"
		}
		return mac + " (unknown)"
	}
	for _, mac := range answers {
		o.note("who-has %s: %s", r.opts.VIP, name(mac))
	}
	if l, ok := r.vipLink(ctx); ok && !l.Loopback() && l.Kind != "dummy" {
		o.note("this host holds the VIP on %s (%s) and answers for it itself", l.Name, l.MAC)
		answers = append(answers, l.MAC.String())
	}
	switch len(answers) {
	case 0:
		o.add(Finding{ID: "arp-vip-no-answer", Severity: Critical, Subject: "VIP " + r.opts.VIP.String() + " on " + r.iface,
			Evidence: []string{fmt.Sprintf("nobody answered who-has %s on %s within %s", r.opts.VIP, r.iface, capture.End.Sub(capture.Start).Round(time.Millisecond))},
			Fix: fmt.Sprintf(`No host holds the VIP. On the director that should be master:
  ip -br addr | grep -w %s
  lvsdiag vrrp --interface %s   # is any VRRP router master?`, r.opts.VIP, r.iface)})
		return o
	case 1:
		return o
	}
	// More than one MAC answers: the director's (the VRRP master's, or
	// a host that is not a real server) is legitimate; real servers are
	// leaking.
	master := r.masterMACs(ctx)
	var leaks []string
	for _, mac := range answers {
		if strings.HasPrefix(names[mac], "real server") || (len(master) > 0 && !slices.Contains(master, mac)) {
			leaks = append(leaks, mac)
		}
	}
	if len(leaks) == 0 || len(leaks) == len(answers) {
		var ev []string
		for _, mac := range answers {
			ev = append(ev, "answered by "+name(mac))
		}
		ev = append(ev, "clients and the router learn whichever answered last: some traffic bypasses the director")
		o.add(Finding{ID: "arp-vip-multiple", Severity: Critical, Subject: "VIP " + r.opts.VIP.String() + " on " + r.iface,
			Evidence: ev, Fix: leakFix(r, "each host above that is not the director")})
		return o
	}
	for _, mac := range leaks {
		who := names[mac]
		subject := "MAC " + mac
		if a, ok := strings.CutPrefix(who, "real server "); ok {
			subject = "real server " + a + " (MAC " + mac + ")"
		}
		ev := []string{
			fmt.Sprintf("%s answered who-has %s", name(mac), r.opts.VIP),
			"the director's answer came from " + strings.Join(master, ", "),
			"clients and the router that learn this MAC send VIP traffic straight to it, bypassing the director (the classic direct-routing ARP problem)",
		}
		if len(master) == 0 {
			ev[1] = "it is a real server: only the director may answer for the VIP"
		}
		o.add(Finding{ID: "arp-vip-leak", Severity: Critical, Subject: subject, Evidence: ev, Fix: leakFix(r, who)})
	}
	return o
}

func leakFix(r *run, who string) string {
	return fmt.Sprintf(`On %s, stop answering ARP for the VIP:
  sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
  lvsdiag rs --vip %s        # checks the rest of the real server's setup
Then flush the stale entry where clients learnt it (the router):
  ip neigh del %s dev %s`, who, r.opts.VIP, r.opts.VIP, r.ifaceOr("eth0"))
}

// masterMACs are the MACs of the VRRP master(s) advertising the VIP.
func (r *run) masterMACs(ctx context.Context) []string {
	c, err := r.getCensus(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, vr := range vipRouters(c, r.opts.VIP) {
		for _, s := range vr.Speakers {
			if s.Role == RoleMaster && s.MAC != "" && containsAddr(s.Addresses, r.opts.VIP) && !slices.Contains(out, s.MAC) {
				out = append(out, s.MAC)
			}
		}
	}
	return out
}

// Neighbour is an entry of /proc/net/arp.
type Neighbour struct {
	IP        netip.Addr
	MAC       net.HardwareAddr
	Interface string
	Complete  bool
}

// ReadNeighbours reads proc/net/arp from root.
func ReadNeighbours(root fs.FS) ([]Neighbour, error) {
	f, err := root.Open("proc/net/arp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Neighbour
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		ip, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		mac, _ := net.ParseMAC(fields[3])
		flags, _ := strconv.ParseUint(strings.TrimPrefix(fields[2], "0x"), 16, 32)
		out = append(out, Neighbour{IP: ip, MAC: mac, Interface: fields[5], Complete: flags&0x2 != 0})
	}
	return out, sc.Err()
}

func checkFailover(ctx context.Context, r *run) outcome {
	if !r.opts.VIP.Is4() {
		return notApplicable("the VIP is IPv6: gratuitous ARP and the neighbour table checks are IPv4 only")
	}
	c, cerr := r.getCensus(ctx)
	var masters []Speaker
	if cerr == nil {
		for _, vr := range vipRouters(c, r.opts.VIP) {
			for _, s := range vr.Speakers {
				if s.Role == RoleMaster && containsAddr(s.Addresses, r.opts.VIP) {
					masters = append(masters, s)
				}
			}
		}
	}
	v := r.getDirector(ctx)
	var lvsdMaster string
	var masterSince time.Time
	if v.Status != nil {
		for _, in := range v.Status.VRRP {
			if containsString(in.VIPs, r.opts.VIP.String()) {
				lvsdMaster = in.Master
				if in.State == "master" {
					masterSince = in.MasterSince
				}
			}
		}
	}
	if len(masters) == 0 && lvsdMaster == "" {
		if cerr != nil {
			return couldNotRun("no VRRP census (%v) and no lvsd VRRP status", cerr)
		}
		return notApplicable("no VRRP router advertises %s on %s and lvsd reports no VRRP for it: no failover pair to check", r.opts.VIP, r.iface)
	}
	if len(masters) > 1 {
		return notApplicable("%d VRRP masters advertise the VIP: see check 7 (split brain) first", len(masters))
	}
	var o outcome
	capture, aerr := r.getARP(ctx)
	var masterMAC, masterAddr string
	if len(masters) == 1 {
		masterMAC, masterAddr = masters[0].MAC, masters[0].Source.String()
	} else {
		masterAddr = lvsdMaster
		for _, p := range capture.Packets {
			if p.Reply && p.SenderIP.String() == lvsdMaster {
				masterMAC = p.SenderMAC.String()
			}
		}
	}
	o.note("VRRP master for the VIP: %s (MAC %s)", masterAddr, orUnknown(masterMAC))
	if aerr != nil {
		o.note("ARP: %v", aerr)
	} else if masterMAC != "" {
		answers := vipAnswers(capture, r.opts.VIP)
		if l, ok := r.vipLink(ctx); ok && !l.Loopback() {
			answers = append(answers, l.MAC.String())
		}
		if len(answers) > 0 && !slices.Contains(answers, masterMAC) {
			o.add(Finding{ID: "failover-vip-mac-not-master", Severity: Critical, Subject: "VIP " + r.opts.VIP.String(),
				Evidence: []string{fmt.Sprintf("who-has %s was answered by %s", r.opts.VIP, strings.Join(answers, ", ")),
					fmt.Sprintf("the VRRP master is %s, MAC %s", masterAddr, masterMAC),
					"a host that is not the master still holds the VIP: the old master did not give it up"},
				Fix: fmt.Sprintf("On the host with MAC %s: ip -br addr | grep -w %s; remove the VIP there (ip addr del %s/32 dev IF)\nthen from the master: arping -U -c 3 -I IF %s", strings.Join(answers, ", "), r.opts.VIP, r.opts.VIP, r.opts.VIP)})
		}
		// A gratuitous ARP is expected when the master took over during
		// the listen.
		transition := time.Time{}
		// A master that was master when the listen began is heard
		// within one interval; one first heard later took over during
		// it.
		if m := masters[0:min(1, len(masters))]; len(m) == 1 && m[0].FirstSeen.Sub(c.Start) > m[0].Interval*3/2 {
			transition = m[0].FirstSeen
		}
		if !masterSince.IsZero() && masterSince.After(capture.Start) {
			transition = masterSince
		}
		var garps []time.Time
		for _, p := range capture.Packets {
			if p.Gratuitous() && p.SenderIP == r.opts.VIP && p.SenderMAC.String() == masterMAC {
				garps = append(garps, p.At)
			}
		}
		garp := len(garps) > 0
		if garp {
			o.note("%d gratuitous ARP%s for %s from %s, the first at +%.3fs", len(garps), plural(len(garps)), r.opts.VIP, masterMAC, garps[0].Sub(capture.Start).Seconds())
		}
		switch {
		case !transition.IsZero() && !garp:
			o.add(Finding{ID: "failover-no-garp", Severity: Warning, Subject: "VRRP master " + masterAddr,
				Evidence: []string{fmt.Sprintf("%s became master at +%.3fs and sent no gratuitous ARP for %s by the end of the listen", masterAddr, transition.Sub(capture.Start).Seconds(), r.opts.VIP),
					"switches and routers keep sending VIP traffic to the old master's port until their entries expire"},
				Fix: fmt.Sprintf("Announce it by hand from the master: arping -U -c 3 -I IF %s\nkeepalived: vrrp_garp_master_delay / garp_master_repeat; lvsd: vrrp.instances[].garp", r.opts.VIP)})
		case transition.IsZero() && !garp:
			if !masterSince.IsZero() {
				o.note("master since %s, before this run: its gratuitous ARP could not be seen", masterSince.UTC().Format(time.RFC3339))
			} else {
				o.note("no takeover during the listen: no gratuitous ARP expected")
			}
		}
	}
	var answers []string
	if aerr == nil {
		answers = vipAnswers(capture, r.opts.VIP)
	}
	r.staleNeighbours(masterMAC, answers, &o)
	return o
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// staleNeighbours reports this host's neighbour entries for the VIP that
// point elsewhere than the master.
// An entry pointing at a MAC that answered who-has VIP in this run is
// the consequence of that answer (check 5 reports it), not a leftover.
func (r *run) staleNeighbours(masterMAC string, answers []string, o *outcome) {
	if r.env.Root == nil || masterMAC == "" {
		return
	}
	ns, err := ReadNeighbours(r.env.Root)
	if err != nil {
		o.note("neighbour table not read: %v", err)
		return
	}
	for _, n := range ns {
		if n.IP != r.opts.VIP || !n.Complete {
			continue
		}
		if n.MAC.String() == masterMAC {
			o.note("this host's neighbour entry for the VIP points at the master (%s on %s)", n.MAC, n.Interface)
			continue
		}
		if slices.Contains(answers, n.MAC.String()) {
			o.note("this host's neighbour entry for the VIP points at %s, which answered who-has in this run (see check 5)", n.MAC)
			continue
		}
		o.add(Finding{ID: "failover-stale-neighbour", Severity: Warning, Subject: fmt.Sprintf("neighbour entry %s on %s", r.opts.VIP, n.Interface),
			Evidence: []string{fmt.Sprintf("this host sends VIP traffic to %s, the master is %s", n.MAC, masterMAC),
				"the entry predates the failover and was not updated by a gratuitous ARP (arp_accept = 0 ignores unsolicited ones for new entries)"},
			Fix: fmt.Sprintf("ip neigh del %s dev %s\n(or: ip neigh flush to %s)", r.opts.VIP, n.Interface, r.opts.VIP)})
	}
}
