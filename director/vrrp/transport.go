package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Family is the IP version a transport carries.
type Family uint8

const (
	// IPv4 carries VRRP over IPv4 (versions 2 and 3).
	IPv4 Family = 4
	// IPv6 carries VRRP version 3 over IPv6.
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("family-%d", uint8(f))
}

// Group returns the family's VRRP multicast group.
func (f Family) Group() netip.Addr {
	if f == IPv6 {
		return IPv6Group
	}
	return IPv4Group
}

// FamilyOf returns the family of addr.
func FamilyOf(addr netip.Addr) Family {
	if addr.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// ErrNotImplemented is returned by the raw-socket, netlink and AF_PACKET
// parts on systems other than Linux.
var ErrNotImplemented = errors.New("not implemented on this operating system")

// ErrPassive is returned by WritePacket of a listen-only connection
// (Snoop): it never sends.
var ErrPassive = errors.New("vrrp connection is listen-only")

// Packet is one received VRRP packet: the IP payload and what the IP
// header said about it.
type Packet struct {
	// Payload is the VRRP message, exactly the IP payload.
	Payload []byte
	// Src and Dst are the IP source and destination (without zone).
	Src, Dst netip.Addr
	// HopLimit is the IPv4 TTL or IPv6 hop limit it arrived with, or -1
	// if the kernel did not report it.
	HopLimit int
	// IfIndex is the interface it arrived on, 0 if unknown.
	IfIndex int
	// SrcMAC is the Ethernet source, when the connection sees frames
	// (Snoop); nil otherwise.
	SrcMAC net.HardwareAddr
}

// PacketReader receives VRRP packets from one interface.
type PacketReader interface {
	// ReadPacket blocks until a packet arrives and returns it; Payload
	// aliases buf. After Close it returns an error wrapping
	// net.ErrClosed.
	ReadPacket(buf []byte) (Packet, error)
	// Close releases the connection and unblocks ReadPacket.
	Close() error
}

// PacketConn receives and sends VRRP packets on one interface, for one
// address family. Listen (Linux) opens the raw-socket implementation;
// vrrptest has a fake wire.
type PacketConn interface {
	PacketReader
	// WritePacket sends payload as an IP packet of protocol 112 from src
	// (an address of the interface) to dst (the multicast group or a
	// unicast peer) with TTL or hop limit HopLimit.
	WritePacket(payload []byte, src, dst netip.Addr) error
}

// TransportStats counts what a Transport received and sent. Every
// received packet is counted once in Received and, unless delivered to
// an instance, once in exactly one of the drop counters.
type TransportStats struct {
	Received uint64
	// Delivered adverts passed the checks here and went to the instance
	// of their VRID (which applies its own checks: see InstanceStats).
	Delivered uint64
	// BadHopLimit: TTL or hop limit other than 255 (or not reported).
	BadHopLimit uint64
	// Codec errors (ErrTruncated, ErrBadChecksum, ErrBadVersion,
	// ErrBadType, ErrAddressCount, ErrAddressFamily, anything else).
	Truncated    uint64
	BadChecksum  uint64
	BadVersion   uint64
	BadType      uint64
	AddressCount uint64
	BadFamily    uint64
	OtherInvalid uint64
	// UnknownVRID: a valid advert for a VRID no instance here runs.
	UnknownVRID uint64
	// QueueOverflow: the instance was too slow to take the advert.
	QueueOverflow uint64
	Sent          uint64
	SendErrors    uint64
}

type transportCounters struct {
	received, delivered, badHopLimit                          atomic.Uint64
	truncated, badChecksum, badVersion, badType, addressCount atomic.Uint64
	badFamily, otherInvalid, unknownVRID, queueOverflow       atomic.Uint64
	sent, sendErrors                                          atomic.Uint64
}

// TransportOptions configures a Transport.
type TransportOptions struct {
	// Logger receives one debug line per dropped packet. Nil discards.
	Logger *slog.Logger
	// QueueLen is how many received adverts each instance may have
	// waiting; more are dropped and counted. Zero means 64.
	QueueLen int
}

// Transport reads VRRP packets from one interface and family, drops and
// counts those that fail the hop-limit and codec checks, and hands the
// rest to the Instance that runs their VRID. Instances send through it
// too. One Transport serves every instance on its interface and family,
// as one raw socket receives every VRRP packet there.
type Transport struct {
	conn  PacketConn
	log   *slog.Logger
	qlen  int
	stats transportCounters

	mu   sync.Mutex
	subs map[uint8]*Subscription
}

// NewTransport returns a Transport over conn; start it with Run.
func NewTransport(conn PacketConn, opts TransportOptions) *Transport {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = 64
	}
	return &Transport{conn: conn, log: opts.Logger, qlen: opts.QueueLen, subs: map[uint8]*Subscription{}}
}

