package probes

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Symbols is the kernel's symbol table as /proc/kallsyms lists it: text
// symbols by address, to name a drop's location ("nf_hook_slow+0x8d"),
// and the set of names, to know which functions can be probed.
type Symbols struct {
	addrs  []uint64 // sorted
	names  []string // names[i] starts at addrs[i]
	module []string // "ip_vs" for module symbols, "" for vmlinux
}

// ParseKallsyms reads /proc/kallsyms' format ("ffffffff81000000 T
// _stext", "ffffffffc0a01230 t ip_vs_in_hook\t[ip_vs]"). Only text
// symbols are kept. Addresses of zero (a reader without CAP_SYSLOG sees
// only zeros) leave names usable and locations unresolved. It reads the
// whole table (about 200,000 lines) at once and scans bytes: the tracer
// does this at every start.
func ParseKallsyms(r io.Reader) (*Symbols, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading kallsyms: %w", err)
	}
	text := string(data) // names are substrings of it: one allocation
	s := &Symbols{}
	type sym struct {
		addr         uint64
		name, module string
	}
	syms := make([]sym, 0, 1<<16)
	for line, rest := 1, text; rest != ""; line++ {
		l := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			l, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if strings.TrimSpace(l) == "" {
			continue
		}
		// ADDRESS TYPE NAME[\t[MODULE]]
		sp := strings.IndexByte(l, ' ')
		if sp < 0 || len(l) < sp+4 || l[sp+2] != ' ' {
			return nil, fmt.Errorf("kallsyms:%d: %q: want ADDRESS TYPE NAME [MODULE]", line, l)
		}
		if typ := l[sp+1]; typ != 't' && typ != 'T' {
			continue
		}
		addr, err := strconv.ParseUint(l[:sp], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("kallsyms:%d: address %q: %w", line, l[:sp], err)
		}
		name, mod := l[sp+3:], ""
		if i := strings.IndexAny(name, " \t"); i >= 0 {
			name, mod = name[:i], strings.Trim(strings.TrimSpace(name[i:]), "[]")
		}
		syms = append(syms, sym{addr, name, mod})
	}
	slices.SortStableFunc(syms, func(a, b sym) int {
		switch {
		case a.addr < b.addr:
			return -1
		case a.addr > b.addr:
			return 1
		}
		return 0
	})
	s.addrs = make([]uint64, len(syms))
	s.names = make([]string, len(syms))
	s.module = make([]string, len(syms))
	for i, x := range syms {
		s.addrs[i], s.names[i], s.module[i] = x.addr, x.name, x.module
	}
	return s, nil
}

// Has reports whether the kernel has a text symbol of that name. It
// scans the table: callers ask about a few dozen names, once.
func (s *Symbols) Has(name string) bool { return s != nil && slices.Contains(s.names, name) }

// maxFuncSize bounds how far past a symbol an address may be and still
// be called inside it: kallsyms lists starts, not sizes.
const maxFuncSize = 1 << 20

// Describe names the function an address is in, as "func+0xoff", with
// " [module]" for module code; false when no symbol precedes it.
func (s *Symbols) Describe(addr uint64) (string, bool) {
	i, found := slices.BinarySearch(s.addrs, addr)
	if !found {
		i--
	}
	if i < 0 || s.addrs[i] == 0 || addr-s.addrs[i] > maxFuncSize {
		return "", false
	}
	// Several names may share an address: the last one sorted there is
	// as good as any, but prefer a stable choice (the first listed).
	for i > 0 && s.addrs[i-1] == s.addrs[i] {
		i--
	}
	d := s.names[i] + "+0x" + strconv.FormatUint(addr-s.addrs[i], 16)
	if s.module[i] != "" {
		d += " [" + s.module[i] + "]"
	}
	return d, true
}
