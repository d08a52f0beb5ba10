// Network tier: the lvsd binary with Debian's keepalived as its VRRP
// peer, version 2 (simple password) and version 3, each in both roles.
// lvsd runs on lab host a, keepalived on host b; the bridge tap times the
// adverts and gratuitous ARPs with kernel timestamps.

package director_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/vrrp"
	"github.com/lvskit/lvskit/internal/lab"
)

// keepalivedPair is one lab with lvsd's host a and keepalived's host b.
type keepalivedPair struct {
	t      *testing.T
	ctx    context.Context
	bin    string
	peer   vrrpPeer
	la, kb *lab.Host // lvsd's host, keepalived's host
	tap    *wireTap
}

func newKeepalivedPair(t *testing.T, bin string, p vrrpPeer) *keepalivedPair {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	t.Cleanup(cancel)
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.78.0.0/24")})
	k := &keepalivedPair{
		t: t, ctx: ctx, bin: bin, peer: p,
		la: l.AddHost("lvsd", "10.78.0.11/24"),
		kb: l.AddHost("keepalived", "10.78.0.12/24"),
	}
	k.tap = startWireTap(t, l)
	return k
}

// startLVSD runs lvsd on a and waits until it reports the state want
// ("master" or "backup") in its log.
func (k *keepalivedPair) startLVSD(priority uint8, want string) lvsdPeer {
	k.t.Helper()
	d := startLVSDPeer(k.ctx, k.t, k.bin, k.la, k.peer, lvsdOptions{Priority: priority, LogLevel: "debug"})
	if _, err := d.proc.WaitForOutput(k.ctx, "state="+want); err != nil {
		k.t.Fatal(err)
	}
	return d
}

// startKeepalived runs keepalived on b and waits for it to enter state
// want ("MASTER" or "BACKUP").
func (k *keepalivedPair) startKeepalived(priority uint8, want string) *lab.Process {
	k.t.Helper()
	p := startKeepalivedPeer(k.ctx, k.t, k.kb, keepalivedConfig(k.kb, k.peer, priority, want == "MASTER"))
	if _, err := p.WaitForOutput(k.ctx, "Entering "+want+" STATE"); err != nil {
		k.t.Fatal(err)
	}
	return p
}

// adverts waits for n more adverts from src (after index from) and
// returns the index of the last.
func (k *keepalivedPair) adverts(from int, src netip.Addr, n int) int {
	k.t.Helper()
	i := from - 1
	for range n {
		var err error
		if _, i, err = k.tap.wait(k.ctx, i+1, advertFrom(src, k.peer.VRID)); err != nil {
			k.t.Fatalf("waiting for %d adverts from %s: %v\n%s", n, src, err, k.tap.dump(from))
		}
	}
	return i
}

// frame waits for a frame from index from on.
func (k *keepalivedPair) frame(from int, what string, match func(wireFrame) bool) wireFrame {
	k.t.Helper()
	f, _, err := k.tap.wait(k.ctx, from, match)
	if err != nil {
		k.t.Fatalf("waiting for %s on the bridge: %v\nframes:\n%s", what, err, k.tap.dump(from))
	}
	return f
}

// noFrame fails if a frame from index from to now matches.
func (k *keepalivedPair) noFrame(from int, what string, match func(wireFrame) bool) {
	k.t.Helper()
	if f, ok := k.tap.last(from, k.tap.mark(), match); ok {
		k.t.Fatalf("%s: %s\nframes:\n%s", what, f, k.tap.dump(from))
	}
}

// holdsVIP reports whether h has the VIP on its interface.
func (k *keepalivedPair) holdsVIP(h *lab.Host) bool {
	k.t.Helper()
	out, err := h.Run(k.ctx, "ip", "-br", "addr", "show", "dev", h.Interface)
	if err != nil {
		k.t.Fatal(err)
	}
	return strings.Contains(out, " "+k.peer.VIP.String()+"/32")
}

// checkVIPOn checks that h holds the VIP and, unless other is nil, that
// other does not. (A killed peer leaves the VIP behind on its host: no
// one removes it until it starts again, as backup.)
func (k *keepalivedPair) checkVIPOn(h, other *lab.Host) {
	k.t.Helper()
	pollUntil(k.ctx, k.t, 5*time.Second, "the VIP on "+h.Name, func() bool { return k.holdsVIP(h) })
	if other != nil && k.holdsVIP(other) {
		k.t.Errorf("%s holds the VIP too", other.Name)
	}
}

// formerMaster is the host that must have dropped the VIP: the old
// master's after a clean stop, none after a kill.
func formerMaster(h *lab.Host, cleanStop bool) *lab.Host {
	if cleanStop {
		return h
	}
	return nil
}

