//go:build vmtest

// Kernel-VM tier for import-keepalived: keepalived with a keepalived.conf
// in one namespace, lvsd with its import in another, on the same kernel;
// their IPVS tables must end up identical.

package director_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/lab"

	"gopkg.in/yaml.v3"
)

// keepalivedParityConfigs are the configs compared: keepalived's shipped
// samples that have virtual servers, and the project's representative
// ones.
func keepalivedParityConfigs(t *testing.T) []string {
	var out []string
	samples, _ := filepath.Glob("/usr/share/doc/keepalived/samples/keepalived.conf.*")
	own, _ := filepath.Glob("config/keepalived/testdata/representative/*.conf")
	only := regexp.MustCompile(os.Getenv("LVSKIT_PARITY_ONLY")) // e.g. 'PING_CHECK|UDP_CHECK'; empty matches all
	for _, p := range append(samples, own...) {
		if !only.MatchString(filepath.Base(p)) {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`(?m)^\s*virtual_server\s`).Match(b) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Skip("no keepalived samples: install keepalived (scripts/install-deps.sh)")
	}
	return out
}

// lvsdStart serializes the start of the lvsd processes.
var lvsdStart sync.Mutex

// parityConfigID is keepalived's -i for both sides, so conditional
// lines read the same.
const parityConfigID = "lvskit"

// TestVMKeepalivedParity: for each config with virtual servers,
// keepalived with the original and lvsd with the import run side by
// side, each in a fresh namespace with the interfaces the config names
// (dummies), on this VM's kernel. The real servers do not exist (their
// addresses route into a dummy link, where packets vanish): every
// checked real server fails its check on both sides, and both remove it
// or set it to weight 0 (inhibit_on_failure), or bring in the sorry
// server; but a UDP check that requires no reply passes on silence, and
// both keep its server. Scripts the configs name are stubs that exit 1 (so MISC_CHECK
// fails the same way on both). Converged means lvsd has taken out every
// real server its config checks; then keepalived's `ipvsadm -Sn` and
// `ipvsadm -Ln --thresholds` must equal lvsd's.
//
// An import that exits 0 (same behaviour) must match; one that exits 3
// (behaviour changes, e.g. a BFD_CHECK lvsd cannot run) is compared and
// reported, and must not match by chance only when the import says why.
func TestVMKeepalivedParity(t *testing.T) {
	if os.Getenv("LVSKIT_PARITY") == "" {
		// Out of `make test`: a run takes 5 to 9 minutes per kernel
		// under TCG on a shared 2-core host (keepalived's 60 s default
		// delay_loop), over the suite's budget of about 3. It once hung
		// the 6.12 guest in CI (every process blocked after keepalived's
		// shutdowns); see prepareDirector for the estimator deadlock
		// that fits and what the test does about it. `make test-parity`
		// runs it.
		t.Skip("run with LVSKIT_PARITY=1 (make test-parity): 5-9 minutes per kernel, too long for make test")
	}
	requireRoot(t)
	requireKeepalived(t)
	if _, err := exec.LookPath("ipvsadm"); err != nil {
		t.Skipf("needs ipvsadm (scripts/install-deps.sh): %v", err)
	}
	lvsd := lvsdBinary(t)
	configs := keepalivedParityConfigs(t)
	type outcome struct {
		name, result string
		faithful     bool
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		stubsMu  sync.Mutex
	)
	// All configs at once (t.Parallel would run only GOMAXPROCS, 2 in
	// the VM, at a time): each waits mostly for checks to time out.
	var wg sync.WaitGroup
	for _, conf := range configs {
		name := filepath.Base(conf)
		wg.Go(func() {
			t.Run(name, func(t *testing.T) {
				faithful, result := keepalivedParity(t, lvsd, conf, &stubsMu)
				mu.Lock()
				outcomes = append(outcomes, outcome{name, result, faithful})
				mu.Unlock()
			})
		})
	}
	wg.Wait()
	slices.SortFunc(outcomes, func(a, b outcome) int { return strings.Compare(a.name, b.name) })
	same := 0
	for _, o := range outcomes {
		t.Logf("%-45s %s", o.name, o.result)
		if strings.Contains(o.result, ": identical") {
			same++
		}
	}
	t.Logf("%d of %d configs: identical IPVS tables", same, len(outcomes))
}

