package ipvs

import (
	"bytes"
	"encoding/binary"
)

// fixedCache is the fast path in front of groupCache for the lines most
// tables are made of, which the kernel prints at fixed widths: IPv4
// addresses as "%08X", IPv6 ones as %pI6 (always 39 characters), ports
// as "%04X", the state as "%-11s" and the expiry as "%7lu":
//
//	TCP 0A000101 A8DF 0A000064 0050 0A00020B 0050 ESTABLISHED     898
//
// It keys on the raw bytes from ToIP to the end of the state, the
// protocol field and the client bits, read as words (for IPv4 lines,
// less the spaces, in five words), without decoding them; a key seen for
// the first time is checked by the full parser, as groupCache does. On
// every line it checks the spaces between fields, the client's address
// and port (hex digits) and that no newline hides in the expiry, and it
// finds the line's end without a search when the expiry has its usual
// seven columns and nothing follows it. Lines of any other shape go to
// groupCache.
type fixedCache struct {
	v4 fixedTable[[5]uint64]
	v6 fixedTable[[14]uint64]
}

// fixedTable counts keys of one width: open addressing over dense
// arrays. The words and counts, touched on every line, are kept apart
// from the decoded keys, touched once per group.
type fixedTable[W [5]uint64 | [14]uint64] struct {
	index   []uint32 // entry number + 1, or 0
	entries []fixedEntry[W]
	keys    []aggKey
}

type fixedEntry[W [5]uint64 | [14]uint64] struct {
	w     W // the key: the group's text, the protocol and the client bits
	count int
}

const (
	fixedPortZero = 1 << 40 // the client port is 0: a template, if its state says so
	fixedReal4    = 1 << 41 // an IPv6 line whose real server is IPv4 (a shorter text)
)

func newFixedCache() *fixedCache {
	return &fixedCache{
		v4: fixedTable[[5]uint64]{index: make([]uint32, 4096)},
		v6: fixedTable[[14]uint64]{index: make([]uint32, 1024)},
	}
}

// count counts the fixed-width line at the start of data and returns its
// length with its newline, or 0 for the caller to take the general path.
// data must not start with the header.
func (f *fixedCache) count(data []byte, rc *rawConn) int {
	n, _ := f.countRun(data, rc, 1)
	return n
}

