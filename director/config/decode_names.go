package config

// The names the decoder speaks in: what a YAML node or Go type is called in a
// message, renamed and unknown keys with a suggestion, and the enums' names.

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// describe says what a node is, for "got ..." in messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.Tag {
	case "!!null":
		return "nothing"
	case "!!bool":
		return "the boolean " + n.Value
	case "!!int", "!!float":
		return "the number " + n.Value
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return fmt.Sprintf("%q", v)
}

// describeType names what a setting of type t expects, for messages.
func describeType(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Netmask]():
		return "a prefix length or a dotted netmask"
	case reflect.TypeFor[StatusRange]():
		return `a status code (200) or a range ("200-299")`
	case reflect.TypeFor[ListenAddress]():
		return "host:port or a unix socket path"
	}
	if names, ok := enumNames[t]; ok {
		return joinOr(names)
	}
	return "a value"
}

// typeNames say where a mapping is, in "unknown key ..." messages.
var typeNames = map[reflect.Type]string{
	reflect.TypeFor[Config]():         "at the top level",
	reflect.TypeFor[Daemon]():         "in lvsd",
	reflect.TypeFor[Globals]():        "in ipvs",
	reflect.TypeFor[Timeouts]():       "in ipvs timeouts",
	reflect.TypeFor[SyncThreshold]():  "in sync_threshold",
	reflect.TypeFor[SyncDaemon]():     "in sync_daemon",
	reflect.TypeFor[VirtualService](): "in a virtual service",
	reflect.TypeFor[GroupEntry]():     "in a group entry",
	reflect.TypeFor[Persistence]():    "in persistence",
	reflect.TypeFor[TunnelOptions]():  "in tunnel",
	reflect.TypeFor[RealServer]():     "in a real server",
	reflect.TypeFor[HealthCheck]():    "in health_check",
	reflect.TypeFor[SorryServer]():    "in sorry_server",
	reflect.TypeFor[Quorum]():         "in quorum",
}

// renamed are keys from keepalived.conf and ipvsadm, and likely slips,
// with what to write in lvsd's config instead.
var renamed = map[string]string{
	"virtual_server":            "virtual_services (a list)",
	"virtual_service":           "virtual_services (a list)",
	"real_server":               "real_servers (a list)",
	"lb_algo":                   "scheduler",
	"lvs_sched":                 "scheduler",
	"lb_kind":                   "forwarding: direct_route, masquerade or tunnel",
	"lvs_method":                "forwarding: direct_route, masquerade or tunnel",
	"persistence_timeout":       "persistence: {timeout: 300s}",
	"persistence_granularity":   "persistence: {netmask: 24}",
	"persistence_engine":        "persistence: {engine: sip}",
	"ops":                       "one_packet: true",
	"delay_loop":                "health_check: {interval: 5s}, or interval inside health_check",
	"connect_timeout":           "timeout",
	"nb_get_retry":              "retry",
	"delay_before_retry":        "retry_delay",
	"inhibit_on_failure":        "on_failure: quiesce",
	"status_code":               "status_codes (a list)",
	"misc_path":                 "type: script and command: [/path/to/script, arg]",
	"tcp_check":                 "health_check: {type: tcp}",
	"http_get":                  "health_check: {type: http, path: /}",
	"ssl_get":                   "health_check: {type: https, path: /}",
	"misc_check":                "health_check: {type: script, command: [...]}",
	"dns_check":                 "health_check: {type: dns}",
	"check":                     "health_check",
	"healthcheck":               "health_check",
	"vip":                       "address",
	"ip":                        "address",
	"netmask":                   "persistence: {netmask: ...}",
	"lvs_sync_daemon":           "ipvs: {sync_daemon: {...}}",
	"lvs_timeouts":              "ipvs: {timeouts: {tcp: 900s, tcp_fin: 120s, udp: 300s}}",
	"notify_up":                 "quorum: {up_command: [...]} (per real server notify commands are not supported)",
	"notify_down":               "quorum: {down_command: [...]} (per real server notify commands are not supported)",
	"quorum_up":                 "up_command",
	"quorum_down":               "down_command",
	"virtualhost":               "host",
	"tunnel_type":               "tunnel: {type: gue}",
	"uthreshold":                "upper_threshold",
	"lthreshold":                "lower_threshold",
	"flag":                      "scheduler_flags (a list)",
	"flags":                     "scheduler_flags (a list)",
	"mark":                      "fwmark",
	"timeout_tcp":               "ipvs: {timeouts: {tcp: 900s}}",
	"expire_quiescent":          "expire_quiescent_template",
	"sorry":                     "sorry_server",
	"syncid":                    "sync_id",
	"maxlen":                    "max_len",
	"mcast_interface":           "interface",
	"global_defs":               "lvsd and ipvs",
	"include_dir":               "include",
	"includes":                  "include",
	"alpha":                     "rise and fall",
	"warmup":                    "interval (checks start at once)",
	"virtual_server_group":      "group: [{address: 192.168.0.100, port: 80}, {fwmark: 5}] in a virtual service",
	"hysteresis_weight":         "hysteresis",
	"quorum_weight":             "quorum: {weight: N}",
	"scheduler_flag":            "scheduler_flags (a list)",
	"sched":                     "scheduler",
	"algorithm":                 "scheduler",
	"method":                    "forwarding",
	"weight_threshold":          "upper_threshold or lower_threshold",
	"expire_quiescent_template": "ipvs: {expire_quiescent_template: true}",
	"expire_nodest_conn":        "ipvs: {expire_nodest_conn: true}",
	"conn_reuse_mode":           "ipvs: {conn_reuse_mode: 1}",
	"sync_threshold":            "ipvs: {sync_threshold: {threshold: 3, period: 50}}",
	"sync_daemon":               "ipvs: {sync_daemon: {...}}",
	"timeouts":                  "ipvs: {timeouts: {...}}",
}

