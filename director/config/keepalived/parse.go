package keepalived

// Reading keepalived.conf: a tokenizer and a parser into statements with
// their blocks, each knowing its file and line, with `include` expanded.
// import.go converts the statements.

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// stmt is one keepalived statement: its words, and the statements of
// its block if it has one.
type stmt struct {
	words    []string
	file     string
	line     int
	hasBlock bool
	block    []*stmt
}

func (s *stmt) at() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

func (s *stmt) keyword() string { return strings.ToLower(s.words[0]) }

func (s *stmt) String() string { return strings.Join(s.words, " ") }

type token struct {
	text   string
	line   int
	quoted bool
	kind   byte // 'w' word, '{', '}', '\n'
}

// tokens splits one file into tokens: words (quoted strings keep their
// spaces), braces and line ends. Comments start with # or ! outside
// quotes; as in keepalived, \# and \! outside quotes are a literal # and
// !, and a line ending in \ continues on the next one.
//
// A line starting @ID applies only when keepalived runs with that config
// id (its -i, default the short host name), @^ID only when it does not:
// configID decides, and conditional counts such lines.
func tokens(file string, src []byte, configID string, conditional *int) ([]token, error) {
	var toks []token
	lines := strings.Split(string(src), "\n")
	for i := 0; i < len(lines); i++ {
		n := i + 1
		line := lines[i]
		if !utf8.ValidString(line) {
			return nil, fmt.Errorf("%s:%d: not UTF-8 text: save the file as UTF-8", file, n)
		}
		if t := strings.TrimLeft(line, " \t"); strings.HasPrefix(t, "@") {
			*conditional++
			id, rest, _ := strings.Cut(t[1:], " ")
			if tab := strings.IndexByte(id, '\t'); tab >= 0 {
				id, rest = id[:tab], id[tab+1:]+" "+rest
			}
			negate := strings.HasPrefix(id, "^")
			if (strings.TrimPrefix(id, "^") == configID) == negate {
				toks = append(toks, token{line: n, kind: '\n'})
				continue
			}
			line = rest
		}
		for strings.HasSuffix(strings.TrimRight(line, " \t\r"), "\\") && i+1 < len(lines) {
			line = strings.TrimSuffix(strings.TrimRight(line, " \t\r"), "\\") + " " + lines[i+1]
			i++
		}
		for j := 0; j < len(line); {
			c := line[j]
			switch {
			case c == ' ' || c == '\t' || c == '\r':
				j++
			case c == '#' || c == '!':
				j = len(line)
			case c == '{' || c == '}':
				toks = append(toks, token{text: string(c), line: n, kind: c})
				j++
			case c == '"':
				end := strings.IndexByte(line[j+1:], '"')
				if end < 0 {
					return nil, fmt.Errorf("%s:%d: unterminated quoted string: close it with \"", file, n)
				}
				toks = append(toks, token{text: line[j+1 : j+1+end], line: n, quoted: true, kind: 'w'})
				j += end + 2
			default:
				var w strings.Builder
				k := j
				for k < len(line) && !strings.ContainsRune(" \t\r{}\"#!", rune(line[k])) {
					if line[k] == '\\' && k+1 < len(line) && (line[k+1] == '#' || line[k+1] == '!') {
						k++
					}
					w.WriteByte(line[k])
					k++
				}
				toks = append(toks, token{text: w.String(), line: n, kind: 'w'})
				j = k
			}
		}
		toks = append(toks, token{line: n, kind: '\n'})
	}
	return toks, nil
}

// parser reads statements from tokens, expanding includes.
type parser struct {
	configID    string
	conditional int // lines starting @ID or @^ID
	readFile    func(string) ([]byte, error)
	glob        func(string) ([]string, error)
	depth       int
}

func (p *parser) parseFile(path string) ([]*stmt, error) {
	if p.depth > 8 {
		return nil, fmt.Errorf("%s: includes nested more than 8 deep: an include loop?", path)
	}
	src, err := p.readFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading keepalived config: %w", err)
	}
	toks, err := tokens(path, src, p.configID, &p.conditional)
	if err != nil {
		return nil, err
	}
	i := 0
	stmts, err := p.statements(path, toks, &i, false)
	if err != nil {
		return nil, err
	}
	return p.expandIncludes(path, stmts)
}

// statements reads until the end of the tokens or, inside a block, the
// closing brace.
func (p *parser) statements(file string, toks []token, i *int, inBlock bool) ([]*stmt, error) {
	var out []*stmt
	openLine := 0
	if *i > 0 {
		openLine = toks[*i-1].line
	}
	for *i < len(toks) {
		t := toks[*i]
		switch t.kind {
		case '\n':
			*i++
		case '}':
			if !inBlock {
				return nil, fmt.Errorf("%s:%d: a } closes no block: remove it", file, t.line)
			}
			*i++
			return out, nil
		case '{':
			return nil, fmt.Errorf("%s:%d: a { opens a block with no keyword before it", file, t.line)
		default:
			s := &stmt{file: file, line: t.line}
			for *i < len(toks) && toks[*i].kind == 'w' {
				s.words = append(s.words, toks[*i].text)
				*i++
			}
			// The block may open on the same line or the next ones.
			j := *i
			for j < len(toks) && toks[j].kind == '\n' {
				j++
			}
			if j < len(toks) && toks[j].kind == '{' {
				*i = j + 1
				s.hasBlock = true
				block, err := p.statements(file, toks, i, true)
				if err != nil {
					return nil, err
				}
				s.block = block
			}
			out = append(out, s)
		}
	}
	if inBlock {
		return nil, fmt.Errorf("%s:%d: a block opened here is never closed: add }", file, openLine)
	}
	return out, nil
}

// expandIncludes replaces `include GLOB` statements, at any depth, by
// the statements of the files they name (relative to the including
// file's directory), in name order.
func (p *parser) expandIncludes(file string, stmts []*stmt) ([]*stmt, error) {
	var out []*stmt
	for _, s := range stmts {
		if s.keyword() != "include" {
			if s.hasBlock {
				b, err := p.expandIncludes(file, s.block)
				if err != nil {
					return nil, err
				}
				s.block = b
			}
			out = append(out, s)
			continue
		}
		if len(s.words) != 2 {
			return nil, fmt.Errorf("%s: include takes one path or pattern", s.at())
		}
		pattern := s.words[1]
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(filepath.Dir(file), pattern)
		}
		paths, err := p.glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("%s: include %s: %w", s.at(), s.words[1], err)
		}
		for _, path := range paths {
			p.depth++
			inc, err := p.parseFile(path)
			p.depth--
			if err != nil {
				return nil, err
			}
			out = append(out, inc...)
		}
	}
	return out, nil
}

// parse reads a keepalived.conf and the files it includes.
func parse(path string, fsys fs.FS, configID string) ([]*stmt, int, error) {
	p := &parser{configID: configID, readFile: os.ReadFile, glob: filepath.Glob}
	if fsys != nil {
		p.readFile = func(name string) ([]byte, error) { return fs.ReadFile(fsys, strings.TrimPrefix(name, "/")) }
		p.glob = func(pattern string) ([]string, error) {
			m, err := fs.Glob(fsys, strings.TrimPrefix(pattern, "/"))
			for i := range m {
				if strings.HasPrefix(path, "/") {
					m[i] = "/" + m[i]
				}
			}
			return m, err
		}
	}
	stmts, err := p.parseFile(path)
	return stmts, p.conditional, err
}
