// Package config is lvsd's configuration: one YAML file, optionally
// including every *.yaml file of a directory, decoded strictly so that
// every mistake is reported with its file:line:column and what to write
// instead, then checked as a whole. Load returns either a complete, valid
// *Config with its defaults filled in, or an ErrorList holding every
// problem found; never a half-read configuration.
//
// (*Config).Desired turns a configuration into the IPVS services and real
// servers lvsd keeps in the kernel, with the health check, sorry server
// and quorum of each, for the reconciler to diff against the kernel.
//
// The file looks like this (examples/ has one file for each common setup):
//
//	include: conf.d/                 # optional: every conf.d/*.yaml, sorted
//	lvsd:
//	  state_dir: /var/lib/lvsd
//	  status_listen: 127.0.0.1:9120  # or a unix socket: /run/lvsd/status.sock
//	  metrics_listen: 127.0.0.1:9121
//	  resync_interval: 30s
//	  flush_on_stop: false
//	ipvs:
//	  timeouts: {tcp: 900s, tcp_fin: 120s, udp: 300s}
//	  expire_nodest_conn: true
//	  expire_quiescent_template: true
//	  conn_reuse_mode: 1
//	  sync_threshold: {threshold: 3, period: 50}
//	  sync_daemon: {role: master, interface: eth1, sync_id: 7}
//	virtual_services:
//	  - name: web
//	    protocol: tcp
//	    address: 192.168.0.100
//	    port: 80
//	    scheduler: wrr
//	    forwarding: direct_route
//	    health_check: {type: http, path: /healthz}
//	    real_servers:
//	      - {address: 10.0.0.2, weight: 2}
//	      - {address: 10.0.0.3}
//	vrrp:                            # optional: a director pair sharing the VIPs
//	  instances:
//	    - name: VI_1
//	      interface: eth0
//	      virtual_router_id: 51
//	      priority: 150
//	      virtual_addresses: [192.168.0.100]
//
// Keys are snake_case. Durations are Go durations with a unit ("5s",
// "1m30s", "500ms"). Commands are argument lists, run without a shell.
// YAML anchors, aliases and merge keys (<<: *common) may be used to share
// settings between services; top-level keys starting with "x-" are ignored,
// to hold anchors:
//
//	x-check: &check {type: http, path: /healthz}
//	virtual_services:
//	  - {address: 192.168.0.100, port: 80, health_check: *check}
package config

import (
	"net/netip"
	"time"
)

// Config is a whole lvsd configuration: the main file and its includes.
type Config struct {
	// Include names a directory (every *.yaml file in it, in name order)
	// or a file, relative to the main file; a list of them is accepted
	// too. Only the main file may include, and included files may hold
	// only virtual_services.
	Include Includes `yaml:"include"`

	// LVSD are the daemon's own settings.
	LVSD Daemon `yaml:"lvsd"`

	// IPVS are the kernel-wide IPVS settings lvsd applies at start and on
	// reload. Settings left out are not touched.
	IPVS Globals `yaml:"ipvs"`

	// VirtualServices are the services lvsd owns, from the main file then
	// the included files in order.
	VirtualServices []VirtualService `yaml:"virtual_services"`

	// VRRP (vrrp) are the VRRP instances that decide whether this
	// director holds the virtual addresses; see VRRP. Main file only.
	VRRP VRRP `yaml:"vrrp"`

	// BGP (bgp) announces the addresses of services written with
	// announce: bgp to routers; see BGP. Main file only.
	BGP BGP `yaml:"bgp"`

	// Files are the files this configuration was read from: the main file
	// first, then the included ones in order.
	Files []string `yaml:"-"`

	// Scripts are the commands this configuration runs, as Load resolved
	// and checked them (with LoadOptions.Scripts; empty otherwise).
	Scripts []ScriptRef `yaml:"-"`
	// ScriptWarnings are what lvsd logs at every start and reload: the
	// scripts insecure_scripts lets run.
	ScriptWarnings []string `yaml:"-"`
	// RootScriptsWarning, when set, says that scripts run as root because
	// no script user exists; lvsd logs it once, at start.
	RootScriptsWarning string `yaml:"-"`

	pos *positions // where each decoded value was written

	warnings []Error // advice that does not stop the config; see Warnings
}

