//go:build vmtest

package director_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/internal/lab"
)

// drillReport is the part of `lvsdiag drill --output json` the VM tests
// assert on.
type drillReport struct {
	Director    string    `json:"director"`
	NewDirector string    `json:"new_director"`
	Requested   time.Time `json:"requested"`
	Measured    struct {
		Released     *float64 `json:"released_seconds"`
		TookOver     *float64 `json:"took_over_seconds"`
		FirstGARP    *float64 `json:"first_garp_seconds"`
		FirstForward *float64 `json:"first_forward_seconds"`
		Restored     *float64 `json:"restored_seconds"`
		Requests     int      `json:"requests"`
		Failed       int      `json:"failed"`
		FailedRest   int      `json:"failed_restore"`
		Outage       float64  `json:"longest_outage_seconds"`
		Long         int      `json:"long_lived"`
		LongBroken   int      `json:"long_lived_broken"`
	} `json:"measured"`
	Findings []struct {
		ID string `json:"id"`
	} `json:"findings"`
}

func lvsdiagBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(lvsdBinary(t)), "lvsdiag")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("lvsdiag binary missing (%v): run make build first", err)
	}
	return p
}

// runDrill runs lvsdiag drill on h, logs its text report and returns the
// JSON one.
func runDrill(t *testing.T, h *lab.Host, args ...string) drillReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := h.Run(ctx, lvsdiagBin(t), append([]string{"drill"}, append(args, "--output", "json")...)...)
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("lvsdiag drill on %s: %v\n%s", h.Name, err, out)
	}
	var rep drillReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("decoding the drill report: %v\n%s", err, out)
	}
	t.Logf("lvsdiag drill %s:\n%s", strings.Join(args, " "), out)
	return rep
}

func secs(p *float64) string {
	if p == nil {
		return "not seen"
	}
	return (time.Duration(*p * float64(time.Second))).Round(time.Millisecond).String()
}