// Run reads packets until ctx is done (it then closes the connection and
// returns nil) or the connection fails.
func (t *Transport) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { t.conn.Close() })
	defer stop()
	buf := make([]byte, 65536)
	for {
		p, err := t.conn.ReadPacket(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading vrrp packets: %w", err)
		}
		t.handle(p)
	}
}

// Stats returns the counters.
func (t *Transport) Stats() TransportStats {
	s := &t.stats
	return TransportStats{
		Received: s.received.Load(), Delivered: s.delivered.Load(), BadHopLimit: s.badHopLimit.Load(),
		Truncated: s.truncated.Load(), BadChecksum: s.badChecksum.Load(), BadVersion: s.badVersion.Load(),
		BadType: s.badType.Load(), AddressCount: s.addressCount.Load(), BadFamily: s.badFamily.Load(),
		OtherInvalid: s.otherInvalid.Load(), UnknownVRID: s.unknownVRID.Load(),
		QueueOverflow: s.queueOverflow.Load(), Sent: s.sent.Load(), SendErrors: s.sendErrors.Load(),
	}
}

// handle checks one packet and delivers it.
func (t *Transport) handle(p Packet) {
	// Counted last, so Received covers the outcome counters.
	defer t.stats.received.Add(1)
	src, dst := p.Src.WithZone(""), p.Dst.WithZone("")
	if p.HopLimit != HopLimit {
		// RFC 3768/5798 7.1: it crossed a router, or was forged off-link.
		t.stats.badHopLimit.Add(1)
		t.log.Debug("dropped vrrp packet", "src", src, "hop_limit", p.HopLimit, "reason", "hop limit is not 255")
		return
	}
	a, err := Unmarshal(p.Payload, src, dst)
	if err != nil {
		t.countInvalid(err)
		t.log.Debug("dropped vrrp packet", "src", src, "err", err)
		return
	}
	t.mu.Lock()
	sub := t.subs[a.VRID]
	t.mu.Unlock()
	if sub == nil {
		t.stats.unknownVRID.Add(1)
		t.log.Debug("dropped vrrp packet", "src", src, "vrid", a.VRID, "reason", "no instance runs this vrid here")
		return
	}
	select {
	case sub.c <- AdvertReceived{Src: src, Advert: a}:
		t.stats.delivered.Add(1)
	default:
		t.stats.queueOverflow.Add(1)
		t.log.Debug("dropped vrrp packet", "src", src, "vrid", a.VRID, "reason", "instance queue full")
	}
}

func (t *Transport) countInvalid(err error) {
	s := &t.stats
	switch {
	case errors.Is(err, ErrTruncated):
		s.truncated.Add(1)
	case errors.Is(err, ErrBadChecksum):
		s.badChecksum.Add(1)
	case errors.Is(err, ErrBadVersion):
		s.badVersion.Add(1)
	case errors.Is(err, ErrBadType):
		s.badType.Add(1)
	case errors.Is(err, ErrAddressCount):
		s.addressCount.Add(1)
	case errors.Is(err, ErrAddressFamily):
		s.badFamily.Add(1)
	default:
		s.otherInvalid.Add(1)
	}
}

// Subscription receives the adverts of one VRID from a Transport.
type Subscription struct {
	t    *Transport
	vrid uint8
	c    chan AdvertReceived
}

// Subscribe registers the instance of vrid. There can be one per VRID on
// a Transport (one interface and family), as on the wire.
func (t *Transport) Subscribe(vrid uint8) (*Subscription, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs[vrid] != nil {
		return nil, fmt.Errorf("subscribing to vrrp vrid %d: another instance already runs it on this interface", vrid)
	}
	s := &Subscription{t: t, vrid: vrid, c: make(chan AdvertReceived, t.qlen)}
	t.subs[vrid] = s
	return s, nil
}

// C delivers the adverts that passed the transport's checks.
func (s *Subscription) C() <-chan AdvertReceived { return s.c }

// Close unregisters the subscription; later adverts for its VRID count
// as UnknownVRID.
func (s *Subscription) Close() {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	if s.t.subs[s.vrid] == s {
		delete(s.t.subs, s.vrid)
	}
}

// Send encodes a for each destination and sends it from src.
func (t *Transport) Send(a *Advertisement, src netip.Addr, dsts []netip.Addr) error {
	var errs []error
	for _, dst := range dsts {
		b, err := a.Marshal(src, dst)
		if err == nil {
			err = t.conn.WritePacket(b, src, dst)
		}
		if err != nil {
			t.stats.sendErrors.Add(1)
			errs = append(errs, fmt.Errorf("sending vrrp advert vrid %d to %s: %w", a.VRID, dst, err))
			continue
		}
		t.stats.sent.Add(1)
	}
	return errors.Join(errs...)
}
