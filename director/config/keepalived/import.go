// Package keepalived reads a keepalived.conf (with its includes) and
// turns it into the lvsd config that does the same: `lvsd
// import-keepalived`. Each keepalived keyword has a handler in a table per
// block (global_defs, vrrp_instance, virtual_server, real_server, the
// checkers, ...). keepalived's defaults are written out wherever lvsd's
// differ, so the result behaves as keepalived did without relying on
// lvsd's defaults.
//
// What lvsd cannot do is never dropped silently: each such statement is a
// Finding with its keepalived file:line, ranked by what it loses (a
// service first, a cosmetic global last), and left as a comment in the
// output. A Result is Faithful when every finding is cosmetic: lvsd then
// moves traffic and the virtual addresses as keepalived did.
package keepalived

import (
	"bytes"
	"cmp"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Options configure Import.
type Options struct {
	// FS reads the file and its includes; nil means the operating
	// system's files.
	FS fs.FS
	// ConfigID is keepalived's config id (its -i; keepalived's default
	// is the short host name): lines starting @ID apply only when it is
	// ID, lines starting @^ID only when it is not.
	ConfigID string
}

// Kind is what a finding is about; findings rank in this order.
type Kind int

// Kinds of findings, from the one that loses most.
const (
	KindService    Kind = iota // a virtual service, or how it balances
	KindRealServer             // a real server or its settings
	KindCheck                  // a health check or its settings
	KindVIP                    // a virtual address
	KindVRRP                   // VRRP failover: instances, tracking, authentication
	KindScript                 // a notify or quorum command
	KindGlobal                 // a global setting
)

var kindNames = [...]string{"service", "real server", "check", "virtual address", "vrrp", "script", "global"}

// String names the kind.
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Finding is one keepalived statement lvsd does not carry over as it is.
type Finding struct {
	// At is the keepalived file:line.
	At string
	// Statement is the statement as written.
	Statement string
	// Kind is what it is about.
	Kind Kind
	// Cosmetic is true when lvsd moves traffic and the virtual addresses
	// as keepalived did all the same (router_id, e-mail alerts, ...).
	Cosmetic bool
	// Why says what lvsd does instead and how to get keepalived's
	// behaviour, if there is a way.
	Why string
}

// String formats the finding as FILE:LINE: STATEMENT: WHY.
func (f Finding) String() string { return fmt.Sprintf("%s: %s: %s", f.At, f.Statement, f.Why) }

// Result is an import.
type Result struct {
	// YAML is the lvsd config.
	YAML []byte
	// Findings are in the order of the keepalived file.
	Findings []Finding

	blocks []block
}

// Faithful reports whether lvsd, run with the YAML, does what keepalived
// did: every finding is cosmetic.
func (r *Result) Faithful() bool {
	return !slices.ContainsFunc(r.Findings, func(f Finding) bool { return !f.Cosmetic })
}

// Ranked returns the findings that change behaviour first, by kind (a
// service before a real server, a check, a virtual address, VRRP, a
// script, a global setting), then the cosmetic ones; in file order
// within each rank.
func (r *Result) Ranked() []Finding {
	out := slices.Clone(r.Findings)
	slices.SortStableFunc(out, func(a, b Finding) int {
		if a.Cosmetic != b.Cosmetic {
			if a.Cosmetic {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Kind, b.Kind)
	})
	return out
}

// Import reads a keepalived.conf and returns the lvsd config that does
// the same. Syntax errors and values that cannot be read are errors
// naming the keepalived file:line; what lvsd lacks are findings.
func Import(path string, opts Options) (*Result, error) {
	stmts, conditional, err := parse(path, opts.FS, opts.ConfigID)
	if err != nil {
		return nil, err
	}
	c := &converter{vrrpVersion: defaultVRRPVersion, groups: map[string]*stmt{}, origin: map[*yaml.Node]*stmt{}, noScript: map[string]bool{}}
	if err := c.convert(stmts); err != nil {
		return nil, err
	}
	if conditional > 0 {
		c.topComments = append(c.topComments, fmt.Sprintf("%d conditional lines (@ID, @^ID) were imported for keepalived config id %q.", conditional, opts.ConfigID))
	}
	root := c.document()
	validUTF8Comments(root)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# lvsd config imported from %s by `lvsd import-keepalived`.\n", path)
	if n := len(c.findings); n > 0 {
		fmt.Fprintf(&buf, "# %d keepalived settings were not carried over as they are: see the comments marked \"keepalived\".\n", n)
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("writing the lvsd config: %w", err)
	}
	enc.Close()
	r := &Result{YAML: buf.Bytes(), Findings: c.findings}
	var back yaml.Node
	if err := yaml.Unmarshal(r.YAML, &back); err == nil && len(back.Content) == 1 {
		r.blocks = c.locate(root, back.Content[0], nil)
	}
	return r, nil
}

// block is the span of lines of the lvsd config that one keepalived
// block became.
type block struct {
	first, last int
	at          string
}

// locate walks the built tree and the same tree read back from the YAML
// together, and returns the lines of each block that has an origin.
func (c *converter) locate(built, read *yaml.Node, out []block) []block {
	if s, ok := c.origin[built]; ok {
		out = append(out, block{first: read.Line, last: lastLine(read), at: s.at()})
	}
	for i := 0; i < len(built.Content) && i < len(read.Content); i++ {
		out = c.locate(built.Content[i], read.Content[i], out)
	}
	return out
}

func lastLine(n *yaml.Node) int {
	l := n.Line
	for _, k := range n.Content {
		l = max(l, lastLine(k))
	}
	return l
}

// Origin returns the keepalived file:line of the innermost keepalived
// block (virtual_server, real_server, a checker, vrrp_instance, ...)
// that line of the YAML was imported from; "" when none.
func (r *Result) Origin(line int) string {
	best, at := -1, ""
	for _, b := range r.blocks {
		if line >= b.first && line <= b.last && b.first > best {
			best, at = b.first, b.at
		}
	}
	return at
}

// converter holds the lvsd config being built.
type converter struct {
	findings    []Finding
	scriptUser  string // global_defs script_user, as user[:group]
	security    bool   // global_defs enable_script_security
	hasScripts  bool
	vrrpVersion int
	syncDaemon  *yaml.Node
	timeouts    *yaml.Node
	scripts     []*yaml.Node
	syncGroups  []*yaml.Node
	instances   []*yaml.Node
	services    []*yaml.Node
	groups      map[string]*stmt     // virtual_server_group blocks by name
	origin      map[*yaml.Node]*stmt // the keepalived block each lvsd block comes from
	noScript    map[string]bool      // vrrp_script blocks left out for want of a script
	topComments []string
}

// validUTF8Comments replaces the bytes that are not UTF-8 in the
// comments under n (they quote keepalived statements, which may hold
// any bytes) with U+FFFD: yaml.v3's emitter panics on them (found by
// FuzzImport). A value needs nothing: yaml.v3 writes it as !!binary.
func validUTF8Comments(n *yaml.Node) {
	if n == nil {
		return
	}
	for _, c := range []*string{&n.HeadComment, &n.LineComment, &n.FootComment} {
		if !utf8.ValidString(*c) {
			*c = strings.ToValidUTF8(*c, "\uFFFD")
		}
	}
	for _, k := range n.Content {
		validUTF8Comments(k)
	}
}

// note records a finding, and a comment on the node it belongs to (nil:
// at the top of the file).
func (c *converter) note(on *yaml.Node, s *stmt, kind Kind, cosmetic bool, why string) {
	f := Finding{At: s.at(), Statement: s.String(), Kind: kind, Cosmetic: cosmetic, Why: why}
	c.findings = append(c.findings, f)
	comment := fmt.Sprintf("keepalived %s: %s: %s", f.At, f.Statement, why)
	if on == nil {
		c.topComments = append(c.topComments, comment)
		return
	}
	if on.HeadComment != "" {
		on.HeadComment += "\n"
	}
	on.HeadComment += comment
}

// drop records a statement lvsd does not import, changing behaviour.
func (c *converter) drop(on *yaml.Node, s *stmt, kind Kind, why string) {
	c.note(on, s, kind, false, "not imported: "+why)
}

// ignore records a statement lvsd does not import that changes nothing
// lvsd does with traffic or the virtual addresses.
func (c *converter) ignore(on *yaml.Node, s *stmt, kind Kind, why string) {
	c.note(on, s, kind, true, "not imported: "+why)
}

// handlers maps the keywords of one kind of block to what imports them,
// with T the block being built.
type handlers[T any] map[string]func(c *converter, t T, s *stmt) error

// run imports each statement of a block through its handler, and the
// ones that have none through unknown.
func run[T any](c *converter, h handlers[T], t T, block []*stmt, unknown func(c *converter, t T, s *stmt)) error {
	for _, s := range block {
		if err := needsValue(s); err != nil {
			return err
		}
		f, ok := h[s.keyword()]
		if !ok {
			unknown(c, t, s)
			continue
		}
		if err := f(c, t, s); err != nil {
			return err
		}
	}
	return nil
}

// alias registers other names of a keyword.
func alias[T any](h handlers[T], keyword string, others ...string) {
	for _, o := range others {
		h[o] = h[keyword]
	}
}

func (c *converter) convert(stmts []*stmt) error {
	// global_defs first: vrrp_version applies to every instance; groups
	// may be defined after the virtual_server naming them.
	for _, s := range stmts {
		switch s.keyword() {
		case "global_defs":
			if err := run(c, globalHandlers, c, s.block, unknownGlobal); err != nil {
				return err
			}
		case "virtual_server_group":
			if len(s.words) != 2 || !s.hasBlock {
				return fmt.Errorf("%s: virtual_server_group needs a name and a block", s.at())
			}
			if prev, dup := c.groups[s.words[1]]; dup {
				return fmt.Errorf("%s: virtual_server_group %s is defined twice (first at %s): rename or remove one", s.at(), s.words[1], prev.at())
			}
			c.groups[s.words[1]] = s
		}
	}
	return run(c, topHandlers, c, stmts, func(c *converter, _ *converter, s *stmt) {
		kind, cosmetic := topUnknown(s.keyword())
		if cosmetic {
			c.ignore(nil, s, kind, "it does not change what lvsd does with traffic or the virtual addresses")
		} else {
			c.drop(nil, s, kind, "lvsd has no equivalent")
		}
	})
}

// topUnknown classifies a top-level block lvsd does not import.
func topUnknown(kw string) (Kind, bool) {
	switch kw {
	case "static_ipaddress", "static_routes", "static_rules", "virtual_routes", "virtual_rules":
		return KindVIP, false
	case "vrrp_track_file", "track_file", "vrrp_track_process", "track_process", "track_bfd", "bfd_instance":
		return KindVRRP, false
	}
	return KindGlobal, false
}

var topHandlers = handlers[*converter]{}

func init() {
	topHandlers["global_defs"] = func(*converter, *converter, *stmt) error { return nil }
	topHandlers["virtual_server_group"] = func(*converter, *converter, *stmt) error { return nil }
	topHandlers["vrrp_script"] = func(c *converter, _ *converter, s *stmt) error { return c.vrrpScript(s) }
	topHandlers["vrrp_sync_group"] = func(c *converter, _ *converter, s *stmt) error { return c.syncGroup(s) }
	topHandlers["vrrp_instance"] = func(c *converter, _ *converter, s *stmt) error { return c.vrrpInstance(s) }
	topHandlers["virtual_server"] = func(c *converter, _ *converter, s *stmt) error { return c.virtualServer(s) }
}

// document assembles the lvsd config.
func (c *converter) document() *yaml.Node {
	root := ymap()
	if c.scriptUser != "" {
		yput(root, "lvsd", ymap("script_user", ystr(c.scriptUser)))
	}
	switch {
	case !c.hasScripts:
	case c.security:
		c.topComments = append(c.topComments, "enable_script_security: lvsd always refuses scripts that users other than root could change.")
	default:
		c.topComments = append(c.topComments, "no enable_script_security: keepalived ran scripts that users other than root could change (with a warning);\nlvsd refuses them: run lvsd check --config FILE on the director to find them.")
	}
	if c.hasScripts && c.scriptUser == "" {
		c.topComments = append(c.topComments, "no script_user: keepalived ran scripts as keepalived_script if that user existed, else as root;\nlvsd runs them as lvsd_script if that user exists, else as root: create lvsd_script, or set lvsd.script_user.")
	}
	ipvsNode := ymap()
	if c.timeouts != nil {
		c.timeouts.Style = yaml.FlowStyle
		yput(ipvsNode, "timeouts", c.timeouts)
	}
	if c.syncDaemon != nil {
		c.syncDaemon.Style = yaml.FlowStyle
		yput(ipvsNode, "sync_daemon", c.syncDaemon)
	}
	if len(ipvsNode.Content) > 0 {
		yput(root, "ipvs", ipvsNode)
	}
	if len(c.services) > 0 {
		yput(root, "virtual_services", yseq(c.services...))
	}
	vrrpNode := ymap()
	if len(c.scripts) > 0 {
		yput(vrrpNode, "scripts", yseq(c.scripts...))
	}
	if len(c.syncGroups) > 0 {
		yput(vrrpNode, "sync_groups", yseq(c.syncGroups...))
	}
	if len(c.instances) > 0 {
		yput(vrrpNode, "instances", yseq(c.instances...))
	}
	if len(vrrpNode.Content) > 0 {
		yput(root, "vrrp", vrrpNode)
	}
	if len(c.topComments) > 0 {
		root.HeadComment = strings.Join(c.topComments, "\n")
	}
	return root
}
