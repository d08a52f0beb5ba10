//go:build linux

package vrrp_test

// lvsd's VRRP against keepalived's, and against packets that must change nothing.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/lvskit/lvskit/director/vrrp"
	"github.com/lvskit/lvskit/internal/lab"
)

// keepalivedConf is a keepalived.conf with one instance for VRID 51
// holding labVIP.
func keepalivedConf(version vrrp.Version, priority uint8, interval string, state string) string {
	auth := ""
	if version == vrrp.Version2 {
		auth = "\tauthentication {\n\t\tauth_type PASS\n\t\tauth_pass lvskit\n\t}\n"
	}
	return fmt.Sprintf(`global_defs {
	router_id lvskit-lab
}
vrrp_instance VI_1 {
	state %s
	interface eth0
	version %d
	virtual_router_id 51
	priority %d
	advert_int %s
%s	virtual_ipaddress {
		%s/32 dev eth0
	}
}
`, state, version, priority, interval, auth, labVIP)
}

// startKeepalived runs Debian's keepalived in h with its own config and
// pid files in a temporary directory (never /etc/keepalived).
func startKeepalived(t *testing.T, h *lab.Host, conf string) *lab.Process {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return h.Start(t.Context(), "keepalived", "--vrrp", "--dont-fork", "--log-console", "--log-detail",
		"-f", path, "-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"),
		"-c", filepath.Join(dir, "checkers.pid"))
}

// killGroup sends SIGKILL to a process the test started, and to the
// children in its process group (keepalived's VRRP process).
func killGroup(t *testing.T, p *lab.Process) {
	t.Helper()
	if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatalf("killing %s: %v", p, err)
	}
	<-p.Done()
}

func requireKeepalived(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/keepalived"); err != nil {
		t.Skipf("needs Debian's keepalived (scripts/install-deps.sh): %v", err)
	}
}

// TestLabKeepalivedInterop runs lvskit against Debian's keepalived, in
// both versions and both roles, and kills the master each time.
func TestLabKeepalivedInterop(t *testing.T) {
	t.Parallel()
	requireKeepalived(t)
	for _, version := range []vrrp.Version{vrrp.Version2, vrrp.Version3} {
		interval, kaInterval := time.Second, "1"
		if version == vrrp.Version3 {
			interval, kaInterval = 200*time.Millisecond, "0.2"
		}
		lvskitConfig := func(h *lab.Host, priority uint8) vrrp.InstanceConfig {
			c := v3Config(h, priority, interval)
			c.Router.Version = version
			if version == vrrp.Version2 {
				c.Router.Password = "lvskit"
			}
			return c
		}
		t.Run(fmt.Sprintf("v%d/lvskit-master", version), func(t *testing.T) {
			t.Parallel()
			l, hl, hk := newPair(t)
			ctx := labContext(t)
			capture := l.Capture("arp")
			lv := startLabDirector(t, hl, lvskitConfig(hl, 150))
			lv.waitState(ctx, vrrp.Backup)
			lv.waitState(ctx, vrrp.Master)
			ka := startKeepalived(t, hk, keepalivedConf(version, 100, kaInterval, "BACKUP"))
			if _, err := ka.WaitForOutput(ctx, "Entering BACKUP STATE"); err != nil {
				t.Fatal(err)
			}
			// keepalived accepts lvskit's adverts: it stays backup for
			// several of its Master_Down_Intervals.
			eventuallyCtx(ctx, t, "five adverts sent", func() bool { return lv.inst.Stats().AdvertsSent >= 5 })
			if strings.Contains(ka.Output(), "Entering MASTER STATE") {
				t.Fatalf("keepalived became master next to lvskit:\n%s", ka.Output())
			}
			killed := time.Now()
			lv.kill()
			if _, err := ka.WaitForOutput(ctx, "Entering MASTER STATE"); err != nil {
				t.Fatal(err)
			}
			line := waitLine(ctx, t, capture, garpFrom(hk)...)
			t.Logf("keepalived took over; first GARP %s after the kill", lineTime(line, killed).Sub(killed))
			waitAddr(ctx, t, hk, labVIP, true)
		})
		t.Run(fmt.Sprintf("v%d/keepalived-master", version), func(t *testing.T) {
			t.Parallel()
			l, hl, hk := newPair(t)
			ctx := labContext(t)
			capture := l.Capture("arp")
			ka := startKeepalived(t, hk, keepalivedConf(version, 150, kaInterval, "BACKUP"))
			if _, err := ka.WaitForOutput(ctx, "Entering MASTER STATE"); err != nil {
				t.Fatal(err)
			}
			lv := startLabDirector(t, hl, lvskitConfig(hl, 100))
			lv.waitState(ctx, vrrp.Backup)
			eventuallyCtx(ctx, t, "five adverts from keepalived", func() bool { return lv.inst.Stats().AdvertsReceived >= 5 })
			lv.noTransition()
			if st := lv.inst.Stats(); st.AuthErrors+st.IntervalErrors+st.VersionErrors+st.OtherDiscarded+st.AddressMismatch != 0 {
				t.Fatalf("lvskit rejected keepalived's adverts: %+v", st)
			}
			killed := time.Now()
			killGroup(t, ka)
			c := lv.waitState(ctx, vrrp.Master)
			line := waitLine(ctx, t, capture, garpFrom(hl)...)
			t.Logf("lvskit took over %s after kill -9 of keepalived; first GARP seen %s after", c.At.Sub(killed), lineTime(line, killed).Sub(killed))
			waitAddr(ctx, t, hl, labVIP, true)
		})
	}
}

