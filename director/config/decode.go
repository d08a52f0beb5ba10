package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// nodeBudget bounds the work of decoding one file of n bytes, aliases
// included, so that a hostile file ("billion laughs") cannot make Load run
// for long: a file without aliases needs fewer steps than it has bytes.
func nodeBudget(n int) int { return 100_000 + 8*n }

// maxDepth bounds nesting through merge keys and aliases.
const maxDepth = 64

// positions records where each decoded value (and the key naming it) was
// written, keyed by the address of the Go value it was decoded into (a
// typed pointer, so that a struct and its first field differ).
type positions struct {
	m map[any]site
}

// site is where one value was written.
type site struct {
	value, key position
	// bad marks a value that was written but could not be decoded: the
	// checks skip it rather than report it again.
	bad bool
}

func newPositions(sizeHint int) *positions {
	return &positions{m: make(map[any]site, sizeHint)}
}

// setKey records the key of a value recorded (or to be recorded) at p.
func (ps *positions) setKey(p any, at position) {
	s := ps.m[p]
	s.key = at
	ps.m[p] = s
}

// decoder turns one file's yaml.Node tree into Go values, strictly: every
// key must be known, every value must have the right type. It never stops
// at the first problem.
type decoder struct {
	file   string
	errs   *ErrorList
	pos    *positions
	nodes  int
	budget int
	depth  int
	halted bool

	// includes are the positions of the paths of `include`, in order.
	includes []position
}

func (d *decoder) at(n *yaml.Node) position {
	return position{file: d.file, line: int32(n.Line), column: int32(n.Column)}
}

func (d *decoder) fail(n *yaml.Node, format string, args ...any) {
	*d.errs = append(*d.errs, Error{File: d.file, Line: n.Line, Column: n.Column, Message: fmt.Sprintf(format, args...)})
}

// step counts a node against the budget; false once it is spent.
func (d *decoder) step(n *yaml.Node) bool {
	if d.halted {
		return false
	}
	d.nodes++
	switch {
	case d.depth > maxDepth:
		d.fail(n, "nested too deep: does an alias or merge key (<<) lead back into itself?")
	case d.nodes > d.budget:
		d.fail(n, "too many values (more than %d, counting each use of an alias): use fewer aliases", d.budget)
	default:
		return true
	}
	d.halted = true
	return false
}

// resolve follows aliases to the node they name.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		if i > maxDepth {
			return n
		}
		n = n.Alias
	}
	return n
}

// markBad records that the value at p was written but not decoded.
func (d *decoder) markBad(p any) {
	s := d.pos.m[p]
	s.bad = true
	d.pos.m[p] = s
}

// nodeDecoder is implemented by types that decode themselves from any node.
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, key string)
}

// scalarDecoder is implemented by types written as one scalar; it returns
// a message saying what is wrong and what to write, or "".
type scalarDecoder interface {
	decodeScalar(n *yaml.Node) string
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	addrType     = reflect.TypeFor[netip.Addr]()
)

// value decodes n into v, which must be addressable. key is the name the
// value was written under, for messages.
func (d *decoder) value(n *yaml.Node, v reflect.Value, key string) {
	d.valueAt(n, v, key, position{})
}

// valueAt is value for a mapping's value, with the position of its key.
func (d *decoder) valueAt(n *yaml.Node, v reflect.Value, key string, keyAt position) {
	n = d.resolve(n)
	if !d.step(n) {
		return
	}
	d.depth++
	defer func() { d.depth-- }()
	if n.Kind == yaml.AliasNode {
		d.fail(n, "%s: alias *%s leads to itself", key, n.Value)
		return
	}
	ptr := v.Addr().Interface()
	d.pos.m[ptr] = site{value: d.at(n), key: keyAt}
	before := len(*d.errs)
	defer func() {
		if len(*d.errs) > before && (isScalar(v.Type()) || v.Kind() == reflect.Slice) {
			d.markBad(ptr)
		}
	}()

	if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
		nd.decodeNode(d, n, key)
		return
	}
	if sd, ok := v.Addr().Interface().(scalarDecoder); ok {
		if !d.scalar(n, key, describeType(v.Type())) {
			return
		}
		if msg := sd.decodeScalar(n); msg != "" {
			d.fail(n, "%s: %s", key, msg)
		}
		return
	}
	switch v.Type() {
	case durationType:
		d.duration(n, v, key)
		return
	case addrType:
		d.address(n, v, key)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.value(n, elem.Elem(), key)
		if !d.pos.m[elem.Interface()].bad {
			v.Set(elem) // a value of the wrong kind stays unset
		}
	case reflect.Struct:
		d.structure(n, v, key)
	case reflect.Slice:
		d.sequence(n, v, key)
	case reflect.String:
		d.str(n, v, key)
	case reflect.Bool:
		d.boolean(n, v, key)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := v.Type().Bits()
		d.integer(n, v, key, -1<<(bits-1), 1<<(bits-1)-1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		d.integer(n, v, key, 0, int64(uint64(1)<<v.Type().Bits()-1))
	default:
		d.fail(n, "%s: this setting cannot be decoded (a bug in lvsd)", key)
	}
}

