package diag

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/lvskit/lvskit/director/vrrp"
)

// VRRPObservation is one VRRP packet seen on the wire.
type VRRPObservation struct {
	At     time.Time
	Src    netip.Addr
	SrcMAC net.HardwareAddr
	Dst    netip.Addr
	TTL    int
	// Advert is the decoded advertisement; with ErrBadChecksum it still
	// holds the fields, with other errors it is the zero value.
	Advert vrrp.Advertisement
	// Err is the codec's error, nil for a valid packet.
	Err error
}

// ObserveVRRP decodes a captured packet.
func ObserveVRRP(at time.Time, p vrrp.Packet) VRRPObservation {
	src, dst := p.Src.WithZone(""), p.Dst.WithZone("")
	a, err := vrrp.Unmarshal(p.Payload, src, dst)
	return VRRPObservation{At: at, Src: src, SrcMAC: slices.Clone(p.SrcMAC), Dst: dst, TTL: p.HopLimit, Advert: a, Err: err}
}

// VRRPListenOptions configures ListenVRRP.
type VRRPListenOptions struct {
	// Interface names the link in the report.
	Interface string
	// Duration is how long to listen.
	Duration time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ListenVRRP reads packets from r for the duration (or until ctx is
// done), closes r, and takes the census of what it saw. It sends
// nothing.
func ListenVRRP(ctx context.Context, r vrrp.PacketReader, opts VRRPListenOptions) (*VRRPCensus, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	// start is read before the timer is armed, so the census never
	// reports less than the duration it listened for.
	start := now()
	ctx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	var obs []VRRPObservation
	buf := make([]byte, 65536)
	for {
		p, err := r.ReadPacket(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			r.Close()
			return nil, fmt.Errorf("listening for vrrp on %s: %w", opts.Interface, err)
		}
		obs = append(obs, ObserveVRRP(now(), p))
	}
	r.Close()
	return BuildVRRPCensus(opts.Interface, start, now(), obs), nil
}

// VRRPCensus is every virtual router seen on a link during a listen.
type VRRPCensus struct {
	Interface  string
	Start, End time.Time
	// Packets counts every VRRP packet seen, valid or not.
	Packets int
	// Routers are the virtual routers by family and VRID.
	Routers []VirtualRouter
	// Invalid are the sources of packets the codec rejected.
	Invalid []InvalidSource
}

// VirtualRouter is one VRID of one address family on the link and the
// routers heard advertising it.
type VirtualRouter struct {
	Family   vrrp.Family
	VRID     uint8
	Speakers []Speaker
}

// Role is what a speaker's adverts say it is doing.
type Role string

const (
	// RoleMaster: it advertised until the end of the listen (masters
	// advertise; backups are silent).
	RoleMaster Role = "master"
	// RoleSteppedDown: its last advert had priority 0.
	RoleSteppedDown Role = "stepped-down"
	// RoleStopped: it advertised, then fell silent before the end (it
	// became backup, or died).
	RoleStopped Role = "stopped"
)

// Speaker is one source advertising a virtual router; the fields are
// from its last advert.
type Speaker struct {
	Source    netip.Addr
	MAC       string
	Version   vrrp.Version
	Priority  uint8
	Interval  time.Duration
	Addresses []netip.Addr // sorted
	AuthType  vrrp.AuthType
	// TTLs are the distinct TTLs (hop limits) its adverts arrived with.
	TTLs                []int
	FirstSeen, LastSeen time.Time
	Adverts             int
	PriorityZero        int
	Role                Role

	auth      string      // fingerprint of the auth fields, for comparing
	positives []time.Time // times of adverts with priority > 0
	badTTL    int         // adverts with a TTL other than 255
}

// InvalidSource counts the packets from one source that did not decode.
type InvalidSource struct {
	Source netip.Addr `json:"source"`
	MAC    string     `json:"mac"`
	Count  int        `json:"count"`
	// Errors are the distinct error messages, sorted.
	Errors []string `json:"errors"`
}

type routerKey struct {
	family vrrp.Family
	vrid   uint8
}

// BuildVRRPCensus groups observations into virtual routers and speakers.
// It is pure: the same observations give the same census.
func BuildVRRPCensus(iface string, start, end time.Time, obs []VRRPObservation) *VRRPCensus {
	c := &VRRPCensus{Interface: iface, Start: start, End: end, Packets: len(obs)}
	speakers := map[routerKey]map[netip.Addr]*Speaker{}
	invalid := map[netip.Addr]*InvalidSource{}
	for _, o := range obs {
		if o.Err != nil {
			inv := invalid[o.Src]
			if inv == nil {
				inv = &InvalidSource{Source: o.Src, MAC: o.SrcMAC.String()}
				invalid[o.Src] = inv
			}
			inv.Count++
			if msg := o.Err.Error(); !slices.Contains(inv.Errors, msg) {
				inv.Errors = append(inv.Errors, msg)
			}
			continue
		}
		key := routerKey{vrrp.FamilyOf(o.Src), o.Advert.VRID}
		if speakers[key] == nil {
			speakers[key] = map[netip.Addr]*Speaker{}
		}
		s := speakers[key][o.Src]
		if s == nil {
			s = &Speaker{Source: o.Src, FirstSeen: o.At}
			speakers[key][o.Src] = s
		}
		s.observe(o)
	}
	for key, bySource := range speakers {
		r := VirtualRouter{Family: key.family, VRID: key.vrid}
		for _, s := range bySource {
			s.Role = roleOf(s, end)
			r.Speakers = append(r.Speakers, *s)
		}
		slices.SortFunc(r.Speakers, func(a, b Speaker) int { return a.Source.Compare(b.Source) })
		c.Routers = append(c.Routers, r)
	}
	slices.SortFunc(c.Routers, func(a, b VirtualRouter) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), cmp.Compare(a.VRID, b.VRID))
	})
	for _, inv := range invalid {
		slices.Sort(inv.Errors)
		c.Invalid = append(c.Invalid, *inv)
	}
	slices.SortFunc(c.Invalid, func(a, b InvalidSource) int { return a.Source.Compare(b.Source) })
	return c
}

