package probes

import (
	"bufio"
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
	byName map[string]bool
}

// ParseKallsyms reads /proc/kallsyms' format ("ffffffff81000000 T
// _stext", "ffffffffc0a01230 t ip_vs_in_hook\t[ip_vs]"). Only text
// symbols are kept. Addresses of zero (a reader without CAP_SYSLOG sees
// only zeros) leave names usable and locations unresolved.
func ParseKallsyms(r io.Reader) (*Symbols, error) {
	s := &Symbols{byName: map[string]bool{}}
	type sym struct {
		addr   uint64
		name   string
		module string
	}
	var syms []sym
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			if len(strings.TrimSpace(sc.Text())) == 0 {
				continue
			}
			return nil, fmt.Errorf("kallsyms:%d: %q: want ADDRESS TYPE NAME [MODULE]", line, sc.Text())
		}
		if f[1] != "t" && f[1] != "T" {
			continue
		}
		addr, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("kallsyms:%d: address %q: %w", line, f[0], err)
		}
		mod := ""
		if len(f) >= 4 {
			mod = strings.Trim(f[3], "[]")
		}
		s.byName[f[2]] = true
		if addr != 0 {
			syms = append(syms, sym{addr, f[2], mod})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading kallsyms: %w", err)
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
	for _, x := range syms {
		s.addrs = append(s.addrs, x.addr)
		s.names = append(s.names, x.name)
		s.module = append(s.module, x.module)
	}
	return s, nil
}

// Has reports whether the kernel has a text symbol of that name.
func (s *Symbols) Has(name string) bool { return s.byName[name] }

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
	if i < 0 || addr-s.addrs[i] > maxFuncSize {
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
