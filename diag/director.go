package diag

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
)

// directorView is what the checks know about the director's services
// for the VIP, from this host's IPVS, lvsd's status API and lvsd's
// config, whichever are at hand.
type directorView struct {
	// IPVS is set when this host's IPVS was readable.
	IPVS        bool
	IPVSErr     error
	Services    []ipvs.Service // this host's services covering VIP:port
	FWMarks     []ipvs.Service // this host's fwmark services (may cover it)
	AllServices int

	Status         *statusapi.Status
	StatusErr      error
	StatusServices []statusapi.ServiceStatus

	ConfigServices []config.DesiredService

	// RealServers are the real servers of the VIP's services, from the
	// best source: the kernel, then lvsd, then the config.
	RealServers []rsView
	Sources     []string
}

// rsView is one real server of a service of the VIP.
type rsView struct {
	Service    string
	Address    netip.AddrPort
	Forwarding string // "Route", "Masq", "Tunnel"
	// Weight is the kernel's weight; -1 when it is not in the kernel
	// (lvsd removed it); ConfigWeight the configured one (-1 unknown).
	Weight       int32
	ConfigWeight int32
	Upper, Lower uint32
	Active       uint32
	Inactive     uint32
	Persistent   uint32
	HaveCounts   bool
	// Health, Why and Check are lvsd's view ("" without lvsd).
	Health, Why, Check string
	Persistence        bool
}

// matchesVIP reports whether a service address and port serve VIP:port.
func (r *run) matchesVIP(a netip.Addr, port uint16) bool {
	return a == r.opts.VIP && (r.opts.Port == 0 || port == 0 || port == r.opts.Port)
}

// getDirector gathers the director's view once.
func (r *run) getDirector(ctx context.Context) *directorView {
	r.directorOnce.Do(func() { r.director = r.gatherDirector(ctx) })
	return r.director
}

