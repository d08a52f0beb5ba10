package vrrp

import (
	"fmt"
	"net/netip"
	"time"
)

// Config describes one virtual router as this director takes part in it.
type Config struct {
	// VRID is the virtual router identifier, 1 to 255, shared by all
	// routers of the group on the link.
	VRID uint8
	// Version is Version2 (IPv4 only) or Version3.
	Version Version
	// Priority is this router's priority, 1 to 254, or 255 for the address
	// owner, which becomes master at once and always preempts.
	Priority uint8
	// AdvertInterval is how often the master advertises: whole seconds up
	// to 255 s for version 2, centiseconds up to 40.95 s for version 3.
	AdvertInterval time.Duration
	// Addresses are the virtual addresses, 1 to 255, all of one family. For
	// version 3 over IPv6 the first should be link-local (RFC 5798 5.2.9).
	Addresses []netip.Addr
	// PrimaryAddress is this router's own address on the interface: the
	// source of its adverts (for IPv6 its link-local address), and the
	// tie-breaker between equal priorities (the higher address wins).
	PrimaryAddress netip.Addr
	// NoPreempt keeps a higher-priority backup from taking over from a
	// lower-priority master (RFC Preempt_Mode false; keepalived nopreempt).
	// The address owner always preempts, so it cannot be set with priority
	// 255.
	NoPreempt bool
	// PreemptDelay makes a higher-priority backup keep accepting a
	// lower-priority master's adverts for this long after it first sees
	// one, before preempting it (keepalived preempt_delay).
	PreemptDelay time.Duration
	// AcceptMode lets a master that is not the address owner accept packets
	// addressed to the virtual addresses (RFC 5798 Accept_Mode). A director
	// whose virtual addresses carry IPVS services needs it.
	AcceptMode bool
	// Password enables version 2 simple-password authentication (RFC 2338,
	// keepalived auth_type PASS): at most 8 bytes, sent zero-padded. Empty
	// means no authentication.
	Password string
}

// Validate reports the first setting that the protocol cannot carry or
// that contradicts another.
func (c *Config) Validate() error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("vrrp vrid %d: %w", c.VRID, err)
	}
	return nil
}

func (c *Config) validate() error {
	switch {
	case c.VRID == 0:
		return fmt.Errorf("virtual router id 0: must be 1 to 255")
	case c.Version != Version2 && c.Version != Version3:
		return fmt.Errorf("version %d: must be 2 or 3", c.Version)
	case c.Priority == 0:
		return fmt.Errorf("priority 0 is reserved for a master stepping down: use 1 to 255")
	case c.AdvertInterval <= 0:
		return fmt.Errorf("advertisement interval %s: must be positive", c.AdvertInterval)
	}
	if err := checkInterval(c.Version, c.AdvertInterval); err != nil {
		return fmt.Errorf("advertisement %w", err)
	}
	primary := c.PrimaryAddress.WithZone("")
	switch {
	case !primary.IsValid() || primary.Is4In6():
		return fmt.Errorf("primary address %q: want an IPv4 or IPv6 address", c.PrimaryAddress)
	case c.Version == Version2 && !primary.Is4():
		return fmt.Errorf("primary address %s: version 2 is IPv4 only", primary)
	case primary.Is6() && !primary.IsLinkLocalUnicast():
		return fmt.Errorf("primary address %s: IPv6 adverts are sent from the link-local address", primary)
	case len(c.Addresses) == 0:
		return fmt.Errorf("no virtual addresses")
	case len(c.Addresses) > 255:
		return fmt.Errorf("%d virtual addresses: at most 255", len(c.Addresses))
	}
	seen := make(map[netip.Addr]bool, len(c.Addresses))
	for _, addr := range c.Addresses {
		switch {
		case !addr.IsValid() || addr.Is4In6() || addr.Zone() != "":
			return fmt.Errorf("virtual address %q: want a plain IPv4 or IPv6 address", addr)
		case addr.Is4() != primary.Is4():
			return fmt.Errorf("virtual address %s: not of the primary address %s's family", addr, primary)
		case seen[addr]:
			return fmt.Errorf("virtual address %s listed twice", addr)
		}
		seen[addr] = true
	}
	switch {
	case c.NoPreempt && c.Priority == 255:
		return fmt.Errorf("nopreempt with priority 255: the address owner always preempts")
	case c.PreemptDelay < 0:
		return fmt.Errorf("preempt delay %s: must not be negative", c.PreemptDelay)
	case c.PreemptDelay > 0 && c.NoPreempt:
		return fmt.Errorf("preempt delay with nopreempt: a router that never preempts has nothing to delay")
	case c.Password != "" && c.Version != Version2:
		return fmt.Errorf("password set: version 3 has no authentication")
	case len(c.Password) > 8:
		return fmt.Errorf("password of %d bytes: at most 8", len(c.Password))
	}
	return nil
}

// authFields returns the version 2 authentication type and data.
func (c *Config) authFields() (AuthType, [8]byte) {
	var data [8]byte
	if c.Password == "" {
		return AuthNone, data
	}
	copy(data[:], c.Password)
	return AuthSimple, data
}
