package vrrp_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/lvskit/lvskit/director/vrrp"
	"github.com/lvskit/lvskit/director/vrrp/vrrptest"
)

// Wire an Instance to its transport, address manager, announcer and
// clock. lvsd passes the real ones (vrrp.Listen, vrrp.NewNetlinkAddresses,
// vrrp.NewFrameAnnouncer over vrrp.DialFrames, vrrp.SystemClock); here
// the fakes of vrrptest stand in, so the example runs anywhere.
func ExampleNewInstance() {
	clock := vrrptest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	transport := vrrp.NewTransport(vrrptest.NewWire().Port(), vrrp.TransportOptions{})
	addrs := vrrptest.NewAddresses()
	changes := make(chan vrrp.StateChange, 8)
	inst, err := vrrp.NewInstance(vrrp.InstanceConfig{
		Name:      "VI_1",
		Interface: "eth0",
		Router: vrrp.Config{
			VRID:           51,
			Version:        vrrp.Version3,
			Priority:       100,
			AdvertInterval: time.Second,
			Addresses:      []netip.Addr{netip.MustParseAddr("192.0.2.10")},
			PrimaryAddress: netip.MustParseAddr("192.0.2.2"),
		},
	}, vrrp.InstanceDeps{
		Transport: transport,
		Addresses: addrs,
		Announcer: vrrptest.NewAnnouncer(clock),
		Clock:     clock,
		Observers: []vrrp.Observer{vrrp.ObserverFunc(func(c vrrp.StateChange) { changes <- c })},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go transport.Run(ctx)
	go inst.Run(ctx)

	c := <-changes
	fmt.Println(c.From, "->", c.To)
	// Nobody advertises: after Master_Down_Interval (3 s + 156/256 s)
	// the instance takes over.
	clock.Advance(4 * time.Second)
	c = <-changes
	fmt.Println(c.From, "->", c.To, "because", c.Reason)
	fmt.Println("holds", addrs.Held())

	// A clean stop hands over with a priority-0 advert.
	if err := inst.Shutdown(ctx); err != nil {
		fmt.Println(err)
	}
	c = <-changes
	fmt.Println(c.From, "->", c.To, "holds", addrs.Held())
	// Output:
	// initialize -> backup
	// backup -> master because no advertisement from a master
	// holds [192.0.2.10]
	// master -> initialize holds []
}
