package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// AnnounceConfig says how a new master tells hosts and switches where the
// virtual addresses now are: with gratuitous ARP (IPv4) or unsolicited
// neighbour advertisements (IPv6). The fields are keepalived's
// garp_master_* settings (which also govern its NAs).
type AnnounceConfig struct {
	// Repeat is how many rounds (one frame per address) each burst
	// sends: keepalived's garp_master_repeat. At least 1.
	Repeat int
	// Interval spaces the rounds of a burst (keepalived's garp_interval
	// and gna_interval); zero sends them back to back.
	Interval time.Duration
	// Delay is when, after becoming master, a second burst goes out, for
	// switches that missed the first while a link came up (keepalived's
	// garp_master_delay). Zero sends no second burst.
	Delay time.Duration
	// Refresh repeats the announcement periodically while master
	// (keepalived's garp_master_refresh); zero never does.
	Refresh time.Duration
	// RefreshRepeat is how many rounds each refresh sends
	// (garp_master_refresh_repeat). Zero means 1.
	RefreshRepeat int
}

// DefaultAnnounce is keepalived's default: 5 rounds at once, 5 more after
// 5 s, no refresh.
var DefaultAnnounce = AnnounceConfig{Repeat: 5, Delay: 5 * time.Second, RefreshRepeat: 1}

// Validate reports a setting that makes no sense.
func (c *AnnounceConfig) Validate() error {
	switch {
	case c.Repeat < 1:
		return fmt.Errorf("announce repeat %d: at least 1", c.Repeat)
	case c.Interval < 0 || c.Delay < 0 || c.Refresh < 0:
		return fmt.Errorf("announce interval, delay and refresh must not be negative")
	case c.RefreshRepeat < 0:
		return fmt.Errorf("announce refresh repeat %d: must not be negative", c.RefreshRepeat)
	}
	return nil
}

// announceSchedule decides when the rounds of gratuitous ARP or NA go
// out. It is pure: the Instance feeds it the time and sends the rounds.
type announceSchedule struct {
	cfg       AnnounceConfig
	active    bool
	pending   int       // rounds left in the current burst
	roundAt   time.Time // when the next pending round may go
	delayedAt time.Time // the second burst (zero: none due)
	refreshAt time.Time // the next refresh (zero: none)
}

// start begins announcing at now (again, if already running).
func (s *announceSchedule) start(now time.Time) {
	s.active = true
	s.pending = s.cfg.Repeat
	s.roundAt = now
	s.delayedAt, s.refreshAt = time.Time{}, time.Time{}
	if s.cfg.Delay > 0 {
		s.delayedAt = now.Add(s.cfg.Delay)
	}
	if s.cfg.Refresh > 0 {
		s.refreshAt = now.Add(s.cfg.Refresh)
	}
}

// stop ends announcing (the addresses are gone).
func (s *announceSchedule) stop() { *s = announceSchedule{cfg: s.cfg} }

