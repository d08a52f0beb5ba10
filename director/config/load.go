package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/lvskit/lvskit/director/scripts"
	"gopkg.in/yaml.v3"
)

// LoadOptions change how Load reads and checks a configuration.
type LoadOptions struct {
	// FS, when set, is where the files are read from instead of the
	// operating system; paths are then slash-separated and relative to its
	// root, as io/fs wants them.
	FS fs.FS

	// Kernel, when set, also checks the configuration against what the
	// running kernel offers (see ValidateAgainst).
	Kernel *Capabilities

	// Scripts, when set, is the system every command the config runs is
	// resolved and checked against (scripts.OS() in lvsd): a command that
	// others could change is an error naming who (unless
	// lvsd.insecure_scripts), and each gets the user it runs as. Without
	// it, commands are not checked and run as lvsd's own user.
	Scripts scripts.Host

	// AuditScripts records the problems of the commands in
	// Config.Scripts instead of refusing the config (lvsdiag).
	AuditScripts bool
}

// Load reads the configuration file at path and the files it includes,
// checks it, and fills in its defaults. It returns either a valid
// configuration or an ErrorList with every problem found, each naming its
// file:line:column.
func Load(path string, opts LoadOptions) (*Config, error) {
	data, err := opts.readFile(path)
	if err != nil {
		return nil, ErrorList{{File: path, Message: readProblem(err)}}
	}
	return Parse(path, data, opts)
}

// Parse is Load for a main file already read: name is how messages call it
// and the directory includes are resolved from.
func Parse(name string, data []byte, opts LoadOptions) (*Config, error) {
	var errs ErrorList
	cfg := &Config{pos: newPositions(len(data) / 8), Files: []string{name}}

	// Read every file first, so that the virtual services of all of them
	// are decoded straight into their final place (the recorded positions
	// are keyed by address, and must not move).
	main := &source{name: name, dec: &decoder{file: name, errs: &errs, pos: cfg.pos, budget: nodeBudget(len(data))}}
	main.root = parseYAML(name, data, &errs)
	sources := []*source{main}
	if main.root != nil {
		if inc := mapValue(main.root, "include"); inc != nil {
			main.dec.valueAt(inc.value, reflect.ValueOf(&cfg.Include).Elem(), "include", main.dec.at(inc.key))
			for _, f := range opts.includedFiles(cfg, main, &errs) {
				sources = append(sources, f)
				cfg.Files = append(cfg.Files, f.name)
			}
		}
	}
	total := 0
	for _, s := range sources {
		s.services = s.dec.serviceItems(s.root)
		total += len(s.services)
	}
	cfg.VirtualServices = make([]VirtualService, total)
	off := 0
	for i, s := range sources {
		s.dec.top(s.root, cfg, i == 0, cfg.VirtualServices[off:off+len(s.services)], s.services)
		off += len(s.services)
	}

	halted := false
	for _, s := range sources {
		halted = halted || s.dec.halted
	}
	c := &checker{cfg: cfg, errs: &errs}
	if !halted { // a file given up on would only yield confusing follow-ups
		c.config()
	}
	if opts.Scripts != nil && !halted {
		c.scriptSecurity(opts.Scripts, opts.AuditScripts)
	}
	if opts.Kernel != nil && len(errs) == 0 {
		c.kernel(*opts.Kernel)
	}
	if len(errs) == 0 {
		c.bgpWarnings()
		sortErrors(cfg.warnings, cfg.Files)
	}
	if len(errs) > 0 {
		sortErrors(errs, cfg.Files)
		// A value reached through several aliases is reported once.
		return nil, slices.Compact(errs)
	}
	cfg.pos = cfg.pos.forLater(cfg)
	return cfg, nil
}

// forLater keeps only the positions a loaded config still needs (for
// ValidateAgainst and DesiredService.Source): the full map is about a
// hundred bytes per value written.
func (ps *positions) forLater(cfg *Config) *positions {
	keep := newPositions(2 * len(cfg.VirtualServices))
	add := func(p any) {
		if s, ok := ps.m[p]; ok {
			keep.m[p] = s
		}
	}
	for i := range cfg.VirtualServices {
		s := &cfg.VirtualServices[i]
		add(s)
		add(&s.Scheduler)
		if s.Persistence != nil {
			add(&s.Persistence.Engine)
		}
	}
	return keep
}