// countRun counts the fixed-width lines at the start of data, at most
// max of them, and returns the bytes and lines it counted; it stops
// before a line for the general path. data must not start with the
// header. The IPv4 lines' path is written out in the loop: calls per
// line cost more than the rest of it.
func (f *fixedCache) countRun(data []byte, rc *rawConn, max int) (pos, lines int) {
	t := &f.v4
	for ; lines < max; lines++ {
		d := data[pos:]
		// The protocol is "%-3s ": "TCP ", "UDP ", "IP  "; "SCTP " is
		// one longer.
		if len(d) < 5+14+40+8 {
			return
		}
		o := 4
		if d[3] != ' ' {
			if d[4] != ' ' {
				return
			}
			o = 5
		}
		head := uint64(binary.LittleEndian.Uint32(d)) // the protocol's bytes (and a space)
		if o == 5 {
			head |= uint64(d[4]) << 32
		}
		c := d[o:]
		if c[8] != ' ' {
			n := f.count6(d, o, head, rc)
			if n == 0 {
				return
			}
			pos += n
			continue
		}

		// "%08X %04X %08X %04X %08X %04X %-11s %7lu". Client: 8 hex
		// digits, a space, 4 hex digits, a space.
		if c[13] != ' ' {
			return
		}
		port := binary.LittleEndian.Uint32(c[9:])
		if hexMask(binary.LittleEndian.Uint64(c))&hexMask(uint64(port)|0x3030303000000000) != 0x8080808080808080 {
			return
		}
		// The group: ToIP TPrt DestIP DPrt State, at fixed places, then a
		// space and the expiry.
		g := c[14:]
		if g[8] != ' ' || g[13] != ' ' || g[22] != ' ' || g[27] != ' ' || g[28] == ' ' || g[39] != ' ' {
			return
		}
		exp := o + 14 + 40
		n := exp + 7
		if n >= len(d) || d[n] != '\n' || hasNewline7(binary.LittleEndian.Uint64(d[exp:])) || d[n-1] == ' ' || d[n-1] == '\r' {
			if n = lineEnd(d, exp); n == 0 {
				return
			}
		}
		// The key: the group's text less the spaces checked above, the
		// protocol and the client bits, packed in five words.
		w0 := binary.LittleEndian.Uint64(g[0:])                                                          // ToIP
		w1 := uint64(binary.LittleEndian.Uint32(g[9:])) | uint64(binary.LittleEndian.Uint32(g[23:]))<<32 // TPrt, DPrt
		w2 := binary.LittleEndian.Uint64(g[14:])                                                         // DestIP
		w3 := binary.LittleEndian.Uint64(g[28:])                                                         // State
		w4 := uint64(binary.LittleEndian.Uint32(g[35:]))>>8 | uint64(binary.LittleEndian.Uint32(d))<<24  // the State's end, Pro
		if o == 5 {
			w4 |= 1 << 56
		}
		if port == 0x30303030 {
			w4 |= 1 << 57
		}
		// in registers, not an array: see hash5
		hh := w0*m1 ^ w1*m2 ^ w2*m3 ^ w3*m4 ^ w4*m5
		hh ^= hh >> 32
		hh *= m2
		h := hh ^ hh>>29
		mask := uint64(len(t.index) - 1)
		for j := h & mask; ; j = (j + 1) & mask {
			k := t.index[j]
			if k == 0 {
				if t.insert(j, &[5]uint64{w0, w1, w2, w3, w4}, d[:n], rc) == 0 {
					return
				}
				break
			}
			e := &t.entries[k-1]
			if e.w[0] == w0 && e.w[1] == w1 && e.w[2] == w2 && e.w[3] == w3 && e.w[4] == w4 {
				e.count++
				break
			}
		}
		pos += n + 1
	}
	return
}

// fixedLineEnd is lineEnd with the common case first: a newline right
// after the expiry's seven columns (countRun has it written out).
func fixedLineEnd(d []byte, e int) int {
	n := e + 7
	if n >= len(d) || d[n] != '\n' || hasNewline7(binary.LittleEndian.Uint64(d[e:])) || d[n-1] == ' ' || d[n-1] == '\r' {
		return lineEnd(d, e)
	}
	return n
}

// hasNewline7 reports a newline among the low seven bytes of x.
func hasNewline7(x uint64) bool {
	x ^= 0x0a0a0a0a0a0a0a0a
	// A borrow reaches a byte only from a zero byte below it.
	return (x-0x0101010101010101)&^x&0x0080808080808080 != 0
}