// due returns how many rounds to send at now, and when to ask again (zero
// when nothing more is planned).
func (s *announceSchedule) due(now time.Time) (rounds int, next time.Time) {
	if !s.active {
		return 0, time.Time{}
	}
	if !s.delayedAt.IsZero() && !now.Before(s.delayedAt) {
		s.pending += s.cfg.Repeat
		s.delayedAt = time.Time{}
	}
	if !s.refreshAt.IsZero() && !now.Before(s.refreshAt) {
		s.pending += max(s.cfg.RefreshRepeat, 1)
		s.refreshAt = now.Add(s.cfg.Refresh)
	}
	if s.pending > 0 && !now.Before(s.roundAt) {
		if s.cfg.Interval == 0 {
			rounds, s.pending = s.pending, 0
		} else {
			rounds = 1
			s.pending--
			s.roundAt = now.Add(s.cfg.Interval)
		}
	}
	if s.pending > 0 {
		next = s.roundAt
	}
	for _, t := range []time.Time{s.delayedAt, s.refreshAt} {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return rounds, next
}

// Announcer sends one round of announcements: a gratuitous ARP for each
// IPv4 address, an unsolicited neighbour advertisement for each IPv6 one.
type Announcer interface {
	// Announce sends one frame per address.
	Announce(addrs []netip.Addr) error
}

// FrameWriter sends complete Ethernet frames on one interface.
// DialFrames (Linux) opens an AF_PACKET socket.
type FrameWriter interface {
	// WriteFrame sends frame, Ethernet header included, as it is.
	WriteFrame(frame []byte) error
}

// FrameAnnouncerOptions configures a FrameAnnouncer.
type FrameAnnouncerOptions struct {
	// HardwareAddr is the interface's MAC address: the sender of the
	// frames and the address hosts learn for the virtual addresses.
	HardwareAddr net.HardwareAddr
	// NASource is the IPv6 source of neighbour advertisements, the
	// interface's link-local address. Needed only for IPv6 addresses.
	NASource netip.Addr
	// RouterFlag sets the R flag of neighbour advertisements: set it
	// when the virtual addresses are the hosts' default gateway, as for
	// a VRRP router (RFC 5798 section 6.4.2). Hosts then keep the
	// address in their default-router list.
	RouterFlag bool
}

// FrameAnnouncer is the Announcer that writes ARP and NA frames.
type FrameAnnouncer struct {
	w    FrameWriter
	opts FrameAnnouncerOptions
}

// NewFrameAnnouncer returns an Announcer that writes to w.
func NewFrameAnnouncer(w FrameWriter, opts FrameAnnouncerOptions) (*FrameAnnouncer, error) {
	if len(opts.HardwareAddr) != 6 {
		return nil, fmt.Errorf("announcer: hardware address %q is not a 6-byte Ethernet address", opts.HardwareAddr)
	}
	return &FrameAnnouncer{w: w, opts: opts}, nil
}

// Announce implements Announcer.
func (a *FrameAnnouncer) Announce(addrs []netip.Addr) error {
	var errs []error
	for _, addr := range addrs {
		var frame []byte
		var err error
		if addr.Is4() {
			frame, err = GratuitousARP(a.opts.HardwareAddr, addr)
		} else {
			frame, err = UnsolicitedNA(a.opts.HardwareAddr, a.opts.NASource, addr, a.opts.RouterFlag)
		}
		if err == nil {
			err = a.w.WriteFrame(frame)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("announcing %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}

// Ethernet and protocol constants of the frames.
const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	ethHeaderLen  = 14
	arpLen        = 28
	ipv6HeaderLen = 40
	naLen         = 24 + 8 // NA with a target link-layer address option
	icmpv6Proto   = 58
	icmpv6NA      = 136
)

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	// allNodes is ff02::1, the destination of unsolicited NAs (RFC 4861
	// section 7.2.6), and its Ethernet multicast address.
	allNodes    = netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x01})
	allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
)

// GratuitousARP returns a broadcast Ethernet frame carrying an ARP
// request for ip from ip (sender and target protocol address both ip,
// target hardware address zero, as an RFC 5227 announcement): hosts and
// switches that know ip update it to mac.
func GratuitousARP(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	if len(mac) != 6 || !ip.Is4() {
		return nil, fmt.Errorf("gratuitous arp for %s from %s: want an IPv4 address and a 6-byte MAC", ip, mac)
	}
	b := make([]byte, ethHeaderLen+arpLen)
	copy(b[0:6], broadcastMAC)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
	a := b[ethHeaderLen:]
	binary.BigEndian.PutUint16(a[0:2], 1) // hardware type Ethernet
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], 1) // request
	copy(a[8:14], mac)
	ip4 := ip.As4()
	copy(a[14:18], ip4[:])
	// a[18:24], the target hardware address, stays zero.
	copy(a[24:28], ip4[:])
	return b, nil
}

// UnsolicitedNA returns an Ethernet frame carrying an unsolicited
// neighbour advertisement (RFC 4861 section 7.2.6) for target from src
// (a link-local address) to all nodes, hop limit 255, with the override
// flag and a target link-layer address option mac.
func UnsolicitedNA(mac net.HardwareAddr, src, target netip.Addr, router bool) ([]byte, error) {
	if len(mac) != 6 || !target.Is6() || target.Is4In6() || !src.Is6() || src.Is4In6() {
		return nil, fmt.Errorf("neighbour advertisement for %s from %s (%s): want IPv6 addresses and a 6-byte MAC", target, src, mac)
	}
	b := make([]byte, ethHeaderLen+ipv6HeaderLen+naLen)
	copy(b[0:6], allNodesMAC)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)
	ip := b[ethHeaderLen:]
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], naLen)
	ip[6] = icmpv6Proto
	ip[7] = HopLimit
	src16, dst16 := src.As16(), allNodes.As16()
	copy(ip[8:24], src16[:])
	copy(ip[24:40], dst16[:])
	na := ip[ipv6HeaderLen:]
	na[0] = icmpv6NA
	const flagRouter, flagOverride = 0x80, 0x20
	na[4] = flagOverride
	if router {
		na[4] |= flagRouter
	}
	t16 := target.WithZone("").As16()
	copy(na[8:24], t16[:])
	na[24], na[25] = 2, 1 // target link-layer address option, 8 bytes
	copy(na[26:32], mac)
	var sum uint32
	sum = sumBytes(sum, src16[:])
	sum = sumBytes(sum, dst16[:])
	sum += naLen + icmpv6Proto
	sum = sumBytes(sum, na)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(na[2:4], ^uint16(sum))
	return b, nil
}
