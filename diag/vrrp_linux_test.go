//go:build linux

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

	"github.com/lvskit/lvskit/director/vrrp"
	"github.com/lvskit/lvskit/internal/lab"
)

// The network tier of the census: Debian's keepalived on lab hosts,
// lvsdiag's listener in another host on the same bridge.

func labContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func requireKeepalived(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skipf("needs Debian's keepalived (scripts/install-deps.sh): %v", err)
	}
}

// startKeepalived runs keepalived in h with one version 3 instance, its
// own config and pid files in a temporary directory.
func startKeepalived(t *testing.T, h *lab.Host, vrid, priority int, vips ...string) *lab.Process {
	t.Helper()
	var addrs strings.Builder
	for _, v := range vips {
		fmt.Fprintf(&addrs, "\t\t%s/32 dev eth0\n", v)
	}
	conf := fmt.Sprintf(`global_defs {
	router_id %s
}
vrrp_instance VI_1 {
	state BACKUP
	interface eth0
	version 3
	virtual_router_id %d
	priority %d
	advert_int 0.2
	virtual_ipaddress {
%s	}
}
`, h.Name, vrid, priority, addrs.String())
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return h.Start(t.Context(), "keepalived", "--vrrp", "--dont-fork", "--log-console",
		"-f", path, "-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"),
		"-c", filepath.Join(dir, "checkers.pid"))
}

