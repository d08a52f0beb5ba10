// Package ipvs is lvskit's view of the kernel's IP Virtual Server: the
// virtual services and real servers a director programs, their counters,
// the IPVS timeouts, the connection sync daemon, and readers of the
// /proc/net/ip_vs* files.
//
// The types here are portable. Client is implemented over generic netlink
// in client_linux.go; other systems get a stub that returns
// ErrNotImplemented. Package ipvstest has a stateful fake for tests.
package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Sentinel errors callers branch on.
var (
	// ErrIPVSUnavailable means the kernel has no IPVS generic-netlink
	// family: the ip_vs module is not loaded, or not built.
	ErrIPVSUnavailable = errors.New("IPVS is not available in this kernel: load ip_vs (modprobe ip_vs)")
	// ErrPermission means the caller lacks CAP_NET_ADMIN.
	ErrPermission = errors.New("IPVS needs CAP_NET_ADMIN: run as root or grant the capability")
	// ErrServiceExists is returned when adding a service that is already there.
	ErrServiceExists = errors.New("virtual service already exists")
	// ErrServiceNotFound is returned for a service the kernel does not have.
	ErrServiceNotFound = errors.New("no such virtual service")
	// ErrRealServerExists is returned when adding a real server twice.
	ErrRealServerExists = errors.New("real server already exists")
	// ErrRealServerNotFound is returned for a real server the service does not have.
	ErrRealServerNotFound = errors.New("no such real server")
	// ErrNotSupported is returned when the running kernel lacks a feature
	// (a scheduler, a tunnel type, a persistence engine).
	ErrNotSupported = errors.New("not supported by this kernel")
	// ErrNotImplemented is returned on systems without IPVS support in lvskit.
	ErrNotImplemented = errors.New("IPVS is implemented only on Linux")
)

// Client talks to the kernel's IPVS. Implementations are safe for
// concurrent use.
type Client interface {
	// Info returns the IPVS version and connection-table size.
	Info() (Info, error)

	// Services lists every virtual service with its counters.
	Services() ([]Service, error)
	// Service returns one virtual service with its counters.
	Service(key ServiceKey) (Service, error)
	// AddService creates a virtual service.
	AddService(svc Service) error
	// UpdateService changes the scheduler, flags and persistence of an
	// existing service in place.
	UpdateService(svc Service) error
	// DeleteService removes a service and all its real servers.
	DeleteService(key ServiceKey) error

	// ServiceTable reads /proc/net/ip_vs of the client's network
	// namespace: every service and real server in one read, without the
	// fields the file lacks (see ServiceTable). It is much cheaper than
	// Services plus RealServers for each service in a large table.
	ServiceTable() (ServiceTable, error)

	// RealServers lists the real servers of a service with their
	// connection counts and counters.
	RealServers(key ServiceKey) ([]RealServer, error)
	// AddRealServer adds a real server to a service.
	AddRealServer(key ServiceKey, rs RealServer) error
	// UpdateRealServer changes the weight, thresholds and forwarding of
	// an existing real server in place.
	UpdateRealServer(key ServiceKey, rs RealServer) error
	// DeleteRealServer removes a real server from a service.
	DeleteRealServer(key ServiceKey, rs RealServerKey) error

	// Timeouts returns the TCP, TCP FIN and UDP connection timeouts.
	Timeouts() (Timeouts, error)
	// SetTimeouts sets the timeouts; a zero field is left unchanged.
	SetTimeouts(t Timeouts) error

	// SyncDaemons lists the running connection sync daemons.
	SyncDaemons() ([]SyncDaemon, error)
	// StartSyncDaemon starts a master or backup connection sync daemon.
	StartSyncDaemon(d SyncDaemon) error
	// StopSyncDaemon stops the sync daemon in the given role.
	StopSyncDaemon(role SyncRole) error

	// ZeroService zeroes the counters of one service and its real servers.
	ZeroService(key ServiceKey) error
	// ZeroAll zeroes every counter.
	ZeroAll() error
	// Flush removes every virtual service.
	Flush() error

	// Close releases the client's sockets.
	Close() error
}

