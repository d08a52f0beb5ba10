package diag_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/diag"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
)

func TestDirectorChecks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, w *world)
		want  []idSubject
	}{
		{"clean", func(*testing.T, *world) {}, nil},
		{"send_redirects on", func(t *testing.T, w *world) {
			w.sysctls(map[string]string{"all/send_redirects": "1", "eth0/send_redirects": "1"})
		}, []idSubject{{"director-send-redirects", "send_redirects on all, eth0"}}},
		{"no IPVS service for the VIP", func(t *testing.T, w *world) {
			w.ipvs.Flush()
		}, []idSubject{{"director-no-service", "IPVS service for 10.77.0.100:80"}}},
		{"quiesced real server with connections and templates", func(t *testing.T, w *world) {
			key := ipvs.TCPKey(netip.AddrPortFrom(vip, 80))
			w.ipvs.UpdateRealServer(key, ipvs.RealServer{Address: rips[1], Port: 80, Forwarding: ipvs.DirectRoute, Weight: 0})
			w.conns(connLine("ESTABLISHED", rips[1], 40000, false), connLine("ASSURED", rips[1], 0, true))
		}, []idSubject{{"conn-template-dead", "real server 10.77.0.22:80"}, {"director-rs-quiesced", "real server 10.77.0.22:80"}, {"conn-quiesced-active", "real server 10.77.0.22:80"}}},
		{"SYN_RECV piles up on one real server", func(t *testing.T, w *world) {
			var lines []string
			for i := range 8 {
				lines = append(lines, connLine("SYN_RECV", rips[2], uint16(41000+i), false))
			}
			lines = append(lines, connLine("ESTABLISHED", rips[0], 40000, false), connLine("SYN_RECV", rips[0], 40001, false))
			w.conns(lines...)
		}, []idSubject{{"conn-syn-recv", "real server 10.77.0.23:80"}}},
		{"nft drops VRRP", func(t *testing.T, w *world) {
			w.rules.NFT = "table inet lvskit_test {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tip protocol vrrp drop\n\t}\n}\n"
		}, []idSubject{{"director-firewall-drops-vrrp", "firewall: nft table inet lvskit_test chain input"}}},
		{"iptables drops VRRP", func(t *testing.T, w *world) {
			w.rules.IPTables = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p vrrp -j DROP\nCOMMIT\n"
		}, []idSubject{{"director-firewall-drops-vrrp", "firewall: iptables filter INPUT"}}},
		{"drop policy without a VRRP accept", func(t *testing.T, w *world) {
			w.rules.NFT = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 22 accept\n\t}\n}\n"
		}, []idSubject{{"director-firewall-drops-vrrp", "firewall: nft table inet filter chain input"}}},
		{"drop policy with a VRRP accept", func(t *testing.T, w *world) {
			w.rules.NFT = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tip protocol vrrp accept\n\t}\n}\n"
		}, nil},
		{"IPVS sysctls at the kernel's defaults, persistent service", func(t *testing.T, w *world) {
			key := ipvs.TCPKey(netip.AddrPortFrom(vip, 80))
			w.ipvs.UpdateService(ipvs.Service{ServiceKey: key, Scheduler: "wlc", Flags: ipvs.FlagPersistent, Timeout: 300, NetmaskBits: 32})
			w.files["proc/sys/net/ipv4/vs/expire_nodest_conn"].Data = []byte("0\n")
			w.files["proc/sys/net/ipv4/vs/expire_quiescent_template"].Data = []byte("0\n")
			w.files["proc/sys/net/ipv4/vs/conn_reuse_mode"].Data = []byte("0\n")
		}, []idSubject{{"director-expire-quiescent-template", "net.ipv4.vs.expire_quiescent_template"},
			{"director-conn-reuse-mode", "net.ipv4.vs.conn_reuse_mode"}, {"director-expire-nodest-conn", "net.ipv4.vs.expire_nodest_conn"}}},
		{"NAT without ip_forward", func(t *testing.T, w *world) {
			key := ipvs.TCPKey(netip.AddrPortFrom(vip, 80))
			for _, a := range rips {
				w.ipvs.UpdateRealServer(key, ipvs.RealServer{Address: a, Port: 80, Forwarding: ipvs.Masquerade, Weight: 1})
			}
		}, []idSubject{{"director-ip-forward", "net.ipv4.ip_forward"}}},
		{"upper threshold reached", func(t *testing.T, w *world) {
			key := ipvs.TCPKey(netip.AddrPortFrom(vip, 80))
			w.ipvs.UpdateRealServer(key, ipvs.RealServer{Address: rips[0], Port: 80, Forwarding: ipvs.DirectRoute, Weight: 1, UpperThreshold: 2})
			w.ipvs.SetCounters(key, ipvs.RealServerKey{Address: rips[0], Port: 80}, 2, 1, ipvs.Stats{})
		}, []idSubject{{"director-rs-threshold", "real server 10.77.0.21:80"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			w.onDirector(t)
			tc.setup(t, w)
			rep := w.run(t)
			if got := findingsOf(rep); !slices.Equal(got, tc.want) {
				t.Errorf("findings\n  %v\nwant\n  %v\n%s", got, tc.want, dump(t, rep))
			}
			if s := statuses(rep)[diag.CheckConnections]; s == diag.StatusCouldNotRun {
				t.Errorf("connection table check could not run on the director:\n%s", dump(t, rep))
			}
		})
	}
}

// A client that happens to have ip_vs loaded (an empty table) is not a
// director: its empty table is not "no service for the VIP" (a lab run
// of make demo showed that false critical).
func TestClientWithIPVSLoadedIsNotADirector(t *testing.T) {
	w := newWorld()
	w.ipvs = ipvstest.New()
	rep := w.run(t)
	if fs := rep.Findings(); len(fs) != 0 {
		t.Fatalf("findings on a clean segment from a client with ip_vs loaded:\n%s", dump(t, rep))
	}
	var notes []string
	for _, c := range rep.Checks {
		if c.ID == diag.CheckDirector {
			notes = c.Notes
		}
	}
	if !slices.Contains(notes, "this host's IPVS has no service for 10.77.0.100:80, and this host is not a director of the VIP") ||
		!slices.Contains(notes, "sources: lvsd's status API") {
		t.Errorf("director notes:\n%s", strings.Join(notes, "\n"))
	}
}

// An instance a drill stepped down is named, with how to end the drill.
func TestDirectorStatusNamesADrillsStepDown(t *testing.T) {
	w := newWorld()
	w.status.VRRP[0].Priority, w.status.VRRP[0].SteppedDownUntil = 1, t0.Add(time.Minute)
	rep := w.run(t)
	var found *diag.Finding
	for _, f := range rep.Findings() {
		if f.ID == "director-vrrp-drill" {
			found = &f
		}
	}
	if found == nil || !strings.Contains(found.Evidence[0], "priority 1 instead of 100") || !strings.Contains(found.Fix, "DELETE http://lvsd/vrrp/VI_1/step-down") {
		t.Errorf("finding %+v\n%s", found, dump(t, rep))
	}
}
