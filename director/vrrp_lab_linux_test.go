// Network tier for lvsd's VRRP: two lvsd binaries (make build) in two lab
// namespaces share a VIP on the lab bridge, and a client on the bridge
// keeps reaching whichever holds it. Their config has no virtual
// services, so lvsd runs VRRP only and needs no ip_vs module.

package director_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director"
	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/internal/lab"
)

// vrrpPair is a lab with two director hosts, lvs1 (.11) and lvs2 (.12),
// the lvsd binary and a context bounded by vrrpLabTimeout.
type vrrpPair struct {
	ctx    context.Context
	bin    string
	lab    *lab.Lab
	h1, h2 *lab.Host
}

// newVRRPPair builds the pair on 10.<octet>.0.0/24; it skips without
// root or without bin/lvsd.
func newVRRPPair(t *testing.T, octet int) *vrrpPair {
	t.Helper()
	requireRoot(t)
	p := &vrrpPair{bin: lvsdBinary(t)}
	ctx, cancel := context.WithTimeout(context.Background(), vrrpLabTimeout)
	t.Cleanup(cancel)
	p.ctx = ctx
	p.lab = lab.New(t, lab.Options{Subnet: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/24", octet))})
	p.h1 = p.lab.AddHost("lvs1", fmt.Sprintf("10.%d.0.11/24", octet))
	p.h2 = p.lab.AddHost("lvs2", fmt.Sprintf("10.%d.0.12/24", octet))
	return p
}

const (
	vrrpLabVIP     = "10.78.0.100"
	vrrpLabTimeout = 60 * time.Second
)

// vrrpDirector is one lvsd in the lab.
type vrrpDirector struct {
	host   *lab.Host
	sock   string
	proc   *lab.Process
	config string // the config file's path
}

func startVRRPDirector(ctx context.Context, t *testing.T, bin string, h *lab.Host, priority int) *vrrpDirector {
	t.Helper()
	return startVRRPDirectorWith(ctx, t, bin, h, priority, "", "")
}

// startVRRPDirectorWith starts lvsd with more keys in its instance
// (indented for it) and more under vrrp (indented for vrrp's keys).
func startVRRPDirectorWith(ctx context.Context, t *testing.T, bin string, h *lab.Host, priority int, instanceExtra, vrrpExtra string) *vrrpDirector {
	t.Helper()
	dir := t.TempDir()
	d := &vrrpDirector{host: h, sock: filepath.Join(dir, "status.sock")}
	cfg := fmt.Sprintf(`lvsd:
  state_dir: %s
  status_listen: unix:%s
  metrics_listen: ""
vrrp:
%s  instances:
    - name: VI_lab
      interface: %s
      virtual_router_id: 61
      version: 3
      priority: %d
      advert_interval: 100ms
      virtual_addresses: [%s]
%s`, filepath.Join(dir, "state"), d.sock, vrrpExtra, h.Interface, priority, vrrpLabVIP, instanceExtra)
	path := filepath.Join(dir, "lvsd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.config = path
	d.proc = h.Start(ctx, bin, "--config", path, "--log-level", "debug")
	return d
}

// reload rewrites the director's config with old replaced by new and
// sends SIGHUP.
func (d *vrrpDirector) reload(t *testing.T, old, new string) {
	t.Helper()
	b, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("config lacks %q", old)
	}
	if err := os.WriteFile(d.config, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(d.proc.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// status reads the director's status API; ok is false while it does not
// answer.
func (d *vrrpDirector) status(ctx context.Context) (director.Status, bool) {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
	}}, Timeout: 2 * time.Second}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://lvsd/status", nil)
	if err != nil {
		return director.Status{}, false
	}
	resp, err := c.Do(req)
	if err != nil {
		return director.Status{}, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	var st director.Status
	if err != nil || resp.StatusCode != http.StatusOK || json.Unmarshal(b, &st) != nil {
		return director.Status{}, false
	}
	return st, true
}

func (d *vrrpDirector) state(ctx context.Context) string {
	st, ok := d.status(ctx)
	if !ok || len(st.VRRP) != 1 {
		return ""
	}
	return st.VRRP[0].State
}

// holdsVIP reports whether `ip -br addr` in the director's namespace
// lists the VIP.
func (d *vrrpDirector) holdsVIP(ctx context.Context, t *testing.T) bool {
	t.Helper()
	out, err := d.host.Run(ctx, "ip", "-br", "addr", "show", "dev", d.host.Interface)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(out, " "+vrrpLabVIP+"/32")
}

// pollUntil checks cond every 20 ms until it holds or d passes, and
// returns how long that took.
func pollUntil(ctx context.Context, t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
	return time.Since(start)
}

func TestLabVRRPFailover(t *testing.T) {
	p := newVRRPPair(t, 78)
	ctx, bin, l, h1, h2 := p.ctx, p.bin, p.lab, p.h1, p.h2
	client := l.AddHost("client", "10.78.0.50/24")
	// Each director answers HTTP on every address, the VIP included,
	// with its own name: the client sees who holds the VIP, through its
	// own neighbour cache, which only a gratuitous ARP moves before it
	// expires.
	h1.StartGoHTTP(lab.HTTPOptions{})
	h2.StartGoHTTP(lab.HTTPOptions{})
	garps := l.Capture("arp")
	vipURL := "http://" + vrrpLabVIP + "/"
	servedBy := func() string {
		body, err := client.HTTPGet(ctx, vipURL)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(body)
	}

	d1 := startVRRPDirector(ctx, t, bin, h1, 150)
	d2 := startVRRPDirector(ctx, t, bin, h2, 100)
	pollUntil(ctx, t, 20*time.Second, "lvs1 master and lvs2 backup", func() bool {
		return d1.state(ctx) == "master" && d2.state(ctx) == "backup"
	})
	pollUntil(ctx, t, 5*time.Second, "the VIP on lvs1", func() bool { return d1.holdsVIP(ctx, t) })
	if d2.holdsVIP(ctx, t) {
		t.Fatal("the backup lvs2 holds the VIP too")
	}
	pollUntil(ctx, t, 5*time.Second, "the client served by lvs1 through the VIP", func() bool { return servedBy() == "lvs1" })
	st, _ := d1.status(ctx)
	if v := st.VRRP[0]; v.Name != "VI_lab" || v.VRID != 61 || v.Master != "10.78.0.11" || v.MasterSince.IsZero() {
		t.Errorf("lvs1's vrrp status: %+v", v)
	}

	// kill -9: no priority-0 advert; lvs2 takes over after
	// Master_Down_Interval (3 x 100 ms + skew).
	killed := time.Now()
	if err := syscall.Kill(d1.proc.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d1.proc.Done()
	// The deadline leaves room for a slow CI machine; the log says how
	// long lvsd itself took.
	took := pollUntil(ctx, t, 5*time.Second, "the VIP on lvs2 after killing lvs1", func() bool { return d2.holdsVIP(ctx, t) })
	st, _ = d2.status(ctx)
	if len(st.VRRP) != 1 || st.VRRP[0].State != "master" {
		t.Fatalf("lvs2 holds the VIP with vrrp status %+v, want master", st.VRRP)
	}
	t.Logf("lvs2 became master %v after lvs1 was killed (VIP seen by polling after %v)", st.VRRP[0].MasterSince.Sub(killed), took)
	// The new master announced itself: a gratuitous ARP for the VIP
	// from lvs2's MAC, and the client, whose cache still said lvs1,
	// reaches lvs2 through the VIP.
	garp := fmt.Sprintf("%s > ff:ff:ff:ff:ff:ff", h2.MAC())
	waitCtx, waitCancel := context.WithTimeout(ctx, 5*time.Second)
	line, err := garps.WaitFor(waitCtx, garp)
	waitCancel()
	if err != nil || !strings.Contains(line, vrrpLabVIP) {
		t.Fatalf("no gratuitous ARP for %s from lvs2 (%s) after the takeover: %v\n%s", vrrpLabVIP, h2.MAC(), err, strings.Join(garps.Lines(), "\n"))
	}
	pollUntil(ctx, t, 5*time.Second, "the client served by lvs2 through the VIP", func() bool { return servedBy() == "lvs2" })

	// lvs1 comes back with the VIP the killed lvsd left on eth0: it
	// starts as backup (dropping the stale VIP), then preempts lvs2.
	d1 = startVRRPDirector(ctx, t, bin, h1, 150)
	pollUntil(ctx, t, 20*time.Second, "the restarted lvs1 master again and lvs2 backup", func() bool {
		return d1.state(ctx) == "master" && d2.state(ctx) == "backup"
	})
	pollUntil(ctx, t, 5*time.Second, "the VIP off lvs2", func() bool { return !d2.holdsVIP(ctx, t) })
	if !d1.holdsVIP(ctx, t) {
		t.Fatal("the restarted master lvs1 does not hold the VIP")
	}

	// A clean stop of the master (SIGTERM): priority 0, and lvs2 takes
	// over after the skew alone.
	if err := d1.proc.Stop(); err != nil {
		t.Fatalf("stopping lvs1: %v\n%s", err, d1.proc.Output())
	}
	if d1.holdsVIP(ctx, t) {
		t.Errorf("lvs1 still holds the VIP after a clean stop:\n%s", d1.proc.Output())
	}
	pollUntil(ctx, t, 5*time.Second, "the VIP on lvs2 after lvs1 stopped", func() bool { return d2.holdsVIP(ctx, t) })
	if st, _ := d2.status(ctx); len(st.VRRP) != 1 || st.VRRP[0].State != "master" || !strings.Contains(st.VRRP[0].Reason, "stepped down (priority 0)") {
		t.Errorf("lvs2 took over with vrrp status %+v, want master because lvs1 stepped down (priority 0)", st.VRRP)
	}

	// A clean stop removes the VIP.
	if err := d2.proc.Stop(); err != nil {
		t.Fatalf("stopping lvs2: %v\n%s", err, d2.proc.Output())
	}
	if d2.holdsVIP(ctx, t) {
		t.Errorf("lvs2 still holds the VIP after a clean stop:\n%s", d2.proc.Output())
	}
}

// TestLabVRRPTracking: the master tracks a link and a script; a failing
// script lowers its priority below the backup's, which preempts it; a
// tracked link going down puts it in fault; each recovery brings it
// back. Its notify command runs on every transition to master.
func TestLabVRRPTracking(t *testing.T) {
	p := newVRRPPair(t, 79)
	ctx, bin, h1, h2 := p.ctx, p.bin, p.h1, p.h2
	// The tracked link: one end of a veth pair (this kernel may lack
	// the dummy module).
	for _, args := range [][]string{
		{"link", "add", "trk0", "type", "veth", "peer", "name", "trk1"},
		{"link", "set", "trk1", "up"},
		{"link", "set", "trk0", "up"},
	} {
		if out, err := h1.Run(ctx, "ip", args...); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}

	dir := t.TempDir()
	okFile := filepath.Join(dir, "backend-ok")
	notified := filepath.Join(dir, "became-master")
	if err := os.WriteFile(okFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d1 := startVRRPDirectorWith(ctx, t, bin, h1, 150, fmt.Sprintf(`      track_interfaces: [trk0]
      track_scripts: [chk_backend]
      notify: {master: [/bin/sh, -c, 'echo master >> %s']}
`, notified), fmt.Sprintf(`  scripts:
    - {name: chk_backend, command: [/usr/bin/test, -e, %s], interval: 100ms, weight: -60}
`, okFile))
	d2 := startVRRPDirector(ctx, t, bin, h2, 100)
	status1 := func() director.VRRPStatus {
		st, ok := d1.status(ctx)
		if !ok || len(st.VRRP) != 1 {
			return director.VRRPStatus{}
		}
		return st.VRRP[0]
	}
	masters := func() int {
		b, _ := os.ReadFile(notified)
		return strings.Count(string(b), "master")
	}
	pollUntil(ctx, t, 20*time.Second, "lvs1 master", func() bool { return d1.state(ctx) == "master" && d2.state(ctx) == "backup" })
	pollUntil(ctx, t, 5*time.Second, "lvs1's notify master command", func() bool { return masters() == 1 })

	// The script fails: 150 - 60 = 90 < 100, and lvs2 preempts.
	if err := os.Remove(okFile); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, 10*time.Second, "lvs2 master after lvs1's script failed", func() bool { return d2.state(ctx) == "master" && d1.state(ctx) == "backup" })
	if v := status1(); v.Priority != 90 || len(v.Tracking) != 3 {
		t.Errorf("lvs1 with its script failing: priority %d, tracking %+v; want 90", v.Priority, v.Tracking)
	}
	pollUntil(ctx, t, 5*time.Second, "the VIP on lvs2", func() bool { return d2.holdsVIP(ctx, t) })

	// The script passes again: lvs1 is back at 150 and preempts.
	if err := os.WriteFile(okFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, 10*time.Second, "lvs1 master again", func() bool { return d1.state(ctx) == "master" && d2.state(ctx) == "backup" })
	pollUntil(ctx, t, 5*time.Second, "lvs1's second notify master", func() bool { return masters() == 2 })

	// The tracked link goes down: lvs1 in fault, lvs2 takes over at once
	// (lvs1 steps down with priority 0).
	if _, err := h1.Run(ctx, "ip", "link", "set", "trk0", "down"); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, 5*time.Second, "lvs1 in fault, lvs2 master", func() bool { return d1.state(ctx) == "fault" && d2.state(ctx) == "master" })
	if v := status1(); v.Fault != "interface trk0 is down (link set down)" {
		t.Errorf("lvs1's fault: %q", v.Fault)
	} else {
		b, _ := json.Marshal(struct {
			State    string                `json:"state"`
			Priority uint8                 `json:"priority"`
			Fault    string                `json:"fault"`
			Tracking []statusapi.VRRPTrack `json:"tracking"`
		}{v.State, v.Priority, v.Fault, v.Tracking})
		t.Logf("lvs1 in fault: %s", b)
	}
	if d1.holdsVIP(ctx, t) {
		t.Error("lvs1 in fault holds the VIP")
	}
	if _, err := h1.Run(ctx, "ip", "link", "set", "trk0", "up"); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, 10*time.Second, "lvs1 master after the link came back", func() bool { return d1.state(ctx) == "master" && d2.state(ctx) == "backup" })
	pollUntil(ctx, t, 5*time.Second, "the VIP back on lvs1", func() bool { return d1.holdsVIP(ctx, t) && !d2.holdsVIP(ctx, t) })

	// Draining lvs1: its priority lowered below lvs2's and a reload
	// (SIGHUP), no restart. lvs2 preempts; lvs1 keeps running as backup.
	pid := d1.proc.Pid()
	d1.reload(t, "priority: 150", "priority: 50")
	pollUntil(ctx, t, 10*time.Second, "lvs2 master after lvs1's priority was reloaded to 50", func() bool { return d2.state(ctx) == "master" && d1.state(ctx) == "backup" })
	if v := status1(); v.ConfiguredPriority != 50 || v.Priority != 50 || d1.proc.Pid() != pid {
		t.Errorf("lvs1 after the reload: configured %d, effective %d (want 50, 50), pid %d (was %d)", v.ConfiguredPriority, v.Priority, d1.proc.Pid(), pid)
	}
	pollUntil(ctx, t, 5*time.Second, "the VIP on lvs2 after the drain", func() bool { return d2.holdsVIP(ctx, t) && !d1.holdsVIP(ctx, t) })
}

// TestLabVRRPNoPreempt: a director with preempt: false and the higher
// priority joins a running pair as backup and stays backup while the
// lower-priority master advertises; it takes over only when that master
// dies.
func TestLabVRRPNoPreempt(t *testing.T) {
	p := newVRRPPair(t, 82)
	ctx, bin, h1, h2 := p.ctx, p.bin, p.h1, p.h2

	d2 := startVRRPDirector(ctx, t, bin, h2, 100)
	pollUntil(ctx, t, 20*time.Second, "lvs2 master alone", func() bool { return d2.state(ctx) == "master" })
	d1 := startVRRPDirectorWith(ctx, t, bin, h1, 150, "      preempt: false\n", "")
	received := func() uint64 {
		st, ok := d1.status(ctx)
		if !ok || len(st.VRRP) != 1 {
			return 0
		}
		return st.VRRP[0].AdvertsReceived
	}
	// 20 adverts at 100 ms: over six of lvs1's Master_Down_Intervals.
	pollUntil(ctx, t, 20*time.Second, "lvs1 to hear 20 adverts from the lower-priority master", func() bool { return received() >= 20 })
	if s1, s2 := d1.state(ctx), d2.state(ctx); s1 != "backup" || s2 != "master" {
		t.Fatalf("with preempt: false, lvs1 (150) is %s and lvs2 (100) %s; want backup and master", s1, s2)
	}
	if err := syscall.Kill(d2.proc.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, 5*time.Second, "lvs1 master once lvs2 died", func() bool { return d1.state(ctx) == "master" && d1.holdsVIP(ctx, t) })
}