// TestLabHostilePacketsChangeNothing injects forged adverts from another
// namespace at a version 2 master with a password: each is dropped and
// counted, and the master stays master. A well-formed advert with a
// higher priority then shows that the same path does reach the machine.
func TestLabHostilePacketsChangeNothing(t *testing.T) {
	t.Parallel()
	l, ha, _ := newPair(t)
	evil := l.AddHost("evil", "10.77.0.66/24")
	ctx := labContext(t)
	cfg := v3Config(ha, 150, time.Second)
	cfg.Router.Version = vrrp.Version2
	cfg.Router.Password = "secret"
	a := startLabDirector(t, ha, cfg)
	a.waitState(ctx, vrrp.Backup)
	a.waitState(ctx, vrrp.Master)

	src := evil.Addr()
	advert := func(edit func(*vrrp.Advertisement)) []byte {
		adv := vrrp.Advertisement{Version: vrrp.Version2, VRID: 51, Priority: 254, Interval: time.Second,
			Addresses: cfg.Router.Addresses, AuthType: vrrp.AuthSimple, AuthData: [8]byte{'s', 'e', 'c', 'r', 'e', 't'}}
		if edit != nil {
			edit(&adv)
		}
		b, err := adv.Marshal(src, vrrp.IPv4Group)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := advert(nil)
	badSum := append([]byte(nil), good...)
	badSum[6] ^= 0x55
	hostile := []struct {
		name    string
		payload []byte
		ttl     int
	}{
		{"ttl 254", good, 254},
		{"bad checksum", badSum, 255},
		{"wrong vrid", advert(func(a *vrrp.Advertisement) { a.VRID = 52 }), 255},
		{"auth mismatch", advert(func(a *vrrp.Advertisement) { a.AuthData = [8]byte{'g', 'u', 'e', 's', 's'} }), 255},
		{"truncated", good[:len(good)-4], 255},
	}
	inject := func(payload []byte, ttl int) {
		t.Helper()
		if err := evil.Do(func() error { return sendRaw(evil.Interface, src, payload, ttl) }); err != nil {
			t.Fatal(err)
		}
	}
	before := a.tr.Stats()
	for _, h := range hostile {
		inject(h.payload, h.ttl)
	}
	eventuallyCtx(ctx, t, "the hostile packets to be counted", func() bool {
		return a.tr.Stats().Received-before.Received == uint64(len(hostile))
	})
	got := a.tr.Stats()
	for name, n := range map[string]uint64{
		"BadHopLimit": got.BadHopLimit - before.BadHopLimit,
		"BadChecksum": got.BadChecksum - before.BadChecksum,
		"UnknownVRID": got.UnknownVRID - before.UnknownVRID,
		"Truncated":   got.Truncated - before.Truncated,
		"Delivered":   got.Delivered - before.Delivered,
	} {
		want := uint64(1)
		if name == "Delivered" {
			want = 1 // the auth mismatch, which the instance rejects
		}
		if n != want {
			t.Errorf("%s grew by %d, want %d (stats %+v)", name, n, want, got)
		}
	}
	eventuallyCtx(ctx, t, "the auth error to be counted", func() bool { return a.inst.Stats().AuthErrors == 1 })
	a.noTransition()
	if s := a.inst.Status().State; s != vrrp.Master {
		t.Fatalf("state %s after hostile packets", s)
	}

	inject(good, 255)
	a.waitState(ctx, vrrp.Backup)
}

// sendRaw sends a VRRP payload to 224.0.0.18 from the calling thread's
// namespace with the given TTL.
func sendRaw(ifname string, src netip.Addr, payload []byte, ttl int) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	c, err := net.ListenPacket("ip4:112", "0.0.0.0")
	if err != nil {
		return err
	}
	defer c.Close()
	p := ipv4.NewPacketConn(c)
	if err := p.SetMulticastInterface(ifi); err != nil {
		return err
	}
	if err := p.SetMulticastTTL(ttl); err != nil {
		return err
	}
	_, err = p.WriteTo(payload, &ipv4.ControlMessage{Src: src.AsSlice(), IfIndex: ifi.Index}, &net.IPAddr{IP: vrrp.IPv4Group.AsSlice()})
	return err
}
