//go:build linux

package diag

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/internal/lab"
)

// The network tier of the checklist: a direct-routing lab in network
// namespaces (a client; directors d1 and d2 running Debian's keepalived
// for the VIP; three real servers with the VIP on lo running nginx), a
// fake lvsd status API on d1 (this host has no IPVS), and the lvsdiag
// binary run in the namespaces as on-call would run it. Faults are put
// in one at a time, then together; each must be reported with the right
// subject and nothing else, and the clean lab must report nothing.

const (
	labVIP  = "10.77.0.100"
	labSite = "www.example.com"
	labBody = "the same page on every real server\n"
)

type drLab struct {
	l            *lab.Lab
	client       *lab.Host
	d1, d2       *lab.Host
	k1, k2       *lab.Process
	rs           []*lab.Host
	nginx        []*lab.Process
	bin          string
	lvsd, config string
}

func newDRLab(t *testing.T) *drLab {
	t.Helper()
	requireKeepalived(t)
	for _, tool := range []string{"nginx", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs Debian's %s (scripts/install-deps.sh): %v", tool, err)
		}
	}
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	x := &drLab{l: l, client: l.AddHost("client", "10.77.0.2/24"),
		d1: l.AddHost("d1", "10.77.0.10/24"), d2: l.AddHost("d2", "10.77.0.11/24")}
	ctx := labContext(t)
	x.bin = buildLVSDiag(t)
	for _, d := range []*lab.Host{x.d1, x.d2} {
		// A direct-routing director sends no ICMP redirects.
		for _, dev := range []string{"all", "default", "eth0"} {
			d.SetSysctl("net.ipv4.conf."+dev+".send_redirects", "0")
		}
	}
	x.k1 = startKeepalived(t, x.d1, 51, 150, labVIP)
	x.k2 = startKeepalived(t, x.d2, 51, 100, labVIP)
	for i := range 3 {
		h := l.AddHost(fmt.Sprintf("rs%d", i+1), fmt.Sprintf("10.77.0.%d/24", 21+i))
		h.ConfigureDRRealServer(labVIP)
		x.rs = append(x.rs, h)
		x.nginx = append(x.nginx, h.StartNginx(lab.HTTPOptions{Body: labBody}))
	}
	x.lvsd = x.serveStatus(t)
	x.config = writeConfig(t)
	waitCount(ctx, t, x.k1, "Entering MASTER STATE", 1)
	waitCount(ctx, t, x.k2, "Entering BACKUP STATE", 1)
	return x
}

// serveStatus serves a fake lvsd status API on d1: the VIP's service
// with the three real servers, all up.
func (x *drLab) serveStatus(t *testing.T) string {
	t.Helper()
	svc := statusapi.ServiceStatus{Key: "TCP " + labVIP + ":80", Source: "lvsd.yaml:3", Scheduler: "wlc", InKernel: true, UpWeight: 3}
	for _, h := range x.rs {
		a := h.Addr().String() + ":80"
		svc.RealServers = append(svc.RealServers, statusapi.RealServerStatus{Address: a, Forwarding: "Route", Weight: 1,
			KernelWeight: 1, Health: "up", Check: "http GET / on " + a})
	}
	st := statusapi.Status{Config: "/etc/lvsd/lvsd.yaml", Loaded: time.Now(), Services: []statusapi.ServiceStatus{svc}}
	ln, err := x.d1.Listen("tcp", "10.77.0.10:9120")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://10.77.0.10:9120"
}

// writeConfig writes the lvsd config of the pair: its VRRP instance
// tells lvsdiag which VRID is ours.
func writeConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	conf := `virtual_services:
  - address: 10.77.0.100
    port: 80
    real_servers:
      - address: 10.77.0.21
      - address: 10.77.0.22
      - address: 10.77.0.23
vrrp:
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: 51
      priority: 150
      advert_interval: 200ms
      virtual_addresses: [10.77.0.100]
`
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// labReport is the part of lvsdiag's JSON report the tests read.
type labReport struct {
	DurationSeconds float64 `json:"duration_seconds"`
	ExitCode        int     `json:"exit_code"`
	Checks          []struct {
		ID       string    `json:"id"`
		Status   string    `json:"status"`
		Reason   string    `json:"reason"`
		Findings []Finding `json:"findings"`
	} `json:"checks"`
	raw []byte
}