// waitCount waits until p's output holds substr n times.
func waitCount(ctx context.Context, t *testing.T, p *lab.Process, substr string, n int) {
	t.Helper()
	for strings.Count(p.Output(), substr) < n {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %d x %q from %s: %v; output:\n%s", n, substr, p, ctx.Err(), p.Output())
		case <-p.Done():
			t.Fatalf("%s exited: %v; output:\n%s", p, p.Err(), p.Output())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// census listens from h for d, through the same code lvsdiag uses.
func census(ctx context.Context, t *testing.T, h *lab.Host, d time.Duration) (*VRRPCensus, []Finding) {
	t.Helper()
	var conn *vrrp.SnoopConn
	if err := h.Do(func() error {
		var err error
		conn, err = vrrp.Snoop(h.Interface)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c, err := ListenVRRP(ctx, conn, VRRPListenOptions{Interface: h.Interface, Duration: d})
	if err != nil {
		t.Fatal(err)
	}
	fs := c.Findings()
	var b strings.Builder
	WriteVRRPReport(&b, c, fs, Text)
	t.Logf("census from %s:\n%s", h.Name, b.String())
	return c, fs
}

func findingsOf(fs []Finding, id string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}

// buildLVSDiag builds the lvsdiag binary once per test binary.
func buildLVSDiag(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lvsdiag")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/lvskit/lvskit/cmd/lvsdiag")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building lvsdiag: %v\n%s", err, out)
	}
	return bin
}

// TestLabCensusNamesVRIDClash: two keepalived pairs on one bridge, the
// second reusing the first's VRID for other addresses. lvsdiag, run as a
// binary in a third host, names both masters and the clash, and exits 1.
func TestLabCensusNamesVRIDClash(t *testing.T) {
	t.Parallel()
	requireKeepalived(t)
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	x1, x2 := l.AddHost("x1", "10.77.0.2/24"), l.AddHost("x2", "10.77.0.3/24")
	y1, y2 := l.AddHost("y1", "10.77.0.4/24"), l.AddHost("y2", "10.77.0.5/24")
	oncall := l.AddHost("oncall", "10.77.0.9/24")
	ctx := labContext(t)
	bin := buildLVSDiag(t)

	kx1 := startKeepalived(t, x1, 51, 150, "10.77.0.100")
	kx2 := startKeepalived(t, x2, 51, 100, "10.77.0.100")
	ky1 := startKeepalived(t, y1, 51, 150, "10.77.0.200", "10.77.0.201")
	ky2 := startKeepalived(t, y2, 51, 100, "10.77.0.200", "10.77.0.201")
	waitCount(ctx, t, kx1, "Entering MASTER STATE", 1)
	waitCount(ctx, t, ky1, "Entering MASTER STATE", 1)
	for _, p := range []*lab.Process{kx2, ky2} {
		waitCount(ctx, t, p, "Entering BACKUP STATE", 1)
	}

	_, fs := census(ctx, t, oncall, 1500*time.Millisecond)
	clash := findingsOf(fs, "vrrp-vrid-clash")
	if len(clash) != 1 {
		t.Fatalf("findings %+v, want one vrrp-vrid-clash", fs)
	}
	// keepalived discards the other group's adverts ("unexpected ip
	// number count") but, seeing them, its masters miss some of their
	// own: the backups of both pairs flap to master now and then. So
	// each group's line names its master, perhaps with its backup.
	for _, want := range [][2]string{{"10.77.0.2", "VRID 51 for 10.77.0.100 "}, {"10.77.0.4", "VRID 51 for 10.77.0.200 10.77.0.201 "}} {
		if !slices.ContainsFunc(clash[0].Evidence, func(e string) bool {
			return strings.Contains(e, want[0]) && strings.Contains(e, want[1])
		}) {
			t.Errorf("clash evidence lacks %s advertising %q:\n%s", want[0], want[1], strings.Join(clash[0].Evidence, "\n"))
		}
	}

	// The binary, as on-call would run it.
	out, err := oncall.Run(ctx, bin, "vrrp", "--interface", "eth0", "--duration", "1s", "--output", "json")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("lvsdiag vrrp: %v, want exit status 1", err)
	}
	var report struct {
		Routers []struct {
			VRID     int `json:"vrid"`
			Speakers []struct {
				Source string `json:"source"`
			} `json:"speakers"`
		} `json:"routers"`
		Findings []Finding `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("decoding lvsdiag's JSON: %v\n%s", err, out)
	}
	var seen []string
	for _, r := range report.Routers {
		for _, s := range r.Speakers {
			seen = append(seen, fmt.Sprintf("%d/%s", r.VRID, s.Source))
		}
	}
	if !slices.Contains(seen, "51/10.77.0.2") || !slices.Contains(seen, "51/10.77.0.4") ||
		len(findingsOf(report.Findings, "vrrp-vrid-clash")) != 1 {
		t.Errorf("lvsdiag saw %v and reported %+v", seen, report.Findings)
	}
}

// TestLabCensusSeesSplitBrain: a keepalived pair, protocol 112 dropped
// by nftables in the backup's namespace: both become master and the
// census reports it; after the rule goes, it is clean again.
func TestLabCensusSeesSplitBrain(t *testing.T) {
	t.Parallel()
	requireKeepalived(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skipf("needs nftables: %v", err)
	}
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	s1, s2 := l.AddHost("s1", "10.77.0.2/24"), l.AddHost("s2", "10.77.0.3/24")
	oncall := l.AddHost("oncall", "10.77.0.9/24")
	ctx := labContext(t)

	k1 := startKeepalived(t, s1, 60, 150, "10.77.0.100")
	k2 := startKeepalived(t, s2, 60, 100, "10.77.0.100")
	waitCount(ctx, t, k1, "Entering MASTER STATE", 1)
	waitCount(ctx, t, k2, "Entering BACKUP STATE", 1)

	for _, args := range [][]string{
		{"add", "table", "inet", "lvskit_test"},
		{"add", "chain", "inet", "lvskit_test", "input", "{ type filter hook input priority 0; }"},
		{"add", "rule", "inet", "lvskit_test", "input", "ip", "protocol", "vrrp", "drop"},
	} {
		if _, err := s2.Run(ctx, "nft", args...); err != nil {
			t.Fatal(err)
		}
	}
	waitCount(ctx, t, k2, "Entering MASTER STATE", 1)

	c, fs := census(ctx, t, oncall, 1500*time.Millisecond)
	sb := findingsOf(fs, "vrrp-split-brain")
	if len(sb) != 1 || !strings.Contains(sb[0].Evidence[0], "10.77.0.2 (priority 150) and 10.77.0.3 (priority 100) both advertised") {
		t.Fatalf("findings %+v, want a split brain of 10.77.0.2 and 10.77.0.3", fs)
	}
	if got := c.Routers[0].Masters(); len(got) != 2 {
		t.Errorf("masters %v", got)
	}

	if _, err := s2.Run(ctx, "nft", "delete", "table", "inet", "lvskit_test"); err != nil {
		t.Fatal(err)
	}
	waitCount(ctx, t, k2, "Entering BACKUP STATE", 2)
	// The healed pair: only s1 advertises.
	_, fs = census(ctx, t, oncall, time.Second)
	if len(fs) != 0 {
		t.Errorf("findings after healing: %+v", fs)
	}
}
