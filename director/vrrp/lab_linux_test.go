//go:build linux

package vrrp_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/lvskit/lvskit/director/vrrp"
	"github.com/lvskit/lvskit/internal/lab"
)

// The network tier: real raw sockets, netlink and AF_PACKET in network
// namespaces on one bridge (internal/lab). Each test skips when not root.

const labVIP = "10.77.0.100"

func labContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testLogger writes the instance's log into the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func testLogger(t *testing.T, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("host", name)
}

// labDirector is an lvskit VRRP instance with its real transport,
// netlink address manager and AF_PACKET announcer, in a lab host.
type labDirector struct {
	t      *testing.T
	host   *lab.Host
	inst   *vrrp.Instance
	tr     *vrrp.Transport
	states chan vrrp.StateChange
	cancel context.CancelFunc
	trDone chan error
}

// v3Config is a version 3 instance for VRID 51 holding labVIP.
func v3Config(h *lab.Host, priority uint8, interval time.Duration) vrrp.InstanceConfig {
	return vrrp.InstanceConfig{
		Name:      "VI_1",
		Interface: h.Interface,
		Router: vrrp.Config{
			VRID:           51,
			Version:        vrrp.Version3,
			Priority:       priority,
			AdvertInterval: interval,
			Addresses:      []netip.Addr{netip.MustParseAddr(labVIP)},
			PrimaryAddress: h.Addr(),
		},
	}
}