// lvsdMetrics scrapes lvsd's metrics and returns the sum of the samples
// of each metric family named in names.
func lvsdMetrics(ctx context.Context, t *testing.T, d lvsdPeer, names ...string) map[string]float64 {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.metricsSock)
	}}, Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://lvsd/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("scraping lvsd's metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]float64{}
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "{")
		for _, want := range names {
			if name == want {
				v, err := strconv.ParseFloat(value, 64)
				if err != nil {
					t.Fatalf("metric line %q: %v", line, err)
				}
				sums[want] += v
			}
		}
	}
	return sums
}

// TestLabVRRPKeepalivedPeer pairs the lvsd binary with Debian's
// keepalived, version 2 with a simple password and version 3, and in each
// lets the master die (kill -9) or stop cleanly (SIGTERM, priority 0),
// with either as master.
func TestLabVRRPKeepalivedPeer(t *testing.T) {
	requireRoot(t)
	requireKeepalived(t)
	bin := lvsdBinary(t)
	vip := netip.MustParseAddr(vrrpLabVIP)
	for _, p := range []vrrpPeer{
		{VRID: 52, Version: vrrp.Version2, Interval: time.Second, Password: "lvs-pair", VIP: vip},
		// 200 ms: short, yet three missed adverts in a row stay unlikely
		// on a loaded 2-CPU machine.
		{VRID: 53, Version: vrrp.Version3, Interval: 200 * time.Millisecond, VIP: vip},
	} {
		v := fmt.Sprintf("v%d", p.Version)
		t.Run(v+"/lvsd-master-killed", func(t *testing.T) {
			t.Parallel()
			testKeepalivedTakesOverFromLVSD(t, newKeepalivedPair(t, bin, p), false)
		})
		t.Run(v+"/lvsd-master-stops", func(t *testing.T) {
			t.Parallel()
			testKeepalivedTakesOverFromLVSD(t, newKeepalivedPair(t, bin, p), true)
		})
		t.Run(v+"/keepalived-master-killed", func(t *testing.T) {
			t.Parallel()
			testLVSDTakesOverFromKeepalived(t, newKeepalivedPair(t, bin, p), false)
		})
		t.Run(v+"/keepalived-master-stops", func(t *testing.T) {
			t.Parallel()
			testLVSDTakesOverFromKeepalived(t, newKeepalivedPair(t, bin, p), true)
		})
	}
}

// testKeepalivedTakesOverFromLVSD: lvsd master (150), keepalived backup
// (100). keepalived accepts lvsd's adverts (it stays backup for longer
// than its Master_Down_Interval); then lvsd is killed (keepalived takes
// over after Master_Down_Interval) or stopped (after Skew_Time).
func testKeepalivedTakesOverFromLVSD(t *testing.T, k *keepalivedPair, cleanStop bool) {
	p := k.peer
	from := k.tap.mark()
	lv := k.startLVSD(150, "master")
	ka := k.startKeepalived(100, "BACKUP")
	// Four adverts from lvsd span more than keepalived's
	// Master_Down_Interval (3 intervals + skew): it would have taken
	// over had it rejected them.
	heard := k.tap.mark()
	k.adverts(heard, k.la.Addr(), 4)
	if strings.Contains(ka.Output(), "Entering MASTER STATE") {
		t.Fatalf("keepalived became master next to lvsd:\n%s", ka.Output())
	}
	k.noFrame(from, "keepalived advertised next to lvsd", advertFrom(k.kb.Addr(), p.VRID))
	if st := lv.state(k.ctx); st != "master" {
		t.Fatalf("lvsd's status says %q, want master", st)
	}
	k.checkVIPOn(k.la, k.kb)

	mark := k.tap.mark()
	var start time.Time
	var wait time.Duration
	if cleanStop {
		if err := lv.proc.Stop(); err != nil {
			t.Fatalf("stopping lvsd: %v\n%s", err, lv.proc.Output())
		}
		start = k.frame(mark, "lvsd's priority-0 advert", priorityZeroFrom(k.la.Addr(), p.VRID)).At
		wait = p.skew(100)
	} else {
		start = killGroupNow(t, lv.proc)
		wait = p.masterDown(100)
	}
	garp := k.frame(mark, "keepalived's gratuitous ARP", garpFor(k.kb.MAC(), p.VIP))
	took := garp.At.Sub(start)
	t.Logf("keepalived's first GARP %v after lvsd's %s (protocol wait %v)", took, map[bool]string{true: "priority-0 advert", false: "kill"}[cleanStop], wait)
	checkTakeoverTime(t, p, took, wait, cleanStop)
	if _, err := ka.WaitForOutput(k.ctx, "Entering MASTER STATE"); err != nil {
		t.Fatal(err)
	}
	k.checkVIPOn(k.kb, formerMaster(k.la, cleanStop))
}