// Family is an address family as the kernel numbers it.
type Family uint16

// Address families.
const (
	IPv4 Family = 2  // AF_INET
	IPv6 Family = 10 // AF_INET6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "AF" + strconv.Itoa(int(f))
}

// FamilyOf returns the family of an address.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() || a.Is4In6() {
		return IPv4
	}
	return IPv6
}

// Protocol is an IP protocol number.
type Protocol uint16

// Protocols IPVS balances.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return "proto" + strconv.Itoa(int(p))
}

// ParseProtocol accepts tcp, udp and sctp in any case.
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	case "sctp":
		return SCTP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q: use tcp, udp or sctp", s)
}

// ServiceKey identifies a virtual service: protocol, address and port, or
// a firewall mark with an address family.
type ServiceKey struct {
	Family   Family
	Protocol Protocol   // zero for a fwmark service
	Address  netip.Addr // invalid for a fwmark service
	Port     uint16
	FWMark   uint32 // non-zero for a fwmark service
}

// TCPKey, UDPKey and SCTPKey build keys for address-based services.
func TCPKey(ap netip.AddrPort) ServiceKey  { return addrKey(TCP, ap) }
func UDPKey(ap netip.AddrPort) ServiceKey  { return addrKey(UDP, ap) }
func SCTPKey(ap netip.AddrPort) ServiceKey { return addrKey(SCTP, ap) }

func addrKey(p Protocol, ap netip.AddrPort) ServiceKey {
	a := ap.Addr().Unmap()
	return ServiceKey{Family: FamilyOf(a), Protocol: p, Address: a, Port: ap.Port()}
}

// FWMarkKey builds the key of a firewall-mark service.
func FWMarkKey(f Family, mark uint32) ServiceKey {
	return ServiceKey{Family: f, FWMark: mark}
}

// IsFWMark reports whether the key names a firewall-mark service.
func (k ServiceKey) IsFWMark() bool { return k.FWMark != 0 }

// String formats the key as ipvsadm lists it: "TCP 192.168.0.100:80",
// "UDP [2001:db8::1]:53", "FWM 1" or "FWM 1 IPv6".
func (k ServiceKey) String() string {
	if k.IsFWMark() {
		if k.Family == IPv6 {
			return "FWM " + strconv.FormatUint(uint64(k.FWMark), 10) + " IPv6"
		}
		return "FWM " + strconv.FormatUint(uint64(k.FWMark), 10)
	}
	return k.Protocol.String() + " " + netip.AddrPortFrom(k.Address, k.Port).String()
}

// ParseServiceKey parses a key as String writes it: "TCP 192.168.0.100:80",
// "UDP [2001:db8::1]:53", "FWM 1", "FWM 1 IPv6". It is the one parser of
// service keys for every program that reads them (lvsd's status API
// carries keys in this form). ServiceKey has no MarshalText on purpose:
// Service embeds it, and the method would turn a whole Service into its
// key in JSON.
func ParseServiceKey(s string) (ServiceKey, error) {
	f := strings.Fields(s)
	if len(f) >= 2 && strings.EqualFold(f[0], "FWM") {
		mark, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil || mark == 0 || len(f) > 3 || (len(f) == 3 && f[2] != "IPv6") {
			return ServiceKey{}, fmt.Errorf("service key %q: want \"FWM <mark>\" or \"FWM <mark> IPv6\"", s)
		}
		fam := IPv4
		if len(f) == 3 {
			fam = IPv6
		}
		return FWMarkKey(fam, uint32(mark)), nil
	}
	if len(f) != 2 {
		return ServiceKey{}, fmt.Errorf("service key %q: want \"PROTO ADDRESS:PORT\" or \"FWM <mark>\"", s)
	}
	p, err := ParseProtocol(f[0])
	if err != nil {
		return ServiceKey{}, fmt.Errorf("service key %q: %w", s, err)
	}
	ap, err := netip.ParseAddrPort(f[1])
	if err != nil {
		return ServiceKey{}, fmt.Errorf("service key %q: bad address:port: %w", s, err)
	}
	switch p {
	case UDP:
		return UDPKey(ap), nil
	case SCTP:
		return SCTPKey(ap), nil
	}
	return TCPKey(ap), nil
}