// keepalivedParity runs one config on both sides and returns whether
// its import was faithful and what the comparison found.
func keepalivedParity(t *testing.T, lvsd, conf string, stubsMu *sync.Mutex) (bool, string) {
	dir := t.TempDir()
	imported := filepath.Join(dir, "lvsd.yaml")
	cmd := exec.Command(lvsd, "import-keepalived", "--skip-script-checks", "--config-id", parityConfigID, conf)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	y, err := cmd.Output()
	code := cmd.ProcessState.ExitCode()
	if code != 0 && code != 3 {
		t.Logf("import exits %d (%v):\n%s", code, err, stderr.String())
		return false, fmt.Sprintf("import exit %d: not compared", code)
	}
	faithful := code == 0
	label := fmt.Sprintf("import exit %d: ", code)
	y = withStateDir(t, y, filepath.Join(dir, "state"))
	if err := os.WriteFile(imported, y, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(imported, config.LoadOptions{})
	if err != nil {
		t.Fatalf("the import does not load: %v", err)
	}
	stubsMu.Lock()
	stubScripts(t, y)
	stubsMu.Unlock()

	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.90.0.0/24")})
	ka, lv := l.AddHost("ka"), l.AddHost("lv")
	for _, h := range []*lab.Host{ka, lv} {
		prepareDirector(t, h, cfg)
	}
	kdir := filepath.Join(dir, "ka")
	os.MkdirAll(kdir, 0o700)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// keepalived -t exits non-zero on any config error, also on those it
	// runs anyway (a persistence_timeout of 0, protocol left out, scripts
	// without enable_script_security): noted, and compared all the same.
	checkNote := ""
	if _, err := ka.Run(ctx, "keepalived", "-t", "-f", conf, "-i", parityConfigID); err != nil {
		checkNote = " (keepalived -t exits non-zero)"
	}
	ka.Start(context.Background(), "keepalived", "--dont-fork", "--log-console", "--log-detail", "-i", parityConfigID,
		"-f", conf, "-p", filepath.Join(kdir, "keepalived.pid"), "-r", filepath.Join(kdir, "vrrp.pid"),
		"-c", filepath.Join(kdir, "checkers.pid"))
	// lvsd processes start one at a time, each until it has installed
	// its services: twenty modprobe runs at once under TCG have been
	// seen to hang past the test's deadline on 6.1.
	lvsdStart.Lock()
	lp := lv.Start(context.Background(), lvsd, "--config", imported, "--log-level", "debug")
	services := len(cfg.Desired())
	installed := time.Now().Add(60 * time.Second)
	for strings.Count(ipvsadm(t, lv, "-Sn"), "-A ") < services && time.Now().Before(installed) {
		select {
		case <-lp.Done():
			lvsdStart.Unlock()
			t.Fatalf("lvsd stopped: %v\n%s", lp.Err(), lp.Output())
		case <-time.After(200 * time.Millisecond): // polling a condition, with a deadline
		}
	}
	lvsdStart.Unlock()

	// lvsd has converged when it has installed every service and every
	// real server it checks is out (absent or weight 0): none of them
	// exists.
	checked := checkedRealServers(cfg)
	wait := max(150*time.Second, slowestFailure(cfg)+30*time.Second)
	deadline := time.Now().Add(wait)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("lvsd did not take out its checked real servers %v within %v:\n%s\nlvsd:\n%s", checked, wait, ipvsadm(t, lv, "-Sn"), lp.Output())
		}
		if dump := ipvsadm(t, lv, "-Sn"); strings.Count(dump, "-A ") == services && allOut(dump, checked) {
			break
		}
		select {
		case <-lp.Done():
			t.Fatalf("lvsd stopped: %v\n%s", lp.Err(), lp.Output())
		default:
		}
		time.Sleep(time.Second) // polling a condition, with a deadline
	}
	want := canonical(ipvsadm(t, lv, "-Sn"))
	wantThr := canonicalThresholds(ipvsadm(t, lv, "-Ln", "--thresholds"))
	// keepalived gets at least 100 s more to reach the same table (a
	// check of delay_loop 60 s may start a minute after lvsd's).
	if later := time.Now().Add(100 * time.Second); later.After(deadline) {
		deadline = later
	}
	var got, gotThr string
	for {
		got, gotThr = canonical(ipvsadm(t, ka, "-Sn")), canonicalThresholds(ipvsadm(t, ka, "-Ln", "--thresholds"))
		if got == want && gotThr == wantThr || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second) // polling a condition, with a deadline
	}
	if got == want && gotThr == wantThr {
		return faithful, label + "identical" + checkNote
	}
	msg := fmt.Sprintf("ipvsadm -Sn differs:\nkeepalived:\n%s\nlvsd:\n%s\nthresholds, keepalived:\n%s\nlvsd:\n%s", got, want, gotThr, wantThr)
	if faithful {
		out := lp.Output()
		t.Errorf("the import exits 0 (same behaviour) but the tables differ: %s\nimport:\n%s\nlvsd's log (end):\n%s", msg, stderr.String(), out[max(0, len(out)-4000):])
		return faithful, label + "DIFFERENT" + checkNote
	}
	t.Logf("the import exits 3 and the tables differ, as it said: %s\nimport:\n%s", msg, stderr.String())
	return faithful, label + "different, as the import said" + checkNote
}

