package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// IPProtocol is the IP protocol number of VRRP (IPv4 protocol field, IPv6
// next header).
const IPProtocol = 112

// HopLimit is the IPv4 TTL or IPv6 hop limit every multicast advertisement
// is sent with; a receiver must drop multicast adverts that arrive with any
// other value (they crossed a router).
const HopLimit = 255

// Multicast groups that advertisements are sent to.
var (
	IPv4Group = netip.AddrFrom4([4]byte{224, 0, 0, 18})
	IPv6Group = netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x12})
)

// Version is the VRRP version in an advertisement.
type Version uint8

const (
	// Version2 is VRRP of RFC 3768: IPv4 only, intervals in whole seconds,
	// optional simple-password authentication, checksum over the message.
	Version2 Version = 2
	// Version3 is VRRP of RFC 5798: IPv4 and IPv6, intervals in
	// centiseconds, no authentication, checksum over a pseudo-header too.
	Version3 Version = 3
)

// AuthType is the authentication type of a version 2 advertisement.
type AuthType uint8

const (
	// AuthNone: no authentication (the only type RFC 3768 keeps).
	AuthNone AuthType = 0
	// AuthSimple: an 8-byte clear-text password (RFC 2338; keepalived's
	// auth_type PASS).
	AuthSimple AuthType = 1
	// AuthIPAH: IPsec AH (RFC 2338; keepalived's auth_type AH). The codec
	// carries the value; this package does not implement AH.
	AuthIPAH AuthType = 2
)

func (t AuthType) String() string {
	switch t {
	case AuthNone:
		return "none"
	case AuthSimple:
		return "simple"
	case AuthIPAH:
		return "ah"
	}
	return fmt.Sprintf("auth-type-%d", uint8(t))
}

// typeAdvertisement is the only VRRP packet type.
const typeAdvertisement = 1

// Header sizes.
const (
	headerLen = 8 // version/type, VRID, priority, count, auth/interval, checksum
	authLen   = 8 // version 2 authentication data
	// v3IntervalMax is the largest version 3 interval, 12 bits of centiseconds.
	v3IntervalMax = 4095 * centisecond
	centisecond   = 10 * time.Millisecond
)

// Errors from the codec and, for received adverts that fail the checks of
// RFC 3768/5798 section 7.1, in Discarded actions. Each is a distinct
// condition a receiver counts separately; match them with errors.Is.
var (
	// ErrTruncated: the packet is shorter than its header or than the
	// addresses (and version 2 authentication data) its count announces.
	ErrTruncated = errors.New("vrrp packet truncated")
	// ErrBadChecksum: the checksum does not match the packet.
	ErrBadChecksum = errors.New("vrrp checksum mismatch")
	// ErrBadVersion: a version other than 2 or 3, version 2 over IPv6, or a
	// version other than the virtual router's.
	ErrBadVersion = errors.New("vrrp version not supported")
	// ErrBadType: a packet type other than 1 (advertisement).
	ErrBadType = errors.New("vrrp packet type is not advertisement")
	// ErrAddressCount: the count field disagrees with the packet length, or
	// there are more than 255 addresses to encode.
	ErrAddressCount = errors.New("vrrp address count does not match packet")
	// ErrAddressFamily: source, destination and virtual addresses are not
	// all of one family, or one of them is invalid.
	ErrAddressFamily = errors.New("vrrp address family mismatch")
	// ErrInterval: an advertisement interval the version cannot carry, one
	// of zero, or (version 2) one different from the local configuration.
	ErrInterval = errors.New("vrrp advertisement interval invalid")
	// ErrAuth: version 2 authentication type or password mismatch.
	ErrAuth = errors.New("vrrp authentication failed")
	// ErrVRID: the advert is for another virtual router.
	ErrVRID = errors.New("vrrp advertisement for another virtual router")
	// ErrOwnAdvert: the advert carries this router's own primary address
	// (looped back, or another host uses the same address).
	ErrOwnAdvert = errors.New("vrrp advertisement from our own address")
	// ErrAddressMismatch: the advert's virtual addresses differ from the
	// local configuration (a misconfiguration, reported but not dropped).
	ErrAddressMismatch = errors.New("vrrp virtual addresses differ from configuration")
)