// Less orders keys: by family, fwmark services after address services,
// then protocol, address and port.
func (k ServiceKey) Less(o ServiceKey) bool {
	if k.Family != o.Family {
		return k.Family < o.Family
	}
	if k.IsFWMark() != o.IsFWMark() {
		return !k.IsFWMark()
	}
	if k.FWMark != o.FWMark {
		return k.FWMark < o.FWMark
	}
	if k.Protocol != o.Protocol {
		return k.Protocol < o.Protocol
	}
	if c := k.Address.Compare(o.Address); c != 0 {
		return c < 0
	}
	return k.Port < o.Port
}

// ServiceFlags are the IP_VS_SVC_F_* flags of a service.
type ServiceFlags uint32

// Service flags. SchedFlag1..3 mean different things per scheduler: for
// sh and mh, 1 is "fallback" and 2 is "port".
const (
	FlagPersistent ServiceFlags = 0x0001
	FlagHashed     ServiceFlags = 0x0002 // set by the kernel; ignored on write
	FlagOnePacket  ServiceFlags = 0x0004
	SchedFlag1     ServiceFlags = 0x0008
	SchedFlag2     ServiceFlags = 0x0010
	SchedFlag3     ServiceFlags = 0x0020
)

// SchedulerFlagNames maps ipvsadm's scheduler flag names to flags.
var SchedulerFlagNames = map[string]ServiceFlags{
	"flag-1": SchedFlag1, "flag-2": SchedFlag2, "flag-3": SchedFlag3,
	"sh-fallback": SchedFlag1, "sh-port": SchedFlag2,
	"mh-fallback": SchedFlag1, "mh-port": SchedFlag2,
}

// Schedulers are the IPVS schedulers of Linux 6.x, by module suffix.
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}

// Service is a virtual service.
type Service struct {
	ServiceKey
	Scheduler string
	Flags     ServiceFlags
	// Timeout is the persistence timeout in seconds; it applies when
	// Flags has FlagPersistent.
	Timeout uint32
	// NetmaskBits is the persistence granularity: a prefix length, 32
	// (or 128) meaning per client address.
	NetmaskBits uint8
	// PersistenceEngine is an optional persistence engine ("sip").
	PersistenceEngine string
	Stats             Stats // read only
}

// Persistent reports whether the service has persistence.
func (s Service) Persistent() bool { return s.Flags&FlagPersistent != 0 }

// Forwarding is how IPVS sends packets to a real server.
type Forwarding uint32

// Forwarding methods (IP_VS_CONN_F_* & IP_VS_CONN_F_FWD_MASK).
const (
	Masquerade  Forwarding = 0
	Local       Forwarding = 1
	Tunnel      Forwarding = 2
	DirectRoute Forwarding = 3
	Bypass      Forwarding = 4
)

func (f Forwarding) String() string {
	switch f {
	case Masquerade:
		return "Masq"
	case Local:
		return "Local"
	case Tunnel:
		return "Tunnel"
	case DirectRoute:
		return "Route"
	case Bypass:
		return "Bypass"
	}
	return "fwd" + strconv.Itoa(int(f))
}

// TunnelType is the encapsulation of a tunnel real server.
type TunnelType uint8

// Tunnel types (IP_VS_CONN_F_TUNNEL_TYPE_*).
const (
	TunnelIPIP TunnelType = 0
	TunnelGUE  TunnelType = 1
	TunnelGRE  TunnelType = 2
)

func (t TunnelType) String() string {
	switch t {
	case TunnelIPIP:
		return "ipip"
	case TunnelGUE:
		return "gue"
	case TunnelGRE:
		return "gre"
	}
	return "tun" + strconv.Itoa(int(t))
}

// TunnelFlags are the checksum options of GUE and GRE tunnels.
type TunnelFlags uint16

// Tunnel flags (IP_VS_TUNNEL_ENCAP_FLAG_*).
const (
	TunnelNoChecksum     TunnelFlags = 0
	TunnelChecksum       TunnelFlags = 1 << 0
	TunnelRemoteChecksum TunnelFlags = 1 << 1
)

