package vrrptest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/lvskit/lvskit/director/vrrp"
)

// Sent is a packet a Port wrote, as the Wire recorded it.
type Sent struct {
	From     *Port
	Src, Dst netip.Addr
	Payload  []byte
}

// Advert decodes the packet (for assertions); it panics on a packet the
// codec rejects, which a test would want to see anyway.
func (s Sent) Advert() vrrp.Advertisement {
	a, err := vrrp.Unmarshal(s.Payload, s.Src, s.Dst)
	if err != nil {
		panic(fmt.Sprintf("vrrptest: packet from %s does not decode: %v", s.Src, err))
	}
	return a
}

// Wire is a fake link: what a Port writes to a multicast group reaches
// every other Port that is up; what it writes to a unicast address
// reaches the Ports that own it. Packets arrive with hop limit 255.
type Wire struct {
	n     notifier
	ports []*Port
	sent  []Sent
}

// NewWire returns an empty link.
func NewWire() *Wire { return &Wire{} }

// Port is one host's vrrp.PacketConn on a Wire.
type Port struct {
	w     *Wire
	addrs []netip.Addr
	in    chan vrrp.Packet
	down  bool // guarded by w.n.mu
	once  sync.Once
	close chan struct{}
}

var _ vrrp.PacketConn = (*Port)(nil)

// Port attaches a host with the given unicast addresses.
func (w *Wire) Port(addrs ...netip.Addr) *Port {
	w.n.lock()
	defer w.n.unlockChanged()
	p := &Port{w: w, addrs: addrs, in: make(chan vrrp.Packet, 1024), close: make(chan struct{})}
	w.ports = append(w.ports, p)
	return p
}

// SetDown cuts (true) or restores the port: a cut port's packets are
// recorded but reach no one, and it receives nothing.
func (p *Port) SetDown(down bool) {
	p.w.n.lock()
	defer p.w.n.unlockChanged()
	p.down = down
}

// ReadPacket implements vrrp.PacketReader.
func (p *Port) ReadPacket(buf []byte) (vrrp.Packet, error) {
	select {
	case pkt := <-p.in:
		n := copy(buf, pkt.Payload)
		pkt.Payload = buf[:n]
		return pkt, nil
	case <-p.close:
		return vrrp.Packet{}, fmt.Errorf("reading from fake port: %w", net.ErrClosed)
	}
}

// WritePacket implements vrrp.PacketConn.
func (p *Port) WritePacket(payload []byte, src, dst netip.Addr) error {
	select {
	case <-p.close:
		return fmt.Errorf("writing to fake port: %w", net.ErrClosed)
	default:
	}
	w := p.w
	w.n.lock()
	defer w.n.unlockChanged()
	payload = slices.Clone(payload)
	w.sent = append(w.sent, Sent{From: p, Src: src, Dst: dst, Payload: payload})
	if p.down {
		return nil
	}
	pkt := vrrp.Packet{Payload: payload, Src: src, Dst: dst, HopLimit: vrrp.HopLimit}
	for _, o := range w.ports {
		if o != p && !o.down && (dst.IsMulticast() || slices.Contains(o.addrs, dst)) {
			o.deliver(pkt)
		}
	}
	return nil
}

func (p *Port) deliver(pkt vrrp.Packet) {
	select {
	case p.in <- pkt:
	default: // a full socket buffer drops, as the kernel's does
	}
}

// Close implements vrrp.PacketReader.
func (p *Port) Close() error {
	p.once.Do(func() { close(p.close) })
	return nil
}

// Inject delivers pkt, as sent by a host that is not on the Wire, to
// every port that is up. Unlike WritePacket it keeps pkt's hop limit.
func (w *Wire) Inject(pkt vrrp.Packet) {
	w.n.lock()
	defer w.n.unlockChanged()
	pkt.Payload = slices.Clone(pkt.Payload)
	for _, o := range w.ports {
		if !o.down {
			o.deliver(pkt)
		}
	}
}

// Sent returns every packet written so far, in order.
func (w *Wire) Sent() []Sent {
	w.n.lock()
	defer w.n.mu.Unlock()
	return slices.Clone(w.sent)
}

// WaitSent blocks until cond holds for the packets written so far.
func (w *Wire) WaitSent(ctx context.Context, what string, cond func([]Sent) bool) error {
	return w.n.wait(ctx, what, func() bool { return cond(w.sent) })
}