func (r labReport) findings() []Finding {
	var fs []Finding
	for _, c := range r.Checks {
		fs = append(fs, c.Findings...)
	}
	SortFindings(fs)
	return fs
}

func (r labReport) ids() []string {
	var out []string
	for _, f := range r.findings() {
		out = append(out, f.ID+" | "+f.Subject)
	}
	return out
}

// lvsdiag runs the binary in h with args and --output json and returns
// the report; the exit status must be 0 or 1 and match the report.
func (x *drLab) lvsdiag(ctx context.Context, t *testing.T, h *lab.Host, args ...string) labReport {
	t.Helper()
	start := time.Now()
	out, err := h.Run(ctx, x.bin, append(args, "--output", "json")...)
	wall := time.Since(start)
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("lvsdiag %v on %s: %v", args, h.Name, err)
	}
	var rep labReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("lvsdiag %v on %s: decoding the report: %v\n%s\n%v", args, h.Name, err, out, err)
	}
	rep.raw = []byte(out)
	if rep.ExitCode != code {
		t.Errorf("lvsdiag %v on %s exited %d, the report says %d", args, h.Name, code, rep.ExitCode)
	}
	t.Logf("lvsdiag %s on %s: %.2fs (wall %.2fs), exit %d, findings %q", strings.Join(args, " "), h.Name, rep.DurationSeconds, wall.Seconds(), code, rep.ids())
	return rep
}

func (x *drLab) fromClient(ctx context.Context, t *testing.T, extra ...string) labReport {
	t.Helper()
	return x.lvsdiag(ctx, t, x.client, append([]string{"--vip", labVIP, "--port", "80", "--host", labSite, "--lvsd", x.lvsd}, extra...)...)
}

func (x *drLab) onRealServer(ctx context.Context, t *testing.T, i int) labReport {
	t.Helper()
	return x.lvsdiag(ctx, t, x.rs[i], "rs", "--vip", labVIP, "--port", "80")
}

// expect checks that the report's findings are exactly want ("id |
// subject").
func expect(t *testing.T, what string, rep labReport, want ...string) {
	t.Helper()
	got := rep.ids()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: findings\n  %q\nwant\n  %q\nreport:\n%s", what, got, want, rep.raw)
	}
}

func (x *drLab) ip(ctx context.Context, t *testing.T, h *lab.Host, args ...string) {
	t.Helper()
	if _, err := h.Run(ctx, "ip", args...); err != nil {
		t.Fatal(err)
	}
}

func TestLabChecklist(t *testing.T) {
	x := newDRLab(t)
	ctx := labContext(t)
	// The scenarios share one lab, in this order: each undoes what it
	// breaks.
	for _, sc := range []struct {
		name string
		run  func(ctx context.Context, t *testing.T, x *drLab)
	}{
		{"clean", labClean},
		{"arp_ignore=0 on a real server", labArpIgnore0OnARealServer},
		{"the all-vs-interface trap", labTheAllVsInterfaceTrap},
		{"VIP on lo as /24", labVIPOnLoAs24},
		{"VIP missing on a real server", labVIPMissingOnARealServer},
		{"one real server serves different content", labOneRealServerServesDifferentContent},
		{"dead real server", labDeadRealServer},
		{"VRRP blocked by a firewall rule", labVRRPBlockedByAFirewallRule},
		{"a second keepalived pair on our VRID", labASecondKeepalivedPairOnOurVRID},
		{"together", labTogether},
	} {
		t.Run(sc.name, func(t *testing.T) { sc.run(ctx, t, x) })
	}
}

