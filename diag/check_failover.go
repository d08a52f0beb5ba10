package diag

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// failoverFacts are what check 6 (After failover) decides from.
type failoverFacts struct {
	target
	// Census is the VRRP census (nil when CensusErr says why); Masters
	// its speakers that are master for the VIP.
	Census    *VRRPCensus
	CensusErr error
	Masters   []Speaker
	// LVSDMaster is the master lvsd's VRRP instance for the VIP names;
	// MasterSince is when lvsd became master, when it is.
	LVSDMaster  string
	MasterSince time.Time
	// Capture is the ARP seen in the listen window (ARPErr: why not).
	Capture ARPCapture
	ARPErr  error
	// VIPLink is the link of this host that holds the VIP (HaveVIPLink).
	VIPLink     Link
	HaveVIPLink bool
	// Neighbours is this host's neighbour table; ReadNeighbours says it
	// was read (NeighboursErr: why not).
	ReadNeighbours bool
	Neighbours     []Neighbour
	NeighboursErr  error
}

func checkFailover(ctx context.Context, r *run) outcome {
	if !r.opts.VIP.Is4() {
		return notApplicable("the VIP is IPv6: gratuitous ARP and the neighbour table checks are IPv4 only")
	}
	f := failoverFacts{target: r.target()}
	f.Census, f.CensusErr = r.getCensus(ctx)
	if f.CensusErr == nil {
		f.Masters = vipMasters(f.Census, r.opts.VIP)
	}
	if v := r.getDirector(ctx); v.Status != nil {
		for _, in := range v.Status.VRRP {
			if containsString(in.VIPs, r.opts.VIP.String()) {
				f.LVSDMaster = in.Master
				if in.State == "master" {
					f.MasterSince = in.MasterSince
				}
			}
		}
	}
	if len(f.Masters) == 1 || (len(f.Masters) == 0 && f.LVSDMaster != "") {
		f.Capture, f.ARPErr = r.getARP(ctx)
		f.VIPLink, f.HaveVIPLink = r.vipLink(ctx)
		if r.env.Root != nil {
			f.ReadNeighbours = true
			f.Neighbours, f.NeighboursErr = ReadNeighbours(r.env.Root)
		}
	}
	return failoverFindings(f)
}

// failoverFindings decides check 6 from its facts: the master for the
// VIP is the one that answers for it, announced itself if it took over
// while we listened, and this host's neighbour entry follows it.
func failoverFindings(f failoverFacts) outcome {
	if len(f.Masters) == 0 && f.LVSDMaster == "" {
		if f.CensusErr != nil {
			return couldNotRun("no VRRP census (%v) and no lvsd VRRP status", f.CensusErr)
		}
		return notApplicable("no VRRP router advertises %s on %s and lvsd reports no VRRP for it: no failover pair to check", f.VIP, f.Iface)
	}
	if len(f.Masters) > 1 {
		return notApplicable("%d VRRP masters advertise the VIP: see check 7 (split brain) first", len(f.Masters))
	}
	var o outcome
	masterMAC, masterAddr := f.master()
	o.note("VRRP master for the VIP: %s (MAC %s)", masterAddr, orUnknown(masterMAC))
	if f.ARPErr != nil {
		o.note("ARP: %v", f.ARPErr)
	} else if masterMAC != "" {
		masterAnswerFindings(f, masterMAC, masterAddr, &o)
		garpFindings(f, masterMAC, masterAddr, &o)
	}
	var answers []string
	if f.ARPErr == nil {
		answers = vipAnswers(f.Capture, f.VIP)
	}
	staleNeighbourFindings(f, masterMAC, answers, &o)
	return o
}

// master is the MAC and address of the VIP's VRRP master: the census's,
// else lvsd's (its MAC from its ARP replies).
func (f failoverFacts) master() (mac, addr string) {
	if len(f.Masters) == 1 {
		return f.Masters[0].MAC, f.Masters[0].Source.String()
	}
	for _, p := range f.Capture.Packets {
		if p.Reply && p.SenderIP.String() == f.LVSDMaster {
			mac = p.SenderMAC.String()
		}
	}
	return mac, f.LVSDMaster
}

