package ipvs

import "encoding/binary"

// fixedCache is the fast path in front of groupCache for the lines most
// tables are made of: IPv4 client, virtual and real server, which the
// kernel prints at fixed widths ("%08X %04X"):
//
//	TCP 0A000101 A8DF 0A000064 0050 0A00020B 0050 ESTABLISHED     898
//
// It keys on the raw bytes from ToIP to the end of the state (39 bytes,
// read as five overlapping words) and the protocol word, without
// decoding them; a key seen for the first time is checked by the full
// parser, as groupCache does. The client's address and port are checked
// (hex digits) on every line. Lines of any other shape go to groupCache.
type fixedCache struct {
	index   []uint32 // open addressing: entry number + 1, or 0
	entries []fixedEntry
}

type fixedEntry struct {
	w     [5]uint64 // the group's text
	head  uint64    // the protocol field and the client bits
	count int
	key   aggKey
}

func newFixedCache() *fixedCache {
	return &fixedCache{index: make([]uint32, 4096)}
}

// countLine counts a fixed-width IPv4 line and reports true, or reports
// false for the caller to try the general path.
func (f *fixedCache) countLine(line []byte, rc *rawConn) bool {
	// The protocol is "%-3s ": "TCP ", "UDP ", "IP  "; "SCTP " is one
	// longer.
	o := 4
	if len(line) < 5+14+40+1 {
		return false
	}
	if line[3] != ' ' {
		if line[4] != ' ' {
			return false
		}
		o = 5
	}
	head := uint64(binary.LittleEndian.Uint32(line)) // the protocol's bytes (and a space)
	if o == 5 {
		head |= uint64(line[4]) << 32
	}
	// Client: 8 hex digits, a space, 4 hex digits, a space.
	if line[o+8] != ' ' || line[o+13] != ' ' {
		return false
	}
	if _, ok := hexLanes(binary.BigEndian.Uint64(line[o:])); !ok {
		return false
	}
	cport, ok := hex4(line[o+9:])
	if !ok {
		return false
	}
	if cport == 0 {
		head |= 1 << 40 // a template, if its state says so: part of the key
	}
	// The group: ToIP TPrt DestIP DPrt State, at fixed places, then a
	// space and the expiry, and no trailing space.
	g := line[o+14:]
	if len(g) < 41 || g[8] != ' ' || g[13] != ' ' || g[22] != ' ' || g[27] != ' ' || g[28] == ' ' || g[39] != ' ' ||
		line[len(line)-1] == ' ' {
		return false
	}
	var w [5]uint64
	w[0] = binary.LittleEndian.Uint64(g[0:])
	w[1] = binary.LittleEndian.Uint64(g[8:])
	w[2] = binary.LittleEndian.Uint64(g[16:])
	w[3] = binary.LittleEndian.Uint64(g[24:])
	w[4] = binary.LittleEndian.Uint64(g[31:])
	h := fixedHash(&w, head)
	mask := uint64(len(f.index) - 1)
	for j := h & mask; ; j = (j + 1) & mask {
		n := f.index[j]
		if n == 0 {
			// First sight: the full parser vouches for the whole line.
			if msg, _ := rc.parse(line, formatConn, false); msg != "" {
				return false
			}
			f.entries = append(f.entries, fixedEntry{w: w, head: head, count: 1, key: rc.aggKey()})
			f.index[j] = uint32(len(f.entries))
			if 2*len(f.entries) > len(f.index) {
				f.grow()
			}
			return true
		}
		e := &f.entries[n-1]
		// word by word: comparing the arrays calls memequal
		if e.w[0] == w[0] && e.w[1] == w[1] && e.w[2] == w[2] && e.w[3] == w[3] && e.w[4] == w[4] && e.head == head {
			e.count++
			return true
		}
	}
}

func (f *fixedCache) grow() {
	old := f.index
	f.index = make([]uint32, 2*len(old))
	mask := uint64(len(f.index) - 1)
	for _, n := range old {
		if n == 0 {
			continue
		}
		e := &f.entries[n-1]
		j := fixedHash(&e.w, e.head) & mask
		for f.index[j] != 0 {
			j = (j + 1) & mask
		}
		f.index[j] = n
	}
}

// flush adds the cached counts to t.
func (f *fixedCache) flush(t *countTable) {
	for i := range f.entries {
		t.add(&f.entries[i].key, f.entries[i].count)
	}
}

// fixedHash mixes the key's words. A product's low bits depend only on
// the factors' low bits, which here are the first, mostly constant,
// characters of each word: fold the high half down before masking.
func fixedHash(w *[5]uint64, head uint64) uint64 {
	const (
		m1 = 0x9e3779b97f4a7c15
		m2 = 0xc2b2ae3d27d4eb4f
		m3 = 0x165667b19e3779f9
		m4 = 0xd6e8feb86659fd93
		m5 = 0xff51afd7ed558ccd
	)
	h := w[0]*m1 ^ w[1]*m2 ^ w[2]*m3 ^ w[3]*m4 ^ w[4]*m5 ^ head*m1
	h ^= h >> 32
	h *= m2
	return h ^ h>>29
}
