package config

// Reading keepalived.conf: a tokenizer and a parser into statements with
// their blocks, each knowing its file and line, with `include` expanded.
// keepalived.go converts the statements (keepalived_import.go).

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// kaStmt is one keepalived statement: its words, and the statements of
// its block if it has one.
type kaStmt struct {
	words    []string
	file     string
	line     int
	hasBlock bool
	block    []*kaStmt
}

func (s *kaStmt) at() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

func (s *kaStmt) keyword() string { return strings.ToLower(s.words[0]) }

func (s *kaStmt) String() string { return strings.Join(s.words, " ") }

type kaToken struct {
	text   string
	line   int
	quoted bool
	kind   byte // 'w' word, '{', '}', '\n'
}

// kaTokens splits one file into tokens: words (quoted strings keep their
// spaces), braces and line ends. Comments start with # or ! outside
// quotes.
func kaTokens(file string, src []byte) ([]kaToken, error) {
	var toks []kaToken
	for i, line := range strings.Split(string(src), "\n") {
		n := i + 1
		if !utf8.ValidString(line) {
			return nil, fmt.Errorf("%s:%d: not UTF-8 text: save the file as UTF-8", file, n)
		}
		for j := 0; j < len(line); {
			c := line[j]
			switch {
			case c == ' ' || c == '\t' || c == '\r':
				j++
			case c == '#' || c == '!':
				j = len(line)
			case c == '{' || c == '}':
				toks = append(toks, kaToken{text: string(c), line: n, kind: c})
				j++
			case c == '"':
				end := strings.IndexByte(line[j+1:], '"')
				if end < 0 {
					return nil, fmt.Errorf("%s:%d: unterminated quoted string: close it with \"", file, n)
				}
				toks = append(toks, kaToken{text: line[j+1 : j+1+end], line: n, quoted: true, kind: 'w'})
				j += end + 2
			default:
				k := j
				for k < len(line) && !strings.ContainsRune(" \t\r{}\"#!", rune(line[k])) {
					k++
				}
				toks = append(toks, kaToken{text: line[j:k], line: n, kind: 'w'})
				j = k
			}
		}
		toks = append(toks, kaToken{line: n, kind: '\n'})
	}
	return toks, nil
}

// kaParser reads statements from tokens, expanding includes.
type kaParser struct {
	readFile func(string) ([]byte, error)
	glob     func(string) ([]string, error)
	depth    int
}

func (p *kaParser) parseFile(path string) ([]*kaStmt, error) {
	if p.depth > 8 {
		return nil, fmt.Errorf("%s: includes nested more than 8 deep: an include loop?", path)
	}
	src, err := p.readFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading keepalived config: %w", err)
	}
	toks, err := kaTokens(path, src)
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
func (p *kaParser) statements(file string, toks []kaToken, i *int, inBlock bool) ([]*kaStmt, error) {
	var out []*kaStmt
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
			s := &kaStmt{file: file, line: t.line}
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
func (p *kaParser) expandIncludes(file string, stmts []*kaStmt) ([]*kaStmt, error) {
	var out []*kaStmt
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

// parseKeepalived reads a keepalived.conf and the files it includes.
func parseKeepalived(path string, fsys fs.FS) ([]*kaStmt, error) {
	p := &kaParser{readFile: os.ReadFile, glob: filepath.Glob}
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
	return p.parseFile(path)
}