// labClean is TestLabChecklist's scenario "clean".
func labClean(ctx context.Context, t *testing.T, x *drLab) {
	// The default run, as on-call types it. Its time is logged (lvsdiag
	// above), not asserted: a wall clock on a loaded host proves nothing
	// a user notices. What they notice is a run cut off by its deadline:
	// every check must reach its own verdict, none "ran out of time".
	rep := x.lvsdiag(ctx, t, x.client, "--vip", labVIP, "--host", labSite, "--lvsd", x.lvsd)
	expect(t, "client", rep)
	for _, c := range rep.Checks {
		if strings.Contains(c.Reason, "ran out of time") {
			t.Errorf("check %s was cut off by the run's deadline: %s", c.ID, c.Reason)
		}
		want := map[string]string{"real-server-config": "not-applicable", "connections": "could-not-run"}[c.ID]
		if want == "" {
			want = "ok"
		}
		if c.Status != want {
			t.Errorf("check %s: %s (%s), want %s", c.ID, c.Status, c.Reason, want)
		}
	}
	expect(t, "director d1", x.lvsdiag(ctx, t, x.d1, "--vip", labVIP, "--lvsd", x.lvsd, "--config", x.config))
	for i := range x.rs {
		expect(t, x.rs[i].Name, x.onRealServer(ctx, t, i))
	}
}

// labArpIgnore0OnARealServer is TestLabChecklist's scenario "arp_ignore=0 on a real server".
func labArpIgnore0OnARealServer(ctx context.Context, t *testing.T, x *drLab) {
	rs1 := x.rs[0]
	for _, dev := range []string{"all", "eth0"} {
		rs1.SetSysctl("net.ipv4.conf."+dev+".arp_ignore", "0")
	}
	defer func() {
		for _, dev := range []string{"all", "eth0"} {
			rs1.SetSysctl("net.ipv4.conf."+dev+".arp_ignore", "1")
		}
	}()
	mac := rs1.MAC().String()
	expect(t, "client", x.fromClient(ctx, t), "arp-vip-leak | real server 10.77.0.21 (MAC "+mac+")")
	expect(t, "rs1", x.onRealServer(ctx, t, 0), "rs-arp-ignore | arp_ignore on eth0")
}

// labTheAllVsInterfaceTrap is TestLabChecklist's scenario "the all-vs-interface trap".
func labTheAllVsInterfaceTrap(ctx context.Context, t *testing.T, x *drLab) {
	rs1 := x.rs[0]
	// lo and default set, all and eth0 not: the kernel still answers.
	for dev, v := range map[string]string{"all": "0", "eth0": "0", "lo": "1", "default": "1"} {
		rs1.SetSysctl("net.ipv4.conf."+dev+".arp_ignore", v)
	}
	rep := x.onRealServer(ctx, t, 0)
	expect(t, "rs1", rep, "rs-arp-ignore | arp_ignore on eth0")
	if fs := rep.findings(); len(fs) == 1 && !slices.ContainsFunc(fs[0].Evidence, func(e string) bool { return strings.Contains(e, "lo.arp_ignore = 1 does not help") }) {
		t.Errorf("the evidence does not explain that lo's setting does not help: %q", fs[0].Evidence)
	}
	expect(t, "client", x.fromClient(ctx, t), "arp-vip-leak | real server 10.77.0.21 (MAC "+rs1.MAC().String()+")")
	// all=1 with eth0=0: the kernel takes the larger, no leak.
	rs1.SetSysctl("net.ipv4.conf.all.arp_ignore", "1")
	expect(t, "client, all=1 eth0=0", x.fromClient(ctx, t))
	expect(t, "rs1, all=1 eth0=0", x.onRealServer(ctx, t, 0))
	for dev, v := range map[string]string{"eth0": "1", "lo": "0", "default": "0"} {
		rs1.SetSysctl("net.ipv4.conf."+dev+".arp_ignore", v)
	}
}

// labVIPOnLoAs24 is TestLabChecklist's scenario "VIP on lo as /24".
func labVIPOnLoAs24(ctx context.Context, t *testing.T, x *drLab) {
	rs2 := x.rs[1]
	x.ip(ctx, t, rs2, "addr", "del", labVIP+"/32", "dev", "lo")
	x.ip(ctx, t, rs2, "addr", "add", labVIP+"/24", "dev", "lo")
	defer func() {
		x.ip(ctx, t, rs2, "addr", "del", labVIP+"/24", "dev", "lo")
		x.ip(ctx, t, rs2, "addr", "add", labVIP+"/32", "dev", "lo")
	}()
	expect(t, "rs2", x.onRealServer(ctx, t, 1), "rs-vip-prefix | VIP 10.77.0.100 on lo")
	// The whole /24 is local on rs2 now: it answers nobody.
	expect(t, "client", x.fromClient(ctx, t), "reach-loss | real server 10.77.0.22", "rs-unreachable | real server 10.77.0.22:80")
}