// Advertisement is the VRRP payload of an IP packet.
type Advertisement struct {
	Version Version
	// VRID is the virtual router identifier, 1 to 255.
	VRID uint8
	// Priority is the sender's priority: 255 for the address owner, 0 for a
	// master that is stepping down.
	Priority uint8
	// Interval is the advertisement interval: whole seconds up to 255 s in
	// version 2, centiseconds up to 40.95 s in version 3.
	Interval time.Duration
	// Addresses are the virtual addresses, all of the packet's family.
	Addresses []netip.Addr
	// AuthType and AuthData are the version 2 authentication fields; they
	// are ignored for version 3.
	AuthType AuthType
	AuthData [8]byte
	// Checksum is the checksum as received. Marshal ignores it and writes
	// the correct one.
	Checksum uint16
}

// String describes the advertisement on one line, for logs and diagnosis.
func (a *Advertisement) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "VRRPv%d vrid %d priority %d interval %s", a.Version, a.VRID, a.Priority, a.Interval)
	if a.Version == Version2 && a.AuthType != AuthNone {
		fmt.Fprintf(&b, " auth %s", a.AuthType)
	}
	b.WriteString(" addresses")
	for _, addr := range a.Addresses {
		b.WriteByte(' ')
		b.WriteString(addr.String())
	}
	return b.String()
}

// Unmarshal decodes the VRRP payload b of an IP packet from src to dst and
// verifies its checksum: over the message for version 2, over the message
// and the IPv4 or IPv6 pseudo-header for version 3. src and dst decide the
// address family. b must be exactly the IP payload (no link-layer padding).
//
// On ErrBadChecksum the returned Advertisement holds the decoded fields, so
// a diagnostic tool can still show who sent it; with any other error it is
// the zero value.
func Unmarshal(b []byte, src, dst netip.Addr) (Advertisement, error) {
	addrLen, err := familyLen(src, dst)
	if err != nil {
		return Advertisement{}, err
	}
	if len(b) < headerLen {
		return Advertisement{}, fmt.Errorf("decoding vrrp from %s: %d bytes, header needs %d: %w", src, len(b), headerLen, ErrTruncated)
	}
	version := Version(b[0] >> 4)
	switch {
	case version != Version2 && version != Version3:
		return Advertisement{}, fmt.Errorf("decoding vrrp from %s: version %d: %w", src, version, ErrBadVersion)
	case version == Version2 && addrLen != 4:
		return Advertisement{}, fmt.Errorf("decoding vrrp from %s: version 2 carries only IPv4: %w", src, ErrBadVersion)
	}
	if t := b[0] & 0x0f; t != typeAdvertisement {
		return Advertisement{}, fmt.Errorf("decoding vrrp from %s: type %d: %w", src, t, ErrBadType)
	}
	count := int(b[3])
	want := headerLen + count*addrLen
	if version == Version2 {
		want += authLen
	}
	switch {
	case len(b) < want:
		return Advertisement{}, fmt.Errorf("decoding vrrp from %s: %d bytes, %d addresses need %d: %w", src, len(b), count, want, ErrTruncated)
	case len(b) > want:
		return Advertisement{}, fmt.Errorf("decoding vrrp from %s: %d bytes, but count says %d addresses (%d bytes): %w", src, len(b), count, want, ErrAddressCount)
	}

	a := Advertisement{
		Version:   version,
		VRID:      b[1],
		Priority:  b[2],
		Checksum:  binary.BigEndian.Uint16(b[6:8]),
		Addresses: make([]netip.Addr, count),
	}
	if version == Version2 {
		a.AuthType = AuthType(b[4])
		a.Interval = time.Duration(b[5]) * time.Second
		copy(a.AuthData[:], b[want-authLen:])
	} else {
		// The top 4 bits are reserved: ignored on reception.
		a.Interval = time.Duration(binary.BigEndian.Uint16(b[4:6])&0x0fff) * centisecond
	}
	for i := range a.Addresses {
		off := headerLen + i*addrLen
		a.Addresses[i], _ = netip.AddrFromSlice(b[off : off+addrLen])
	}

	if sum := checksum(version, src, dst, b); sum != 0 {
		return a, fmt.Errorf("decoding vrrp from %s: checksum %#04x is wrong%s: %w",
			src, a.Checksum, checksumHint(version, src, dst, b), ErrBadChecksum)
	}
	return a, nil
}

