package diag

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
)

// directorFacts are what check 2 (Director) decides from.
type directorFacts struct {
	target
	View *directorView
	// Local says this host is a director of the VIP; Why says how that
	// was seen.
	Local bool
	Why   string
	// Config is lvsd's config (--config), for its scripts' findings.
	Config *config.Config

	// What follows is read only on a director (Local).
	// VIPLink is the link that holds the VIP (HaveVIPLink); LinksErr is
	// why the links could not be read.
	VIPLink     Link
	HaveVIPLink bool
	LinksErr    error
	Sysctls     sysctlFacts
	// Firewall is the packet filter's rules; nil with FirewallErr nil
	// when this system has no way to read them.
	Firewall    *FirewallRules
	FirewallErr error
}

// directorSysctls are the global sysctls check 2 reads on a director.
var directorSysctls = []string{"net.ipv4.ip_forward", "net.ipv4.vs.expire_nodest_conn",
	"net.ipv4.vs.expire_quiescent_template", "net.ipv4.vs.conn_reuse_mode"}

func checkDirector(ctx context.Context, r *run) outcome {
	f := directorFacts{target: r.target(), View: r.getDirector(ctx), Config: r.env.Config}
	f.Local, f.Why = r.onDirector(ctx)
	if f.Local {
		links, err := r.getLinks(ctx)
		f.LinksErr = err
		f.VIPLink, f.HaveVIPLink = vipLinkOf(links, r.opts.VIP)
		f.Sysctls = r.readSysctls(directorSysctls, []string{"all", "default", r.iface}, []string{"send_redirects"})
		if r.env.Firewall != nil {
			fr, err := r.env.Firewall.Rules(ctx)
			if err != nil {
				f.FirewallErr = err
			} else {
				f.Firewall = &fr
			}
		}
	}
	return directorFindings(f)
}

// directorFindings decides check 2 from its facts.
func directorFindings(f directorFacts) outcome {
	v := f.View
	// ip_vs loaded on a host that is not a director of the VIP (a client,
	// a real server): its table says nothing about the VIP.
	ipvsHere := v.IPVS && (f.Local || len(v.Services)+len(v.FWMarks) > 0)
	sources := slices.Clone(v.Sources)
	if v.IPVS && !ipvsHere {
		sources = slices.DeleteFunc(sources, func(s string) bool { return s == "this host's IPVS" })
	}
	if !ipvsHere && v.Status == nil && len(v.ConfigServices) == 0 && !f.Local {
		reason := "this host is not a director of the VIP and no lvsd was given: run lvsdiag on the director, or pass --lvsd URL or --config FILE"
		if v.IPVSErr != nil {
			reason += fmt.Sprintf(" (this host's IPVS: %v)", v.IPVSErr)
		}
		if v.StatusErr != nil {
			reason = fmt.Sprintf("lvsd's status API: %v", v.StatusErr)
		}
		return couldNotRun("%s", reason)
	}
	var o outcome
	if f.Local {
		sources = append(sources, "this host ("+f.Why+")")
	}
	o.note("sources: %s", strings.Join(sources, ", "))
	if v.StatusErr != nil {
		o.add(Finding{ID: "director-lvsd-unreachable", Severity: Warning, Subject: "lvsd's status API",
			Evidence: []string{v.StatusErr.Error()},
			Fix:      "Check that lvsd runs (systemctl status lvsd) and that --lvsd is its status_listen address."})
	}
	if !v.IPVS && v.IPVSErr != nil {
		o.note("this host's IPVS: %v", v.IPVSErr)
	}
	if v.IPVS && !ipvsHere {
		o.note("this host's IPVS has no service for %s, and this host is not a director of the VIP", f.vipPort())
	}
	directorServiceFindings(f, &o, ipvsHere)
	directorRealServerFindings(f, &o)
	if v.Status != nil {
		directorStatusFindings(f, &o)
	}
	if v.Status != nil && v.Status.BGP != nil {
		notes, findings := bgpFindings(bgpFacts{VIP: f.VIP, BGP: v.Status.BGP})
		for _, n := range notes {
			o.note("%s", n)
		}
		o.findings = append(o.findings, findings...)
	}
	if f.Local && f.Config != nil {
		o.findings = append(o.findings, scriptFindings(f.Config)...)
	}
	if f.Local {
		directorVIPFindings(f, &o)
		directorSysctlFindings(f, &o)
		directorFirewallFindings(f, &o)
	} else {
		o.note("not on a director: the VIP's address, sysctls and firewall were not checked (run lvsdiag on the director for them)")
	}
	return o
}

