//go:build linux

package diag

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// icmpPinger pings with an unprivileged ICMP datagram socket when
// net.ipv4.ping_group_range lets this process open one, and with a raw
// ICMP socket (root, CAP_NET_RAW) otherwise.
type icmpPinger struct{}

// NewPinger returns this system's Pinger.
func NewPinger() Pinger { return icmpPinger{} }

func listenICMP(addr netip.Addr) (*icmp.PacketConn, string, error) {
	dgram, raw := "udp4", "ip4:icmp"
	bind := "0.0.0.0"
	if addr.Is6() {
		dgram, raw, bind = "udp6", "ip6:ipv6-icmp", "::"
	}
	c, err := icmp.ListenPacket(dgram, bind)
	if err == nil {
		return c, "datagram", nil
	}
	c, rerr := icmp.ListenPacket(raw, bind)
	if rerr == nil {
		return c, "raw", nil
	}
	return nil, "", fmt.Errorf("opening an ICMP socket: datagram: %v; raw: %w (needs root, or net.ipv4.ping_group_range to include this group)", err, rerr)
}

// Ping implements Pinger.
func (icmpPinger) Ping(ctx context.Context, addr netip.Addr, opts PingOptions) (PingResult, error) {
	e, err := openEcho(addr, opts.Count)
	if err != nil {
		return PingResult{}, err
	}
	defer e.c.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.receive()
	}()
	if err := e.send(ctx, opts.Interval); err != nil {
		e.c.Close()
		<-done
		return e.result(), err
	}
	// Wait for the replies: the reader stops when all came, at the
	// timeout, or when ctx is done.
	deadline := time.Now().Add(opts.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if e.result().Sent < opts.Count {
		deadline = time.Now()
	}
	e.c.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { e.c.SetReadDeadline(time.Now()) })
	defer stop()
	<-done
	return e.result(), nil
}

// echoSession is one Ping: its socket, the requests it sent and the
// replies that came back. send and receive run at once; mu guards what
// they share.
type echoSession struct {
	c      *icmp.PacketConn
	addr   netip.Addr
	method string
	id     int
	dst    net.Addr
	count  int
	// echoType and replyType are ICMP's or ICMPv6's echo types; proto
	// is the protocol number ParseMessage wants.
	echoType, replyType icmp.Type
	proto               int

	mu   sync.Mutex
	sent map[int]time.Time
	got  map[int]bool
	res  PingResult
}

func openEcho(addr netip.Addr, count int) (*echoSession, error) {
	c, method, err := listenICMP(addr)
	if err != nil {
		return nil, err
	}
	e := &echoSession{c: c, addr: addr, method: method, id: rand.N(0xffff) + 1, count: count,
		dst: &net.IPAddr{IP: addr.AsSlice()}, echoType: ipv4.ICMPTypeEcho, replyType: ipv4.ICMPTypeEchoReply, proto: 1,
		sent: map[int]time.Time{}, got: map[int]bool{}, res: PingResult{Method: method}}
	if method == "datagram" {
		e.dst = &net.UDPAddr{IP: addr.AsSlice()}
	}
	if addr.Is6() {
		e.echoType, e.replyType, e.proto = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	return e, nil
}

// send sends count echo requests, interval apart, until ctx ends.
func (e *echoSession) send(ctx context.Context, interval time.Duration) error {
	payload := []byte("lvsdiag reachability check")
	for seq := range e.count {
		if seq > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		b, err := (&icmp.Message{Type: e.echoType, Body: &icmp.Echo{ID: e.id, Seq: seq, Data: payload}}).Marshal(nil)
		if err != nil {
			return fmt.Errorf("building echo request to %s: %w", e.addr, err)
		}
		e.mu.Lock()
		e.sent[seq] = time.Now()
		e.mu.Unlock()
		if _, err := e.c.WriteTo(b, e.dst); err != nil {
			return fmt.Errorf("sending echo request to %s: %w", e.addr, err)
		}
		e.mu.Lock()
		e.res.Sent++
		e.mu.Unlock()
	}
	return nil
}

// receive records the replies until all came or the socket's read ends
// (its deadline, or it was closed).
func (e *echoSession) receive() {
	buf := make([]byte, 1500)
	for {
		n, from, err := e.c.ReadFrom(buf)
		if err != nil {
			return
		}
		at := time.Now()
		m, err := icmp.ParseMessage(e.proto, buf[:n])
		if err != nil || m.Type != e.replyType {
			continue
		}
		echo, ok := m.Body.(*icmp.Echo)
		if !ok || (e.method == "raw" && echo.ID != e.id) || !sameIP(from, e.addr) {
			continue
		}
		e.mu.Lock()
		if t, ok := e.sent[echo.Seq]; ok && !e.got[echo.Seq] {
			e.got[echo.Seq] = true
			e.res.Received++
			e.res.RTTs = append(e.res.RTTs, at.Sub(t))
		}
		all := e.res.Received == e.count
		e.mu.Unlock()
		if all {
			return
		}
	}
}

func (e *echoSession) result() PingResult {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.res
	r.RTTs = slices.Clone(r.RTTs)
	return r
}

func sameIP(from net.Addr, want netip.Addr) bool {
	var ip net.IP
	switch a := from.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	got, ok := netip.AddrFromSlice(ip)
	return ok && got.Unmap() == want.Unmap()
}

// frameARP asks who-has with raw Ethernet frames on an AF_PACKET socket
// (CAP_NET_RAW) and records every ARP packet on the link.
type frameARP struct{}

// NewARPProber returns this system's ARPProber.
func NewARPProber() ARPProber { return frameARP{} }

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// Probe implements ARPProber.
func (frameARP) Probe(ctx context.Context, iface string, targets []netip.Addr, wait time.Duration) (ARPCapture, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return ARPCapture{}, fmt.Errorf("arp on %s: %w", iface, err)
	}
	src, err := ifaceIPv4(ifi)
	if err != nil {
		return ARPCapture{}, err
	}
	c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return ARPCapture{}, fmt.Errorf("arp on %s: %w: %v", iface, ErrNotRoot, err)
		}
		return ARPCapture{}, fmt.Errorf("arp on %s: %w", iface, err)
	}
	defer c.Close()
	capture := ARPCapture{Start: time.Now(), Source: src}
	end := capture.Start.Add(wait)
	if dl, ok := ctx.Deadline(); ok && dl.Before(end) {
		end = dl
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	c.SetReadDeadline(end)
	for _, t := range targets {
		if !t.Is4() {
			continue
		}
		frame := arpFrame(ifi.HardwareAddr, src, t)
		if _, err := c.WriteTo(frame, &packet.Addr{HardwareAddr: broadcast}); err != nil {
			return capture, fmt.Errorf("sending who-has %s on %s: %w", t, iface, err)
		}
	}
	buf := make([]byte, 1514)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			break
		}
		if p, ok := parseARPFrame(buf[:n]); ok {
			p.At = time.Now()
			capture.Packets = append(capture.Packets, p)
		}
	}
	capture.End = time.Now()
	return capture, nil
}

