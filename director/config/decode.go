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