// masterAnswerFindings reports a VIP answered for by a host that is not
// the master.
func masterAnswerFindings(f failoverFacts, masterMAC, masterAddr string, o *outcome) {
	answers := vipAnswers(f.Capture, f.VIP)
	if f.HaveVIPLink && !f.VIPLink.Loopback() {
		answers = append(answers, f.VIPLink.MAC.String())
	}
	if len(answers) > 0 && !slices.Contains(answers, masterMAC) {
		o.add(Finding{ID: "failover-vip-mac-not-master", Severity: Critical, Subject: "VIP " + f.VIP.String(),
			Evidence: []string{fmt.Sprintf("who-has %s was answered by %s", f.VIP, strings.Join(answers, ", ")),
				fmt.Sprintf("the VRRP master is %s, MAC %s", masterAddr, masterMAC),
				"a host that is not the master still holds the VIP: the old master did not give it up"},
			Fix: fmt.Sprintf("On the host with MAC %s: ip -br addr | grep -w %s; remove the VIP there (ip addr del %s/32 dev IF)\nthen from the master: arping -U -c 3 -I IF %s", strings.Join(answers, ", "), f.VIP, f.VIP, f.VIP)})
	}
}

// takeover is when the master took over during the listen, zero when it
// was master before. A master that was master when the listen began is
// heard within one interval; one first heard later took over during it.
func (f failoverFacts) takeover() time.Time {
	var t time.Time
	if len(f.Masters) == 1 && f.Masters[0].FirstSeen.Sub(f.Census.Start) > f.Masters[0].Interval*3/2 {
		t = f.Masters[0].FirstSeen
	}
	if !f.MasterSince.IsZero() && f.MasterSince.After(f.Capture.Start) {
		t = f.MasterSince
	}
	return t
}

// garpFindings expects a gratuitous ARP from a master that took over
// during the listen.
func garpFindings(f failoverFacts, masterMAC, masterAddr string, o *outcome) {
	transition := f.takeover()
	var garps []time.Time
	for _, p := range f.Capture.Packets {
		if p.Gratuitous() && p.SenderIP == f.VIP && p.SenderMAC.String() == masterMAC {
			garps = append(garps, p.At)
		}
	}
	garp := len(garps) > 0
	if garp {
		o.note("%d gratuitous ARP%s for %s from %s, the first at +%.3fs", len(garps), plural(len(garps)), f.VIP, masterMAC, garps[0].Sub(f.Capture.Start).Seconds())
	}
	switch {
	case !transition.IsZero() && !garp:
		o.add(Finding{ID: "failover-no-garp", Severity: Warning, Subject: "VRRP master " + masterAddr,
			Evidence: []string{fmt.Sprintf("%s became master at +%.3fs and sent no gratuitous ARP for %s by the end of the listen", masterAddr, transition.Sub(f.Capture.Start).Seconds(), f.VIP),
				"switches and routers keep sending VIP traffic to the old master's port until their entries expire"},
			Fix: fmt.Sprintf("Announce it by hand from the master: arping -U -c 3 -I IF %s\nkeepalived: vrrp_garp_master_delay / garp_master_repeat; lvsd: vrrp.instances[].garp", f.VIP)})
	case transition.IsZero() && !garp:
		if !f.MasterSince.IsZero() {
			o.note("master since %s, before this run: its gratuitous ARP could not be seen", f.MasterSince.UTC().Format(time.RFC3339))
		} else {
			o.note("no takeover during the listen: no gratuitous ARP expected")
		}
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// staleNeighbourFindings reports this host's neighbour entries for the
// VIP that point elsewhere than the master. An entry pointing at a MAC
// that answered who-has VIP in this run is the consequence of that
// answer (check 5 reports it), not a leftover.
func staleNeighbourFindings(f failoverFacts, masterMAC string, answers []string, o *outcome) {
	if !f.ReadNeighbours || masterMAC == "" {
		return
	}
	if f.NeighboursErr != nil {
		o.note("neighbour table not read: %v", f.NeighboursErr)
		return
	}
	for _, n := range f.Neighbours {
		if n.IP != f.VIP || !n.Complete {
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
		o.add(Finding{ID: "failover-stale-neighbour", Severity: Warning, Subject: fmt.Sprintf("neighbour entry %s on %s", f.VIP, n.Interface),
			Evidence: []string{fmt.Sprintf("this host sends VIP traffic to %s, the master is %s", n.MAC, masterMAC),
				"the entry predates the failover and was not updated by a gratuitous ARP (arp_accept = 0 ignores unsolicited ones for new entries)"},
			Fix: fmt.Sprintf("ip neigh del %s dev %s\n(or: ip neigh flush to %s)", f.VIP, n.Interface, f.VIP)})
	}
}