// isScalar reports whether values of t are written as one scalar.
func isScalar(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Struct:
		return t == durationType || t == addrType || t == reflect.TypeFor[StatusRange]() || t == reflect.TypeFor[ListenAddress]()
	case reflect.Slice, reflect.Pointer:
		return false
	}
	return true
}

// scalar checks that n is a scalar with a value, and reports it if not.
func (d *decoder) scalar(n *yaml.Node, key, want string) bool {
	switch {
	case n.Kind != yaml.ScalarNode:
		d.fail(n, "%s: expected %s, got %s", key, want, describe(n))
		return false
	case n.Tag == "!!null":
		d.fail(n, "%s: missing value: write %s, or remove the key", key, want)
		return false
	}
	return true
}

func (d *decoder) str(n *yaml.Node, v reflect.Value, key string) {
	if !d.scalar(n, key, "a string") {
		return
	}
	if n.Tag == "!!bool" {
		d.fail(n, "%s: expected a string, got the boolean %s: quote it (\"%s\") if you mean the text", key, n.Value, n.Value)
		return
	}
	v.SetString(n.Value)
}

func (d *decoder) boolean(n *yaml.Node, v reflect.Value, key string) {
	if !d.scalar(n, key, "true or false") {
		return
	}
	var b bool
	if n.Tag != "!!bool" || n.Decode(&b) != nil {
		d.fail(n, "%s: expected true or false, got %s", key, describe(n))
		return
	}
	v.SetBool(b)
}

func (d *decoder) integer(n *yaml.Node, v reflect.Value, key string, lo, hi int64) {
	want := fmt.Sprintf("a whole number from %d to %d", lo, hi)
	kind := want
	if hi > 1<<16 {
		kind = "a whole number" // the checks name the useful range
	}
	if !d.scalar(n, key, kind) {
		return
	}
	if n.Tag == "!!float" && strings.Trim(strings.TrimPrefix(n.Value, "-"), "0123456789_") == "" {
		d.fail(n, "%s: %s is out of range: write %s", key, n.Value, want)
		return
	}
	if n.Tag != "!!int" {
		d.fail(n, "%s: expected %s, got %s", key, kind, describe(n))
		return
	}
	var i int64
	if err := n.Decode(&i); err != nil || i < lo || i > hi {
		d.fail(n, "%s: %s is out of range: write %s", key, n.Value, want)
		return
	}
	if v.CanInt() {
		v.SetInt(i)
	} else {
		v.SetUint(uint64(i))
	}
}

func (d *decoder) duration(n *yaml.Node, v reflect.Value, key string) {
	const want = `a duration with a unit, like "5s", "1m30s" or "500ms"`
	if !d.scalar(n, key, want) {
		return
	}
	if n.Tag == "!!int" || n.Tag == "!!float" {
		d.fail(n, "%s: %s has no unit: write %s (%q for %s seconds)", key, n.Value, want, n.Value+"s", n.Value)
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil || n.Tag != "!!str" {
		d.fail(n, "%s: %s is not a duration: write %s", key, describe(n), want)
		return
	}
	if dur < 0 {
		d.fail(n, "%s: %s is negative: write a positive duration", key, n.Value)
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) address(n *yaml.Node, v reflect.Value, key string) {
	const want = "an IP address like 192.168.0.100 or 2001:db8::100"
	if !d.scalar(n, key, want) {
		return
	}
	a, err := netip.ParseAddr(n.Value)
	switch {
	case err == nil && a.Zone() != "":
		d.fail(n, "%s: %q has a zone: write the address without %%%s", key, n.Value, a.Zone())
		return
	case err == nil:
		v.Set(reflect.ValueOf(a.Unmap()))
		return
	}
	if ap, perr := netip.ParseAddrPort(n.Value); perr == nil {
		d.fail(n, "%s: %q has a port: write address: %s and port: %d", key, n.Value, ap.Addr(), ap.Port())
		return
	}
	if p, perr := netip.ParsePrefix(n.Value); perr == nil {
		d.fail(n, "%s: %q is a prefix: write the address alone, %s", key, n.Value, p.Addr())
		return
	}
	d.fail(n, "%s: %s is not an IP address: write %s", key, describe(n), want)
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		if v.Type() == reflect.TypeFor[[]string]() && n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
			d.fail(n, "%s: expected a list of arguments, got the string %s: write [%s] (no shell runs it)", key, describe(n), strings.Join(strings.Fields(n.Value), ", "))
			return
		}
		d.fail(n, "%s: expected a list (items starting with \"- \", or [a, b]), got %s", key, describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	v.Set(s)
	for i, item := range n.Content {
		d.value(item, v.Index(i), key)
	}
}

// field is one decodable field of a struct.
type field struct {
	name  string
	index int
}

// fieldCache holds fieldsOf's answers: the config types are few and fixed.
var fieldCache sync.Map // reflect.Type -> []field

func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		fs = append(fs, field{name: tag, index: i})
	}
	fieldCache.Store(t, fs)
	return fs
}

