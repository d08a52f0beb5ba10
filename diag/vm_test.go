//go:build vmtest

package diag

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/lab"
)

// The VM tier: the director checks against the kernel's real IPVS. A
// director namespace with a direct-routing service, three real servers
// (one quiesced), real connections from a client; lvsdiag (bin/lvsdiag,
// from make build) runs in the director's namespace and reads IPVS over
// netlink, /proc/net/ip_vs_conn and the net.ipv4.vs sysctls.

func lvsdiagBinary(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "bin", "lvsdiag"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("lvsdiag binary missing (%v): run make build first", err)
	}
	return p
}

type vmReport struct {
	Checks []struct {
		ID       string    `json:"id"`
		Status   string    `json:"status"`
		Reason   string    `json:"reason"`
		Notes    []string  `json:"notes"`
		Findings []Finding `json:"findings"`
	} `json:"checks"`
}

func (r vmReport) check(id string) (status string, notes []string, ids []string) {
	for _, c := range r.Checks {
		if c.ID == id {
			for _, f := range c.Findings {
				ids = append(ids, f.ID+" | "+f.Subject)
			}
			return c.Status, c.Notes, ids
		}
	}
	return "", nil, nil
}

// evidence is the evidence of a check's findings, one per line: what a
// failing test shows of the report, whose whole text CI may cut.
func (r vmReport) evidence(id string) string {
	var b strings.Builder
	for _, c := range r.Checks {
		if c.ID != id {
			continue
		}
		for _, f := range c.Findings {
			fmt.Fprintf(&b, "%s | %s:\n  %s\n", f.ID, f.Subject, strings.Join(f.Evidence, "\n  "))
		}
	}
	return b.String()
}

func vmLVSDiag(ctx context.Context, t *testing.T, h *lab.Host, args ...string) vmReport {
	t.Helper()
	out, err := h.Run(ctx, lvsdiagBinary(t), append(args, "--output", "json")...)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("lvsdiag on %s: %v", h.Name, err)
	}
	var rep vmReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("decoding lvsdiag's report: %v\n%s", err, out)
	}
	t.Logf("lvsdiag %s on %s:\n%s", strings.Join(args, " "), h.Name, out)
	return rep
}

func TestVMDirectorChecks(t *testing.T) {
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	client := l.AddHost("client", "10.77.0.2/24")
	dir := l.AddHost("director", "10.77.0.10/24")
	vip := netip.MustParseAddrPort("10.77.0.100:80")
	dir.AddAddr(lab.HostInterface, "10.77.0.100/32")
	for _, k := range []string{"all", "default", lab.HostInterface} {
		dir.SetSysctl("net.ipv4.conf."+k+".send_redirects", "0")
	}
	var rss []netip.Addr
	for i := range 3 {
		h := l.AddHost(fmt.Sprintf("rs%d", i+1), fmt.Sprintf("10.77.0.%d/24", 21+i))
		h.ConfigureDRRealServer(vip.Addr().String())
		h.StartGoHTTP(lab.HTTPOptions{Body: "same\n"})
		rss = append(rss, h.Addr())
	}

	c, err := ipvs.New(ipvs.Options{NetNS: dir.NetNSPath()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key := ipvs.TCPKey(vip)
	if err := c.AddService(ipvs.Service{ServiceKey: key, Scheduler: "rr", NetmaskBits: 32}); err != nil {
		t.Fatal(err)
	}
	for i, a := range rss {
		w := int32(1)
		if i == 2 {
			w = 0 // quiesced
		}
		if err := c.AddRealServer(key, ipvs.RealServer{Address: a, Port: 80, Forwarding: ipvs.DirectRoute, Weight: w, UpperThreshold: uint32(100 * (i + 1))}); err != nil {
			t.Fatal(err)
		}
	}
	// Real connections through the VIP, so the connection table has
	// entries for the two servers in rotation.
	for range 4 {
		if _, err := client.HTTPGet(ctx, "http://10.77.0.100/"); err != nil {
			t.Fatal(err)
		}
	}

	args := []string{"--vip", "10.77.0.100", "--port", "80", "--listen", "500ms"}
	rep := vmLVSDiag(ctx, t, dir, args...)
	status, notes, ids := rep.check("director")
	wantNotes := []string{
		"IPVS service TCP 10.77.0.100:80 (rr)",
		"TCP 10.77.0.100:80 -> 10.77.0.21:80 Route weight 1, thresholds 0/100",
		"TCP 10.77.0.100:80 -> 10.77.0.23:80 Route weight 0, thresholds 0/300",
		"the VIP is on eth0",
	}
	for _, n := range wantNotes {
		if !slices.ContainsFunc(notes, func(s string) bool { return strings.HasPrefix(s, n) }) {
			t.Errorf("director notes lack %q:\n%s", n, strings.Join(notes, "\n"))
		}
	}
	// The kernel's defaults: expire_nodest_conn 0 (info); the quiesced
	// server.
	want := []string{"director-expire-nodest-conn | net.ipv4.vs.expire_nodest_conn", "director-rs-quiesced | real server 10.77.0.23:80"}
	slices.Sort(ids)
	if status != "findings" || !slices.Equal(ids, want) {
		t.Errorf("director: %s %q, want %q", status, ids, want)
	}
	if status, notes, _ := rep.check("connections"); status == "could-not-run" || !slices.ContainsFunc(notes, func(s string) bool {
		return strings.Contains(s, "for 10.77.0.100:80") && !strings.Contains(s, " 0 for")
	}) {
		t.Errorf("connections: %s %q", status, notes)
	}

	// Sysctls changed on the director: each shows up with its consequence.
	dir.SetSysctl("net.ipv4.conf.all.send_redirects", "1")
	dir.SetSysctl("net.ipv4.vs.expire_nodest_conn", "1")
	dir.SetSysctl("net.ipv4.vs.conn_reuse_mode", "0")
	// A persistent service with a quiesced server: templates keep pinning.
	if err := c.UpdateService(ipvs.Service{ServiceKey: key, Scheduler: "rr", Flags: ipvs.FlagPersistent, Timeout: 300, NetmaskBits: 32}); err != nil {
		t.Fatal(err)
	}
	rep = vmLVSDiag(ctx, t, dir, args...)
	_, _, ids = rep.check("director")
	slices.Sort(ids)
	want = []string{
		"director-conn-reuse-mode | net.ipv4.vs.conn_reuse_mode",
		"director-expire-quiescent-template | net.ipv4.vs.expire_quiescent_template",
		"director-rs-quiesced | real server 10.77.0.23:80",
		"director-send-redirects | send_redirects on all",
	}
	if !slices.Equal(ids, want) {
		t.Errorf("director after the changes: %q, want %q", ids, want)
	}

	// No service for another port.
	rep = vmLVSDiag(ctx, t, dir, "--vip", "10.77.0.100", "--port", "443", "--listen", "500ms")
	if _, _, ids := rep.check("director"); !slices.Contains(ids, "director-no-service | IPVS service for 10.77.0.100:443") {
		t.Errorf("port 443: %q", ids)
	}
}