func sockStatus(t *testing.T, sock string) statusapi.Status {
	t.Helper()
	var st statusapi.Status
	if err := json.Unmarshal([]byte(unixGet(t, sock, "/status")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func vrrpStateOf(t *testing.T, sock string) string {
	st := sockStatus(t, sock)
	if len(st.VRRP) != 1 {
		return ""
	}
	return st.VRRP[0].State
}

const drillVRRPConfig = `lvsd:
  state_dir: %[1]s
  status_listen: unix:%[1]s/status.sock
  metrics_listen: ""
ipvs:
  sloppy_tcp: true
vrrp:
  instances:
    - name: VI_drill
      interface: %[2]s
      virtual_router_id: 92
      priority: %[3]d
      virtual_addresses: [10.92.0.100]
virtual_services:
  - name: web
    address: 10.92.0.100
    port: 80
    scheduler: mh
    scheduler_flags: [mh-port, mh-fallback]
    forwarding: direct_route
    on_failure: quiesce
    health_check: {type: tcp, interval: 1s, timeout: 500ms, rise: 1, fall: 2}
    real_servers: [{address: 10.92.0.21}, {address: 10.92.0.22}]
`

// TestVMDrillVRRP: the VRRP demo pair (lvs1 priority 150, lvs2 100, two
// DR real servers, a client on their link), both directors with mh and
// sloppy_tcp so that a connection survives the handover. lvsdiag drill
// from the client steps lvs1 down through its socket: lvs2 becomes
// master, its gratuitous ARP reaches the client, few new connections
// fail and no long-lived one breaks; at the end lvs1 is master again.
func TestVMDrillVRRP(t *testing.T) {
	bin := lvsdBinary(t)
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.92.0.0/24")})
	client := l.AddHost("client", "10.92.0.2/24")
	for i := range 2 {
		rs := l.AddHost(fmt.Sprintf("rs%d", i+1), fmt.Sprintf("10.92.0.%d/24", 21+i))
		rs.ConfigureDRRealServer("10.92.0.100")
		rs.StartGoHTTP(lab.HTTPOptions{}).SetKeepAlivesEnabled(true)
	}
	var socks []string
	for i, prio := range []int{150, 100} {
		h := l.AddHost(fmt.Sprintf("lvs%d", i+1), fmt.Sprintf("10.92.0.%d/24", 11+i))
		for _, k := range []string{"all", "default", lab.HostInterface} {
			h.SetSysctl("net.ipv4.conf."+k+".send_redirects", "0")
		}
		state := t.TempDir()
		cfg := filepath.Join(state, "lvsd.yaml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(drillVRRPConfig, state, lab.HostInterface, prio)), 0o600); err != nil {
			t.Fatal(err)
		}
		h.Start(context.Background(), bin, "--config", cfg, "--log-level", "debug")
		socks = append(socks, filepath.Join(state, "status.sock"))
	}
	for _, s := range socks {
		waitFor(t, 60*time.Second, "lvsd's socket "+s, func() bool { _, err := os.Stat(s); return err == nil })
	}
	waitFor(t, 60*time.Second, "lvs1 master", func() bool { return vrrpStateOf(t, socks[0]) == "master" })
	waitFor(t, 30*time.Second, "lvs2 backup", func() bool { return vrrpStateOf(t, socks[1]) == "backup" })
	// A starved VM may miss adverts: the test's figures assume a pair
	// that has settled (lvs1 master, lvs2 backup, no flap for 3 s).
	waitFor(t, 60*time.Second, "the pair settled", func() bool {
		st := sockStatus(t, socks[0]).VRRP[0]
		return st.State == "master" && time.Since(st.Since) > 3*time.Second && vrrpStateOf(t, socks[1]) == "backup"
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := client.WaitTCP(ctx, "10.92.0.100:80"); err != nil {
		t.Fatal(err)
	}

	// lvs2's socket first: the drill acts on whichever is master.
	rep := runDrill(t, client, "--vip", "10.92.0.100", "--lvsd", "unix:"+socks[1], "--lvsd", "unix:"+socks[0],
		"--interface", lab.HostInterface, "--observe", "5s", "--long", "8", "--timeout", "3s")
	m := rep.Measured
	t.Logf("FIGURE vrrp drill: let go %s, lvs2 master %s, first GARP %s, first answer through lvs2 %s, %d of %d new connections failed (longest outage %.3fs), %d of %d long-lived broken, restored %s after the drill ended (%d failed in the hand-back)",
		secs(m.Released), secs(m.TookOver), secs(m.FirstGARP), secs(m.FirstForward), m.Failed, m.Requests, m.Outage, m.LongBroken, m.Long, secs(m.Restored), m.FailedRest)
	if !strings.HasSuffix(rep.Director, socks[0]) || !strings.HasSuffix(rep.NewDirector, socks[1]) {
		t.Errorf("acted on %q, new master %q: want lvs1 then lvs2", rep.Director, rep.NewDirector)
	}
	if m.Released == nil || m.TookOver == nil || m.FirstGARP == nil || m.FirstForward == nil || m.Restored == nil {
		t.Errorf("a step of the handover was not seen: %+v", m)
	}
	if m.Requests < 40 || m.Failed > m.Requests/5 || m.FailedRest > m.Requests/5 {
		t.Errorf("%d and %d of %d new connections failed: more than a fifth", m.Failed, m.FailedRest, m.Requests)
	}
	if m.Long != 8 || m.LongBroken > 1 {
		t.Errorf("%d of %d long-lived connections broke with mh and sloppy_tcp", m.LongBroken, m.Long)
	}
	// The original state: lvs1 master at its priority, lvs2 backup.
	waitFor(t, 10*time.Second, "lvs1 master again", func() bool { return vrrpStateOf(t, socks[0]) == "master" })
	st := sockStatus(t, socks[0]).VRRP[0]
	if st.Priority != 150 || !st.SteppedDownUntil.IsZero() || vrrpStateOf(t, socks[1]) != "backup" {
		t.Errorf("after the drill: lvs1 %+v, lvs2 %s", st, vrrpStateOf(t, socks[1]))
	}

	// The state is back: a second drill runs the same way (its text
	// report is the README's example).
	waitFor(t, 60*time.Second, "the pair settled again", func() bool {
		st := sockStatus(t, socks[0]).VRRP[0]
		return st.State == "master" && time.Since(st.Since) > 3*time.Second && vrrpStateOf(t, socks[1]) == "backup"
	})
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := client.Run(ctx, lvsdiagBin(t), "drill", "--vip", "10.92.0.100", "--lvsd", "unix:"+socks[0], "--lvsd", "unix:"+socks[1],
		"--interface", lab.HostInterface, "--long", "8", "--timeout", "3s")
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("second drill: %v\n%s", err, out)
	}
	t.Logf("second drill, text report:\n%s", out)
	if !strings.Contains(out, "master again") {
		t.Errorf("the second drill did not see lvs1 master again:\n%s", out)
	}
}

// TestVMDrillBGP: the BGP lab (BIRD with ECMP over three lvsd directors,
// mh and sloppy_tcp). lvsdiag drill from the client withdraws the VIP on
// d1 through its socket: the router's route loses d1 and gets it back
// when the drill ends; no request fails and no long-lived connection
// breaks.
func TestVMDrillBGP(t *testing.T) {
	bl := newBGPLab(t, bgpLabOptions{})
	d1, d2, d3 := "10.83.0.11", "10.83.0.12", "10.83.0.13"
	bl.waitHops(t, 90*time.Second, d1, d2, d3)
	var socks []string
	for _, s := range bl.state {
		socks = append(socks, "unix:"+filepath.Join(s, "status.sock"))
	}
	start := time.Now()
	rep := runDrill(t, bl.client, "--vip", bgpVIP, "--lvsd", socks[0], "--lvsd", socks[1], "--lvsd", socks[2],
		"--kind", "bgp", "--observe", "5s", "--long", "12", "--timeout", "3s")
	m := rep.Measured
	changes := bl.fibChanges(t)
	var during []string
	for _, c := range changes {
		if c.After(start) {
			during = append(during, fmt.Sprintf("%+.3fs", c.Sub(rep.Requested).Seconds()))
		}
	}
	t.Logf("FIGURE bgp drill: d1 withdrew %s after the request, router FIB changes at %v (from the request), %d of %d new connections failed, %d of %d long-lived broken, re-announced %s after the drill ended",
		secs(m.Released), during, m.Failed+m.FailedRest, m.Requests, m.LongBroken, m.Long, secs(m.Restored))
	if m.Released == nil || m.Restored == nil {
		t.Errorf("the withdraw or the re-announce was not seen: %+v", m)
	}
	if len(during) < 2 {
		t.Errorf("the router's FIB changed %d times during the drill, want the withdraw and the re-announce", len(during))
	}
	if m.Failed+m.FailedRest > 2 || m.LongBroken > 1 {
		t.Errorf("%d requests failed and %d long-lived connections broke: the other directors should have served", m.Failed+m.FailedRest, m.LongBroken)
	}
	bl.waitHops(t, 30*time.Second, d1, d2, d3)
}