func (r *run) gatherDirector(ctx context.Context) *directorView {
	v := &directorView{}
	byKey := map[string]*rsView{}
	var order []string
	put := func(rs rsView) *rsView {
		k := rs.Service + " " + rs.Address.String()
		if old := byKey[k]; old != nil {
			return old
		}
		byKey[k] = &rs
		order = append(order, k)
		return byKey[k]
	}

	// This host's kernel.
	switch {
	case r.env.IPVS == nil:
		v.IPVSErr = r.env.IPVSErr
		if v.IPVSErr == nil {
			v.IPVSErr = errors.New("no IPVS client on this system")
		}
	default:
		svcs, err := r.env.IPVS.Services()
		if err != nil {
			v.IPVSErr = err
			break
		}
		v.IPVS = true
		v.AllServices = len(svcs)
		v.Sources = append(v.Sources, "this host's IPVS")
		for _, s := range svcs {
			switch {
			case s.IsFWMark() && s.Family == ipvs.FamilyOf(r.opts.VIP):
				v.FWMarks = append(v.FWMarks, s)
			case !s.IsFWMark() && r.matchesVIP(s.Address, s.Port):
				v.Services = append(v.Services, s)
			}
		}
		for _, s := range append(slices.Clone(v.Services), v.FWMarks...) {
			rss, err := r.env.IPVS.RealServers(s.ServiceKey)
			if err != nil {
				continue
			}
			for _, rs := range rss {
				put(rsView{
					Service: s.ServiceKey.String(), Address: netip.AddrPortFrom(rs.Address, rs.Port),
					Forwarding: rs.Forwarding.String(), Weight: rs.Weight, ConfigWeight: -1,
					Upper: rs.UpperThreshold, Lower: rs.LowerThreshold,
					Active: rs.ActiveConns, Inactive: rs.InactiveConns, Persistent: rs.PersistentConns,
					HaveCounts: true, Persistence: s.Persistent(),
				})
			}
		}
	}

	// lvsd's status API.
	if r.env.LVSD != nil {
		var st statusapi.Status
		var err error
		if vs, ok := r.env.LVSD.(VIPStatusSource); ok {
			st, err = vs.StatusOfVIP(ctx, r.opts.VIP)
		} else {
			st, err = r.env.LVSD.Status(ctx)
		}
		if err != nil {
			v.StatusErr = err
		} else {
			v.Status = &st
			v.Sources = append(v.Sources, "lvsd's status API")
			for _, s := range st.Services {
				if !r.statusKeyMatches(s.Key) {
					continue
				}
				v.StatusServices = append(v.StatusServices, s)
				for _, rs := range s.RealServers {
					ap, err := netip.ParseAddrPort(rs.Address)
					if err != nil {
						continue
					}
					x := put(rsView{Service: s.Key, Address: ap, Forwarding: rs.Forwarding,
						Weight: rs.KernelWeight, ConfigWeight: rs.Weight})
					x.ConfigWeight = rs.Weight
					x.Health, x.Why, x.Check = rs.Health, rs.Why, rs.Check
					if !v.IPVS {
						x.Weight = rs.KernelWeight
					}
				}
			}
		}
	}

	// lvsd's config.
	if r.env.Config != nil {
		v.Sources = append(v.Sources, "lvsd's config")
		for _, d := range r.env.Config.Desired() {
			k := d.Service.ServiceKey
			if k.IsFWMark() || !r.matchesVIP(k.Address, k.Port) {
				continue
			}
			v.ConfigServices = append(v.ConfigServices, d)
			for _, rs := range d.RealServers {
				port := rs.Port
				x := put(rsView{Service: k.String(), Address: netip.AddrPortFrom(rs.Address, port),
					Forwarding: rs.Forwarding.String(), Weight: rs.Weight, ConfigWeight: rs.Weight,
					Upper: rs.UpperThreshold, Lower: rs.LowerThreshold, Persistence: d.Service.Persistent()})
				if x.ConfigWeight < 0 {
					x.ConfigWeight = rs.Weight
				}
			}
		}
	}
	for _, k := range order {
		v.RealServers = append(v.RealServers, *byKey[k])
	}
	slices.SortStableFunc(v.RealServers, func(a, b rsView) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), a.Address.Compare(b.Address))
	})
	return v
}

// statusKeyMatches reports whether a status key ("TCP 192.168.0.100:80")
// names a service of the VIP.
func (r *run) statusKeyMatches(key string) bool {
	k, err := ipvs.ParseServiceKey(key)
	return err == nil && !k.IsFWMark() && r.matchesVIP(k.Address, k.Port)
}

// realServerAddrs are the distinct addresses of the VIP's real servers.
func (v *directorView) realServerAddrs() []netip.Addr {
	var out []netip.Addr
	for _, rs := range v.RealServers {
		if !slices.Contains(out, rs.Address.Addr()) {
			out = append(out, rs.Address.Addr())
		}
	}
	return out
}

func (v *directorView) haveAny() bool {
	return v.IPVS || v.Status != nil || len(v.ConfigServices) > 0
}

// onDirector reports whether this host is a director of the VIP: its
// IPVS has a service for it, it holds the VIP on a link, lvsd runs
// here, or it speaks VRRP for the VIP. why says which.
func (r *run) onDirector(ctx context.Context) (bool, string) {
	v := r.getDirector(ctx)
	if v.IPVS && len(v.Services)+len(v.FWMarks) > 0 {
		return true, "this host's IPVS has a service for the VIP"
	}
	if l, ok := r.vipLink(ctx); ok && !l.Loopback() && l.Kind != "dummy" && l.Kind != "ipip" {
		return true, "this host holds the VIP on " + l.Name
	}
	if r.env.LVSDLocal {
		return true, "lvsd runs on this host"
	}
	if c, err := r.getCensus(ctx); err == nil {
		links, _ := r.getLinks(ctx)
		for _, vr := range vipRouters(c, r.opts.VIP) {
			for _, s := range vr.Speakers {
				for _, l := range links {
					if hasAddr(l.Prefixes, s.Source) {
						return true, fmt.Sprintf("this host (%s) speaks VRRP for the VIP", s.Source)
					}
				}
			}
		}
	}
	return false, ""
}