func directorServiceFindings(f directorFacts, o *outcome, ipvsHere bool) {
	v := f.View
	if ipvsHere {
		for _, s := range v.Services {
			sched := s.Scheduler
			if s.Persistent() {
				sched += fmt.Sprintf(", persistent %ds", s.Timeout)
			}
			o.note("IPVS service %s (%s)", s.ServiceKey, sched)
		}
		for _, s := range v.FWMarks {
			o.note("IPVS fwmark service %s may cover the VIP (it depends on the rule that sets mark %d)", s.ServiceKey, s.FWMark)
		}
		if len(v.Services) == 0 && len(v.FWMarks) == 0 {
			proto := "-t"
			fix := fmt.Sprintf(`No IPVS service takes the VIP's traffic on this host. Add it to
lvsd's config (virtual_services) and reload (systemctl reload lvsd), or
by hand:
  ipvsadm -A %s %s -s wlc
  ipvsadm -a %s %s -r REAL_SERVER -g -w 1`, proto, f.vipPort(), proto, f.vipPort())
			o.add(Finding{ID: "director-no-service", Severity: Critical, Subject: "IPVS service for " + f.vipPort(),
				Evidence: []string{fmt.Sprintf("this host's IPVS has %d service%s, none for %s and no fwmark service", v.AllServices, plural(v.AllServices), f.vipPort())},
				Fix:      fix})
		}
	}
	for _, s := range v.StatusServices {
		if !s.InKernel {
			o.add(Finding{ID: "director-lvsd-not-in-kernel", Severity: Critical, Subject: "lvsd service " + s.Key,
				Evidence: []string{fmt.Sprintf("lvsd has %s (%s) in its config but could not install it in the kernel", s.Key, s.Source)},
				Fix:      "See why in lvsd's log and timeline: journalctl -u lvsd | grep -i ipvs; curl -s " + "http://127.0.0.1:9120/status/events"})
		}
		if s.SorryServer != "" {
			o.add(Finding{ID: "director-sorry-server", Severity: Critical, Subject: "lvsd service " + s.Key,
				Evidence: []string{"the sorry server " + s.SorryServer + " is installed: no real server is up"},
				Fix:      "Bring a real server back: see each real server's findings below."})
		}
		if s.Quorum == "down" {
			o.add(Finding{ID: "director-quorum-down", Severity: Critical, Subject: "lvsd service " + s.Key,
				Evidence: []string{fmt.Sprintf("the weight of the real servers that are up (%d) is below the quorum", s.UpWeight)},
				Fix:      "Bring real servers back: see each real server's findings below."})
		}
	}
	if v.Status != nil && v.Status.LastReloadError != "" {
		o.add(Finding{ID: "director-lvsd-reload-rejected", Severity: Warning, Subject: "lvsd's config " + v.Status.Config,
			Evidence: []string{"the last reload was rejected: " + v.Status.LastReloadError, "lvsd keeps serving the config it loaded before"},
			Fix:      "Fix the config and check it before reloading:\n  lvsd check --config " + v.Status.Config + "\n  systemctl reload lvsd"})
	}
	if !v.IPVS && v.Status != nil && len(v.StatusServices) == 0 {
		o.add(Finding{ID: "director-no-service", Severity: Critical, Subject: "lvsd service for " + f.vipPort(),
			Evidence: []string{lvsdServicesEvidence(v.Status, f.VIP, f.vipPort())},
			Fix:      "Add the service to lvsd's config (virtual_services), check it and reload:\n  lvsd check --config " + v.Status.Config + "\n  systemctl reload lvsd"})
	}
}

