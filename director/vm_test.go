//go:build vmtest

// Kernel-VM tier for lvsd: the built binary (make build) programs real
// IPVS in a lab. Run with `make test-vm`.

package director_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/lab"
)

// unixGet fetches a path from an HTTP server on a unix socket.
func unixGet(t *testing.T, sock, path string) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: 30 * time.Second}
	resp, err := c.Get("http://lvsd" + path)
	if err != nil {
		t.Fatalf("GET %s on %s: %v", path, sock, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s on %s: %s\n%s", path, sock, resp.Status, b)
	}
	return string(b)
}

func run(t *testing.T, h *lab.Host, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := h.Run(ctx, name, args...)
	if err != nil {
		t.Fatalf("%s %s on %s: %v\n%s", name, strings.Join(args, " "), h.Name, err, out)
	}
	return out
}

// waitFor polls cond every 50 ms until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
	return time.Since(start)
}

// directorLab is a client on 10.79.0.0/24 and three real servers on
// 10.77.0.0/24, both routed through the director, so DR (replies via the
// director as a plain router) and NAT (replies de-NATed by IPVS) work on
// one bridge.
type directorLab struct {
	lab      *lab.Lab
	client   *lab.Host
	director *lab.Host
	rs       []*lab.Host
	nginx    []*lab.Process
}

const (
	drVIP  = "10.79.0.100"
	natVIP = "10.79.0.200"
)

func newDirectorLab(t *testing.T) *directorLab {
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.79.0.0/24")})
	dl := &directorLab{lab: l}
	dl.client = l.AddHost("client", "10.79.0.2/24")
	dl.client.SetDefaultRoute(netip.MustParseAddr("10.79.0.1"))
	dl.director = l.AddHost("director", "10.79.0.1/24", "10.77.0.10/24")
	dl.director.EnableForwarding()
	for _, k := range []string{"all", "default", lab.HostInterface} {
		dl.director.SetSysctl("net.ipv4.conf."+k+".send_redirects", "0")
		// DR replies come back through the director here (it is the
		// real servers' router) with its own VIP as source: accept them
		// rather than drop them as martians.
		dl.director.SetSysctl("net.ipv4.conf."+k+".accept_local", "1")
		dl.director.SetSysctl("net.ipv4.conf."+k+".rp_filter", "0")
	}
	dl.director.AddAddr(lab.HostInterface, drVIP+"/32")
	dl.director.AddAddr(lab.HostInterface, natVIP+"/32")
	for i := range 3 {
		h := l.AddHost(fmt.Sprintf("rs%d", i+1), fmt.Sprintf("10.77.0.%d/24", 21+i))
		h.SetDefaultRoute(netip.MustParseAddr("10.77.0.10"))
		h.ConfigureDRRealServer(drVIP)
		dl.rs = append(dl.rs, h)
		dl.nginx = append(dl.nginx, h.StartNginx(lab.HTTPOptions{}))
	}
	return dl
}

func (dl *directorLab) startLvsd(t *testing.T, cfg string) *lab.Process {
	t.Helper()
	p := dl.director.Start(context.Background(), lvsdBinary(t), "--config", cfg, "--log-level", "debug")
	return p
}

const labConfig = `
lvsd:
  state_dir: %s
  status_listen: unix:%s
  metrics_listen: unix:%s
  resync_interval: 2s
ipvs:
  timeouts: {tcp: 901s, tcp_fin: 121s, udp: 301s}
  expire_nodest_conn: true
  expire_quiescent_template: true
  conn_reuse_mode: 0
  sync_threshold: {threshold: 4, period: 60}
  sync_daemon: {role: master, interface: eth0, sync_id: 9}
virtual_services:
  - name: dr
    protocol: tcp
    address: 10.79.0.100
    port: 80
    scheduler: rr
    forwarding: direct_route
    on_failure: quiesce
    health_check: &check
      type: http
      path: /
      interval: 1s
      timeout: 500ms
      rise: 2
      fall: 2
    real_servers:
      - address: 10.77.0.21
      - address: 10.77.0.22
      - address: 10.77.0.23
  - name: nat
    protocol: tcp
    address: 10.79.0.200
    port: 80
    scheduler: wrr
    forwarding: masquerade
    on_failure: remove
    health_check: *check
    real_servers:
      - address: 10.77.0.21
        weight: 1
      - address: 10.77.0.22
        weight: 2
      - address: 10.77.0.23
        weight: 3
`