// labVIPMissingOnARealServer is TestLabChecklist's scenario "VIP missing on a real server".
func labVIPMissingOnARealServer(ctx context.Context, t *testing.T, x *drLab) {
	rs2 := x.rs[1]
	x.ip(ctx, t, rs2, "addr", "del", labVIP+"/32", "dev", "lo")
	defer x.ip(ctx, t, rs2, "addr", "add", labVIP+"/32", "dev", "lo")
	expect(t, "rs2", x.onRealServer(ctx, t, 1), "rs-vip-missing | VIP 10.77.0.100 on this real server")
	expect(t, "rs1", x.onRealServer(ctx, t, 0))
}

// labOneRealServerServesDifferentContent is TestLabChecklist's scenario "one real server serves different content".
func labOneRealServerServesDifferentContent(ctx context.Context, t *testing.T, x *drLab) {
	rs3 := x.rs[2]
	x.nginx[2].Stop()
	x.nginx[2] = rs3.StartNginx(lab.HTTPOptions{Body: "an old release\n"})
	defer func() {
		x.nginx[2].Stop()
		x.nginx[2] = rs3.StartNginx(lab.HTTPOptions{Body: labBody})
	}()
	expect(t, "client", x.fromClient(ctx, t), "rs-content-differs | real server 10.77.0.23:80")
}

// labDeadRealServer is TestLabChecklist's scenario "dead real server".
func labDeadRealServer(ctx context.Context, t *testing.T, x *drLab) {
	rs2 := x.rs[1]
	x.ip(ctx, t, rs2, "link", "set", "eth0", "down")
	defer func() {
		x.ip(ctx, t, rs2, "link", "set", "eth0", "up")
		if err := x.client.WaitTCP(ctx, "10.77.0.22:80"); err != nil {
			t.Fatal(err)
		}
	}()
	expect(t, "client", x.fromClient(ctx, t), "reach-loss | real server 10.77.0.22", "rs-unreachable | real server 10.77.0.22:80")
}

// labVRRPBlockedByAFirewallRule is TestLabChecklist's scenario "VRRP blocked by a firewall rule".
func labVRRPBlockedByAFirewallRule(ctx context.Context, t *testing.T, x *drLab) {
	for _, args := range [][]string{
		{"add", "table", "inet", "lvskit_test"},
		{"add", "chain", "inet", "lvskit_test", "input", "{ type filter hook input priority 0; }"},
		{"add", "rule", "inet", "lvskit_test", "input", "ip", "protocol", "vrrp", "drop"},
	} {
		if _, err := x.d2.Run(ctx, "nft", args...); err != nil {
			t.Fatal(err)
		}
	}
	waitCount(ctx, t, x.k2, "Entering MASTER STATE", 1)
	defer func() {
		if _, err := x.d2.Run(ctx, "nft", "delete", "table", "inet", "lvskit_test"); err != nil {
			t.Fatal(err)
		}
		waitCount(ctx, t, x.k2, "Entering BACKUP STATE", 2)
	}()
	rep := x.lvsdiag(ctx, t, x.d2, "--vip", labVIP, "--lvsd", x.lvsd)
	if !slices.Contains(rep.ids(), "director-firewall-drops-vrrp | firewall: nft table inet lvskit_test chain input") {
		t.Errorf("d2 does not report its rule: %q", rep.ids())
	}
	if !slices.Contains(rep.ids(), "vrrp-split-brain | VRID 51 (IPv4) on eth0") {
		t.Errorf("d2 does not report the split brain: %q", rep.ids())
	}
	rep = x.fromClient(ctx, t)
	expect(t, "client", rep, "vrrp-split-brain | VRID 51 (IPv4) on eth0", "arp-vip-multiple | VIP 10.77.0.100 on eth0")
	if fs := rep.findings(); len(fs) > 0 && !strings.Contains(strings.Join(fs[len(fs)-1].Evidence, "\n")+strings.Join(fs[0].Evidence, "\n"), "10.77.0.11") {
		t.Errorf("the evidence does not name d2 (10.77.0.11)")
	}
}

