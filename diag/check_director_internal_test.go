package diag

import (
	"errors"
	"io/fs"
	"net/netip"
	"testing"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
)

func TestDirectorFindings(t *testing.T) {
	key := ipvs.TCPKey(netip.AddrPortFrom(tVIP, 80))
	rs := func(fwd string, weight int32) rsView {
		return rsView{Service: key.String(), Address: netip.MustParseAddrPort("10.9.0.21:80"), Forwarding: fwd, Weight: weight, ConfigWeight: 1, HaveCounts: true}
	}
	sane := sysctlFacts{
		Global: map[string]reading{"net.ipv4.ip_forward": {N: 1}, "net.ipv4.vs.expire_nodest_conn": {N: 1},
			"net.ipv4.vs.expire_quiescent_template": {N: 1}, "net.ipv4.vs.conn_reuse_mode": {N: 1}},
		Conf: map[string]reading{"all/send_redirects": {N: 0}, "default/send_redirects": {N: 0}, "eth0/send_redirects": {N: 0}},
	}
	base := func() directorFacts {
		return directorFacts{target: tTarget, Local: true, Why: "this host's IPVS has a service for the VIP",
			View: &directorView{IPVS: true, Sources: []string{"this host's IPVS"}, AllServices: 1,
				Services: []ipvs.Service{{ServiceKey: key, Scheduler: "wlc"}}, RealServers: []rsView{rs("Route", 1)}},
			VIPLink: Link{Name: "eth0", Kind: "veth"}, HaveVIPLink: true, Sysctls: sane,
			Firewall: &FirewallRules{}}
	}
	for _, tc := range []struct {
		name   string
		edit   func(f *directorFacts)
		status Status
		ids    []string
		notes  []string
	}{
		{"a sane director", func(*directorFacts) {}, "", nil, []string{
			"sources: this host's IPVS, this host (this host's IPVS has a service for the VIP)",
			"IPVS service TCP 10.9.0.100:80 (wlc)", "TCP 10.9.0.100:80 -> 10.9.0.21:80 Route weight 1, 0 active, 0 inactive",
			"the VIP is on eth0", "no firewall rule drops VRRP (protocol 112)"}},
		{"not a director, no lvsd: could not run", func(f *directorFacts) {
			f.Local, f.View = false, &directorView{IPVSErr: ipvs.ErrIPVSUnavailable}
		}, StatusCouldNotRun, nil, nil},
		{"not a director, lvsd's status given", func(f *directorFacts) {
			f.Local = false
			f.View = &directorView{Status: &statusapi.Status{Config: "/etc/lvsd/lvsd.yaml"}, Sources: []string{"lvsd's status API"}}
		}, "", []string{"director-no-service lvsd service for 10.9.0.100:80"},
			[]string{"not on a director: the VIP's address, sysctls and firewall were not checked"}},
		{"no service for the VIP", func(f *directorFacts) {
			f.View.Services, f.View.RealServers = nil, nil
		}, "", []string{"director-no-service IPVS service for 10.9.0.100:80"}, nil},
		{"the only real server quiesced", func(f *directorFacts) {
			f.View.RealServers = []rsView{rs("Route", 0)}
		}, "", []string{"director-no-active-rs service TCP 10.9.0.100:80", "director-rs-quiesced real server 10.9.0.21:80"}, nil},
		{"NAT without forwarding", func(f *directorFacts) {
			f.View.RealServers = []rsView{rs("Masq", 1)}
			f.Sysctls.Global["net.ipv4.ip_forward"] = reading{N: 0}
		}, "", []string{"director-ip-forward net.ipv4.ip_forward"}, nil},
		{"ip_vs sysctls unreadable", func(f *directorFacts) {
			f.Sysctls.Global["net.ipv4.vs.expire_nodest_conn"] = reading{Err: fs.ErrNotExist}
		}, "", nil, []string{"IPVS sysctls (net.ipv4.vs.*) not readable: ip_vs is not loaded here"}},
		{"VIP missing on a director with the service", func(f *directorFacts) {
			f.HaveVIPLink = false
		}, "", []string{"director-vip-missing VIP 10.9.0.100"}, nil},
		{"firewall unreadable", func(f *directorFacts) {
			f.Firewall, f.FirewallErr = nil, errors.New("nft: permission denied")
		}, "", nil, []string{"firewall rules not read: nft: permission denied"}},
		{"firewall drops VRRP", func(f *directorFacts) {
			f.Firewall = &FirewallRules{IPTables: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p vrrp -j DROP\nCOMMIT\n"}
		}, "", []string{"director-firewall-drops-vrrp firewall: iptables filter INPUT"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			tc.edit(&f)
			checkOutcome(t, directorFindings(f), tc.status, tc.ids, tc.notes...)
		})
	}
}

func TestRealServerConfigFindings(t *testing.T) {
	lo := Link{Name: "lo", Kind: "loopback", Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.PrefixFrom(tVIP, 32)}}
	eth0 := Link{Name: "eth0", Kind: "veth", Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.9.0.21/24")}}
	conf := func(kv map[string]int) sysctlFacts {
		s := sysctlFacts{Conf: map[string]reading{}}
		for k, v := range map[string]int{"all/arp_ignore": 1, "eth0/arp_ignore": 1, "all/arp_announce": 2, "eth0/arp_announce": 2,
			"default/arp_ignore": 0, "lo/arp_ignore": 0, "default/arp_announce": 0, "lo/arp_announce": 0, "all/rp_filter": 0, "eth0/rp_filter": 1} {
			s.Conf[k] = reading{N: v}
		}
		for k, v := range kv {
			s.Conf[k] = reading{N: v}
		}
		return s
	}
	listening := []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:80")}
	for _, tc := range []struct {
		name      string
		links     []Link
		sysctls   map[string]int
		listeners []netip.AddrPort
		ids       []string
	}{
		{"set up right", []Link{lo, eth0}, nil, listening, nil},
		{"arp_ignore left at 0", []Link{lo, eth0}, map[string]int{"all/arp_ignore": 0, "eth0/arp_ignore": 0}, listening, []string{"rs-arp-ignore arp_ignore on eth0"}},
		{"the VIP missing", []Link{{Name: "lo", Kind: "loopback", Up: true}, eth0}, nil, listening, []string{"rs-vip-missing VIP 10.9.0.100 on this real server"}},
		{"nothing listens", []Link{lo, eth0}, nil, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:80")}, []string{"rs-not-listening port 80 on this real server"}},
		{"a tunnel that is down", []Link{{Name: "lo", Kind: "loopback", Up: true}, eth0,
			{Name: "tunl0", Kind: "ipip", Prefixes: []netip.Prefix{netip.PrefixFrom(tVIP, 32)}}}, map[string]int{"tunl0/rp_filter": 0}, listening,
			[]string{"rs-tunnel-down tunnel tunl0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := realServerConfigFindings(realServerConfigFacts{target: tTarget, Links: tc.links, Sysctls: conf(tc.sysctls),
				Listeners: tc.listeners, ListenersRead: true})
			checkOutcome(t, o, "", tc.ids)
		})
	}
}