func ifaceIPv4(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("arp on %s: the link has no IPv4 address to ask from", ifi.Name)
}

// arpFrame builds a broadcast who-has target from mac/src.
func arpFrame(mac net.HardwareAddr, src, target netip.Addr) []byte {
	b := make([]byte, 14+28)
	copy(b[0:6], broadcast)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], unix.ETH_P_ARP)
	a := b[14:]
	binary.BigEndian.PutUint16(a[0:2], 1)
	binary.BigEndian.PutUint16(a[2:4], unix.ETH_P_IP)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], 1)
	copy(a[8:14], mac)
	s4, t4 := src.As4(), target.As4()
	copy(a[14:18], s4[:])
	copy(a[24:28], t4[:])
	return b
}

// netlinkInfo reads links and routes over rtnetlink.
type netlinkInfo struct{}

// NewNetInfo returns this system's NetInfo.
func NewNetInfo() NetInfo { return netlinkInfo{} }

// Links implements NetInfo.
func (netlinkInfo) Links(context.Context) ([]Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	var out []Link
	for _, l := range links {
		attrs := l.Attrs()
		kind := l.Type()
		if attrs.Flags&net.FlagLoopback != 0 {
			kind = "loopback"
		}
		link := Link{Name: attrs.Name, Kind: kind, Up: attrs.Flags&net.FlagUp != 0, MAC: attrs.HardwareAddr}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", attrs.Name, err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok {
				continue
			}
			bits, _ := a.Mask.Size()
			link.Prefixes = append(link.Prefixes, netip.PrefixFrom(ip.Unmap(), bits))
		}
		out = append(out, link)
	}
	return out, nil
}

// RouteTo implements NetInfo.
func (netlinkInfo) RouteTo(_ context.Context, dst netip.Addr) (Route, error) {
	routes, err := netlink.RouteGet(dst.AsSlice())
	if err != nil {
		return Route{}, fmt.Errorf("route to %s: %w", dst, err)
	}
	if len(routes) == 0 {
		return Route{}, fmt.Errorf("route to %s: none", dst)
	}
	rt := routes[0]
	out := Route{Local: rt.Type == unix.RTN_LOCAL}
	if l, err := netlink.LinkByIndex(rt.LinkIndex); err == nil {
		out.Interface = l.Attrs().Name
	}
	out.Source, _ = netip.AddrFromSlice(rt.Src)
	out.Gateway, _ = netip.AddrFromSlice(rt.Gw)
	out.Source, out.Gateway = out.Source.Unmap(), out.Gateway.Unmap()
	return out, nil
}