// withStateDir points the imported config's state_dir at dir, so
// parallel lvsd processes keep apart.
func withStateDir(t *testing.T, y []byte, dir string) []byte {
	var doc yaml.Node
	if err := yaml.Unmarshal(y, &doc); err != nil || len(doc.Content) == 0 {
		t.Fatalf("reading the import: %v", err)
	}
	root := doc.Content[0]
	var lvsd *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "lvsd" {
			lvsd = root.Content[i+1]
		}
	}
	if lvsd == nil {
		lvsd = &yaml.Node{Kind: yaml.MappingNode}
		root.Content = append([]*yaml.Node{{Kind: yaml.ScalarNode, Value: "lvsd"}, lvsd}, root.Content...)
	}
	lvsd.Content = append(lvsd.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "state_dir"}, &yaml.Node{Kind: yaml.ScalarNode, Value: dir})
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stubScripts creates, in the VM's throwaway root, each program the
// import runs that does not exist: a root-owned script that exits 1.
func stubScripts(t *testing.T, y []byte) {
	var doc any
	if err := yaml.Unmarshal(y, &doc); err != nil {
		t.Fatal(err)
	}
	var progs []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(x, k)
			}
		case []any:
			switch key {
			case "command", "up_command", "down_command", "master", "backup", "fault", "stop", "any":
				if len(v) > 0 {
					if s, ok := v[0].(string); ok {
						if f := strings.Fields(s); len(f) > 0 {
							progs = append(progs, f[0])
						}
					}
				}
				return
			}
			for _, x := range v {
				walk(x, "")
			}
		}
	}
	walk(doc, "")
	for _, p := range progs {
		if !filepath.IsAbs(p) {
			if _, err := exec.LookPath(p); err == nil {
				continue
			}
			p = filepath.Join("/usr/local/bin", p)
		}
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if os.Getenv("LVSKIT_IN_VM") == "" {
			t.Fatalf("%s is missing; the test only creates it inside the VM", p)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// prepareDirector gives h the interfaces the config names (dummies,
// beside the lab's eth0) and a default route into a dummy link, so that
// real servers are routable and unreachable. It turns IPVS's rate
// estimation off in h (net.ipv4.vs.run_estimation=0, before any service
// exists, so no estimation kthread ever starts there): since 6.2 each
// namespace's estimation kthread 0 takes the global __ip_vs_mutex, and
// other paths stop it while holding a mutex; a deadlock there blocks
// every IPVS user of the kernel, as one CI run of this test on 6.12
// looked (upstream reworked it in 2026, "ipvs: fix races around
// est_mutex and est_cpulist"). Forty namespaces adding and deleting
// services at once make such a race likelier; the comparison reads no
// rates.
func prepareDirector(t *testing.T, h *lab.Host, cfg *config.Config) {
	h.SetSysctl("net.ipv4.vs.run_estimation", "0")
	ifs := map[string]bool{lab.HostInterface: true}
	// Each interface gets an address of its own, as on a director (lvsd
	// needs one on a VRRP instance's interface to send from).
	add := func(name string) {
		if name != "" && !ifs[name] {
			ifs[name] = true
			h.AddDummy(name, fmt.Sprintf("198.51.100.%d/32", len(ifs)))
			run(t, h, "ip", "link", "set", name, "up")
		}
	}
	for _, in := range cfg.VRRP.Instances {
		add(in.Interface)
		for _, ti := range in.TrackInterfaces {
			add(ti.Name)
		}
		for _, va := range in.VirtualAddresses {
			add(va.Dev)
		}
	}
	if sd := cfg.IPVS.SyncDaemon; sd != nil {
		add(sd.Interface)
	}
	h.AddDummy("rsnet", "198.18.0.1/15", "2001:db8:ffff::1/64")
	run(t, h, "ip", "route", "add", "default", "dev", "rsnet")
	run(t, h, "ip", "-6", "route", "add", "default", "dev", "rsnet")
}

// slowestFailure is how long the slowest check of cfg may take to take
// its server out: its first round comes within an interval, and fails
// after every attempt has timed out (SMTP_CHECK's sample: 30s timeouts,
// two retries 5s apart, a 60s interval).
func slowestFailure(cfg *config.Config) time.Duration {
	var worst time.Duration
	for _, ds := range cfg.Desired() {
		for _, rs := range ds.RealServers {
			if hc := rs.HealthCheck; hc != nil {
				d := hc.Interval + time.Duration(hc.Retry+1)*hc.Timeout + time.Duration(hc.Retry)*hc.RetryDelay
				worst = max(worst, time.Duration(hc.Fall)*d)
			}
		}
	}
	return worst
}

func checkedRealServers(cfg *config.Config) map[ipvs.ServiceKey][]ipvs.RealServerKey {
	out := map[ipvs.ServiceKey][]ipvs.RealServerKey{}
	for _, ds := range cfg.Desired() {
		for _, rs := range ds.RealServers {
			hc := rs.HealthCheck
			if hc == nil || hc.Type == config.CheckUDP && !hc.RequireReply && hc.Reply == "" {
				// A UDP check that needs no reply passes on silence,
				// on both sides: its server stays in.
				continue
			}
			out[ds.Service.ServiceKey] = append(out[ds.Service.ServiceKey], rs.Key())
		}
	}
	return out
}

var realServerLine = regexp.MustCompile(`^-a -(?:[tus] (\S+)|f (\d+)) -r (\S+) .*-w (\d+)`)

// allOut reports whether every checked real server is absent from the
// `ipvsadm -Sn` dump or at weight 0.
func allOut(dump string, checked map[ipvs.ServiceKey][]ipvs.RealServerKey) bool {
	up := map[string]bool{}
	for _, line := range strings.Split(dump, "\n") {
		m := realServerLine.FindStringSubmatch(line)
		if m == nil || m[4] == "0" {
			continue
		}
		svc := m[1]
		if svc == "" {
			svc = "fwmark " + m[2]
		}
		up[svc+" "+m[3]] = true
	}
	for k, rss := range checked {
		svc := ""
		if k.FWMark == 0 {
			svc = netip.AddrPortFrom(k.Address, k.Port).String()
		} else {
			svc = "fwmark " + strconv.Itoa(int(k.FWMark))
		}
		for _, rs := range rss {
			if up[svc+" "+rs.String()] {
				return false
			}
		}
	}
	return true
}

func ipvsadm(t *testing.T, h *lab.Host, args ...string) string {
	return run(t, h, "ipvsadm", args...)
}

// canonical sorts an `ipvsadm -Sn` dump: the kernel lists real servers
// in the order they were added, which keepalived and lvsd need not
// share.
func canonical(dump string) string {
	lines := strings.Split(strings.TrimSpace(dump), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// canonicalThresholds sorts `ipvsadm -Ln --thresholds`, each real
// server line prefixed with its service.
func canonicalThresholds(out string) string {
	var lines []string
	svc := ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "  ->") && !strings.Contains(line, "RemoteAddress"):
			lines = append(lines, svc+" | "+strings.Join(strings.Fields(line), " "))
		case strings.HasPrefix(line, "TCP") || strings.HasPrefix(line, "UDP") || strings.HasPrefix(line, "SCTP") || strings.HasPrefix(line, "FWM"):
			svc = strings.Join(strings.Fields(line), " ")
			lines = append(lines, svc)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