func directorRealServerFindings(f directorFacts, o *outcome) {
	v := f.View
	byService := map[string]int{}
	active := map[string]int{}
	for _, rs := range v.RealServers {
		byService[rs.Service]++
		o.notes = append(o.notes, rsLine(rs))
		subject := "real server " + rs.Address.String()
		switch {
		case rs.Health == "down":
			why := rs.Why
			if why == "" {
				why = "lvsd's check fails"
			}
			what := "quiesced (weight 0)"
			if rs.Weight < 0 {
				what = "removed from the service"
			}
			o.add(Finding{ID: "director-rs-down", Severity: Critical, Subject: subject,
				Evidence: []string{fmt.Sprintf("lvsd's check (%s) says down: %s", rs.Check, why), "it is " + what + ": it gets no new connections"},
				Fix:      fmt.Sprintf("Fix the real server; lvsd puts it back after its check succeeds. Test it by hand from the director:\n  curl -sv --connect-to ::%s http://%s/", rs.Address, f.Host)})
		case rs.Weight == 0 && rs.ConfigWeight != 0:
			o.add(Finding{ID: "director-rs-quiesced", Severity: Warning, Subject: subject,
				Evidence: []string{fmt.Sprintf("weight 0 in %s: quiesced, it gets no new connections", rs.Service)},
				Fix:      fmt.Sprintf("If it should serve again:\n  ipvsadm -e %s -r %s -w 1\n(lvsd sets weights itself: check its health view instead)", ipvsadmService(rs.Service), rs.Address)})
		case rs.Weight > 0:
			active[rs.Service]++
		}
		if rs.Upper > 0 && rs.HaveCounts && rs.Active+rs.Inactive >= rs.Upper {
			o.add(Finding{ID: "director-rs-threshold", Severity: Warning, Subject: subject,
				Evidence: []string{fmt.Sprintf("%d connections, upper threshold %d: IPVS sends it no new connections until it falls below %d", rs.Active+rs.Inactive, rs.Upper, lowerOf(rs))},
				Fix:      "Raise upper_threshold in lvsd's config, or add real servers."})
		}
	}
	for _, svc := range sortedKeys(byService) {
		if active[svc] == 0 {
			o.add(Finding{ID: "director-no-active-rs", Severity: Critical, Subject: "service " + svc,
				Evidence: []string{fmt.Sprintf("%d real server%s, none with a weight above 0", byService[svc], plural(byService[svc]))},
				Fix:      "Every connection to the VIP fails. Bring a real server back (see the findings about each)."})
		}
	}
	for _, s := range v.Services {
		if byService[s.ServiceKey.String()] == 0 {
			o.add(Finding{ID: "director-no-active-rs", Severity: Critical, Subject: "service " + s.ServiceKey.String(),
				Evidence: []string{"the service has no real servers"},
				Fix:      fmt.Sprintf("Add real servers to it in lvsd's config, or by hand:\n  ipvsadm -a %s -r REAL_SERVER -g -w 1", ipvsadmService(s.ServiceKey.String()))})
		}
	}
}

// rsLine is the note that describes one real server.
func rsLine(rs rsView) string {
	line := fmt.Sprintf("%s -> %s %s weight %d", rs.Service, rs.Address, rs.Forwarding, rs.Weight)
	if rs.Weight < 0 {
		line = fmt.Sprintf("%s -> %s %s not in the kernel", rs.Service, rs.Address, rs.Forwarding)
	}
	if rs.Upper > 0 {
		line += fmt.Sprintf(", thresholds %d/%d", rs.Lower, rs.Upper)
	}
	if rs.HaveCounts {
		line += fmt.Sprintf(", %d active, %d inactive", rs.Active, rs.Inactive)
	}
	if rs.Health != "" {
		line += ", lvsd: " + rs.Health
	}
	return line
}