// count6: "%pI6 %04X %pI6 %04X %pI6 %04X %-11s %7lu", the real server
// possibly "%08X" (a mixed-family service).
func (f *fixedCache) count6(data []byte, o int, head uint64, rc *rawConn) int {
	const client = 39 + 1 + 4 + 1
	if len(data) < o+client+39+1+4+1+8+1+4+1+11+1+8 {
		return 0
	}
	c := data[o:]
	if c[39] != ' ' || c[44] != ' ' || !validClient6(c) {
		return 0
	}
	if c[40] == '0' && c[41] == '0' && c[42] == '0' && c[43] == '0' {
		head |= fixedPortZero
	}
	g := c[client:]
	if g[39] != ' ' || g[44] != ' ' {
		return 0
	}
	var w [14]uint64
	var n int
	if g[53] == ' ' { // an IPv4 real server
		if g[58] != ' ' || g[59] == ' ' || g[70] != ' ' {
			return 0
		}
		if n = fixedLineEnd(data, o+client+71); n == 0 {
			return 0
		}
		head |= fixedReal4
		g := g[:70]
		w[0] = binary.LittleEndian.Uint64(g[0:])
		w[1] = binary.LittleEndian.Uint64(g[8:])
		w[2] = binary.LittleEndian.Uint64(g[16:])
		w[3] = binary.LittleEndian.Uint64(g[24:])
		w[4] = binary.LittleEndian.Uint64(g[32:])
		w[5] = binary.LittleEndian.Uint64(g[40:])
		w[6] = binary.LittleEndian.Uint64(g[48:])
		w[7] = binary.LittleEndian.Uint64(g[56:])
		w[8] = binary.LittleEndian.Uint64(g[62:])
	} else {
		if len(g) < 110 || g[84] != ' ' || g[89] != ' ' || g[90] == ' ' || g[101] != ' ' {
			return 0
		}
		if n = fixedLineEnd(data, o+client+102); n == 0 {
			return 0
		}
		g := g[:101]
		w[0] = binary.LittleEndian.Uint64(g[0:])
		w[1] = binary.LittleEndian.Uint64(g[8:])
		w[2] = binary.LittleEndian.Uint64(g[16:])
		w[3] = binary.LittleEndian.Uint64(g[24:])
		w[4] = binary.LittleEndian.Uint64(g[32:])
		w[5] = binary.LittleEndian.Uint64(g[40:])
		w[6] = binary.LittleEndian.Uint64(g[48:])
		w[7] = binary.LittleEndian.Uint64(g[56:])
		w[8] = binary.LittleEndian.Uint64(g[64:])
		w[9] = binary.LittleEndian.Uint64(g[72:])
		w[10] = binary.LittleEndian.Uint64(g[80:])
		w[11] = binary.LittleEndian.Uint64(g[88:])
		w[12] = binary.LittleEndian.Uint64(g[93:])
	}
	w[13] = head
	h := hash14(&w)
	t := &f.v6
	mask := uint64(len(t.index) - 1)
	for j := h & mask; ; j = (j + 1) & mask {
		k := t.index[j]
		if k == 0 {
			return t.insert(j, &w, data[:n], rc)
		}
		e := &t.entries[k-1]
		if same14(&e.w, &w) {
			e.count++
			return n + 1
		}
	}
}

// lineEnd returns the index of the newline that ends the line at the
// start of data, whose expiry starts at e, or 0 if the fast path cannot
// take the line: one that does not end, that is too long, or that ends
// in a space or a carriage return (which the general path trims), or a
// newline within the expiry's seven columns. Most lines end right after
// those seven columns.
func lineEnd(data []byte, e int) int {
	n := e + 7
	if n < len(data) && data[n] == '\n' {
		// no newline among the seven bytes before it
		if hasNewline7(binary.LittleEndian.Uint64(data[e:])) {
			return 0
		}
	} else {
		i := bytes.IndexByte(data[e:], '\n')
		if i <= 0 {
			return 0
		}
		n = e + i
		if n > maxProcLineLength {
			return 0
		}
	}
	if last := data[n-1]; last == ' ' || last == '\r' {
		return 0
	}
	return n
}

// insert adds a key seen for the first time, at slot j, once the full
// parser vouches for its line; it returns the line's length with its
// newline, or 0 if the line is not well formed.
func (t *fixedTable[W]) insert(j uint64, w *W, line []byte, rc *rawConn) int {
	// The key's text must hold no newline: the general path would split
	// the line there.
	if bytes.IndexByte(line, '\n') >= 0 {
		return 0
	}
	if msg, _ := rc.parse(line, formatConn, false); msg != "" {
		return 0
	}
	t.entries = append(t.entries, fixedEntry[W]{w: *w, count: 1})
	t.keys = append(t.keys, rc.aggKey())
	t.index[j] = uint32(len(t.entries))
	if 2*len(t.entries) > len(t.index) {
		t.grow()
	}
	return len(line) + 1
}