// vipLink returns the link that holds the VIP on this host.
func (r *run) vipLink(ctx context.Context) (Link, bool) {
	links, _ := r.getLinks(ctx)
	for _, l := range links {
		if hasAddr(l.Prefixes, r.opts.VIP) {
			return l, true
		}
	}
	return Link{}, false
}

// readSysctl reads a sysctl ("net.ipv4.ip_forward") from Root.
func (r *run) readSysctl(key string) (int, error) {
	if r.env.Root == nil {
		return 0, errors.New("no file system to read sysctls from")
	}
	b, err := fs.ReadFile(r.env.Root, "proc/sys/"+strings.ReplaceAll(key, ".", "/"))
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("sysctl %s: %q is not a number", key, strings.TrimSpace(string(b)))
	}
	return n, nil
}

// readIfSysctl reads net.ipv4.conf.<dev>.<name>; dev may hold dots.
func (r *run) readIfSysctl(dev, name string) (int, error) {
	if r.env.Root == nil {
		return 0, errors.New("no file system to read sysctls from")
	}
	b, err := fs.ReadFile(r.env.Root, "proc/sys/net/ipv4/conf/"+dev+"/"+name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("sysctl net.ipv4.conf.%s.%s: %q is not a number", dev, name, strings.TrimSpace(string(b)))
	}
	return n, nil
}