func lowerOf(rs rsView) uint32 {
	if rs.Lower > 0 {
		return rs.Lower
	}
	return rs.Upper * 3 / 4
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func directorStatusFindings(f directorFacts, o *outcome) {
	for _, in := range f.View.Status.VRRP {
		if !containsString(in.VIPs, f.VIP.String()) {
			continue
		}
		o.note("lvsd VRRP %s (VRID %d on %s): %s, priority %d, master %s", in.Name, in.VRID, in.Interface, in.State, in.Priority, in.Master)
		if in.State == "fault" {
			o.add(Finding{ID: "director-vrrp-fault", Severity: Critical, Subject: fmt.Sprintf("lvsd VRRP instance %s (VRID %d)", in.Name, in.VRID),
				Evidence: []string{"state fault: " + in.Reason},
				Fix:      "The instance cannot take part in VRRP; see the reason above and lvsd's log: journalctl -u lvsd | grep -i vrrp"})
		}
		if !in.SteppedDownUntil.IsZero() {
			o.add(Finding{ID: "director-vrrp-drill", Severity: Warning, Subject: fmt.Sprintf("lvsd VRRP instance %s (VRID %d)", in.Name, in.VRID),
				Evidence: []string{fmt.Sprintf("stepped down by a failover drill until %s: backup at priority %d instead of %d", in.SteppedDownUntil.Format("15:04:05"), in.Priority, in.ConfiguredPriority)},
				Fix: "It takes its priority back by itself at that time and preempts per its config. To end the drill now, on the director:\n" +
					"curl --unix-socket /run/lvsd/status.sock -X DELETE http://lvsd/vrrp/" + in.Name + "/step-down"})
		}
	}
}

// directorVIPFindings checks that a director that should hold the VIP
// does.
func directorVIPFindings(f directorFacts, o *outcome) {
	v := f.View
	if f.HaveVIPLink {
		l := f.VIPLink
		o.note("the VIP is on %s", l.Name)
		if l.Loopback() && len(v.Services) > 0 {
			o.add(Finding{ID: "director-vip-on-lo", Severity: Warning, Subject: "VIP " + f.VIP.String() + " on lo",
				Evidence: []string{"this host's IPVS serves the VIP, but the VIP is on lo: it does not answer ARP for it"},
				Fix:      fmt.Sprintf("A director holds the VIP on the client-facing link:\n  ip addr del %s/32 dev lo\n  ip addr add %s/32 dev %s", f.VIP, f.VIP, f.ifaceOr("eth0"))})
		}
		return
	}
	if f.LinksErr != nil {
		o.note("links: %v", f.LinksErr)
		return
	}
	if v.Status != nil {
		for _, in := range v.Status.VRRP {
			if containsString(in.VIPs, f.VIP.String()) && in.State != "master" {
				o.note("the VIP is not on this host: lvsd's VRRP instance %s is %s (master: %s)", in.Name, in.State, in.Master)
				return
			}
		}
	}
	if len(v.Services) == 0 {
		o.note("the VIP is not on this host")
		return
	}
	o.add(Finding{ID: "director-vip-missing", Severity: Critical, Subject: "VIP " + f.VIP.String(),
		Evidence: []string{"this host's IPVS has a service for the VIP but no link holds the VIP", "no VRRP instance of lvsd here says another director holds it"},
		Fix:      fmt.Sprintf("If this director should be serving the VIP:\n  ip addr add %s/32 dev %s\n  arping -U -c 3 -I %s %s   # tell the switch\nIf VRRP manages the VIP, check its state instead (lvsdiag vrrp --interface %s).", f.VIP, f.ifaceOr("eth0"), f.ifaceOr("eth0"), f.VIP, f.ifaceOr("eth0"))})
}

func directorSysctlFindings(f directorFacts, o *outcome) {
	fwd := f.View.forwardings()
	if fwd["Masq"] {
		if n, err := f.Sysctls.global("net.ipv4.ip_forward"); err == nil && n == 0 {
			o.add(Finding{ID: "director-ip-forward", Severity: Critical, Subject: "net.ipv4.ip_forward",
				Evidence: []string{"net.ipv4.ip_forward = 0", "masquerading (NAT) real servers' replies come back through the director, which must forward them"},
				Fix:      "sysctl -w net.ipv4.ip_forward=1\necho net.ipv4.ip_forward=1 > /etc/sysctl.d/90-lvs.conf"})
		}
	}
	if fwd["Route"] && f.VIP.Is4() {
		var on []string
		var ev []string
		for _, dev := range []string{"all", "default", f.Iface} {
			if dev == "" {
				continue
			}
			n, err := f.Sysctls.conf(dev, "send_redirects")
			if err != nil {
				continue
			}
			ev = append(ev, fmt.Sprintf("net.ipv4.conf.%s.send_redirects = %d", dev, n))
			if n != 0 {
				on = append(on, dev)
			}
		}
		if len(on) > 0 {
			ev = append(ev, "a direct-routing director on the real servers' LAN sends ICMP redirects for the packets it forwards, pointing clients and real servers past it; the kernel sends them when all or the interface is 1")
			var fix strings.Builder
			for _, dev := range on {
				fmt.Fprintf(&fix, "sysctl -w net.ipv4.conf.%s.send_redirects=0\n", dev)
			}
			fix.WriteString("and the same lines (without sysctl -w) in /etc/sysctl.d/90-lvs.conf")
			o.add(Finding{ID: "director-send-redirects", Severity: Warning, Subject: "send_redirects on " + strings.Join(on, ", "),
				Evidence: ev, Fix: fix.String()})
		}
	}
	ipvsSysctlFindings(f, o)
}

// ipvsSysctlFindings explains the IPVS sysctls that decide what happens
// to connections when a real server fails.
func ipvsSysctlFindings(f directorFacts, o *outcome) {
	nodest, err := f.Sysctls.global("net.ipv4.vs.expire_nodest_conn")
	if err != nil {
		o.note("IPVS sysctls (net.ipv4.vs.*) not readable: %v", shortErr(err))
		return
	}
	quiescent, _ := f.Sysctls.global("net.ipv4.vs.expire_quiescent_template")
	reuse, reuseErr := f.Sysctls.global("net.ipv4.vs.conn_reuse_mode")
	o.note("net.ipv4.vs.expire_nodest_conn = %d, expire_quiescent_template = %d, conn_reuse_mode = %d", nodest, quiescent, reuse)
	if nodest == 0 {
		o.add(Finding{ID: "director-expire-nodest-conn", Severity: Info, Subject: "net.ipv4.vs.expire_nodest_conn",
			Evidence: []string{"net.ipv4.vs.expire_nodest_conn = 0", "when a real server is removed (lvsd's on_failure: remove), its established connections stay in the table and their packets are dropped until they time out (15 minutes for TCP): clients hang instead of reconnecting"},
			Fix:      "sysctl -w net.ipv4.vs.expire_nodest_conn=1\necho net.ipv4.vs.expire_nodest_conn=1 >> /etc/sysctl.d/90-lvs.conf"})
	}
	persistent := false
	for _, rs := range f.View.RealServers {
		persistent = persistent || rs.Persistence
	}
	if quiescent == 0 && persistent {
		o.add(Finding{ID: "director-expire-quiescent-template", Severity: Warning, Subject: "net.ipv4.vs.expire_quiescent_template",
			Evidence: []string{"net.ipv4.vs.expire_quiescent_template = 0 and a service of the VIP is persistent", "a persistence template keeps sending its client to a quiesced (weight 0) real server until the template expires"},
			Fix:      "sysctl -w net.ipv4.vs.expire_quiescent_template=1\necho net.ipv4.vs.expire_quiescent_template=1 >> /etc/sysctl.d/90-lvs.conf"})
	}
	if reuseErr == nil && reuse == 0 {
		o.add(Finding{ID: "director-conn-reuse-mode", Severity: Info, Subject: "net.ipv4.vs.conn_reuse_mode",
			Evidence: []string{"net.ipv4.vs.conn_reuse_mode = 0", "a new connection from a client port still in the table reuses the old entry and goes to the old real server, even when it is quiesced or gone: busy clients never move off a drained server"},
			Fix:      "sysctl -w net.ipv4.vs.conn_reuse_mode=1   # the kernel's default"})
	}
}

func directorFirewallFindings(f directorFacts, o *outcome) {
	switch {
	case f.FirewallErr != nil:
		o.note("firewall rules not read: %v", f.FirewallErr)
		return
	case f.Firewall == nil:
		o.note("firewall rules not read on this system")
		return
	}
	drops := FindVRRPDrops(*f.Firewall)
	if len(drops) == 0 {
		o.note("no firewall rule drops VRRP (protocol 112)")
		return
	}
	for _, d := range drops {
		o.add(vrrpDropFinding(d))
	}
}

// lvsdServicesEvidence says what lvsd has instead of a service for
// vipPort: its services on the VIP's address (other ports or
// protocols), which is all a status read for the VIP holds.
func lvsdServicesEvidence(st *statusapi.Status, vip netip.Addr, vipPort string) string {
	var keys []string
	for _, s := range st.Services {
		if k, err := ipvs.ParseServiceKey(s.Key); err == nil && !k.IsFWMark() && k.Address == vip {
			keys = append(keys, s.Key)
		}
	}
	if len(keys) == 0 {
		return fmt.Sprintf("lvsd (%s) has no service on %s, so none for %s", st.Config, vip, vipPort)
	}
	if len(keys) > 5 {
		keys = append(keys[:5], fmt.Sprintf("%d more", len(keys)-5))
	}
	return fmt.Sprintf("lvsd (%s) has %s on %s, none for %s", st.Config, strings.Join(keys, ", "), vip, vipPort)
}