// saved returns ipvsadm -Sn's lines, sorted.
func saved(t *testing.T, h *lab.Host) []string {
	lines := strings.Split(strings.TrimSpace(run(t, h, "ipvsadm", "-Sn")), "\n")
	slices.Sort(lines)
	return slices.DeleteFunc(lines, func(s string) bool { return s == "" })
}

// TestVMLvsdServesAndHealsADirector runs the lvsd binary on a lab
// director: the kernel matches the config (as ipvsadm -Sn shows it), the
// client's traffic reaches all three real servers in the scheduler's
// proportion, a real server whose nginx stops is taken out within
// fall x interval (quiesced in DR, removed in NAT) and comes back after
// rise x interval.
func TestVMLvsdServesAndHealsADirector(t *testing.T) {
	dl := newDirectorLab(t)
	dir := t.TempDir()
	statusSock, metricsSock := filepath.Join(dir, "status.sock"), filepath.Join(dir, "metrics.sock")
	cfg := filepath.Join(dir, "lvsd.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(labConfig, t.TempDir(), statusSock, metricsSock)), 0o600)
	lvsd := dl.startLvsd(t, cfg)

	want := []string{
		"-A -t 10.79.0.100:80 -s rr",
		"-A -t 10.79.0.200:80 -s wrr",
		"-a -t 10.79.0.100:80 -r 10.77.0.21:80 -g -w 1",
		"-a -t 10.79.0.100:80 -r 10.77.0.22:80 -g -w 1",
		"-a -t 10.79.0.100:80 -r 10.77.0.23:80 -g -w 1",
		"-a -t 10.79.0.200:80 -r 10.77.0.21:80 -m -w 1",
		"-a -t 10.79.0.200:80 -r 10.77.0.22:80 -m -w 2",
		"-a -t 10.79.0.200:80 -r 10.77.0.23:80 -m -w 3",
	}
	slices.Sort(want)
	waitFor(t, 30*time.Second, "ipvsadm -Sn to match the config", func() bool { return slices.Equal(saved(t, dl.director), want) })
	if _, err := lvsd.WaitForOutput(context.Background(), "real server up"); err != nil {
		t.Fatalf("health checks never reported: %v\n%s", err, lvsd.Output())
	}
	// Every real server's first check has passed. One still to come when
	// nginx stops below would take rs2 down at its first failure ("first
	// check failed"), not after fall's two, and a real server not yet
	// checked takes traffic as if it were up.
	waitFor(t, 30*time.Second, "all six real servers checked up", func() bool {
		var st director.Status
		if err := json.Unmarshal([]byte(unixGet(t, statusSock, "/status")), &st); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range st.Services {
			for _, r := range s.RealServers {
				if r.Health == "up" && !r.LastCheck.IsZero() {
					n++
				}
			}
		}
		return n == 6
	})

	// The config's IPVS globals reached the director's kernel (these are
	// not the defaults: 900/120/300, 0, 0, 1, "3 50", no daemon).
	if out := run(t, dl.director, "ipvsadm", "-L", "--timeout"); !strings.Contains(out, "901 121 301") {
		t.Errorf("timeouts not applied: %q", out)
	}
	for key, want := range map[string]string{
		"net.ipv4.vs.expire_nodest_conn":        "1",
		"net.ipv4.vs.expire_quiescent_template": "1",
		"net.ipv4.vs.conn_reuse_mode":           "0",
		"net.ipv4.vs.sync_threshold":            "4\t60",
	} {
		if got, err := dl.director.Sysctl(key); err != nil || strings.TrimSpace(got) != want {
			t.Errorf("%s = %q (%v), want %q", key, got, err, want)
		}
	}
	if out := run(t, dl.director, "ipvsadm", "-L", "--daemon"); !strings.Contains(out, "master sync daemon (mcast="+lab.HostInterface+", syncid=9") {
		t.Errorf("sync daemon not started: %q", out)
	}

	count := func(vip string, n int) map[string]int {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		got := map[string]int{}
		for range n {
			body, err := dl.client.HTTPGet(ctx, "http://"+vip+"/")
			if err != nil {
				t.Fatalf("GET %s from the client: %v", vip, err)
			}
			got[strings.TrimSpace(body)]++
		}
		return got
	}
	if got := count(drVIP, 60); got["rs1"] != 20 || got["rs2"] != 20 || got["rs3"] != 20 {
		t.Errorf("rr over DR: %v, want 20 each", got)
	}
	if got := count(natVIP, 60); got["rs1"] != 10 || got["rs2"] != 20 || got["rs3"] != 30 {
		t.Errorf("wrr 1:2:3 over NAT: %v, want 10/20/30", got)
	}

	// lvsd acts on fall (2) failed checks, not later: counted in its own
	// metrics rather than in seconds, which a loaded host stretches. One
	// more check may have run between the change and the read below.
	const rs2 = "10.77.0.22:80"
	services := []string{"TCP 10.79.0.100:80", "TCP 10.79.0.200:80"}
	before := checkCounts(t, metricsSock, rs2, "down", services)
	dl.nginx[1].Stop()
	took := waitFor(t, 30*time.Second, "rs2 out of both services", func() bool {
		s := strings.Join(saved(t, dl.director), "\n")
		return strings.Contains(s, "-r 10.77.0.22:80 -g -w 0") && !strings.Contains(s, "10.79.0.200:80 -r 10.77.0.22:80")
	})
	failed := checkCounts(t, metricsSock, rs2, "down", services)
	t.Logf("rs2 taken out %v after nginx stopped; failed checks by then %v (before %v)", took, failed, before)
	for i, svc := range services {
		if n := failed[i] - before[i]; n < 2 || n > 3 {
			t.Errorf("rs2 taken out of %s after %v failed checks, want fall's 2 (3 if one more ran before the metrics were read)", svc, n)
		}
	}
	if got := count(drVIP, 30); got["rs2"] != 0 || got["rs1"] != 15 || got["rs3"] != 15 {
		t.Errorf("DR traffic with rs2 quiesced: %v", got)
	}
	// The status API says why rs2 is out; the metrics show it down.
	var st director.Status
	if err := json.Unmarshal([]byte(unixGet(t, statusSock, "/status")), &st); err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Services {
		for _, r := range s.RealServers {
			if r.Address == "10.77.0.22:80" && (r.Health != "down" || !strings.Contains(r.Why, "10.77.0.22:80") || !strings.Contains(r.Why, "2 of 2 failures")) {
				t.Errorf("status of rs2 in %s: %+v", s.Key, r)
			}
		}
	}
	m := unixGet(t, metricsSock, "/metrics")
	for _, want := range []string{
		`lvsd_real_server_health{real_server="10.77.0.22:80",service="TCP 10.79.0.100:80"} 0`,
		`node_ipvs_backend_weight{local_address="10.79.0.100",local_mark="",local_port="80",proto="TCP",remote_address="10.77.0.22",remote_port="80"} 0`,
		`node_ipvs_backend_weight{local_address="10.79.0.200",local_mark="",local_port="80",proto="TCP",remote_address="10.77.0.23",remote_port="80"} 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	before = checkCounts(t, metricsSock, rs2, "up", services)
	dl.nginx[1] = dl.rs[1].StartNginx(lab.HTTPOptions{})
	took = waitFor(t, 30*time.Second, "rs2 back in both services", func() bool { return slices.Equal(saved(t, dl.director), want) })
	passed := checkCounts(t, metricsSock, rs2, "up", services)
	t.Logf("rs2 back %v after nginx restarted; passed checks by then %v (before %v)", took, passed, before)
	for i, svc := range services {
		if n := passed[i] - before[i]; n < 2 || n > 3 {
			t.Errorf("rs2 back in %s after %v passed checks, want rise's 2 (3 if one more ran before the metrics were read)", svc, n)
		}
	}
}

// checkCounts reads lvsd_check_total of one real server with one result
// ("up" or "down") in each of services from lvsd's metrics; a series
// not exported yet counts 0.
func checkCounts(t *testing.T, metricsSock, realServer, result string, services []string) []int {
	t.Helper()
	text := unixGet(t, metricsSock, "/metrics")
	counts := make([]int, len(services))
	for i, svc := range services {
		labels := []string{`real_server="` + realServer + `"`, `result="` + result + `"`, `service="` + svc + `"`}
		for line := range strings.Lines(text) {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), "{")
			if !ok || name != "lvsd_check_total" || !containsAll(rest, labels) {
				continue
			}
			_, value, _ := strings.Cut(rest, "} ")
			f, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("lvsd_check_total line %q: %v", line, err)
			}
			counts[i] = int(f)
		}
	}
	return counts
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// bigConfig writes n services with one real server each.
func bigConfig(t *testing.T, stateDir string, n int) (string, []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "lvsd:\n  state_dir: %s\n  status_listen: \"\"\n  metrics_listen: \"\"\n  resync_interval: 1h\nvirtual_services:\n", stateDir)
	var want []string
	for i := range n {
		vip := netip.AddrFrom4([4]byte{10, 100 + byte(i>>16), byte(i >> 8), byte(i)})
		// Outside the director's subnets: the kernel refuses a real
		// server at a local broadcast address (10.77.0.255) with EINVAL.
		rip := netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)})
		fmt.Fprintf(&b, "  - {protocol: tcp, address: %v, port: 80, scheduler: wrr, real_servers: [{address: %v}]}\n", vip, rip)
		want = append(want, fmt.Sprintf("-A -t %v:80 -s wrr", vip), fmt.Sprintf("-a -t %v:80 -r %v:80 -g -w 1", vip, rip))
	}
	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, want
}

// TestVMLvsdKill9MidApplyConverges kills lvsd with SIGKILL at random
// points of a 10,000-service cold apply; each restart must converge to
// the config, and a rule lvsd does not own must survive untouched.
func TestVMLvsdKill9MidApplyConverges(t *testing.T) {
	const n = 10000
	dl := newDirectorLab(t)
	run(t, dl.director, "ipvsadm", "-A", "-u", "10.79.0.53:53", "-s", "lc")
	run(t, dl.director, "ipvsadm", "-a", "-u", "10.79.0.53:53", "-r", "10.77.0.53:53", "-m", "-w", "7")
	unowned := []string{"-A -u 10.79.0.53:53 -s lc", "-a -u 10.79.0.53:53 -r 10.77.0.53:53 -m -w 7"}
	stateDir := t.TempDir()
	cfg, want := bigConfig(t, stateDir, n)
	want = append(want, unowned...)
	slices.Sort(want)

	c, err := ipvs.New(ipvs.Options{NetNS: dl.director.NetNSPath()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	services := func() int {
		s, err := c.Services()
		if err != nil {
			t.Fatal(err)
		}
		return len(s)
	}
	// Calibrate: how long a cold apply takes, so the kills can land at
	// random points inside one. Then remove what it wrote, keeping the
	// unowned rule.
	began := time.Now()
	p := dl.startLvsd(t, cfg)
	startup := waitFor(t, 5*time.Minute, "the calibration's first write", func() bool { return services() > 1 })
	waitFor(t, 5*time.Minute, "the calibration apply", func() bool { return services() == n+1 })
	full := time.Since(began) - startup
	syscall.Kill(p.Pid(), syscall.SIGKILL)
	<-p.Done()
	svcs, _ := c.Services()
	for _, s := range svcs {
		if s.Port == 80 {
			if err := c.DeleteService(s.ServiceKey); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("lvsd starts writing after about %v and a cold apply of %d services takes about %v here", startup, n, full)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	prev := services()
	for round := range 3 {
		left := float64(n+1-services()) / float64(n)
		delay := startup + time.Duration(rng.Float64()*left*float64(full))
		p := dl.startLvsd(t, cfg)
		time.Sleep(delay) // the kill's random moment, not a wait for a condition
		if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.Done()
		now := services()
		t.Logf("round %d: SIGKILL after %v with %d of %d services applied", round, delay, now-1, n)
		dropped := now < prev
		if dropped {
			// A restart must only add what is missing: losing services
			// drops traffic.
			t.Errorf("round %d: services in the kernel fell from %d to %d across a restart", round, prev, now)
		}
		prev = now
		if dropped || os.Getenv("LVSKIT_DEBUG_KILL") != "" {
			var keep []string
			for line := range strings.Lines(p.Output()) {
				if !strings.Contains(line, "level=DEBUG") {
					keep = append(keep, line)
				}
			}
			t.Logf("lvsd said:\n%s", strings.Join(keep[max(0, len(keep)-15):], ""))
		}
	}
	last := dl.startLvsd(t, cfg)
	start := time.Now()
	var got []string
	for {
		if services() == n+1 {
			if got = saved(t, dl.director); slices.Equal(got, want) {
				break
			}
		}
		if time.Since(start) > 5*time.Minute {
			missing, extra := 0, 0
			for _, w := range want {
				if _, ok := slices.BinarySearch(got, w); !ok {
					missing++
					t.Logf("missing rule: %s", w)
				}
			}
			out := last.Output()
			t.Logf("lvsd's last output:\n%s", out[max(0, len(out)-4000):])
			for _, g := range got {
				if _, ok := slices.BinarySearch(want, g); !ok {
					extra++
					t.Logf("unexpected rule: %s", g)
				}
			}
			t.Fatalf("kernel differs from the config 5m after restart: %d rules missing, %d extra", missing, extra)
		}
		time.Sleep(200 * time.Millisecond) // polling the kernel, with a deadline
	}
	t.Logf("converged %v after the last restart; the unowned service is intact", time.Since(start))
}