func (s *Speaker) observe(o VRRPObservation) {
	a := o.Advert
	s.Adverts++
	s.LastSeen = o.At
	if len(o.SrcMAC) > 0 {
		s.MAC = o.SrcMAC.String()
	}
	s.Version, s.Priority, s.Interval, s.AuthType = a.Version, a.Priority, a.Interval, a.AuthType
	s.Addresses = slices.Clone(a.Addresses)
	slices.SortFunc(s.Addresses, netip.Addr.Compare)
	s.Addresses = slices.Compact(s.Addresses)
	s.auth = authFingerprint(a)
	if !slices.Contains(s.TTLs, o.TTL) {
		s.TTLs = append(s.TTLs, o.TTL)
		slices.Sort(s.TTLs)
	}
	if o.TTL != vrrp.HopLimit {
		s.badTTL++
	}
	if a.Priority == 0 {
		s.PriorityZero++
	} else {
		s.positives = append(s.positives, o.At)
	}
}

// authFingerprint identifies the authentication fields without printing
// the password (which is on the wire in clear anyway).
func authFingerprint(a vrrp.Advertisement) string {
	if a.Version != vrrp.Version2 || a.AuthType == vrrp.AuthNone {
		return "none"
	}
	sum := sha256.Sum256(append([]byte{byte(a.AuthType)}, a.AuthData[:]...))
	return a.AuthType.String() + " #" + hex.EncodeToString(sum[:3])
}

// masterWindow is how long after its last advert a master would still
// count as one: a backup would wait Master_Down_Interval, at most 3
// intervals plus 1 s (version 2) or one interval (version 3) of skew.
func masterWindow(s *Speaker) time.Duration {
	skew := time.Second
	if s.Version == vrrp.Version3 {
		skew = s.Interval
	}
	return 3*s.Interval + skew
}

func roleOf(s *Speaker, end time.Time) Role {
	switch {
	case s.Priority == 0:
		return RoleSteppedDown
	case end.Sub(s.LastSeen) <= masterWindow(s):
		return RoleMaster
	}
	return RoleStopped
}

// Masters returns the sources of the router's speakers in RoleMaster.
func (r *VirtualRouter) Masters() []netip.Addr {
	var out []netip.Addr
	for _, s := range r.Speakers {
		if s.Role == RoleMaster {
			out = append(out, s.Source)
		}
	}
	return out
}