// RealServerKey identifies a real server within a service.
type RealServerKey struct {
	Address netip.Addr
	Port    uint16
}

func (k RealServerKey) String() string { return netip.AddrPortFrom(k.Address, k.Port).String() }

// RealServer is a destination of a virtual service.
type RealServer struct {
	Address        netip.Addr
	Port           uint16
	Forwarding     Forwarding
	Weight         int32
	UpperThreshold uint32 // 0: no limit
	LowerThreshold uint32
	TunnelType     TunnelType // with Forwarding == Tunnel
	TunnelPort     uint16     // GUE destination port
	TunnelFlags    TunnelFlags

	ActiveConns     uint32 // read only
	InactiveConns   uint32 // read only
	PersistentConns uint32 // read only: persistence templates
	Stats           Stats  // read only
}

// Key returns the real server's address and port.
func (r RealServer) Key() RealServerKey { return RealServerKey{Address: r.Address, Port: r.Port} }

// Validate rejects real servers the kernel would take but that break the
// tools around it.
func (r RealServer) Validate() error {
	if !r.Address.IsValid() {
		return errors.New("real server without an address")
	}
	if r.TunnelFlags&TunnelChecksum != 0 && r.TunnelFlags&TunnelRemoteChecksum != 0 {
		// ipvsadm treats them as exclusive, and 1.31 segfaults listing a
		// real server that has both.
		return fmt.Errorf("real server %v: tunnel checksum options csum and remcsum are exclusive: choose one", r.Key())
	}
	if r.Forwarding != Tunnel && (r.TunnelType != TunnelIPIP || r.TunnelPort != 0 || r.TunnelFlags != 0) {
		return fmt.Errorf("real server %v: tunnel options need tunnel forwarding, not %v", r.Key(), r.Forwarding)
	}
	if r.TunnelType == TunnelGUE && r.TunnelPort == 0 {
		return fmt.Errorf("real server %v: a gue tunnel needs a port", r.Key())
	}
	if r.TunnelType == TunnelIPIP && r.TunnelFlags != 0 {
		return fmt.Errorf("real server %v: ipip tunnels have no checksum options", r.Key())
	}
	if r.TunnelType == TunnelGRE && r.TunnelFlags&TunnelRemoteChecksum != 0 {
		return fmt.Errorf("real server %v: remcsum is only for gue tunnels", r.Key())
	}
	return nil
}

// Stats are the counters and estimated rates of a service or real server.
type Stats struct {
	Conns      uint64
	PacketsIn  uint64
	PacketsOut uint64
	BytesIn    uint64
	BytesOut   uint64
	CPS        uint64 // connections per second
	PPSIn      uint64
	PPSOut     uint64
	BPSIn      uint64 // bytes per second
	BPSOut     uint64
}

// Info is what IPVS says about itself.
type Info struct {
	Version       Version
	ConnTableSize uint32
}

// Version is the IPVS version, e.g. 1.2.1.
type Version uint32

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d", v>>16, (v>>8)&0xff, v&0xff)
}

// Timeouts are the IPVS connection timeouts in seconds.
type Timeouts struct {
	TCP    uint32
	TCPFin uint32
	UDP    uint32
}

// SyncRole is the role of a connection sync daemon.
type SyncRole uint32

// Sync daemon roles (IP_VS_STATE_MASTER, IP_VS_STATE_BACKUP).
const (
	SyncMaster SyncRole = 1
	SyncBackup SyncRole = 2
)

func (r SyncRole) String() string {
	switch r {
	case SyncMaster:
		return "master"
	case SyncBackup:
		return "backup"
	}
	return "role" + strconv.Itoa(int(r))
}

// SyncDaemon is a connection synchronisation daemon.
type SyncDaemon struct {
	Role      SyncRole
	Interface string
	SyncID    uint8
	// The fields below need Linux 4.3 or later; zero means the kernel's default.
	MaxSyncLen    uint16
	MulticastAddr netip.Addr
	MulticastPort uint16
	MulticastTTL  uint8
}
