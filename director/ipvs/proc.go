package ipvs

// Readers and parsers of the /proc/net/ip_vs* files.
//
// The formats come from the kernel's seq_file show functions in
// net/netfilter/ipvs/ip_vs_ctl.c (ip_vs, ip_vs_stats, ip_vs_stats_percpu)
// and ip_vs_conn.c (ip_vs_conn, ip_vs_conn_sync). Parsers take an
// io.Reader and never panic; readers take a root directory ("/" for the
// running system, or a saved tree) and name the file in their errors.

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
)

// Paths of the IPVS files under a root directory.
const (
	ProcIPVS          = "proc/net/ip_vs"
	ProcConn          = "proc/net/ip_vs_conn"
	ProcConnSync      = "proc/net/ip_vs_conn_sync"
	ProcStats         = "proc/net/ip_vs_stats"
	ProcStatsPerCPU   = "proc/net/ip_vs_stats_percpu"
	maxProcLineLength = 64 << 10
)

// ParseError is a malformed line in an IPVS /proc file.
type ParseError struct {
	File string // the path, or the base name when parsing a reader
	Line int    // 1-based
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

func parseErr(file string, line int, format string, args ...any) error {
	return &ParseError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// openProc opens a file under root. A missing file means IPVS is not
// loaded in that network namespace (or the saved tree lacks it): the
// error wraps both ErrIPVSUnavailable and fs.ErrNotExist.
func openProc(root, rel string) (*os.File, string, error) {
	path := filepath.Join(root, rel)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, path, fmt.Errorf("%w: %w", ErrIPVSUnavailable, err)
		}
		return nil, path, fmt.Errorf("reading IPVS state: %w", err)
	}
	return f, path, nil
}

// hexVal maps an ASCII byte to its hex value, or 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
		t[c-'a'+'A'] = byte(c-'a') + 10
	}
	return t
}()

// parseHex parses 1 to 16 hex digits without allocating.
func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		d := hexVal[c]
		if d == 0xff {
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}

// parseHexN parses exactly n hex digits.
func parseHexN(b []byte, n int) (uint64, bool) {
	if len(b) != n {
		return 0, false
	}
	return parseHex(b)
}

// parseDec parses a non-negative decimal number without allocating.
func parseDec(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parseInt parses a decimal number with an optional minus sign.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, ok := parseDec(b)
	if !ok || u > 1<<63 || (!neg && u == 1<<63) {
		return 0, false
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

// parseHexAddr4 parses the kernel's "%08X" of ntohl(addr).
func parseHexAddr4(b []byte) (netip.Addr, bool) {
	v, ok := parseHexN(b, 8)
	if !ok {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// parseAddr6 parses the kernel's "%pI6": eight groups of four hex digits.
// Other IPv6 spellings are accepted through netip (slower, allocates).
func parseAddr6(b []byte) (netip.Addr, bool) {
	if len(b) == 39 {
		var a [16]byte
		ok := true
		for g := 0; g < 8; g++ {
			p := g * 5
			if g < 7 && b[p+4] != ':' {
				ok = false
				break
			}
			h0, h1, h2, h3 := hexVal[b[p]], hexVal[b[p+1]], hexVal[b[p+2]], hexVal[b[p+3]]
			if h0|h1|h2|h3 == 0xff || h0 > 15 || h1 > 15 || h2 > 15 || h3 > 15 {
				ok = false
				break
			}
			a[2*g] = h0<<4 | h1
			a[2*g+1] = h2<<4 | h3
		}
		if ok {
			return netip.AddrFrom16(a), true
		}
	}
	if len(b) < 2 || len(b) > 45 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(string(b))
	if err != nil || !a.Is6() || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// fields splits b at runs of spaces into dst, without allocating when dst
// has room.
func fields(dst [][]byte, b []byte) [][]byte {
	dst = dst[:0]
	i := 0
	for {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		if i >= len(b) {
			return dst
		}
		j := i
		for j < len(b) && b[j] != ' ' && b[j] != '\t' {
			j++
		}
		dst = append(dst, b[i:j])
		i = j
	}
}

// trimCR drops a trailing carriage return, as a saved file may have.
func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// quote shows at most 64 bytes of a bad field in an error.
func quote(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q...", b[:64])
	}
	return fmt.Sprintf("%q", b)
}