// Warnings is advice about settings that load but probably do not do what
// the operator wants (a BGP-announced service whose scheduler breaks flows
// on failover), each at its file:line, in file order.
func (c *Config) Warnings() []Error { return c.warnings }

// Includes are the paths named by `include`: one path or a list.
type Includes []string

// Daemon are lvsd's own settings, under the `lvsd` key.
type Daemon struct {
	// StateDir (state_dir) holds lvsd's last-applied state file, which
	// tells it which kernel rules it owns. An absolute path; default
	// /var/lib/lvsd.
	StateDir string `yaml:"state_dir"`

	// StatusListen (status_listen) is where the JSON status API listens:
	// host:port with an IP address (default 127.0.0.1:9120, loopback
	// only), or a unix socket path ("/run/lvsd/status.sock" or
	// "unix:/run/lvsd/status.sock"). An empty string turns it off. On a
	// unix socket it also serves the failover drill's actions (step a
	// VRRP instance down, withdraw a BGP VIP), authorised by the
	// socket's permissions; never on TCP.
	StatusListen ListenAddress `yaml:"status_listen"`

	// MetricsListen (metrics_listen) is where Prometheus metrics are
	// served at /metrics, in the same forms as status_listen. Default
	// 127.0.0.1:9121; write ":9121" to serve on every address, or an
	// empty string to turn it off.
	MetricsListen ListenAddress `yaml:"metrics_listen"`

	// ResyncInterval (resync_interval) is how often lvsd reads the kernel
	// back and repairs drift (rules deleted or changed behind its back).
	// Default 30s; at least 1s.
	ResyncInterval time.Duration `yaml:"resync_interval"`

	// FlushOnStop (flush_on_stop) removes the services lvsd owns when it
	// stops. Default false: rules stay in place so that a restart or an
	// upgrade does not drop traffic.
	FlushOnStop bool `yaml:"flush_on_stop"`

	// ScriptUser (script_user) is whom every script and command runs as,
	// "user" or "user:group" (default: the user's primary group), with
	// the user's supplementary groups. Default: lvsd_script if that user
	// exists, else root (and lvsd warns at every start). A check, a
	// vrrp script, a notify block or a quorum may name its own.
	ScriptUser string `yaml:"script_user"`

	// InsecureScripts (insecure_scripts) runs scripts that a user other
	// than root could change (the file, a directory above it, or anything
	// its symbolic links lead through), logging each at every start and
	// reload. Default false: lvsd refuses such a config, because whoever
	// can change a script lvsd runs as root becomes root.
	InsecureScripts bool `yaml:"insecure_scripts"`
}

// Defaults of the lvsd section.
const (
	DefaultStateDir       = "/var/lib/lvsd"
	DefaultStatusListen   = "127.0.0.1:9120"
	DefaultMetricsListen  = "127.0.0.1:9121"
	DefaultResyncInterval = 30 * time.Second
)

// ListenAddress is a TCP host:port or a unix socket path. The zero value
// means "off".
type ListenAddress struct {
	// Network is "tcp" or "unix"; empty when off.
	Network string
	// Address is host:port for tcp, the socket path for unix.
	Address string
}

// IsZero reports whether the listener is off.
func (l ListenAddress) IsZero() bool { return l.Network == "" }

// String formats the address as it is written in the file.
func (l ListenAddress) String() string {
	if l.Network == "unix" {
		return "unix:" + l.Address
	}
	return l.Address
}

