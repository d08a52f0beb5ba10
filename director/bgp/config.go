package bgp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Config is what the embedded speaker needs to know.
type Config struct {
	ASN      uint32
	RouterID netip.Addr // IPv4
	// ListenPort, when not 0, accepts sessions on ListenAddresses (which must
	// then be given). 0 means no listener: lvsd connects to its peers.
	ListenPort      uint16
	ListenAddresses []netip.Addr
	Peers           []PeerConfig
}

// PeerConfig is one BGP neighbour, usually the upstream router.
type PeerConfig struct {
	Address netip.Addr
	ASN     uint32
	// Port is the peer's TCP port; 0 means 179.
	Port uint16
	// LocalAddress is the source address of the session; zero lets the kernel choose.
	LocalAddress netip.Addr
	// HoldTime and Keepalive are negotiated down by the peer; zero means 90 s
	// and a third of the hold time.
	HoldTime  time.Duration
	Keepalive time.Duration
	// Password enables TCP MD5 signatures (RFC 2385) on the session.
	Password string
	// Passive waits for the peer to connect instead of connecting.
	Passive bool
	// MultihopTTL, when not 0, allows an eBGP peer that many hops away.
	MultihopTTL uint8
}

// Options are the embedded speaker's collaborators.
type Options struct {
	// Logger receives GoBGP's log records (nothing is written elsewhere).
	Logger *slog.Logger
}

func checkConfig(cfg Config) error {
	if cfg.ASN == 0 {
		return errors.New("starting bgp: asn must not be 0")
	}
	if !cfg.RouterID.Is4() {
		return fmt.Errorf("starting bgp: router id %v must be an IPv4 address", cfg.RouterID)
	}
	if cfg.ListenPort != 0 && len(cfg.ListenAddresses) == 0 {
		return fmt.Errorf("starting bgp: listen port %d needs listen addresses (lvsd does not listen on every address)", cfg.ListenPort)
	}
	seen := map[netip.Addr]bool{}
	for _, p := range cfg.Peers {
		if !p.Address.IsValid() {
			return errors.New("starting bgp: a peer has no address")
		}
		if seen[p.Address] {
			return fmt.Errorf("starting bgp: peer %v is configured twice", p.Address)
		}
		seen[p.Address] = true
		if p.ASN == 0 {
			return fmt.Errorf("starting bgp: peer %v: asn must not be 0", p.Address)
		}
		if p.HoldTime != 0 && p.HoldTime < 3*time.Second {
			return fmt.Errorf("starting bgp: peer %v: hold time %v must be 0 or at least 3s", p.Address, p.HoldTime)
		}
		if p.Keepalive != 0 && p.HoldTime != 0 && p.Keepalive >= p.HoldTime {
			return fmt.Errorf("starting bgp: peer %v: keepalive %v must be shorter than the hold time %v", p.Address, p.Keepalive, p.HoldTime)
		}
	}
	return nil
}