func (t *fixedTable[W]) grow() {
	old := t.index
	t.index = make([]uint32, 2*len(old))
	mask := uint64(len(t.index) - 1)
	for _, n := range old {
		if n == 0 {
			continue
		}
		e := &t.entries[n-1]
		var h uint64
		switch w := any(&e.w).(type) {
		case *[5]uint64:
			h = hash5(w)
		case *[14]uint64:
			h = hash14(w)
		}
		j := h & mask
		for t.index[j] != 0 {
			j = (j + 1) & mask
		}
		t.index[j] = n
	}
}

// flush adds the cached counts to t.
func (f *fixedCache) flush(t *countTable) {
	f.v4.flush(t)
	f.v6.flush(t)
}

func (t *fixedTable[W]) flush(c *countTable) {
	for i := range t.entries {
		c.add(&t.keys[i], t.entries[i].count)
	}
}

const (
	m1 = 0x9e3779b97f4a7c15
	m2 = 0xc2b2ae3d27d4eb4f
	m3 = 0x165667b19e3779f9
	m4 = 0xd6e8feb86659fd93
	m5 = 0xff51afd7ed558ccd
)

// hash5 mixes the key's words (countRun has a copy of it, on words in
// registers). A product's low bits depend only on the
// factors' low bits, which here are the first, mostly constant,
// characters of each word: fold the high half down before masking.
func hash5(w *[5]uint64) uint64 {
	h := w[0]*m1 ^ w[1]*m2 ^ w[2]*m3 ^ w[3]*m4 ^ w[4]*m5
	h ^= h >> 32
	h *= m2
	return h ^ h>>29
}

func hash14(w *[14]uint64) uint64 {
	h := w[0]*m1 ^ w[1]*m2 ^ w[2]*m3 ^ w[3]*m4 ^ w[4]*m5 ^ w[13]*m1
	h ^= h>>32 ^ (w[5]*m1 ^ w[6]*m2 ^ w[7]*m3 ^ w[8]*m4 ^ w[9]*m5)
	h ^= h>>32 ^ (w[10]*m1 ^ w[11]*m2 ^ w[12]*m3)
	h ^= h >> 32
	h *= m2
	return h ^ h>>29
}

func same14(a, b *[14]uint64) bool {
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] && a[5] == b[5] &&
		a[6] == b[6] && a[7] == b[7] && a[8] == b[8] && a[9] == b[9] && a[10] == b[10] && a[11] == b[11] && a[12] == b[12] && a[13] == b[13]
}

// validClient6 checks the client's address (%pI6) and port at the start
// of c: colons where %pI6 puts them and hex digits elsewhere. (Reading
// the address as five words and checking the colons with masks took more
// instructions: six hex checks where this needs five.)
func validClient6(c []byte) bool {
	if c[4] != ':' || c[9] != ':' || c[14] != ':' || c[19] != ':' || c[24] != ':' || c[29] != ':' || c[34] != ':' {
		return false
	}
	m := hexMask(uint64(binary.LittleEndian.Uint32(c[0:]))<<32 | uint64(binary.LittleEndian.Uint32(c[5:])))
	m &= hexMask(uint64(binary.LittleEndian.Uint32(c[10:]))<<32 | uint64(binary.LittleEndian.Uint32(c[15:])))
	m &= hexMask(uint64(binary.LittleEndian.Uint32(c[20:]))<<32 | uint64(binary.LittleEndian.Uint32(c[25:])))
	m &= hexMask(uint64(binary.LittleEndian.Uint32(c[30:]))<<32 | uint64(binary.LittleEndian.Uint32(c[35:])))
	m &= hexMask(uint64(binary.LittleEndian.Uint32(c[40:])) | 0x3030303000000000) // the port
	return m == 0x8080808080808080
}
