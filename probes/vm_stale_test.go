//go:build vmtest && linux && amd64

package probes_test

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/lvskit/lvskit/probes"
)

// TestVMTraceFreedSKBIsNotTracedAgain: TCP frees what it has consumed
// with __kfree_skb, which no tracepoint sees, so a traced packet
// delivered to a local socket leaves its address in the tracer's skb
// map; the slab hands that address to the next skb it allocates. Here a
// client talks to a local listener on the VIP (a port with no IPVS
// service: traced by its headers) while the director itself talks to a
// real server, whose packets the filter leaves out. A second, unfiltered
// tracer on the director proves that the director's own packets did
// reuse addresses the filtered trace had followed; the filtered trace
// must show none of them.
func TestVMTraceFreedSKBIsNotTracedAgain(t *testing.T) {
	v := newVMLab(t)
	vip := netip.AddrPortFrom(v.drVIP.Addr(), 81)
	ln, err := v.director.Listen("tcp", vip.String())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(c, c) // echo until the client closes
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()

	filtered, _ := v.open(t, probes.Filter{VIP: vip.Addr(), Port: vip.Port()}, probes.BackendAuto)
	all, _ := v.open(t, probes.Filter{}, probes.BackendAuto)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	toVIP, err := v.client.DialContext(ctx, "tcp", vip.String())
	if err != nil {
		t.Fatalf("connecting to %v: %v", vip, err)
	}
	defer toVIP.Close()
	rs := netip.AddrPortFrom(v.realServers["dr1"], 80)
	toRS, err := v.director.DialContext(ctx, "tcp", rs.String())
	if err != nil {
		t.Fatalf("the director connecting to %v: %v", rs, err)
	}
	defer toRS.Close()
	deadline, _ := ctx.Deadline()
	toVIP.SetDeadline(deadline)
	toRS.SetDeadline(deadline)

	// Turns: one segment the director's TCP consumes (and frees unseen),
	// then one the director sends, whose skb the slab may place at the
	// freed address.
	const turns = 200
	buf := make([]byte, 64)
	for i := range turns {
		msg := fmt.Sprintf("%63d", i)
		if _, err := io.WriteString(toVIP, msg); err != nil {
			t.Fatalf("turn %d: writing to %v: %v", i, vip, err)
		}
		if _, err := io.ReadFull(toVIP, buf[:len(msg)]); err != nil {
			t.Fatalf("turn %d: reading the echo from %v: %v", i, vip, err)
		}
		if _, err := io.WriteString(toRS, "x"); err != nil {
			t.Fatalf("turn %d: the director writing to %v: %v", i, rs, err)
		}
	}

	followed := map[uint64]bool{}
	for _, e := range drain(t, filtered) {
		if e.Tuple.Protocol != "" && !relatedTo(e.Tuple, vip) {
			t.Errorf("the trace of %v shows an unrelated packet: %s %v -> %v %s at %s (skb %#x)",
				vip, e.Tuple.Protocol, e.Tuple.Src, e.Tuple.Dst, e.TCPFlags, e.Hop.Func, e.SKB)
			continue
		}
		followed[e.SKB] = true
	}
	checkLost(t, filtered)
	reused := 0
	for _, e := range drain(t, all) {
		if e.Tuple.Dst == rs && followed[e.SKB] {
			reused++
		}
	}
	t.Logf("%d skb addresses followed under the filter; the director's own packets to %v reused them %d times", len(followed), rs, reused)
	if reused == 0 {
		t.Fatalf("no packet of the director's reused an address the filtered trace followed: the case this test is for did not happen")
	}
}

// relatedTo: is the packet client -> vip, or its answer?
func relatedTo(tu probes.Tuple, vip netip.AddrPort) bool {
	return tu.Dst == vip || tu.Src == vip
}

// TestVMTraceHookExitsKeepToTheirOwnFrames: a hook's exit reports the
// verdict of the packet it ran for, never another's. Every CPU starts
// with a full stack of frames whose exits never ran (as the kernel
// leaves them when it skips a program already running on that CPU);
// the hooks must neither fail to trace for lack of room nor hand the
// real packets' verdicts to those stale frames' skbs.
func TestVMTraceHookExitsKeepToTheirOwnFrames(t *testing.T) {
	v := newVMLab(t)
	tr, _ := v.open(t, probes.Filter{VIP: v.drVIP.Addr(), Port: v.drVIP.Port()}, probes.BackendAuto)
	stale, err := probes.SeedStaleFrames(tr)
	if err != nil {
		t.Fatal(err)
	}
	var clients []netip.AddrPort
	for range 4 {
		c, _ := get(t, v.client, v.drVIP)
		clients = append(clients, c)
	}
	evs := drain(t, tr)
	checkLost(t, tr)
	for _, e := range evs {
		if slices.Contains(stale, e.SKB) {
			t.Errorf("an event for a stale frame's skb %#x: %s %s %s", e.SKB, e.Hop.Func, e.Hop.Hook, e.Hop.Verdict)
		}
	}
	for _, c := range clients {
		syn := pathOf(evs, c, "SYN")
		if want := []string{"netif_receive_skb", "ip_vs_in_hook(LOCAL_IN)", "ip_vs_dr_xmit", "ip_vs_in_hook(LOCAL_IN STOLEN)"}; !hasInOrder(funcs(syn), want) {
			logPath(t, syn)
			t.Errorf("%v's SYN: hops %v, want %v in this order", c, funcs(syn), want)
		}
	}
}
