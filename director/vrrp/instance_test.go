package vrrp_test

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/vrrp"
	"github.com/lvskit/lvskit/director/vrrp/vrrptest"
)

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

var vips = []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")}

// node is one director on a fake wire: a transport and an instance,
// running until the test ends.
type node struct {
	t      *testing.T
	inst   *vrrp.Instance
	tr     *vrrp.Transport
	port   *vrrptest.Port
	addrs  *vrrptest.Addresses
	ann    *vrrptest.Announcer
	states chan vrrp.StateChange
	cancel context.CancelFunc
}

func instanceConfig(name, addr string, priority uint8, edit func(*vrrp.InstanceConfig)) vrrp.InstanceConfig {
	cfg := vrrp.InstanceConfig{
		Name:      name,
		Interface: "eth0",
		Router: vrrp.Config{
			VRID:           51,
			Version:        vrrp.Version3,
			Priority:       priority,
			AdvertInterval: time.Second,
			Addresses:      vips,
			PrimaryAddress: netip.MustParseAddr(addr),
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	return cfg
}

func startNode(t *testing.T, wire *vrrptest.Wire, clock *vrrptest.Clock, cfg vrrp.InstanceConfig) *node {
	t.Helper()
	return startNodeWith(t, wire, clock, cfg, nil)
}

// startNodeWith is startNode with the instance's address manager
// wrapped by wrap (nil: the fake itself).
func startNodeWith(t *testing.T, wire *vrrptest.Wire, clock *vrrptest.Clock, cfg vrrp.InstanceConfig, wrap func(*vrrptest.Addresses) vrrp.AddressManager) *node {
	t.Helper()
	n := &node{
		t:      t,
		port:   wire.Port(cfg.Router.PrimaryAddress),
		addrs:  vrrptest.NewAddresses(),
		ann:    vrrptest.NewAnnouncer(clock),
		states: make(chan vrrp.StateChange, 64),
	}
	n.tr = vrrp.NewTransport(n.port, vrrp.TransportOptions{})
	var addrs vrrp.AddressManager = n.addrs
	if wrap != nil {
		addrs = wrap(n.addrs)
	}
	inst, err := vrrp.NewInstance(cfg, vrrp.InstanceDeps{
		Transport: n.tr,
		Addresses: addrs,
		Announcer: n.ann,
		Clock:     clock,
		Observers: []vrrp.Observer{vrrp.ObserverFunc(func(c vrrp.StateChange) { n.states <- c })},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.inst = inst
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	trDone := make(chan error, 1)
	go func() { trDone <- n.tr.Run(ctx) }()
	go inst.Run(ctx)
	t.Cleanup(func() {
		cancel()
		<-inst.Done()
		if err := <-trDone; err != nil {
			t.Errorf("transport of %s: %v", cfg.Name, err)
		}
	})
	n.waitState(vrrp.Backup)
	return n
}

// waitState waits for the next transition and checks where it went.
func (n *node) waitState(want vrrp.State) vrrp.StateChange {
	n.t.Helper()
	select {
	case c := <-n.states:
		if c.To != want {
			n.t.Fatalf("%s: went %s -> %s (%s), want %s", c.Instance, c.From, c.To, c.Reason, want)
		}
		return c
	case <-time.After(5 * time.Second):
		n.t.Fatalf("%s: no transition to %s within 5s (state %s)", n.inst.Name(), want, n.inst.Status().State)
	}
	return vrrp.StateChange{}
}

// noTransition checks that no transition has been reported.
func (n *node) noTransition() {
	n.t.Helper()
	select {
	case c := <-n.states:
		n.t.Fatalf("%s: unexpected transition %s -> %s (%s)", c.Instance, c.From, c.To, c.Reason)
	default:
	}
}

// eventually polls cond until it holds, for at most 5 s: for conditions
// the fakes cannot signal (a goroutine has processed an event).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestInstanceTakesOverAddsAnnouncesAndAdvertises(t *testing.T) {
	wire, clock := vrrptest.NewWire(), vrrptest.NewClock(start)
	n := startNode(t, wire, clock, instanceConfig("a", "10.81.0.1", 100, nil))

	// Master_Down_Interval = 3 x 1 s + (256-100)/256 s.
	clock.Advance(3*time.Second + 609*time.Millisecond)
	n.noTransition()
	clock.Advance(time.Millisecond)
	c := n.waitState(vrrp.Master)
	if got := c.At.Sub(start); got != 3610*time.Millisecond {
		t.Errorf("became master at +%s", got)
	}
	ctx := ctxT(t)
	if err := n.addrs.WaitHeld(ctx, vips...); err != nil {
		t.Fatal(err)
	}
	// keepalived's defaults: 5 rounds at once, 5 more after 5 s.
	if err := n.ann.WaitRounds(ctx, 5); err != nil {
		t.Fatal(err)
	}
	err := wire.WaitSent(ctx, "an advert with priority 100", func(s []vrrptest.Sent) bool {
		return len(s) > 0 && s[0].Advert().Priority == 100 && s[0].Dst == vrrp.IPv4Group
	})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Second)
	if err := n.ann.WaitRounds(ctx, 10); err != nil {
		t.Fatal(err)
	}
	rounds := n.ann.Rounds()
	for i, at := range rounds {
		want := c.At
		if i >= 5 {
			want = c.At.Add(5 * time.Second)
		}
		if !at.Equal(want) {
			t.Errorf("round %d at +%s, want +%s", i, at.Sub(start), want.Sub(start))
		}
	}
	// The adver timer fired once more in that jump.
	if err := wire.WaitSent(ctx, "a second advert", func(s []vrrptest.Sent) bool { return len(s) >= 2 }); err != nil {
		t.Fatal(err)
	}
	if st := n.inst.Stats(); st.BecameMaster != 1 || st.AnnounceRounds != 10 {
		t.Errorf("stats %+v", st)
	}
}

// twoNodes starts a (priority 150) and b (100) and lets a win.
func twoNodes(t *testing.T, editB func(*vrrp.InstanceConfig)) (*vrrptest.Wire, *vrrptest.Clock, *node, *node) {
	t.Helper()
	wire, clock := vrrptest.NewWire(), vrrptest.NewClock(start)
	a := startNode(t, wire, clock, instanceConfig("a", "10.81.0.1", 150, nil))
	b := startNode(t, wire, clock, instanceConfig("b", "10.81.0.2", 100, editB))
	clock.Advance(3500 * time.Millisecond) // a: 3.414 s, b: 3.609 s
	a.waitState(vrrp.Master)
	eventually(t, "b to hear a", func() bool { return b.inst.Stats().AdvertsReceived > 0 })
	return wire, clock, a, b
}

func TestInstanceShutdownHandsOverAfterSkewTime(t *testing.T) {
	wire, clock, a, b := twoNodes(t, nil)
	ctx := ctxT(t)
	if err := a.inst.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	a.waitState(vrrp.Initialize)
	if held := a.addrs.Held(); len(held) != 0 {
		t.Errorf("a still holds %v after shutdown", held)
	}
	sent := wire.Sent()
	if last := sent[len(sent)-1]; last.From != a.port || last.Advert().Priority != 0 {
		t.Fatalf("a's last packet %+v, want its priority-0 advert", last.Advert())
	}
	eventually(t, "b to see the priority-0 advert", func() bool { return b.inst.Stats().PriorityZeroReceived == 1 })
	// Skew_Time for priority 100 at 1 s: 156/256 s = 609.375 ms.
	clock.Advance(609 * time.Millisecond)
	b.noTransition()
	clock.Advance(time.Millisecond)
	b.waitState(vrrp.Master)
	if err := b.addrs.WaitHeld(ctx, vips...); err != nil {
		t.Fatal(err)
	}
}

// Cancelling Run is a crash: no priority 0, addresses left behind; the
// backup takes over after Master_Down_Interval.
func TestInstanceAbandonedMasterIsReplacedAfterMasterDownInterval(t *testing.T) {
	wire, clock, a, b := twoNodes(t, nil)
	sentBefore := len(wire.Sent())
	a.cancel()
	<-a.inst.Done()
	if got := wire.Sent()[sentBefore:]; len(got) != 0 {
		t.Fatalf("abandoned master sent %d packets", len(got))
	}
	if held := a.addrs.Held(); len(held) != 2 {
		t.Errorf("abandoned master holds %v: a crash leaves its addresses", held)
	}
	clock.Advance(3 * time.Second)
	b.noTransition()
	clock.Advance(609*time.Millisecond + time.Millisecond)
	b.waitState(vrrp.Master)
}

func TestInstanceNoPreemptKeepsLowerPriorityMaster(t *testing.T) {
	wire, clock := vrrptest.NewWire(), vrrptest.NewClock(start)
	low := startNode(t, wire, clock, instanceConfig("low", "10.81.0.2", 100, nil))
	clock.Advance(4 * time.Second)
	low.waitState(vrrp.Master)
	high := startNode(t, wire, clock, instanceConfig("high", "10.81.0.1", 150, func(c *vrrp.InstanceConfig) {
		c.Router.NoPreempt = true
	}))
	for range 10 {
		// low's status shows its next advert only once the last one's
		// actions are all carried out.
		eventually(t, "low to re-arm its adver timer", func() bool { return low.inst.Status().AdverDeadline.After(clock.Now()) })
		n := high.inst.Stats().AdvertsReceived
		clock.Advance(time.Second)
		eventually(t, "high to hear low", func() bool { return high.inst.Stats().AdvertsReceived > n })
	}
	high.noTransition()
	low.noTransition()
}

func TestInstanceFaultStepsDownWithPriorityZero(t *testing.T) {
	wire, _, a, b := twoNodes(t, nil)
	ctx := ctxT(t)
	if err := a.inst.Post(ctx, vrrp.FaultDetected{Reason: "real servers down"}); err != nil {
		t.Fatal(err)
	}
	a.waitState(vrrp.Fault)
	if err := wire.WaitSent(ctx, "a priority-0 advert", func(s []vrrptest.Sent) bool {
		return s[len(s)-1].From == a.port && s[len(s)-1].Advert().Priority == 0
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b to see it", func() bool { return b.inst.Stats().PriorityZeroReceived == 1 })
	if err := a.inst.Post(ctx, vrrp.Startup{}); err == nil {
		t.Error("Post(Startup) accepted; only tracking events may be posted")
	}
}

func TestInstanceDiscardsAndCountsAuthMismatch(t *testing.T) {
	wire, clock := vrrptest.NewWire(), vrrptest.NewClock(start)
	v2 := func(c *vrrp.InstanceConfig) {
		c.Router.Version = vrrp.Version2
		c.Router.Password = "secret"
	}
	n := startNode(t, wire, clock, instanceConfig("a", "10.81.0.1", 100, v2))
	clock.Advance(4 * time.Second)
	n.waitState(vrrp.Master)

	src := netip.MustParseAddr("10.81.0.9")
	bad := vrrp.Advertisement{Version: vrrp.Version2, VRID: 51, Priority: 254, Interval: time.Second,
		Addresses: vips, AuthType: vrrp.AuthSimple, AuthData: [8]byte{'w', 'r', 'o', 'n', 'g'}}
	b, err := bad.Marshal(src, vrrp.IPv4Group)
	if err != nil {
		t.Fatal(err)
	}
	wire.Inject(vrrp.Packet{Payload: b, Src: src, Dst: vrrp.IPv4Group, HopLimit: 255})
	eventually(t, "the auth error to be counted", func() bool { return n.inst.Stats().AuthErrors == 1 })
	n.noTransition()
	if s := n.inst.Status().State; s != vrrp.Master {
		t.Fatalf("state %s after a forged advert", s)
	}
}

func TestTransportDropsAndCountsHostilePackets(t *testing.T) {
	wire := vrrptest.NewWire()
	port := wire.Port(netip.MustParseAddr("10.81.0.1"))
	tr := vrrp.NewTransport(port, vrrp.TransportOptions{})
	sub, err := tr.Subscribe(51)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Subscribe(51); err == nil {
		t.Fatal("second subscription to vrid 51 accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	src := netip.MustParseAddr("10.81.0.9")
	advert := func(edit func(*vrrp.Advertisement)) []byte {
		a := vrrp.Advertisement{Version: vrrp.Version3, VRID: 51, Priority: 200, Interval: time.Second, Addresses: vips}
		if edit != nil {
			edit(&a)
		}
		b, err := a.Marshal(src, vrrp.IPv4Group)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := advert(nil)
	badSum := slices.Clone(good)
	badSum[7] ^= 0xff
	badVersion := slices.Clone(good)
	badVersion[0] = 0x41
	for _, p := range []struct {
		payload []byte
		hop     int
	}{
		{good, 254},
		{good, -1},
		{badSum, 255},
		{good[:5], 255},
		{good[:len(good)-1], 255},
		{badVersion, 255},
		{advert(func(a *vrrp.Advertisement) { a.VRID = 52 }), 255},
		{good, 255},
	} {
		wire.Inject(vrrp.Packet{Payload: p.payload, Src: src, Dst: vrrp.IPv4Group, HopLimit: p.hop})
	}
	select {
	case got := <-sub.C():
		if got.Src != src || got.Advert.Priority != 200 {
			t.Errorf("delivered %+v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the valid advert was not delivered")
	}
	eventually(t, "all packets counted", func() bool { return tr.Stats().Received == 8 })
	want := vrrp.TransportStats{Received: 8, Delivered: 1, BadHopLimit: 2, Truncated: 2, BadChecksum: 1, BadVersion: 1, UnknownVRID: 1}
	if got := tr.Stats(); got != want {
		t.Errorf("stats\n got %+v\nwant %+v", got, want)
	}
	select {
	case got := <-sub.C():
		t.Errorf("a dropped packet was delivered: %+v", got)
	default:
	}
}

func TestInstanceConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*vrrp.InstanceConfig)
	}{
		{"no name", func(c *vrrp.InstanceConfig) { c.Name = "" }},
		{"no interface", func(c *vrrp.InstanceConfig) { c.Interface = "" }},
		{"bad router", func(c *vrrp.InstanceConfig) { c.Router.VRID = 0 }},
		{"peer of other family", func(c *vrrp.InstanceConfig) { c.UnicastPeers = []netip.Addr{netip.MustParseAddr("2001:db8::1")} }},
		{"multicast peer", func(c *vrrp.InstanceConfig) { c.UnicastPeers = []netip.Addr{vrrp.IPv4Group} }},
		{"zero repeat", func(c *vrrp.InstanceConfig) { c.Announce = vrrp.AnnounceConfig{Delay: time.Second} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := instanceConfig("a", "10.81.0.1", 100, tc.edit)
			_, err := vrrp.NewInstance(cfg, vrrp.InstanceDeps{
				Transport: vrrp.NewTransport(vrrptest.NewWire().Port(), vrrp.TransportOptions{}),
				Addresses: vrrptest.NewAddresses(),
				Announcer: vrrptest.NewAnnouncer(vrrp.SystemClock{}),
				Clock:     vrrp.SystemClock{},
			})
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestUnicastPeersReplaceTheGroup(t *testing.T) {
	wire, clock := vrrptest.NewWire(), vrrptest.NewClock(start)
	peers := []netip.Addr{netip.MustParseAddr("10.81.0.2"), netip.MustParseAddr("10.81.0.3")}
	n := startNode(t, wire, clock, instanceConfig("a", "10.81.0.1", 100, func(c *vrrp.InstanceConfig) {
		c.UnicastPeers = peers
	}))
	clock.Advance(4 * time.Second)
	n.waitState(vrrp.Master)
	err := wire.WaitSent(ctxT(t), "adverts to both peers", func(s []vrrptest.Sent) bool {
		return len(s) >= 2 && s[0].Dst == peers[0] && s[1].Dst == peers[1]
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A reload that lowers the master's priority drains it: the backup hears
// the new priority at once and takes over after its down interval; the
// old master yields when it hears the backup.
func TestInstanceReconfiguredToALowerPriorityHandsOverToTheBackup(t *testing.T) {
	_, clock, a, b := twoNodes(t, nil)
	ctx := ctxT(t)
	heard := b.inst.Stats().AdvertsReceived
	if err := a.inst.Reconfigure(ctx, instanceConfig("a", "10.81.0.1", 50, nil), 0); err != nil {
		t.Fatal(err)
	}
	a.noTransition()
	if st := a.inst.Status(); st.State != vrrp.Master || st.Priority != 50 {
		t.Fatalf("a after the reload: %+v", st)
	}
	eventually(t, "b to hear a's advert of priority 50", func() bool { return b.inst.Stats().AdvertsReceived > heard })
	clock.Advance(4 * time.Second) // b discards a's lower adverts: its down timer runs out
	b.waitState(vrrp.Master)
	a.waitState(vrrp.Backup)
}

// Removing one address keeps the announcements of the others going: the
// second burst after garp_master_delay still goes out.
func TestInstanceReconfiguredWithoutAnAddressKeepsAnnouncingTheRest(t *testing.T) {
	wire, clock := vrrptest.NewWire(), vrrptest.NewClock(start)
	n := startNode(t, wire, clock, instanceConfig("a", "10.81.0.1", 100, nil))
	clock.Advance(3610 * time.Millisecond)
	n.waitState(vrrp.Master)
	ctx := ctxT(t)
	if err := n.ann.WaitRounds(ctx, 5); err != nil {
		t.Fatal(err)
	}
	one := instanceConfig("a", "10.81.0.1", 100, func(c *vrrp.InstanceConfig) { c.Router.Addresses = vips[:1] })
	if err := n.inst.Reconfigure(ctx, one, 0); err != nil {
		t.Fatal(err)
	}
	if err := n.addrs.WaitHeld(ctx, vips[0]); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Second)
	if err := n.ann.WaitRounds(ctx, 10); err != nil {
		t.Fatal(err)
	}
	n.noTransition()
}

func TestInstanceReconfigureRefusesAnotherIdentity(t *testing.T) {
	wire, clock := vrrptest.NewWire(), vrrptest.NewClock(start)
	n := startNode(t, wire, clock, instanceConfig("a", "10.81.0.1", 100, nil))
	for what, edit := range map[string]func(*vrrp.InstanceConfig){
		"interface eth0 -> eth1": func(c *vrrp.InstanceConfig) { c.Interface = "eth1" },
		"vrid 51 -> 52":          func(c *vrrp.InstanceConfig) { c.Router.VRID = 52 },
		"unicast <-> multicast":  func(c *vrrp.InstanceConfig) { c.UnicastPeers = []netip.Addr{netip.MustParseAddr("10.81.0.2")} },
	} {
		err := n.inst.Reconfigure(ctxT(t), instanceConfig("a", "10.81.0.1", 100, edit), 0)
		if err == nil || err.Error() != "vrrp instance a: reconfiguring: "+what+" needs a new instance" {
			t.Errorf("%s: %v", what, err)
		}
	}
	if err := n.inst.Reconfigure(ctxT(t), instanceConfig("a", "10.81.0.1", 0, nil), 0); err == nil {
		t.Error("an invalid config (priority 0) was accepted")
	}
}

// statusAtAddresses records the instance's published state each time it
// adds or removes its addresses.
type statusAtAddresses struct {
	*vrrptest.Addresses
	inst atomic.Pointer[vrrp.Instance]
	mu   sync.Mutex
	seen []string
}

// record notes the state; not before the test hands over the instance
// (at startup it removes addresses it does not hold).
func (a *statusAtAddresses) record(what string) {
	inst := a.inst.Load()
	if inst == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen = append(a.seen, what+" while the status says "+inst.Status().State.String())
}

func (a *statusAtAddresses) AddAddresses(addrs []netip.Addr) error {
	a.record("add")
	return a.Addresses.AddAddresses(addrs)
}

func (a *statusAtAddresses) RemoveAddresses(addrs []netip.Addr) error {
	a.record("remove")
	return a.Addresses.RemoveAddresses(addrs)
}

// Whoever sees the VIP on the interface finds the status saying master:
// it says so before the addresses are added, and until they are gone.
// (lvs2 held the VIP while its status API still said backup in
// TestLabVRRPFailover under load: the status was published only after
// every action of the transition, the announcements included.)
func TestInstanceStatusSaysMasterWhileTheVIPIsHeld(t *testing.T) {
	wire, clock := vrrptest.NewWire(), vrrptest.NewClock(start)
	rec := &statusAtAddresses{}
	n := startNodeWith(t, wire, clock, instanceConfig("a", "10.81.0.1", 100, nil), func(a *vrrptest.Addresses) vrrp.AddressManager {
		rec.Addresses = a
		return rec
	})
	rec.inst.Store(n.inst)
	clock.Advance(3*time.Second + 610*time.Millisecond)
	n.waitState(vrrp.Master)
	if err := n.addrs.WaitHeld(ctxT(t), vips...); err != nil {
		t.Fatal(err)
	}
	if err := n.inst.Shutdown(ctxT(t)); err != nil { // the addresses go
		t.Fatal(err)
	}
	n.waitState(vrrp.Initialize)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if want := []string{"add while the status says master", "remove while the status says master"}; !slices.Equal(rec.seen, want) {
		t.Errorf("%q, want %q", rec.seen, want)
	}
}
