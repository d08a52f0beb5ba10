// Network tier: lvsd reloads its VRRP section in place beside Debian's
// keepalived as its backup. The bridge tap sees every advert and
// gratuitous ARP: keepalived must never advertise (it would only as
// master), lvsd must never step down, and only what changed reaches the
// wire.

package director_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/vrrp"
	"github.com/lvskit/lvskit/internal/lab"
)

const reloadLVSDConfig = `lvsd:
  state_dir: %[1]s/state
  status_listen: unix:%[1]s/status.sock
vrrp:
  instances:
    - name: VI_peer
      interface: %[2]s
      virtual_router_id: 54
      version: 2
      priority: %[3]d
      advert_interval: 1s
      authentication: {password: reload}
      virtual_addresses: [%[4]s]
%[5]s`

const reloadSoloInstance = `    - name: VI_solo
      interface: %s
      virtual_router_id: 55
      version: 2
      priority: 150
      advert_interval: 1s
      virtual_addresses: [10.78.0.110]
`

// reloadLab is lvsd on host a (the master of VI_peer, and of VI_solo,
// which has no peer) and keepalived on host b (VI_peer's backup).
type reloadLab struct {
	*keepalivedPair
	lvsd         *vrrpDirector
	dir          string
	kaConf       string
	ka           *lab.Process
	lvsdAddr     netip.Addr
	keepalivedIP netip.Addr
}