// Globals are the kernel-wide IPVS settings, under the `ipvs` key. Each is
// left as the kernel has it unless written.
type Globals struct {
	// Timeouts are the connection timeouts, as `ipvsadm --set` sets them.
	Timeouts Timeouts `yaml:"timeouts"`

	// ExpireNodestConn (expire_nodest_conn) is the sysctl
	// net.ipv4.vs.expire_nodest_conn: drop a connection's entry when its
	// real server is removed, so the client's next packet is rescheduled.
	ExpireNodestConn *bool `yaml:"expire_nodest_conn"`

	// ExpireQuiescentTemplate (expire_quiescent_template) is the sysctl
	// net.ipv4.vs.expire_quiescent_template: expire persistence templates
	// pointing at a real server of weight 0, so persistent clients move
	// off a quiesced server.
	ExpireQuiescentTemplate *bool `yaml:"expire_quiescent_template"`

	// ConnReuseMode (conn_reuse_mode) is the sysctl
	// net.ipv4.vs.conn_reuse_mode, 0 to 3: 0 sends a reused client port
	// to the same real server; bit 1 (the kernel's default, 1) reschedules
	// when safe; bit 2 also when the old connection is in FIN_WAIT (DR).
	ConnReuseMode *int `yaml:"conn_reuse_mode"`

	// SyncThreshold (sync_threshold) is the sysctl
	// net.ipv4.vs.sync_threshold: a connection is synced to the backup
	// after `threshold` packets and then every `period` packets.
	SyncThreshold *SyncThreshold `yaml:"sync_threshold"`

	// SloppyTCP (sloppy_tcp) is the sysctl net.ipv4.vs.sloppy_tcp: IPVS
	// creates a connection entry from any TCP packet, not only a SYN, so
	// that a director taking over a flow mid-connection (ECMP after
	// another director's death, or a VRRP failover without sync) forwards
	// it instead of dropping it.
	SloppyTCP *bool `yaml:"sloppy_tcp"`

	// SyncDaemon (sync_daemon) runs the kernel's connection sync daemon
	// so that a backup director knows the connections of the master.
	SyncDaemon *SyncDaemon `yaml:"sync_daemon"`
}

// Timeouts are the IPVS connection timeouts, in whole seconds, as
// durations ("900s", "15m"). A timeout left out is not changed.
type Timeouts struct {
	// TCP (tcp) is the idle timeout of established TCP connections
	// (kernel default 15m).
	TCP time.Duration `yaml:"tcp"`
	// TCPFin (tcp_fin) is the timeout after a FIN (kernel default 2m).
	TCPFin time.Duration `yaml:"tcp_fin"`
	// UDP (udp) is the idle timeout of UDP flows (kernel default 5m).
	UDP time.Duration `yaml:"udp"`
}

// SyncThreshold is net.ipv4.vs.sync_threshold. The kernel's default is
// threshold 3, period 50; threshold must be lower than period unless
// period is 0.
type SyncThreshold struct {
	Threshold int `yaml:"threshold"`
	Period    int `yaml:"period"`
}

// SyncDaemon configures the connection sync daemon (`ipvsadm
// --start-daemon`).
type SyncDaemon struct {
	// Role (role) is master (this director sends its connections), backup
	// (it receives them) or both. Write it, or vrrp_instance.
	Role SyncRole `yaml:"role"`
	// VRRPInstance (vrrp_instance) names the VRRP instance whose state
	// chooses the role, as keepalived's lvs_sync_daemon does: master while
	// it is master, backup otherwise (and at start).
	VRRPInstance string `yaml:"vrrp_instance"`
	// Interface (interface) is the network interface the sync messages
	// use. Required.
	Interface string `yaml:"interface"`
	// SyncID (sync_id) tells apart several director pairs on one network,
	// 0 to 255. Default 0.
	SyncID uint8 `yaml:"sync_id"`
	// MaxLen (max_len) is the largest sync message payload, 1 to 65507
	// bytes. Default: the kernel's, from the interface MTU.
	MaxLen uint16 `yaml:"max_len"`
	// McastGroup (mcast_group) is the multicast group. Default: the
	// kernel's, 224.0.0.81.
	McastGroup netip.Addr `yaml:"mcast_group"`
	// McastPort (mcast_port) is the UDP port. Default: the kernel's, 8848.
	McastPort uint16 `yaml:"mcast_port"`
	// McastTTL (mcast_ttl) is the multicast TTL, 1 to 255. Default: the
	// kernel's, 1.
	McastTTL uint8 `yaml:"mcast_ttl"`
}

// SyncRole is the role of the connection sync daemon.
type SyncRole string

// Sync daemon roles.
const (
	SyncMaster SyncRole = "master"
	SyncBackup SyncRole = "backup"
	SyncBoth   SyncRole = "both"
)