// reserved are keys that are known but not accepted yet.
var reserved = map[reflect.Type]map[string]string{}

func unknownKey(t reflect.Type, name string, known []string) string {
	if msg, ok := reserved[t][name]; ok {
		return msg
	}
	in := typeNames[t]
	if s := closest(name, known); s != "" {
		return fmt.Sprintf("unknown key %q %s: did you mean %q?", name, in, s)
	}
	if r, ok := renamed[strings.ToLower(name)]; ok {
		return fmt.Sprintf("unknown key %q %s: write %s", name, in, r)
	}
	return fmt.Sprintf("unknown key %q %s: the keys here are %s", name, in, joinOr(known))
}

// enumNames are the values of the string enums, in documentation order.
var enumNames = map[reflect.Type][]string{
	reflect.TypeFor[Protocol]():       {"tcp", "udp", "sctp"},
	reflect.TypeFor[Family]():         {"ipv4", "ipv6"},
	reflect.TypeFor[Forwarding]():     {"direct_route", "masquerade", "tunnel"},
	reflect.TypeFor[TunnelType]():     {"ipip", "gue", "gre"},
	reflect.TypeFor[TunnelChecksum](): {"none", "checksum", "remote"},
	reflect.TypeFor[OnFailure]():      {"remove", "quiesce"},
	reflect.TypeFor[CheckType]():      {"tcp", "http", "https", "script", "dns", "udp", "ping", "smtp", "none"},
	reflect.TypeFor[SyncRole]():       {"master", "backup", "both"},
}

// enumAliases are other spellings of enum values (ipvsadm's and
// keepalived's), answered with the lvsd spelling.
var enumAliases = map[string]string{
	"dr": "direct_route", "route": "direct_route", "gate": "direct_route", "gatewaying": "direct_route", "g": "direct_route",
	"nat": "masquerade", "masq": "masquerade", "m": "masquerade",
	"tun": "tunnel", "ipip_tunnel": "tunnel", "i": "tunnel",
	"inhibit": "quiesce", "weight_0": "quiesce",
	"tcp_check": "tcp", "http_get": "http", "ssl_get": "https", "misc_check": "script", "dns_check": "dns",
	"udp_check": "udp", "ping_check": "ping", "icmp": "ping", "smtp_check": "smtp",
	"inet": "ipv4", "inet6": "ipv6", "v4": "ipv4", "v6": "ipv6", "4": "ipv4", "6": "ipv6",
}

// decodeEnum checks a scalar against an enum's names.
func decodeEnum[T ~string](n *yaml.Node, p *T) string {
	names := enumNames[reflect.TypeFor[T]()]
	for _, name := range names {
		if n.Value == name {
			*p = T(name)
			return ""
		}
	}
	if a, ok := enumAliases[strings.ToLower(n.Value)]; ok {
		for _, name := range names {
			if a == name {
				return fmt.Sprintf("%s: write %s", describe(n), name)
			}
		}
	}
	if strings.ToLower(n.Value) != n.Value {
		for _, name := range names {
			if strings.ToLower(n.Value) == name {
				return fmt.Sprintf("%s: write %s in lower case", describe(n), name)
			}
		}
	}
	if n.Tag != "!!str" {
		return fmt.Sprintf("expected %s, got %s", joinOr(names), describe(n))
	}
	return fmt.Sprintf("unknown value %s: %s", describe(n), didYouMean(n.Value, names))
}