func startLabDirector(t *testing.T, h *lab.Host, cfg vrrp.InstanceConfig) *labDirector {
	t.Helper()
	var conn *vrrp.RawConn
	var frames *vrrp.FrameConn
	var nl *netlink.Handle
	err := h.Do(func() error {
		var err error
		conn, err = vrrp.Listen(vrrp.ListenConfig{
			Interface: h.Interface,
			Family:    vrrp.FamilyOf(cfg.Router.PrimaryAddress),
			Multicast: len(cfg.UnicastPeers) == 0,
		})
		if err != nil {
			return err
		}
		if frames, err = vrrp.DialFrames(h.Interface); err != nil {
			return err
		}
		nl, err = netlink.NewHandle()
		return err
	})
	if err != nil {
		t.Fatalf("opening sockets in %s: %v", h.Name, err)
	}
	addrs, err := vrrp.NewNetlinkAddresses(nl, vrrp.NetlinkAddressOptions{Interface: h.Interface, Label: h.Interface + ":vip"})
	if err != nil {
		t.Fatal(err)
	}
	naSource := netip.Addr{}
	if cfg.Router.PrimaryAddress.Is6() {
		naSource = cfg.Router.PrimaryAddress
	}
	ann, err := vrrp.NewFrameAnnouncer(frames, vrrp.FrameAnnouncerOptions{HardwareAddr: frames.HardwareAddr(), NASource: naSource})
	if err != nil {
		t.Fatal(err)
	}
	log := testLogger(t, h.Name)
	d := &labDirector{t: t, host: h, states: make(chan vrrp.StateChange, 64), trDone: make(chan error, 1)}
	d.tr = vrrp.NewTransport(conn, vrrp.TransportOptions{Logger: log})
	d.inst, err = vrrp.NewInstance(cfg, vrrp.InstanceDeps{
		Transport: d.tr,
		Addresses: addrs,
		Announcer: ann,
		Clock:     vrrp.SystemClock{},
		Logger:    log,
		Observers: []vrrp.Observer{vrrp.ObserverFunc(func(c vrrp.StateChange) { d.states <- c })},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { d.trDone <- d.tr.Run(ctx) }()
	go d.inst.Run(ctx)
	t.Cleanup(func() {
		d.kill()
		frames.Close()
		nl.Close()
	})
	return d
}

// kill stops the director as kill -9 would: nothing more is sent, the
// addresses stay, the socket closes.
func (d *labDirector) kill() {
	d.cancel()
	<-d.inst.Done()
	if err := <-d.trDone; err != nil {
		d.t.Errorf("transport of %s: %v", d.host.Name, err)
	}
	d.trDone <- nil // for a second kill
}

// waitState waits for the director's next transition to want.
func (d *labDirector) waitState(ctx context.Context, want vrrp.State) vrrp.StateChange {
	d.t.Helper()
	select {
	case c := <-d.states:
		if c.To != want {
			d.t.Fatalf("%s: went %s -> %s (%s), want %s", d.host.Name, c.From, c.To, c.Reason, want)
		}
		return c
	case <-ctx.Done():
		d.t.Fatalf("%s: no transition to %s: %v (state %s)", d.host.Name, want, ctx.Err(), d.inst.Status().State)
	}
	return vrrp.StateChange{}
}

func (d *labDirector) noTransition() {
	d.t.Helper()
	select {
	case c := <-d.states:
		d.t.Fatalf("%s: unexpected transition %s -> %s (%s)", d.host.Name, c.From, c.To, c.Reason)
	default:
	}
}

// hasAddr reports whether the host's eth0 has addr.
func hasAddr(ctx context.Context, h *lab.Host, addr string) (bool, error) {
	out, err := h.Run(ctx, "ip", "-o", "addr", "show", "dev", h.Interface)
	if err != nil {
		return false, err
	}
	return strings.Contains(out, " "+addr+"/"), nil
}

// waitAddr polls until the host has (or has not) addr, or ctx is done.
func waitAddr(ctx context.Context, t *testing.T, h *lab.Host, addr string, present bool) {
	t.Helper()
	for {
		has, err := hasAddr(ctx, h, addr)
		if err != nil {
			t.Fatal(err)
		}
		if has == present {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: waiting for %s to be present=%v: %v", h.Name, addr, present, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitLine polls a capture until a line has every one of substrs.
func waitLine(ctx context.Context, t *testing.T, c *lab.Capture, substrs ...string) string {
	t.Helper()
	for {
	lines:
		for _, line := range c.Lines() {
			for _, s := range substrs {
				if !strings.Contains(line, s) {
					continue lines
				}
			}
			return line
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for a captured packet with %q: %v; captured:\n%s", substrs, ctx.Err(), strings.Join(c.Lines(), "\n"))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// lineTime is the timestamp tcpdump printed at the start of line, on
// ref's day.
func lineTime(line string, ref time.Time) time.Time {
	stamp, _, _ := strings.Cut(line, " ")
	tod, err := time.ParseInLocation("15:04:05.000000", stamp, time.Local)
	if err != nil {
		return time.Time{}
	}
	y, m, d := ref.Date()
	return time.Date(y, m, d, tod.Hour(), tod.Minute(), tod.Second(), tod.Nanosecond(), time.Local)
}

// garpFrom is what tcpdump -e prints for a gratuitous ARP for labVIP
// from h ("Request who-has VIP tell VIP"; keepalived's, with a broadcast
// target MAC, add "(ff:ff:ff:ff:ff:ff)" after the first VIP).
func garpFrom(h *lab.Host) []string {
	return []string{h.MAC().String() + " > ff:ff:ff:ff:ff:ff", "Request who-has " + labVIP + " ", "tell " + labVIP + ","}
}

func newPair(t *testing.T) (*lab.Lab, *lab.Host, *lab.Host) {
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	return l, l.AddHost("a", "10.77.0.2/24"), l.AddHost("b", "10.77.0.3/24")
}

// TestLabKilledMasterIsReplaced: two lvskit directors; the master dies
// without a word; the backup takes the VIP after Master_Down_Interval,
// announces it, and a client's ARP cache follows.
func TestLabKilledMasterIsReplaced(t *testing.T) {
	t.Parallel()
	l, ha, hb := newPair(t)
	client := l.AddHost("client", "10.77.0.50/24")
	ctx := labContext(t)
	capture := l.Capture("arp")
	// Short enough for a quick test, long enough that a loaded 2-CPU
	// build host (load 8, -race) does not miss three in a row.
	interval := 200 * time.Millisecond

	a := startLabDirector(t, ha, v3Config(ha, 150, interval))
	a.waitState(ctx, vrrp.Backup)
	a.waitState(ctx, vrrp.Master)
	waitAddr(ctx, t, ha, labVIP, true)
	b := startLabDirector(t, hb, v3Config(hb, 100, interval))
	b.waitState(ctx, vrrp.Backup)
	eventuallyCtx(ctx, t, "b to hear a", func() bool { return b.inst.Stats().AdvertsReceived >= 3 })
	waitLine(ctx, t, capture, garpFrom(ha)...)
	if _, err := client.Run(ctx, "ping", "-c", "1", "-W", "2", labVIP); err != nil {
		t.Fatal(err)
	}

	killed := time.Now()
	a.kill()
	c := b.waitState(ctx, vrrp.Master)
	line := waitLine(ctx, t, capture, garpFrom(hb)...)
	waitAddr(ctx, t, hb, labVIP, true)
	took := c.At.Sub(killed)
	garp := lineTime(line, killed).Sub(killed)
	down := 3*interval + time.Duration(256-100)*interval/256
	t.Logf("takeover %s after the kill (Master_Down_Interval %s); first GARP seen %s after", took, down, garp)
	// b counts from a's last advert, up to one interval before the
	// kill; late only by scheduling delays.
	if took < down-interval-10*time.Millisecond || took > down+500*time.Millisecond {
		t.Errorf("takeover after %s, want about Master_Down_Interval %s", took, down)
	}
	// The client's ARP cache now has b's MAC: its traffic goes to b.
	out, err := client.Run(ctx, "ip", "neigh", "show", labVIP)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, hb.MAC().String()) {
		t.Errorf("client's neighbour entry %q, want b's MAC %s", out, hb.MAC())
	}
	if _, err := client.Run(ctx, "ping", "-c", "1", "-W", "2", labVIP); err != nil {
		t.Errorf("client cannot reach the VIP after failover: %v", err)
	}
}

// TestLabCleanStopHandsOverAfterSkew: priority 0 on shutdown, so the
// backup takes over after Skew_Time only.
func TestLabCleanStopHandsOverAfterSkew(t *testing.T) {
	t.Parallel()
	l, ha, hb := newPair(t)
	ctx := labContext(t)
	capture := l.Capture("arp")
	interval := time.Second // a long Master_Down_Interval (3.6 s) to tell apart

	a := startLabDirector(t, ha, v3Config(ha, 150, interval))
	a.waitState(ctx, vrrp.Backup)
	a.waitState(ctx, vrrp.Master)
	b := startLabDirector(t, hb, v3Config(hb, 100, interval))
	b.waitState(ctx, vrrp.Backup)
	eventuallyCtx(ctx, t, "b to hear a", func() bool { return b.inst.Stats().AdvertsReceived > 0 })

	stopped := time.Now()
	if err := a.inst.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c := b.waitState(ctx, vrrp.Master)
	line := waitLine(ctx, t, capture, garpFrom(hb)...)
	took := c.At.Sub(stopped)
	skew := time.Duration(256-100) * interval / 256
	t.Logf("takeover %s after the clean stop (Skew_Time %s); first GARP seen %s after", took, skew, lineTime(line, stopped).Sub(stopped))
	if took > skew+500*time.Millisecond { // far below Master_Down_Interval (3.6 s)
		t.Errorf("takeover after %s, want Skew_Time %s", took, skew)
	}
	waitAddr(ctx, t, ha, labVIP, false)
	waitAddr(ctx, t, hb, labVIP, true)
	if got := b.inst.Stats().PriorityZeroReceived; got != 1 {
		t.Errorf("b received %d priority-0 adverts", got)
	}
}

func eventuallyCtx(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestLabPreemptAndNoPreempt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		noPreempt bool
	}{{"preempt", false}, {"nopreempt", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, ha, hb := newPair(t)
			ctx := labContext(t)
			interval := 300 * time.Millisecond
			low := startLabDirector(t, hb, v3Config(hb, 100, interval))
			low.waitState(ctx, vrrp.Backup)
			low.waitState(ctx, vrrp.Master)
			waitAddr(ctx, t, hb, labVIP, true)

			cfg := v3Config(ha, 150, interval)
			cfg.Router.NoPreempt = tc.noPreempt
			high := startLabDirector(t, ha, cfg)
			high.waitState(ctx, vrrp.Backup)
			if !tc.noPreempt {
				high.waitState(ctx, vrrp.Master)
				low.waitState(ctx, vrrp.Backup)
				waitAddr(ctx, t, hb, labVIP, false)
				waitAddr(ctx, t, ha, labVIP, true)
				return
			}
			// Ten of low's adverts, well past high's Master_Down_Interval.
			eventuallyCtx(ctx, t, "ten adverts from low", func() bool { return high.inst.Stats().AdvertsReceived >= 10 })
			high.noTransition()
			low.noTransition()
			if has, _ := hasAddr(ctx, ha, labVIP); has {
				t.Error("the nopreempt backup holds the VIP")
			}
		})
	}
}

// TestLabIPv6Failover: version 3 over IPv6, link-local sources, the VIP
// announced with an unsolicited neighbour advertisement.
func TestLabIPv6Failover(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	ha := l.AddHost("a", "10.77.0.2/24", "fe80::a/64")
	hb := l.AddHost("b", "10.77.0.3/24", "fe80::b/64")
	ctx := labContext(t)
	capture := l.Capture("icmp6 or ip6 proto 112")
	vip := "2001:db8:77::100"
	cfg := func(h *lab.Host, ll string, priority uint8) vrrp.InstanceConfig {
		c := v3Config(h, priority, 300*time.Millisecond)
		c.Router.PrimaryAddress = netip.MustParseAddr(ll)
		c.Router.Addresses = []netip.Addr{netip.MustParseAddr(vip)}
		return c
	}
	a := startLabDirector(t, ha, cfg(ha, "fe80::a", 150))
	a.waitState(ctx, vrrp.Backup)
	a.waitState(ctx, vrrp.Master)
	b := startLabDirector(t, hb, cfg(hb, "fe80::b", 100))
	b.waitState(ctx, vrrp.Backup)
	waitLine(ctx, t, capture, "fe80::a > ff02::12", "VRRPv3")
	eventuallyCtx(ctx, t, "b to hear a over IPv6", func() bool { return b.inst.Stats().AdvertsReceived >= 5 })
	b.noTransition()
	a.kill()
	b.waitState(ctx, vrrp.Master)
	waitLine(ctx, t, capture, hb.MAC().String()+" > 33:33:00:00:00:01", "neighbor advertisement", "tgt is "+vip)
	waitAddr(ctx, t, hb, vip, true)
}

// TestLabSplitBrainHealsAndWinnerReannounces: protocol 112 dropped in the
// backup's namespace makes two masters; once the rule goes, one master
// remains within three adverts, and the winner sends gratuitous ARP
// again, since the loser's may have pulled the traffic (keepalived
// issue #166).
func TestLabSplitBrainHealsAndWinnerReannounces(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/sbin/nft"); err != nil {
		t.Skipf("needs nftables: %v", err)
	}
	l, ha, hb := newPair(t)
	ctx := labContext(t)
	capture := l.Capture("arp")
	interval := 200 * time.Millisecond
	a := startLabDirector(t, ha, v3Config(ha, 150, interval))
	a.waitState(ctx, vrrp.Backup)
	a.waitState(ctx, vrrp.Master)
	b := startLabDirector(t, hb, v3Config(hb, 100, interval))
	b.waitState(ctx, vrrp.Backup)

	for _, args := range [][]string{
		{"add", "table", "inet", "lvskit_test"},
		{"add", "chain", "inet", "lvskit_test", "input", "{ type filter hook input priority 0; }"},
		{"add", "rule", "inet", "lvskit_test", "input", "ip", "protocol", "vrrp", "drop"},
	} {
		if _, err := hb.Run(ctx, "nft", args...); err != nil {
			t.Fatal(err)
		}
	}
	b.waitState(ctx, vrrp.Master)
	waitLine(ctx, t, capture, garpFrom(hb)...)
	garpsBefore := countLines(capture, garpFrom(ha)...)
	a.noTransition()

	healed := time.Now()
	if _, err := hb.Run(ctx, "nft", "delete", "table", "inet", "lvskit_test"); err != nil {
		t.Fatal(err)
	}
	c := b.waitState(ctx, vrrp.Backup)
	took := c.At.Sub(healed)
	t.Logf("one master %s after healing (%d adverts)", took, took/interval)
	if took > 3*interval {
		t.Errorf("two masters for %s after healing, want at most 3 adverts (%s)", took, 3*interval)
	}
	eventuallyCtx(ctx, t, "the winner's new gratuitous ARP", func() bool {
		return countLines(capture, garpFrom(ha)...) > garpsBefore
	})
	a.noTransition()
	waitAddr(ctx, t, hb, labVIP, false)
}

// countLines counts the captured lines that have every one of substrs.
func countLines(c *lab.Capture, substrs ...string) int {
	n := 0
lines:
	for _, line := range c.Lines() {
		for _, s := range substrs {
			if !strings.Contains(line, s) {
				continue lines
			}
		}
		n++
	}
	return n
}

// TestLabUnicastPeers: with unicast peers the adverts go to each peer's
// address instead of the group, and the backup hears them.
func TestLabUnicastPeers(t *testing.T) {
	t.Parallel()
	l, ha, hb := newPair(t)
	ctx := labContext(t)
	capture := l.Capture("ip proto 112")
	cfg := func(h, peer *lab.Host, priority uint8) vrrp.InstanceConfig {
		c := v3Config(h, priority, 200*time.Millisecond)
		c.UnicastPeers = []netip.Addr{peer.Addr()}
		return c
	}
	a := startLabDirector(t, ha, cfg(ha, hb, 150))
	a.waitState(ctx, vrrp.Backup)
	a.waitState(ctx, vrrp.Master)
	b := startLabDirector(t, hb, cfg(hb, ha, 100))
	b.waitState(ctx, vrrp.Backup)
	eventuallyCtx(ctx, t, "b to hear a", func() bool { return b.inst.Stats().AdvertsReceived >= 3 })
	waitLine(ctx, t, capture, "10.77.0.2 > 10.77.0.3: VRRPv3")
	if n := countLines(capture, "> 224.0.0.18"); n != 0 {
		t.Errorf("%d adverts went to the multicast group", n)
	}
	a.kill()
	b.waitState(ctx, vrrp.Master)
	waitLine(ctx, t, capture, "10.77.0.3 > 10.77.0.2: VRRPv3")
}
