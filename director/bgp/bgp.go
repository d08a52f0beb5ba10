// Package bgp announces lvsd's VIPs to routers over BGP.
//
// The daemon talks to a Speaker: it announces a VIP's host prefix (/32 or
// /128) when the VIP can serve and withdraws it when it cannot. The
// implementation in this package embeds GoBGP as a library (no gRPC listener,
// no zebra, imports nothing from its peers); bgptest holds a recording fake
// for the tests of everything above, so another speaker could follow.
package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Speaker announces and withdraws prefixes to every configured peer.
type Speaker interface {
	// Announce advertises prefix with attrs to every peer, now and to peers
	// that come up later. Announcing a prefix again replaces its attributes.
	Announce(prefix netip.Prefix, attrs Attributes) error
	// Withdraw stops advertising prefix; withdrawing a prefix that is not
	// announced is not an error.
	Withdraw(prefix netip.Prefix) error
	// Peers reports each configured peer's session, in configuration order.
	Peers() ([]PeerState, error)
	// Close ends every session (peers drop the routes at once) and waits for
	// every goroutine the speaker started.
	Close() error
}

// ErrClosed is returned by a Speaker's methods after Close.
var ErrClosed = errors.New("bgp speaker is closed")

// Attributes are the path attributes lvsd sets on an announced prefix.
type Attributes struct {
	// Communities are standard RFC 1997 communities.
	Communities []Community
	// MED is the multi-exit discriminator; 0 leaves it out.
	MED uint32
	// NextHop overrides the next hop; the zero value lets the speaker use the
	// session's local address (next-hop self), which is what a director wants.
	NextHop netip.Addr
}

// Community is a standard BGP community, ASN:value packed in 32 bits.
type Community uint32

// ParseCommunity reads "ASN:value" (each 0-65535).
func ParseCommunity(s string) (Community, error) {
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("parsing community %q: want ASN:value, for example 65000:100", s)
	}
	a, err := strconv.ParseUint(hi, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("parsing community %q: ASN must be 0-65535", s)
	}
	v, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("parsing community %q: value must be 0-65535", s)
	}
	return Community(a<<16 | v), nil
}

// String returns the ASN:value form.
func (c Community) String() string {
	return fmt.Sprintf("%d:%d", uint32(c)>>16, uint32(c)&0xffff)
}

// SessionState is a BGP session's finite-state-machine state (RFC 4271 8.2.2).
type SessionState string

// The session states.
const (
	SessionUnknown     SessionState = "unknown"
	SessionIdle        SessionState = "idle"
	SessionConnect     SessionState = "connect"
	SessionActive      SessionState = "active"
	SessionOpenSent    SessionState = "opensent"
	SessionOpenConfirm SessionState = "openconfirm"
	SessionEstablished SessionState = "established"
)

// PeerState is one peer's session as the speaker sees it. It never carries
// the peer's password.
type PeerState struct {
	Address netip.Addr
	ASN     uint32
	State   SessionState
	// Since is when the session last came up (established) or went down
	// (otherwise); zero if it never did.
	Since time.Time
	// Advertised counts the prefixes sent to this peer.
	Advertised int
}

// Up reports whether the session is established.
func (p PeerState) Up() bool { return p.State == SessionEstablished }

// HostPrefix is the /32 or /128 of a VIP.
func HostPrefix(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	return netip.PrefixFrom(addr, addr.BitLen())
}

func checkPrefix(prefix netip.Prefix) error {
	if !prefix.IsValid() {
		return fmt.Errorf("invalid prefix %v", prefix)
	}
	if prefix.Masked() != prefix {
		return fmt.Errorf("prefix %v has host bits set (did you mean %v?)", prefix, prefix.Masked())
	}
	if prefix.Addr().Is4In6() {
		return fmt.Errorf("prefix %v is an IPv4-mapped IPv6 prefix: announce the IPv4 prefix", prefix)
	}
	return nil
}