// VirtualService is one entry of `virtual_services`: a service identified
// by protocol, address and port, or by a firewall mark.
type VirtualService struct {
	// Name (name) is an optional label for logs, metrics and the status
	// API; unique when set.
	Name string `yaml:"name"`

	// Protocol (protocol) is tcp, udp or sctp. Default tcp. Not allowed
	// with fwmark: the mark rule chooses the packets.
	Protocol Protocol `yaml:"protocol"`
	// Address (address) is the virtual IP address, IPv4 or IPv6.
	// Required unless fwmark is set.
	Address netip.Addr `yaml:"address"`
	// Port (port) is the virtual port. Required unless fwmark is set; 0
	// means every port and needs persistence.
	Port uint16 `yaml:"port"`

	// FWMark (fwmark) makes this a firewall-mark service: the packets an
	// nft or iptables rule marked with this value (1 or more). A fwmark
	// service has no address, port or protocol.
	FWMark uint32 `yaml:"fwmark"`
	// Family (family) is ipv4 or ipv6: required for an IPv6 fwmark
	// service (default ipv4); for an address service it is implied by the
	// address and may be left out.
	Family Family `yaml:"family"`

	// Group (group) puts one set of real servers, checks, sorry server
	// and quorum behind several virtual addresses and ports or firewall
	// marks, as keepalived's virtual_server_group: each entry is an IPVS
	// service of its own (protocol, scheduler, persistence and the rest
	// apply to each), each real server is checked once for the whole
	// group, and the quorum commands run once. Instead of address, port
	// and fwmark. A real server's port defaults to the entries' port when
	// every entry is an address with the same port; otherwise the group
	// is port-less as a fwmark service is (ports only with masquerade).
	Group []GroupEntry `yaml:"group"`

	// Scheduler (scheduler) is the IPVS scheduler: rr, wrr, lc, wlc,
	// lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh or twos. Default wlc, as
	// ipvsadm's.
	Scheduler string `yaml:"scheduler"`
	// SchedulerFlags (scheduler_flags) are scheduler options: sh-fallback
	// and sh-port for sh, mh-fallback and mh-port for mh, or flag-1,
	// flag-2, flag-3 for any scheduler.
	SchedulerFlags []string `yaml:"scheduler_flags"`

	// Persistence (persistence) sends a client to the same real server
	// for a while. Present means on, even when empty.
	Persistence *Persistence `yaml:"persistence"`

	// OnePacket (one_packet) schedules every UDP datagram on its own
	// (ipvsadm --ops). UDP services and fwmark services only.
	OnePacket bool `yaml:"one_packet"`

	// Forwarding (forwarding) is how packets reach the real servers:
	// direct_route (default, as ipvsadm's -g), masquerade (NAT) or tunnel.
	// A real server may override it.
	Forwarding Forwarding `yaml:"forwarding"`
	// Tunnel (tunnel) are the tunnel options, with forwarding: tunnel
	// only. Default: IPIP.
	Tunnel *TunnelOptions `yaml:"tunnel"`

	// HealthCheck (health_check) checks every real server that has no
	// health_check of its own. Without one, real servers are always up.
	HealthCheck *HealthCheck `yaml:"health_check"`

	// OnFailure (on_failure) is what happens to a real server whose check
	// fails: remove (default, as keepalived does) takes it out of the
	// service; quiesce sets its weight to 0 so that existing connections
	// finish but new ones go elsewhere.
	OnFailure OnFailure `yaml:"on_failure"`

	// SorryServer (sorry_server) is installed while no real server is up.
	SorryServer *SorryServer `yaml:"sorry_server"`

	// Quorum (quorum) runs commands when the weight of the real servers
	// that are up crosses a threshold.
	Quorum *Quorum `yaml:"quorum"`

	// Announce (announce) is how the service's address reaches the
	// network: vrrp (default: held through VRRP, or by hand), bgp
	// (announced to the bgp peers while it can serve) or both (held
	// through VRRP and announced while this director is master). Every
	// service of one address says the same.
	Announce Announce `yaml:"announce"`

	// RealServers (real_servers) are the service's destinations.
	RealServers []RealServer `yaml:"real_servers"`
}

// GroupEntry is one virtual address and port, or one firewall mark, of
// a group: {address: 192.168.0.100, port: 80} or {fwmark: 5}.
type GroupEntry struct {
	// Address (address) is a virtual IP address; with port.
	Address netip.Addr `yaml:"address"`
	// Port (port) is its port; 0 (every port) needs persistence.
	Port uint16 `yaml:"port"`
	// FWMark (fwmark) is a firewall mark instead of address and port;
	// the service's protocol does not apply to it.
	FWMark uint32 `yaml:"fwmark"`
}

// Protocol is a virtual service's protocol: tcp, udp or sctp.
type Protocol string