// checksumHint names the known non-conforming checksum variants that a
// packet's checksum matches instead, so an operator can fix the peer.
func checksumHint(version Version, src, dst netip.Addr, b []byte) string {
	if version != Version3 || !src.Is4() {
		return ""
	}
	if checksum(Version2, src, dst, b) == 0 {
		return " (it omits the IPv4 pseudo-header, like keepalived's v3_checksum_as_v2)"
	}
	if dst != IPv4Group && checksum(version, src, IPv4Group, b) == 0 {
		return " (its pseudo-header uses 224.0.0.18 instead of the unicast destination, like old keepalived unicast)"
	}
	return ""
}

// Marshal encodes the advertisement as the payload of an IP packet from
// src to dst, computing the checksum (and ignoring a.Checksum).
func (a *Advertisement) Marshal(src, dst netip.Addr) ([]byte, error) {
	addrLen, err := familyLen(src, dst)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("encoding vrrp vrid %d", a.VRID)
	switch {
	case a.Version != Version2 && a.Version != Version3:
		return nil, fmt.Errorf("%s: version %d: %w", what, a.Version, ErrBadVersion)
	case a.Version == Version2 && addrLen != 4:
		return nil, fmt.Errorf("%s: version 2 carries only IPv4: %w", what, ErrBadVersion)
	case len(a.Addresses) > 255:
		return nil, fmt.Errorf("%s: %d addresses, at most 255: %w", what, len(a.Addresses), ErrAddressCount)
	}
	for _, addr := range a.Addresses {
		if !addr.IsValid() || addr.Is4() != (addrLen == 4) {
			return nil, fmt.Errorf("%s: virtual address %s in a packet from %s: %w", what, addr, src, ErrAddressFamily)
		}
	}
	if err := checkInterval(a.Version, a.Interval); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}

	n := headerLen + len(a.Addresses)*addrLen
	if a.Version == Version2 {
		n += authLen
	}
	b := make([]byte, n)
	b[0] = byte(a.Version)<<4 | typeAdvertisement
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = byte(len(a.Addresses))
	if a.Version == Version2 {
		b[4] = byte(a.AuthType)
		b[5] = byte(a.Interval / time.Second)
		copy(b[n-authLen:], a.AuthData[:])
	} else {
		binary.BigEndian.PutUint16(b[4:6], uint16(a.Interval/centisecond))
	}
	for i, addr := range a.Addresses {
		copy(b[headerLen+i*addrLen:], addr.AsSlice())
	}
	binary.BigEndian.PutUint16(b[6:8], checksum(a.Version, src, dst, b))
	return b, nil
}

// checkInterval reports whether the version can carry interval exactly.
func checkInterval(v Version, interval time.Duration) error {
	if v == Version2 {
		if interval < 0 || interval > 255*time.Second || interval%time.Second != 0 {
			return fmt.Errorf("interval %s is not whole seconds from 0 to 255: %w", interval, ErrInterval)
		}
		return nil
	}
	if interval < 0 || interval > v3IntervalMax || interval%centisecond != 0 {
		return fmt.Errorf("interval %s is not centiseconds from 0 to 40.95s: %w", interval, ErrInterval)
	}
	return nil
}

// familyLen returns the address length of the packet's family.
func familyLen(src, dst netip.Addr) (int, error) {
	switch {
	case !src.IsValid() || !dst.IsValid():
		return 0, fmt.Errorf("vrrp packet from %s to %s: %w", src, dst, ErrAddressFamily)
	case src.Is4() && dst.Is4():
		return 4, nil
	case src.Is6() && dst.Is6() && !src.Is4In6() && !dst.Is4In6():
		return 16, nil
	}
	return 0, fmt.Errorf("vrrp packet from %s to %s: %w", src, dst, ErrAddressFamily)
}

// checksum returns the Internet checksum (RFC 1071) of b, preceded for
// version 3 by the pseudo-header of RFC 768 (IPv4) or RFC 8200 section 8.1
// (IPv6). Over a packet with a correct checksum field it returns 0.
func checksum(v Version, src, dst netip.Addr, b []byte) uint16 {
	var sum uint32
	if v == Version3 {
		sum = sumBytes(sum, src.AsSlice())
		sum = sumBytes(sum, dst.AsSlice())
		// IPv4: zero, protocol, 16-bit length. IPv6: 32-bit length, three
		// zero bytes, next header. Both sum to length + protocol.
		sum += uint32(len(b)) + IPProtocol
	}
	sum = sumBytes(sum, b)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func sumBytes(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
		if sum > 0xffff0000 {
			sum = sum>>16 + sum&0xffff
		}
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}