func checkDirector(ctx context.Context, r *run) outcome {
	v := r.getDirector(ctx)
	local, why := r.onDirector(ctx)
	// ip_vs loaded on a host that is not a director of the VIP (a client,
	// a real server): its table says nothing about the VIP.
	ipvsHere := v.IPVS && (local || len(v.Services)+len(v.FWMarks) > 0)
	sources := slices.Clone(v.Sources)
	if v.IPVS && !ipvsHere {
		sources = slices.DeleteFunc(sources, func(s string) bool { return s == "this host's IPVS" })
	}
	if !ipvsHere && v.Status == nil && len(v.ConfigServices) == 0 && !local {
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
	o.note("sources: %s", strings.Join(append(sources, localSource(local, why)...), ", "))
	if v.StatusErr != nil {
		o.add(Finding{ID: "director-lvsd-unreachable", Severity: Warning, Subject: "lvsd's status API",
			Evidence: []string{v.StatusErr.Error()},
			Fix:      "Check that lvsd runs (systemctl status lvsd) and that --lvsd is its status_listen address."})
	}
	if !v.IPVS && v.IPVSErr != nil {
		o.note("this host's IPVS: %v", v.IPVSErr)
	}
	if v.IPVS && !ipvsHere {
		o.note("this host's IPVS has no service for %s, and this host is not a director of the VIP", r.vipPort())
	}
	r.directorServices(v, &o, ipvsHere)
	r.directorRealServers(v, &o)
	if v.Status != nil {
		r.directorStatus(v, &o)
	}
	if v.Status != nil && v.Status.BGP != nil {
		r.directorBGP(v, &o)
	}
	if local && r.env.Config != nil {
		for _, f := range scriptFindings(r.env.Config) {
			o.add(f)
		}
	}
	if local {
		r.directorVIP(ctx, v, &o)
		r.directorSysctls(v, &o)
		r.directorFirewall(ctx, &o)
	} else {
		o.note("not on a director: the VIP's address, sysctls and firewall were not checked (run lvsdiag on the director for them)")
	}
	return o
}

func localSource(local bool, why string) []string {
	if local {
		return []string{"this host (" + why + ")"}
	}
	return nil
}

func (r *run) vipPort() string {
	if r.opts.Port == 0 {
		return r.opts.VIP.String()
	}
	return netip.AddrPortFrom(r.opts.VIP, r.opts.Port).String()
}

func (r *run) directorServices(v *directorView, o *outcome, ipvsHere bool) {
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
  ipvsadm -a %s %s -r REAL_SERVER -g -w 1`, proto, r.vipPort(), proto, r.vipPort())
			o.add(Finding{ID: "director-no-service", Severity: Critical, Subject: "IPVS service for " + r.vipPort(),
				Evidence: []string{fmt.Sprintf("this host's IPVS has %d service%s, none for %s and no fwmark service", v.AllServices, plural(v.AllServices), r.vipPort())},
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
		o.add(Finding{ID: "director-no-service", Severity: Critical, Subject: "lvsd service for " + r.vipPort(),
			Evidence: []string{lvsdServicesEvidence(v.Status, r.opts.VIP, r.vipPort())},
			Fix:      "Add the service to lvsd's config (virtual_services), check it and reload:\n  lvsd check --config " + v.Status.Config + "\n  systemctl reload lvsd"})
	}
}

func (r *run) directorRealServers(v *directorView, o *outcome) {
	byService := map[string]int{}
	active := map[string]int{}
	for _, rs := range v.RealServers {
		byService[rs.Service]++
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
		o.notes = append(o.notes, line)
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
				Fix:      fmt.Sprintf("Fix the real server; lvsd puts it back after its check succeeds. Test it by hand from the director:\n  curl -sv --connect-to ::%s http://%s/", rs.Address, r.opts.host())})
		case rs.Weight == 0 && rs.ConfigWeight != 0:
			o.add(Finding{ID: "director-rs-quiesced", Severity: Warning, Subject: subject,
				Evidence: []string{fmt.Sprintf("weight 0 in %s: quiesced, it gets no new connections", rs.Service)},
				Fix:      fmt.Sprintf("If it should serve again:\n  ipvsadm -e %s %s -r %s -w 1\n(lvsd sets weights itself: check its health view instead)", protoFlag(rs.Service), serviceArg(rs.Service), rs.Address)})
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
				Fix:      fmt.Sprintf("Add real servers to it in lvsd's config, or by hand:\n  ipvsadm -a %s %s -r REAL_SERVER -g -w 1", protoFlag(s.ServiceKey.String()), serviceArg(s.ServiceKey.String()))})
		}
	}
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

// protoFlag and serviceArg turn "TCP 10.0.0.1:80" into ipvsadm's "-t"
// and "10.0.0.1:80".
func protoFlag(key string) string {
	switch strings.Fields(key)[0] {
	case "UDP":
		return "-u"
	case "SCTP":
		return "--sctp-service"
	case "FWM":
		return "-f"
	}
	return "-t"
}

func serviceArg(key string) string {
	f := strings.Fields(key)
	if len(f) < 2 {
		return key
	}
	return f[1]
}

func (r *run) directorStatus(v *directorView, o *outcome) {
	for _, in := range v.Status.VRRP {
		if !containsString(in.VIPs, r.opts.VIP.String()) {
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

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s || strings.HasPrefix(x, s+"/") {
			return true
		}
	}
	return false
}

// directorVIP checks that a director that should hold the VIP does.
func (r *run) directorVIP(ctx context.Context, v *directorView, o *outcome) {
	l, ok := r.vipLink(ctx)
	if ok {
		o.note("the VIP is on %s", l.Name)
		if l.Loopback() && len(v.Services) > 0 {
			o.add(Finding{ID: "director-vip-on-lo", Severity: Warning, Subject: "VIP " + r.opts.VIP.String() + " on lo",
				Evidence: []string{"this host's IPVS serves the VIP, but the VIP is on lo: it does not answer ARP for it"},
				Fix:      fmt.Sprintf("A director holds the VIP on the client-facing link:\n  ip addr del %s/32 dev lo\n  ip addr add %s/32 dev %s", r.opts.VIP, r.opts.VIP, r.ifaceOr("eth0"))})
		}
		return
	}
	if _, err := r.getLinks(ctx); err != nil {
		o.note("links: %v", err)
		return
	}
	if v.Status != nil {
		for _, in := range v.Status.VRRP {
			if containsString(in.VIPs, r.opts.VIP.String()) && in.State != "master" {
				o.note("the VIP is not on this host: lvsd's VRRP instance %s is %s (master: %s)", in.Name, in.State, in.Master)
				return
			}
		}
	}
	if len(v.Services) == 0 {
		o.note("the VIP is not on this host")
		return
	}
	o.add(Finding{ID: "director-vip-missing", Severity: Critical, Subject: "VIP " + r.opts.VIP.String(),
		Evidence: []string{"this host's IPVS has a service for the VIP but no link holds the VIP", "no VRRP instance of lvsd here says another director holds it"},
		Fix:      fmt.Sprintf("If this director should be serving the VIP:\n  ip addr add %s/32 dev %s\n  arping -U -c 3 -I %s %s   # tell the switch\nIf VRRP manages the VIP, check its state instead (lvsdiag vrrp --interface %s).", r.opts.VIP, r.ifaceOr("eth0"), r.ifaceOr("eth0"), r.opts.VIP, r.ifaceOr("eth0"))})
}

func (r *run) ifaceOr(def string) string {
	if r.iface != "" {
		return r.iface
	}
	return def
}

// forwardings are the forwarding methods of the VIP's real servers.
func (v *directorView) forwardings() map[string]bool {
	m := map[string]bool{}
	for _, rs := range v.RealServers {
		m[rs.Forwarding] = true
	}
	return m
}

func (r *run) directorSysctls(v *directorView, o *outcome) {
	fwd := v.forwardings()
	if fwd["Masq"] {
		if n, err := r.readSysctl("net.ipv4.ip_forward"); err == nil && n == 0 {
			o.add(Finding{ID: "director-ip-forward", Severity: Critical, Subject: "net.ipv4.ip_forward",
				Evidence: []string{"net.ipv4.ip_forward = 0", "masquerading (NAT) real servers' replies come back through the director, which must forward them"},
				Fix:      "sysctl -w net.ipv4.ip_forward=1\necho net.ipv4.ip_forward=1 > /etc/sysctl.d/90-lvs.conf"})
		}
	}
	if fwd["Route"] && r.opts.VIP.Is4() {
		var on []string
		var ev []string
		for _, dev := range []string{"all", "default", r.iface} {
			if dev == "" {
				continue
			}
			n, err := r.readIfSysctl(dev, "send_redirects")
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
	r.ipvsSysctls(v, o)
}

// ipvsSysctls explains the IPVS sysctls that decide what happens to
// connections when a real server fails.
func (r *run) ipvsSysctls(v *directorView, o *outcome) {
	nodest, err := r.readSysctl("net.ipv4.vs.expire_nodest_conn")
	if err != nil {
		o.note("IPVS sysctls (net.ipv4.vs.*) not readable: %v", shortErr(err))
		return
	}
	quiescent, _ := r.readSysctl("net.ipv4.vs.expire_quiescent_template")
	reuse, reuseErr := r.readSysctl("net.ipv4.vs.conn_reuse_mode")
	o.note("net.ipv4.vs.expire_nodest_conn = %d, expire_quiescent_template = %d, conn_reuse_mode = %d", nodest, quiescent, reuse)
	if nodest == 0 {
		o.add(Finding{ID: "director-expire-nodest-conn", Severity: Info, Subject: "net.ipv4.vs.expire_nodest_conn",
			Evidence: []string{"net.ipv4.vs.expire_nodest_conn = 0", "when a real server is removed (lvsd's on_failure: remove), its established connections stay in the table and their packets are dropped until they time out (15 minutes for TCP): clients hang instead of reconnecting"},
			Fix:      "sysctl -w net.ipv4.vs.expire_nodest_conn=1\necho net.ipv4.vs.expire_nodest_conn=1 >> /etc/sysctl.d/90-lvs.conf"})
	}
	persistent := false
	for _, rs := range v.RealServers {
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

func shortErr(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "ip_vs is not loaded here"
	}
	return err.Error()
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