// testLVSDTakesOverFromKeepalived: keepalived master (150), lvsd backup
// (100). lvsd accepts keepalived's adverts (status: backup, master
// keepalived at priority 150, nothing discarded); then keepalived is
// killed or stopped and lvsd takes over: status master, VIP on its
// interface, GARP on the wire.
func testLVSDTakesOverFromKeepalived(t *testing.T, k *keepalivedPair, cleanStop bool) {
	p := k.peer
	from := k.tap.mark()
	ka := k.startKeepalived(150, "MASTER")
	lv := k.startLVSD(100, "backup")
	heard := k.tap.mark()
	k.adverts(heard, k.kb.Addr(), 4)
	k.noFrame(from, "lvsd advertised next to keepalived", advertFrom(k.la.Addr(), p.VRID))
	st, ok := lv.status(k.ctx)
	if !ok || len(st.VRRP) != 1 {
		t.Fatalf("lvsd's status: %+v (answered %v)", st.VRRP, ok)
	}
	if v := st.VRRP[0]; v.State != "backup" || v.Master != k.kb.Addr().String() || v.MasterPriority != 150 || v.AdvertsReceived < 3 {
		// The fourth advert may still be on its way through lvsd.
		t.Fatalf("lvsd's vrrp status %+v: want backup of master %s at priority 150, 3 adverts received at least", v, k.kb.Addr())
	}
	m := lvsdMetrics(k.ctx, t, lv, "lvsd_vrrp_adverts_discarded_total", "lvsd_vrrp_packets_dropped_total")
	if m["lvsd_vrrp_adverts_discarded_total"] != 0 || m["lvsd_vrrp_packets_dropped_total"] != 0 {
		t.Fatalf("lvsd discarded or dropped keepalived's adverts: %v\n%s", m, lv.proc.Output())
	}
	k.checkVIPOn(k.kb, k.la)

	mark := k.tap.mark()
	var start time.Time
	var wait time.Duration
	if cleanStop {
		// SIGTERM to keepalived's process group, as systemctl stop does.
		if err := syscall.Kill(-ka.Pid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		start = k.frame(mark, "keepalived's priority-0 advert", priorityZeroFrom(k.kb.Addr(), p.VRID)).At
		wait = p.skew(100)
	} else {
		start = killGroupNow(t, ka)
		wait = p.masterDown(100)
	}
	garp := k.frame(mark, "lvsd's gratuitous ARP", garpFor(k.la.MAC(), p.VIP))
	took := garp.At.Sub(start)
	t.Logf("lvsd's first GARP %v after keepalived's %s (protocol wait %v)", took, map[bool]string{true: "priority-0 advert", false: "kill"}[cleanStop], wait)
	checkTakeoverTime(t, p, took, wait, cleanStop)
	<-ka.Done()
	var v []string
	pollUntil(k.ctx, t, 5*time.Second, "lvsd's status to say master", func() bool {
		st, ok := lv.status(k.ctx)
		v = nil
		if ok && len(st.VRRP) == 1 {
			v = append(v, st.VRRP[0].State, st.VRRP[0].Reason)
		}
		return len(v) == 2 && v[0] == "master"
	})
	if want := "stepped down (priority 0)"; cleanStop && !strings.Contains(v[1], want) {
		t.Errorf("lvsd became master because %q, want %q", v[1], want)
	}
	k.checkVIPOn(k.la, formerMaster(k.kb, cleanStop))
}

// checkTakeoverTime checks the time from the kill (or the priority-0
// advert) to the new master's first GARP against the protocol's wait:
// Master_Down_Interval after the last advert, which came up to one
// interval before the kill; Skew_Time after a priority-0 advert. The
// upper margin is for a loaded machine; a clean stop must stay well
// below Master_Down_Interval, which is what tells the two apart.
func checkTakeoverTime(t *testing.T, p vrrpPeer, took, wait time.Duration, cleanStop bool) {
	t.Helper()
	lo, hi := wait-p.Interval-10*time.Millisecond, wait+500*time.Millisecond
	if cleanStop {
		lo, hi = wait-5*time.Millisecond, min(wait+500*time.Millisecond, (p.masterDown(100)+wait)/2)
	}
	if took < lo || took > hi {
		t.Errorf("takeover after %v, want between %v and %v", took, lo, hi)
	}
}