func fieldNames(fs []field) []string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	return names
}

// entry is one key and value of a mapping.
type entry struct{ key, value *yaml.Node }

func (d *decoder) structure(n *yaml.Node, v reflect.Value, key string) {
	fs := fieldsOf(v.Type())
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "persistence:" alone: present, with defaults
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, "%s: expected a mapping of %s, got %s", key, joinOr(fieldNames(fs)), describe(n))
		d.markBad(v.Addr().Interface())
		return
	}
	for _, e := range d.entries(n) {
		name := e.key.Value
		idx := -1
		for _, f := range fs {
			if f.name == name {
				idx = f.index
				break
			}
		}
		if idx < 0 {
			d.fail(e.key, "%s", unknownKey(v.Type(), name, fieldNames(fs)))
			continue
		}
		d.valueAt(e.value, v.Field(idx), name, d.at(e.key))
	}
}

// entries lists a mapping's keys and values, merge keys (<<) expanded;
// a key written twice is reported and only its first value kept.
func (d *decoder) entries(n *yaml.Node) []entry {
	if !d.step(n) {
		return nil
	}
	d.depth++
	defer func() { d.depth-- }()
	var merged []entry
	out := make([]entry, 0, len(n.Content)/2)
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merged = append(merged, d.mergeSources(val)...)
			continue
		}
		if k.Kind != yaml.ScalarNode || k.Tag == "!!null" {
			d.fail(k, "expected a key name, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(k, "duplicate key %q: it is already set at line %d: keep one of them", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, entry{k, val})
	}
	for _, e := range merged {
		if _, dup := seen[e.key.Value]; !dup {
			seen[e.key.Value] = e.key
			out = append(out, e)
		}
	}
	return out
}

// mergeSources expands the value of a merge key: a mapping, or a list of
// them of which the earlier win.
func (d *decoder) mergeSources(n *yaml.Node) []entry {
	n = d.resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		return d.entries(n)
	case yaml.SequenceNode:
		var out []entry
		for _, item := range n.Content {
			item = d.resolve(item)
			if item.Kind != yaml.MappingNode {
				d.fail(item, "<<: expected an alias of a mapping (<<: [*a, *b]), got %s", describe(item))
				continue
			}
			out = append(out, d.entries(item)...)
		}
		return out
	}
	d.fail(n, "<<: expected an alias of a mapping (<<: *common), got %s", describe(n))
	return nil
}

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

func (p *Protocol) decodeScalar(n *yaml.Node) string       { return decodeEnum(n, p) }
func (f *Family) decodeScalar(n *yaml.Node) string         { return decodeEnum(n, f) }
func (f *Forwarding) decodeScalar(n *yaml.Node) string     { return decodeEnum(n, f) }
func (t *TunnelType) decodeScalar(n *yaml.Node) string     { return decodeEnum(n, t) }
func (c *TunnelChecksum) decodeScalar(n *yaml.Node) string { return decodeEnum(n, c) }
func (o *OnFailure) decodeScalar(n *yaml.Node) string      { return decodeEnum(n, o) }
func (c *CheckType) decodeScalar(n *yaml.Node) string      { return decodeEnum(n, c) }
func (r *SyncRole) decodeScalar(n *yaml.Node) string       { return decodeEnum(n, r) }

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

// decodeNode reads one path or a list of paths.
func (inc *Includes) decodeNode(d *decoder, n *yaml.Node, key string) {
	const want = "a directory or file path (conf.d/), or a list of them"
	switch n.Kind {
	case yaml.ScalarNode:
		if d.scalar(n, key, want) && n.Tag == "!!str" && n.Value != "" {
			*inc = Includes{n.Value}
			d.includes = append(d.includes, d.at(n))
			return
		}
		if n.Tag != "!!null" {
			d.fail(n, "%s: expected %s, got %s", key, want, describe(n))
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			item = d.resolve(item)
			d.step(item)
			if item.Kind != yaml.ScalarNode || item.Tag != "!!str" || item.Value == "" {
				d.fail(item, "%s: expected %s, got %s", key, want, describe(item))
				continue
			}
			*inc = append(*inc, item.Value)
			d.includes = append(d.includes, d.at(item))
		}
	default:
		d.fail(n, "%s: expected %s, got %s", key, want, describe(n))
	}
}