// Protocols.
const (
	TCP  Protocol = "tcp"
	UDP  Protocol = "udp"
	SCTP Protocol = "sctp"
)

// Family is an address family: ipv4 or ipv6.
type Family string

// Families.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// Persistence is a service's client affinity.
type Persistence struct {
	// Timeout (timeout) is how long a client stays with its real server
	// after its last connection, in whole seconds. Default 300s, as
	// ipvsadm's -p.
	Timeout time.Duration `yaml:"timeout"`
	// Netmask (netmask) groups clients: a prefix length (24) or, for
	// IPv4, a dotted mask (255.255.255.0). Default: each client address
	// on its own (32 or 128).
	Netmask Netmask `yaml:"netmask"`
	// Engine (engine) is a persistence engine: sip (Call-ID affinity, UDP
	// services). Default none.
	Engine string `yaml:"engine"`
}

// DefaultPersistenceTimeout is ipvsadm's -p default.
const DefaultPersistenceTimeout = 300 * time.Second

// Netmask is a persistence netmask as a prefix length. Zero means unset.
type Netmask uint8

// Forwarding is a forwarding method.
type Forwarding string

// Forwarding methods.
const (
	DirectRoute Forwarding = "direct_route"
	Masquerade  Forwarding = "masquerade"
	Tunnel      Forwarding = "tunnel"
)

// TunnelOptions are the options of tunnel forwarding.
type TunnelOptions struct {
	// Type (type) is ipip (default), gue or gre. GUE and GRE need Linux
	// 5.2 or later.
	Type TunnelType `yaml:"type"`
	// Port (port) is the GUE destination port on the real server;
	// required for gue, not allowed otherwise.
	Port uint16 `yaml:"port"`
	// Checksum (checksum) is none (default), checksum, or remote (remote
	// checksum offload, GUE only). Not allowed with ipip.
	Checksum TunnelChecksum `yaml:"checksum"`
}

// TunnelType is the encapsulation of tunnel forwarding.
type TunnelType string

// Tunnel types.
const (
	TunnelIPIP TunnelType = "ipip"
	TunnelGUE  TunnelType = "gue"
	TunnelGRE  TunnelType = "gre"
)

// TunnelChecksum is the checksum option of a GUE or GRE tunnel.
type TunnelChecksum string

// Tunnel checksum options.
const (
	ChecksumNone   TunnelChecksum = "none"
	ChecksumOn     TunnelChecksum = "checksum"
	ChecksumRemote TunnelChecksum = "remote"
)

// OnFailure is what happens to a real server that fails its check.
type OnFailure string

// Failure actions.
const (
	Remove  OnFailure = "remove"
	Quiesce OnFailure = "quiesce"
)

// RealServer is one entry of `real_servers`.
type RealServer struct {
	// Address (address) is the real server's IP address. Required. It has
	// the service's family, unless forwarding is tunnel.
	Address netip.Addr `yaml:"address"`
	// Port (port) is the real server's port. Default: the service's port.
	// Only masquerade can change it; a fwmark or port-0 service's real
	// servers have port 0 (the client's port is kept).
	Port uint16 `yaml:"port"`
	// Weight (weight) is 0 to 65535 (ipvsadm's range). Default 1. A real
	// server of weight 0 receives no new connections.
	Weight int32 `yaml:"weight"`
	// UpperThreshold (upper_threshold) stops new connections to this
	// server while it has more than this many; 0 (default) means no
	// limit.
	UpperThreshold uint32 `yaml:"upper_threshold"`
	// LowerThreshold (lower_threshold) lets connections flow again once
	// the server falls below it; at most upper_threshold. Default 0: the
	// kernel uses three quarters of upper_threshold.
	LowerThreshold uint32 `yaml:"lower_threshold"`
	// Forwarding (forwarding) overrides the service's forwarding method.
	Forwarding Forwarding `yaml:"forwarding"`
	// Tunnel (tunnel) overrides the service's tunnel options; with
	// tunnel forwarding only.
	Tunnel *TunnelOptions `yaml:"tunnel"`
	// HealthCheck (health_check) replaces the service's check for this
	// real server; `type: none` turns checking off for it.
	HealthCheck *HealthCheck `yaml:"health_check"`
}

// DefaultWeight is a real server's weight when none is written.
const DefaultWeight = 1

// MaxWeight is the largest weight, as ipvsadm allows.
const MaxWeight = 65535