// sortErrors orders problems by file (in the order they were read), then
// line and column; problems without a position come first in their file.
func sortErrors(errs ErrorList, files []string) {
	order := map[string]int{}
	for i, f := range files {
		order[f] = i + 1
	}
	slices.SortStableFunc(errs, func(a, b Error) int {
		if c := cmp.Compare(order[a.File], order[b.File]); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Column, b.Column)
	})
}

// source is one file being loaded.
type source struct {
	name     string
	root     *yaml.Node
	dec      *decoder
	services []*yaml.Node
}

func (o LoadOptions) readFile(name string) ([]byte, error) {
	if o.FS != nil {
		return fs.ReadFile(o.FS, name)
	}
	return os.ReadFile(name)
}

func (o LoadOptions) stat(name string) (fs.FileInfo, error) {
	if o.FS != nil {
		return fs.Stat(o.FS, name)
	}
	return os.Stat(name)
}

func (o LoadOptions) readDir(name string) ([]fs.DirEntry, error) {
	if o.FS != nil {
		return fs.ReadDir(o.FS, name)
	}
	return os.ReadDir(name)
}

// join resolves an include path against the directory of the file that
// names it.
func (o LoadOptions) join(from, p string) (string, bool) {
	if o.FS != nil {
		if path.IsAbs(p) {
			return "", false
		}
		return path.Join(path.Dir(from), p), true
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p), true
	}
	return filepath.Join(filepath.Dir(from), p), true
}

func (o LoadOptions) base(p string) string {
	if o.FS != nil {
		return path.Base(p)
	}
	return filepath.Base(p)
}

func (o LoadOptions) joinDir(dir, name string) string {
	if o.FS != nil {
		return path.Join(dir, name)
	}
	return filepath.Join(dir, name)
}

func (o LoadOptions) same(a, b string) bool {
	if o.FS != nil {
		return path.Clean(a) == path.Clean(b)
	}
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// includedFiles reads the files `include` names, in order: a directory's
// *.yaml files sorted by name, or a file.
func (o LoadOptions) includedFiles(cfg *Config, main *source, errs *ErrorList) []*source {
	var out []*source
	seen := map[string]bool{}
	for i, inc := range cfg.Include {
		at := main.dec.includes[i]
		fail := func(format string, args ...any) {
			*errs = append(*errs, Error{File: at.file, Line: int(at.line), Column: int(at.column), Message: fmt.Sprintf(format, args...)})
		}
		p, ok := o.join(main.name, inc)
		if !ok {
			fail("include: %q is absolute: write a path relative to %s", inc, main.name)
			continue
		}
		info, err := o.stat(p)
		if err != nil {
			fail("include: %s: %s", inc, readProblem(err))
			continue
		}
		var files []string
		if info.IsDir() {
			entries, err := o.readDir(p)
			if err != nil {
				fail("include: %s: %s", inc, readProblem(err))
				continue
			}
			for _, e := range entries {
				if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") && !strings.HasPrefix(e.Name(), ".") {
					files = append(files, o.joinDir(p, e.Name()))
				}
			}
			sort.Strings(files)
		} else {
			files = []string{p}
		}
		for _, f := range files {
			if o.same(f, main.name) {
				if !info.IsDir() {
					fail("include: %s is the main file itself: include a directory of other files, such as conf.d/", inc)
				}
				continue // a directory holding the main file: skip it
			}
			if seen[f] {
				fail("include: %s is already included: list each file once", o.base(f))
				continue
			}
			seen[f] = true
			data, err := o.readFile(f)
			if err != nil {
				fail("include: %s: %s", f, readProblem(err))
				continue
			}
			s := &source{name: f, dec: &decoder{file: f, errs: errs, pos: cfg.pos, budget: nodeBudget(len(data))}}
			s.root = parseYAML(f, data, errs)
			out = append(out, s)
		}
	}
	return out
}

// readProblem describes a file that cannot be read.
func readProblem(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file or directory: check the path"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied: lvsd must be able to read it"
	}
	return "cannot be read: " + err.Error()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses one file into its top-level mapping; nil when the file