func (r *reloadLab) writeLVSD(priority int, vips string, solo bool) {
	r.t.Helper()
	extra := ""
	if solo {
		extra = fmt.Sprintf(reloadSoloInstance, r.la.Interface)
	}
	cfg := fmt.Sprintf(reloadLVSDConfig, r.dir, r.la.Interface, priority, vips, extra)
	if err := os.WriteFile(r.lvsd.config, []byte(cfg), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// hup sends SIGHUP to lvsd and waits until it says the reload is done.
func (r *reloadLab) hup() {
	r.t.Helper()
	before := strings.Count(r.lvsd.proc.Output(), "config reloaded")
	if err := syscall.Kill(r.lvsd.proc.Pid(), syscall.SIGHUP); err != nil {
		r.t.Fatal(err)
	}
	pollUntil(r.ctx, r.t, 10*time.Second, "lvsd's reload", func() bool {
		out := r.lvsd.proc.Output()
		if strings.Contains(out, "config reload rejected") {
			r.t.Fatalf("lvsd rejected the reload:\n%s", out)
		}
		return strings.Count(out, "config reloaded") > before
	})
}

// states returns each lvsd instance's state and how often it became
// master.
func (r *reloadLab) states() map[string]string {
	r.t.Helper()
	st, ok := r.lvsd.status(r.ctx)
	if !ok {
		r.t.Fatal("lvsd's status API does not answer")
	}
	out := map[string]string{}
	for _, v := range st.VRRP {
		out[v.Name] = fmt.Sprintf("%s x%d", v.State, v.BecameMaster)
	}
	return out
}

func (r *reloadLab) held() string {
	r.t.Helper()
	out, err := r.la.Run(r.ctx, "ip", "-br", "-4", "addr", "show", "dev", r.la.Interface)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// noFlap checks, from frame from on, that keepalived never advertised
// and lvsd never stepped down from VI_peer.
func (r *reloadLab) noFlap(from int, step string) {
	r.t.Helper()
	r.noFrame(from, step+": keepalived advertised (it became master)", advertFrom(r.keepalivedIP, 54))
	r.noFrame(from, step+": lvsd stepped down from VI_peer", priorityZeroFrom(r.lvsdAddr, 54))
	if n := strings.Count(r.ka.Output(), "Entering MASTER STATE"); n > 0 {
		r.t.Fatalf("%s: keepalived entered MASTER:\n%s", step, r.ka.Output())
	}
}

// TestLabVRRPReloadInPlaceBesideKeepalived: lvsd is VI_peer's master
// with keepalived as backup, and SIGHUP brings (a) the same VRRP section,
// (b) a lower priority still above keepalived's, (c) a second VIP (then
// keepalived's reload with it too: keepalived 2.2.7 drops adverts whose
// address count differs from its own), (d) VI_solo removed, then VI_peer
// removed. Through (a)-(c) and VI_solo's removal keepalived never
// advertises, lvsd never steps down, and the VIPs stay.
func TestLabVRRPReloadInPlaceBesideKeepalived(t *testing.T) {
	requireRoot(t)
	requireKeepalived(t)
	bin := lvsdBinary(t)
	p := vrrpPeer{VRID: 54, Version: vrrp.Version2, Interval: time.Second, Password: "reload", VIP: netip.MustParseAddr(vrrpLabVIP)}
	r := &reloadLab{keepalivedPair: newKeepalivedPair(t, bin, p), dir: t.TempDir()}
	r.lvsdAddr, r.keepalivedIP = r.la.Addr(), r.kb.Addr()
	r.lvsd = &vrrpDirector{host: r.la, sock: filepath.Join(r.dir, "status.sock"), config: filepath.Join(r.dir, "lvsd.yaml")}
	r.writeLVSD(150, vrrpLabVIP, true)
	r.lvsd.proc = r.la.Start(r.ctx, bin, "--config", r.lvsd.config, "--log-level", "debug")
	pollUntil(r.ctx, t, 20*time.Second, "lvsd master of both", func() bool {
		st, ok := r.lvsd.status(r.ctx)
		return ok && len(st.VRRP) == 2 && st.VRRP[0].State == "master" && st.VRRP[1].State == "master"
	})
	kaDir := t.TempDir()
	r.kaConf = filepath.Join(kaDir, "keepalived.conf")
	if err := os.WriteFile(r.kaConf, []byte(keepalivedConfig(r.kb, p, 100, false)), 0o600); err != nil {
		t.Fatal(err)
	}
	r.ka = r.kb.Start(r.ctx, "keepalived", "--vrrp", "--dont-fork", "--log-console", "--log-detail",
		"-f", r.kaConf, "-p", filepath.Join(kaDir, "keepalived.pid"), "-r", filepath.Join(kaDir, "vrrp.pid"),
		"-c", filepath.Join(kaDir, "checkers.pid"))
	if _, err := r.ka.WaitForOutput(r.ctx, "Entering BACKUP STATE"); err != nil {
		t.Fatal(err)
	}
	// The start's two bursts of gratuitous ARPs (keepalived's defaults:
	// 5 at once, 5 after garp_master_delay 5 s) are over.
	for _, vip := range []netip.Addr{p.VIP, netip.MustParseAddr("10.78.0.110")} {
		i := -1
		for range 10 {
			var err error
			if _, i, err = r.tap.wait(r.ctx, i+1, garpFor(r.la.MAC(), vip)); err != nil {
				t.Fatalf("waiting for the start's gratuitous ARPs for %s: %v", vip, err)
			}
		}
	}
	start := r.tap.mark()
	// keepalived has heard lvsd: two more adverts.
	r.adverts(start, r.lvsdAddr, 2)
	want := map[string]string{"VI_peer": "master x1", "VI_solo": "master x1"}

	// (a) The same file: nothing on the wire but the usual adverts.
	mark := r.tap.mark()
	r.hup()
	r.adverts(r.tap.mark(), r.lvsdAddr, 2)
	r.noFrame(mark, "(a) a gratuitous ARP after an unchanged reload", garpFor(r.la.MAC(), p.VIP))
	r.noFlap(mark, "(a)")

	// (b) Priority 150 -> 120: lvsd says so at once, stays master.
	mark = r.tap.mark()
	r.writeLVSD(120, vrrpLabVIP, true)
	r.hup()
	r.frame(mark, "an advert of priority 120", func(f wireFrame) bool {
		return advertFrom(r.lvsdAddr, 54)(f) && f.Advert.Priority == 120
	})
	r.adverts(r.tap.mark(), r.lvsdAddr, 2)
	r.noFrame(mark, "(b) a gratuitous ARP after a priority change", garpFor(r.la.MAC(), p.VIP))
	r.noFlap(mark, "(b)")

	// (c) A second VIP on lvsd, then on keepalived: the new address is
	// added and announced, the first never leaves.
	second := netip.MustParseAddr("10.78.0.101")
	mark = r.tap.mark()
	r.writeLVSD(120, vrrpLabVIP+", "+second.String(), true)
	r.hup()
	kaTwo := strings.Replace(keepalivedConfig(r.kb, p, 100, false), "\t\t"+p.VIP.String()+"/32 dev "+r.kb.Interface+"\n",
		"\t\t"+p.VIP.String()+"/32 dev "+r.kb.Interface+"\n\t\t"+second.String()+"/32 dev "+r.kb.Interface+"\n", 1)
	if err := os.WriteFile(r.kaConf, []byte(kaTwo), 0o600); err != nil {
		t.Fatal(err)
	}
	kaReloads := strings.Count(r.ka.Output(), "Reloading")
	if err := syscall.Kill(r.ka.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.frame(mark, "a gratuitous ARP for the new VIP", garpFor(r.la.MAC(), second))
	pollUntil(r.ctx, t, 10*time.Second, "keepalived's reload", func() bool { return strings.Count(r.ka.Output(), "Reloading") > kaReloads })
	r.frame(mark, "an advert listing both VIPs", func(f wireFrame) bool {
		return advertFrom(r.lvsdAddr, 54)(f) && len(f.Advert.Addresses) == 2
	})
	r.adverts(r.tap.mark(), r.lvsdAddr, 4) // past keepalived's Master_Down_Interval
	if h := r.held(); !strings.Contains(h, " "+p.VIP.String()+"/32") || !strings.Contains(h, " "+second.String()+"/32") {
		t.Fatalf("(c) lvsd's host holds %s", h)
	}
	r.noFlap(mark, "(c)")

	// (d) VI_solo removed: its priority-0 advert, its VIP gone; VI_peer
	// untouched.
	mark = r.tap.mark()
	r.writeLVSD(120, vrrpLabVIP+", "+second.String(), false)
	r.hup()
	r.frame(mark, "VI_solo's priority-0 advert", priorityZeroFrom(r.lvsdAddr, 55))
	pollUntil(r.ctx, t, 5*time.Second, "VI_solo's VIP gone", func() bool { return !strings.Contains(r.held(), " 10.78.0.110/32") })
	r.adverts(r.tap.mark(), r.lvsdAddr, 4)
	r.noFlap(mark, "(d)")
	delete(want, "VI_solo")
	if got := r.states(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lvsd's instances after the reloads: %v, want %v (no flap)", got, want)
	}

	// VI_peer removed too: lvsd's priority-0 advert hands it to
	// keepalived after Skew_Time, without waiting for a down interval.
	mark = r.tap.mark()
	cfg := fmt.Sprintf("lvsd:\n  state_dir: %[1]s/state\n  status_listen: unix:%[1]s/status.sock\n", r.dir)
	if err := os.WriteFile(r.lvsd.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r.hup()
	r.frame(mark, "VI_peer's priority-0 advert", priorityZeroFrom(r.lvsdAddr, 54))
	if _, err := r.ka.WaitForOutput(r.ctx, "Entering MASTER STATE"); err != nil {
		t.Fatal(err)
	}
	pollUntil(r.ctx, t, 5*time.Second, "lvsd's VIPs gone", func() bool {
		h := r.held()
		return !strings.Contains(h, " "+p.VIP.String()+"/32") && !strings.Contains(h, " "+second.String()+"/32")
	})
	if st, ok := r.lvsd.status(r.ctx); !ok || len(st.VRRP) != 0 {
		t.Errorf("lvsd still reports instances: %+v", st.VRRP)
	}
}
