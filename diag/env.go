package diag

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
)

// Env is everything the checks talk to. NewSystemEnv (Linux) fills it
// with the real implementations; tests fill it with fakes. A nil field
// makes the checks that need it report that they could not run, with
// the matching *Err field as the reason when it is set.
type Env struct {
	// Root is the host's file system ("/"): /proc/sys for sysctls,
	// /proc/net for the neighbour table, listening sockets and the IPVS
	// connection table. Tests use a fstest.MapFS or a saved tree.
	Root fs.FS
	// Pinger sends ICMP echo requests.
	Pinger Pinger
	// ARP asks who-has on a link and listens for answers and
	// gratuitous ARP.
	ARP ARPProber
	// Prober connects to real servers (HTTP, HTTPS, TCP).
	Prober Prober
	// Net reads links, addresses and routes.
	Net NetInfo
	// Firewall reads the packet filter's rules.
	Firewall Firewall
	// IPVS is this host's IPVS, nil when it is not readable (IPVSErr
	// says why).
	IPVS    ipvs.Client
	IPVSErr error
	// LVSD is a running lvsd's status API (--lvsd), nil without one.
	LVSD StatusSource
	// LVSDLocal says the status API is on this host (loopback or a unix
	// socket): this host is then a director.
	LVSDLocal bool
	// Config is lvsd's config (--config), nil without one.
	Config *config.Config
	// VRRP listens passively for VRRP adverts.
	VRRP VRRPListener
	// Tracer traces packets through this host's IPVS (--trace); nil
	// when it cannot here (TracerErr says why).
	Tracer    Tracer
	TracerErr error
	// Logger logs what the checks do at debug level; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Pinger sends ICMP echo requests.
type Pinger interface {
	// Ping sends opts.Count echo requests to addr, opts.Interval apart,
	// and waits up to opts.Timeout after the last for the replies.
	Ping(ctx context.Context, addr netip.Addr, opts PingOptions) (PingResult, error)
}

// PingOptions configures one Ping.
type PingOptions struct {
	Count    int
	Interval time.Duration
	Timeout  time.Duration
}

// PingResult is what came back.
type PingResult struct {
	Sent, Received int
	// RTTs are the round-trip times of the replies.
	RTTs []time.Duration
	// Method is how the echo requests were sent ("datagram" for an
	// unprivileged ICMP socket, "raw").
	Method string
}

// ARPProber asks who-has on a link and records the ARP it sees.
type ARPProber interface {
	// Probe sends one who-has for each target on iface, then records
	// every ARP packet on the link for wait (replies to it, and
	// gratuitous ARP from anyone).
	Probe(ctx context.Context, iface string, targets []netip.Addr, wait time.Duration) (ARPCapture, error)
}

// ARPCapture is what Probe saw.
type ARPCapture struct {
	Start, End time.Time
	// Source is the address the requests were sent from.
	Source  netip.Addr
	Packets []ARPPacket
}

// ARPPacket is one ARP packet on the link.
type ARPPacket struct {
	At        time.Time
	Reply     bool // op 2; else a request
	SenderMAC net.HardwareAddr
	SenderIP  netip.Addr
	TargetIP  netip.Addr
}

// Gratuitous reports whether the packet announces its sender's own
// address (sender and target address equal).
func (p ARPPacket) Gratuitous() bool { return p.SenderIP == p.TargetIP }

// Prober connects to one real server.
type Prober interface {
	// Probe connects to req.Address and, for HTTP and HTTPS, sends GET
	// req.Path with req.Host as the Host header and the TLS server name.
	Probe(ctx context.Context, req ProbeRequest) ProbeResult
}

// ProbeKind is how a real server is probed.
type ProbeKind string

// Probe kinds.
const (
	ProbeAuto  ProbeKind = "auto"
	ProbeHTTP  ProbeKind = "http"
	ProbeHTTPS ProbeKind = "https"
	ProbeTCP   ProbeKind = "tcp"
)

// ProbeRequest is one probe of a real server.
type ProbeRequest struct {
	Kind    ProbeKind
	Address netip.AddrPort
	Host    string
	Path    string
}

// ProbeResult is its outcome.
type ProbeResult struct {
	// Err is set when the connection or the request failed.
	Err error
	// Status is the HTTP status code (0 for TCP).
	Status  int
	Latency time.Duration
	// BodyBytes and Digest (sha256, hex) describe the body.
	BodyBytes int64
	Digest    string
}

// NetInfo reads this host's links and routes.
type NetInfo interface {
	// Links lists the links with their addresses.
	Links(ctx context.Context) ([]Link, error)
	// RouteTo returns the route the kernel would use to reach dst.
	RouteTo(ctx context.Context, dst netip.Addr) (Route, error)
}

// Link is one network interface.
type Link struct {
	Name string
	// Kind is the driver: "loopback", "dummy", "ipip", "veth", "bridge",
	// "device" (a NIC) ...
	Kind     string
	Up       bool
	MAC      net.HardwareAddr
	Prefixes []netip.Prefix
}

// Loopback reports whether the link is lo.
func (l Link) Loopback() bool { return l.Kind == "loopback" || l.Name == "lo" }

// Route is the answer of `ip route get`.
type Route struct {
	Interface string
	// Local is set when dst is an address of this host.
	Local   bool
	Source  netip.Addr
	Gateway netip.Addr
}

// Firewall reads the packet filter's rules.
type Firewall interface {
	// Rules returns the rules as `nft list ruleset` and `iptables-save`
	// print them (either may be empty when the tool is missing).
	Rules(ctx context.Context) (FirewallRules, error)
}

// FirewallRules are the packet filter's rules as text.
type FirewallRules struct {
	NFT      string
	IPTables string
}

// StatusSource reads a running lvsd's status (*statusapi.Client).
type StatusSource interface {
	Status(ctx context.Context) (statusapi.Status, error)
}

// VIPStatusSource is a StatusSource that can read the status with only
// one address's services (*statusapi.Client: GET /status?vip=): a
// director with 10,000 services then sends a few kilobytes, not 10 MB.
type VIPStatusSource interface {
	StatusOfVIP(ctx context.Context, vip netip.Addr) (statusapi.Status, error)
}

// VRRPListener takes a VRRP census of a link.
type VRRPListener interface {
	Listen(ctx context.Context, iface string, d time.Duration) (*VRRPCensus, error)
}

// ErrNotRoot is the reason the checks that need raw sockets give when
// they lack the privilege.
var ErrNotRoot = errors.New("needs root (CAP_NET_RAW)")

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Env) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}