// is empty or broken (the problem is reported).
func parseYAML(name string, data []byte, errs *ErrorList) (root *yaml.Node) {
	fail := func(line, col int, format string, args ...any) {
		*errs = append(*errs, Error{File: name, Line: line, Column: col, Message: fmt.Sprintf(format, args...)})
	}
	defer func() {
		// yaml.v3 has panicked on malformed input before; a config file
		// must never crash lvsd.
		if r := recover(); r != nil {
			fail(0, 0, "invalid YAML: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil
		}
		line, col, msg := yamlProblem(err, data)
		fail(line, col, "%s", msg)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
	case err != nil:
		line, col, msg := yamlProblem(err, data)
		fail(line, col, "%s", msg)
		return nil
	default:
		fail(extra.Line, extra.Column, "a second YAML document: keep one document per file (remove the --- line, or move it to an included file)")
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root = doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		fail(root.Line, root.Column, "expected a mapping of settings at the top of the file (virtual_services: ...), got %s", describe(root))
		return nil
	}
	return root
}

// yamlProblem turns a yaml.v3 syntax error into a line and a message.
func yamlProblem(err error, data []byte) (line, column int, message string) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	msg = "invalid YAML: " + msg
	{
		// A tab in the indentation is never valid YAML, and the usual
		// cause; yaml.v3 names the line where the enclosing block starts,
		// so find the tab itself.
		for i, l := range bytes.Split(data, []byte("\n")) {
			indent := len(l) - len(bytes.TrimLeft(l, " \t"))
			if t := bytes.IndexByte(l[:indent], '\t'); t >= 0 {
				return i + 1, t + 1, "invalid YAML: a tab in the indentation: indent with spaces"
			}
		}
	}
	switch {
	case strings.Contains(msg, "UTF-8"):
		return line, 0, msg + ": save the file as UTF-8"
	case line > 0:
		return line, 0, msg + ": check the indentation and the quoting near here"
	}
	return line, 0, msg
}

// mapValue finds key in a mapping (not through merges).
func mapValue(m *yaml.Node, key string) *entry {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Tag != "!!merge" && k.Value == key {
			return &entry{k, m.Content[i+1]}
		}
	}
	return nil
}

// serviceItems returns the items of a file's virtual_services list.
func (d *decoder) serviceItems(root *yaml.Node) []*yaml.Node {
	if root == nil {
		return nil
	}
	e := mapValue(root, "virtual_services")
	if e == nil {
		return nil
	}
	n := d.resolve(e.value)
	if n.Kind != yaml.SequenceNode {
		return nil // reported by top
	}
	return n.Content
}

// includedFile lists the keys an included file may hold.
type includedFile struct {
	VirtualServices []VirtualService `yaml:"virtual_services"`
}

func init() {
	onlyMain := "%s belongs in the main file: an included file holds only virtual_services"
	reserved[reflect.TypeFor[includedFile]()] = map[string]string{
		"lvsd":    fmt.Sprintf(onlyMain, "lvsd"),
		"ipvs":    fmt.Sprintf(onlyMain, "ipvs"),
		"include": "include is allowed only in the main file: list every directory there",
		"vrrp":    fmt.Sprintf(onlyMain, "vrrp"),
		"bgp":     fmt.Sprintf(onlyMain, "bgp"),
	}
	typeNames[reflect.TypeFor[includedFile]()] = "in an included file"
}

// top decodes a file's top-level mapping into cfg; the virtual services go
// into dst, which has room for exactly items.
func (d *decoder) top(root *yaml.Node, cfg *Config, isMain bool, dst []VirtualService, items []*yaml.Node) {
	if root == nil {
		return
	}
	t := reflect.TypeFor[includedFile]()
	v := reflect.ValueOf(cfg).Elem()
	if isMain {
		t = v.Type()
	}
	fs := fieldsOf(t)
	names := make([]string, len(fs))
	byName := map[string]int{}
	for i, f := range fs {
		names[i] = f.name
		byName[f.name] = f.index
	}
	for _, e := range d.entries(root) {
		name := e.key.Value
		idx, ok := byName[name]
		switch {
		case !ok && strings.HasPrefix(name, "x-"):
			// a place for anchors: x-common: &common {...}
		case !ok:
			d.fail(e.key, "%s", unknownKey(t, name, names))
		case name == "include":
			// decoded before the includes were read
		case name == "virtual_services":
			n := d.resolve(e.value)
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				continue
			}
			if n.Kind != yaml.SequenceNode {
				d.fail(n, "virtual_services: expected a list (items starting with \"- \"), got %s", describe(n))
				continue
			}
			if isMain {
				cfg.pos.setKey(&cfg.VirtualServices, d.at(e.key))
			}
			for i, item := range items {
				d.value(item, reflect.ValueOf(&dst[i]).Elem(), "virtual_services")
			}
		default:
			d.valueAt(e.value, v.FieldByName(t.Field(idx).Name), name, d.at(e.key))
		}
	}
}