func (p *Protocol) decodeScalar(n *yaml.Node) string { return decodeEnum(n, p) }

func (f *Family) decodeScalar(n *yaml.Node) string { return decodeEnum(n, f) }

func (f *Forwarding) decodeScalar(n *yaml.Node) string { return decodeEnum(n, f) }

func (t *TunnelType) decodeScalar(n *yaml.Node) string { return decodeEnum(n, t) }

func (c *TunnelChecksum) decodeScalar(n *yaml.Node) string { return decodeEnum(n, c) }

func (o *OnFailure) decodeScalar(n *yaml.Node) string { return decodeEnum(n, o) }

func (c *CheckType) decodeScalar(n *yaml.Node) string { return decodeEnum(n, c) }

func (r *SyncRole) decodeScalar(n *yaml.Node) string { return decodeEnum(n, r) }

// decodeScalar reads a prefix length (24) or a dotted IPv4 mask
// (255.255.255.0).
func (m *Netmask) decodeScalar(n *yaml.Node) string {
	const want = "a prefix length such as 24, or a dotted mask such as 255.255.255.0"
	if n.Tag == "!!int" {
		var bits int64
		if err := n.Decode(&bits); err != nil || bits < 1 || bits > 128 {
			return fmt.Sprintf("%s is out of range: write a prefix length from 1 to 32 (IPv4) or 128 (IPv6)", n.Value)
		}
		*m = Netmask(bits)
		return ""
	}
	a, err := netip.ParseAddr(n.Value)
	if err != nil || !a.Is4() {
		return fmt.Sprintf("%s is not a netmask: write %s", describe(n), want)
	}
	b := a.As4()
	mask := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	bits := 0
	for mask&0x80000000 != 0 {
		bits++
		mask <<= 1
	}
	if mask != 0 {
		return fmt.Sprintf("%s is not a contiguous netmask: write %s", n.Value, want)
	}
	if bits == 0 {
		return fmt.Sprintf("%s is out of range: write a prefix length from 1 to 32", n.Value)
	}
	*m = Netmask(bits)
	return ""
}

// decodeScalar reads a status code (200) or a range ("200-299").
func (r *StatusRange) decodeScalar(n *yaml.Node) string {
	const want = `a status code from 100 to 599 (200) or a range ("200-299")`
	parse := func(s string) (int, bool) {
		var v int
		if _, err := fmt.Sscan(s, &v); err != nil || fmt.Sprint(v) != s || v < 100 || v > 599 {
			return 0, false
		}
		return v, true
	}
	lo, hi, isRange := strings.Cut(n.Value, "-")
	if !isRange {
		hi = lo
	}
	l, ok1 := parse(strings.TrimSpace(lo))
	h, ok2 := parse(strings.TrimSpace(hi))
	if !ok1 || !ok2 || (n.Tag != "!!int" && n.Tag != "!!str") {
		return fmt.Sprintf("%s is not a status code: write %s", describe(n), want)
	}
	if l > h {
		return fmt.Sprintf("range %s runs backwards: write %d-%d", n.Value, h, l)
	}
	*r = StatusRange{Low: l, High: h}
	return ""
}

// decodeScalar reads host:port, a unix socket path, or "" (off).
func (l *ListenAddress) decodeScalar(n *yaml.Node) string {
	s := n.Value
	switch {
	case s == "":
		*l = ListenAddress{}
		return ""
	case strings.HasPrefix(s, "unix:") || strings.HasPrefix(s, "/"):
		p := strings.TrimPrefix(s, "unix:")
		if !strings.HasPrefix(p, "/") {
			return fmt.Sprintf("%q: a unix socket path must be absolute, like unix:/run/lvsd/status.sock", s)
		}
		*l = ListenAddress{Network: "unix", Address: p}
		return ""
	}
	if strings.HasPrefix(s, ":") {
		var port uint16
		if _, err := fmt.Sscan(s[1:], &port); err == nil && fmt.Sprint(port) == s[1:] && port != 0 {
			*l = ListenAddress{Network: "tcp", Address: s}
			return ""
		}
	} else if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 && ap.Addr().Zone() == "" {
		*l = ListenAddress{Network: "tcp", Address: ap.String()}
		return ""
	}
	return fmt.Sprintf("%s is not a listen address: write an IP address and port (127.0.0.1:9120, [::1]:9120, :9120 for all addresses), a unix socket path (/run/lvsd/status.sock), or \"\" to turn it off", describe(n))
}