// labASecondKeepalivedPairOnOurVRID is TestLabChecklist's scenario "a second keepalived pair on our VRID".
func labASecondKeepalivedPairOnOurVRID(ctx context.Context, t *testing.T, x *drLab) {
	y1, y2 := x.l.AddHost("y1", "10.77.0.31/24"), x.l.AddHost("y2", "10.77.0.32/24")
	ky1 := startKeepalived(t, y1, 51, 150, "10.77.0.200", "10.77.0.201")
	ky2 := startKeepalived(t, y2, 51, 100, "10.77.0.200", "10.77.0.201")
	waitCount(ctx, t, ky1, "Entering MASTER STATE", 1)
	defer func() {
		ky1.Stop()
		ky2.Stop()
	}()
	rep := x.fromClient(ctx, t, "--config", x.config)
	ids := rep.ids()
	for _, want := range []string{"vrrp-vrid-clash | VRID 51 (IPv4) on eth0", "vrrp-foreign-router | VRID 51 (IPv4) on eth0, source 10.77.0.31"} {
		if !slices.Contains(ids, want) {
			t.Errorf("missing %q in %q", want, ids)
		}
	}
	// lvsdiag vrrp --config: the foreign router by its source and VIPs.
	out, err := x.client.Run(ctx, x.bin, "vrrp", "--interface", "eth0", "--duration", "1s", "--config", x.config, "--output", "json")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("lvsdiag vrrp --config: %v, want exit status 1", err)
	}
	var vr struct {
		Findings []Finding `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &vr); err != nil {
		t.Fatalf("lvsdiag vrrp: %v\n%s", err, out)
	}
	foreign := findingsOf(vr.Findings, "vrrp-foreign-router")
	if len(foreign) == 0 || !strings.Contains(foreign[0].Evidence[0], "advertises VRID 51 for 10.77.0.200 10.77.0.201") {
		t.Errorf("lvsdiag vrrp --config: %+v", vr.Findings)
	}
	// keepalived's masters miss adverts among the foreign ones, so
	// backups flap: split brains, a second ARP answer and pings to the
	// VIP lost while its owner changes may follow from the clash,
	// nothing else may (a real server's loss would not).
	for _, f := range rep.findings() {
		switch {
		case strings.HasPrefix(f.ID, "vrrp-") && strings.HasPrefix(f.Subject, "VRID 51 (IPv4) on eth0"):
		case f.ID == "arp-vip-multiple", strings.HasPrefix(f.ID, "failover-"):
		case f.ID == "reach-loss" && f.Subject == "VIP "+labVIP:
		default:
			t.Errorf("unrelated finding %s: %s", f.ID, f.Subject)
		}
	}
}

// labTogether is TestLabChecklist's scenario "together".
func labTogether(ctx context.Context, t *testing.T, x *drLab) {
	rs1, rs2, rs3 := x.rs[0], x.rs[1], x.rs[2]
	for _, dev := range []string{"all", "eth0"} {
		rs1.SetSysctl("net.ipv4.conf."+dev+".arp_ignore", "0")
	}
	x.ip(ctx, t, rs2, "addr", "del", labVIP+"/32", "dev", "lo")
	x.nginx[2].Stop()
	x.nginx[2] = rs3.StartNginx(lab.HTTPOptions{Body: "an old release\n"})
	expect(t, "client", x.fromClient(ctx, t),
		"arp-vip-leak | real server 10.77.0.21 (MAC "+rs1.MAC().String()+")", "rs-content-differs | real server 10.77.0.23:80")
	expect(t, "rs1", x.onRealServer(ctx, t, 0), "rs-arp-ignore | arp_ignore on eth0")
	expect(t, "rs2", x.onRealServer(ctx, t, 1), "rs-vip-missing | VIP 10.77.0.100 on this real server")
	expect(t, "rs3", x.onRealServer(ctx, t, 2))
	// The text report, as a person reads it (go test -v shows it).
	for _, run := range []struct {
		h    *lab.Host
		args []string
	}{
		{x.client, []string{"--vip", labVIP, "--host", labSite, "--lvsd", x.lvsd}},
		{rs1, []string{"rs", "--vip", labVIP}},
	} {
		out, err := run.h.Run(ctx, x.bin, run.args...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("lvsdiag %v: %v, want exit status 1", run.args, err)
		}
		t.Logf("$ lvsdiag %s\n%s", strings.Join(run.args, " "), out)
	}
}
