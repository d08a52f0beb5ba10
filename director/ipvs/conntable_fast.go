package ipvs

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
)

// groupCache is Aggregate's fast path. All entries of one group share the
// text from ToIP to the end of State ("0A000064 0050 0A00020B 0050
// ESTABLISHED"), so it counts lines by that text, with the protocol and
// what it needs of the client (family, port zero), and decodes the text
// once per group instead of once per line. The client's address and port
// are still checked on every line; the rest of the line is checked when
// its text is first seen, by the full parser.
type groupCache struct {
	seed  maphash.Seed
	slots []groupSlot // open addressing, a power of two long
	arena []byte      // the texts of the groups seen
	n     int
}

type groupSlot struct {
	hash     uint64
	head     uint64 // the protocol's name packed, and the client bits
	off, len uint32 // of the text in arena
	count    int    // 0: empty slot
	key      aggKey
}

const (
	headClient6  = 1 << 0 // the client address is IPv6
	headPortZero = 1 << 1 // the client port is 0 (a template, with the right state)
)

func newGroupCache() *groupCache {
	return &groupCache{seed: maphash.MakeSeed(), slots: make([]groupSlot, 1024), arena: make([]byte, 0, 64<<10)}
}

// countLine counts a line and reports true, or reports false for the
// caller to parse the line in full: for a shape the fast path does not
// know, a line it cannot vouch for, or an error to report.
func (g *groupCache) countLine(line []byte, rc *rawConn) bool {
	// Protocol: "TCP", "UDP", "SCTP", "IP", ... up to 7 bytes, packed.
	e := 0
	for e < len(line) && e < 8 && line[e] != ' ' {
		e++
	}
	if e == 0 || e > 7 {
		return false
	}
	var head uint64
	for _, c := range line[:e] {
		head = head<<8 | uint64(c)
	}
	head <<= 8
	i := skipSpaces(line, e)

	// Client address and port, checked on every line.
	switch {
	case i+9 <= len(line) && line[i+8] == ' ':
		if _, ok := hex8(line[i:]); !ok {
			return false
		}
		i += 9
	case i+40 <= len(line) && line[i+39] == ' ':
		if !validAddr6(line[i : i+39]) {
			return false
		}
		head |= headClient6
		i += 40
	default:
		return false
	}
	if i+5 > len(line) || line[i+4] != ' ' {
		return false
	}
	cport, ok := hex4(line[i:])
	if !ok {
		return false
	}
	if cport == 0 {
		head |= headPortZero
	}
	i += 5

	// The group's text: ToIP TPrt DestIP DPrt State.
	start := i
	for range 2 { // virtual, then real server: address and port
		switch {
		case i+9 <= len(line) && line[i+8] == ' ':
			i += 9
		case i+40 <= len(line) && line[i+39] == ' ':
			i += 40
		default:
			return false
		}
		if i+5 > len(line) || line[i+4] != ' ' {
			return false
		}
		i += 5
	}
	end := fieldEnd(line, i)
	if end == i || skipSpaces(line, end) == len(line) { // no state, or no expiry
		return false
	}
	text := line[start:end]

	h := maphash.Bytes(g.seed, text) ^ head*0x9e3779b97f4a7c15
	mask := uint64(len(g.slots) - 1)
	for j := h & mask; ; j = (j + 1) & mask {
		s := &g.slots[j]
		if s.count == 0 {
			// A new group: the full parser checks the line and decodes it.
			if msg, _ := rc.parse(line, formatConn, false); msg != "" {
				return false
			}
			g.arena = append(g.arena, text...)
			*s = groupSlot{hash: h, head: head, off: uint32(len(g.arena) - len(text)), len: uint32(len(text)),
				count: 1, key: rc.aggKey()}
			g.n++
			if 2*g.n > len(g.slots) {
				g.grow()
			}
			return true
		}
		if s.hash == h && s.head == head && bytes.Equal(g.arena[s.off:s.off+s.len], text) {
			s.count++
			return true
		}
	}
}

func (g *groupCache) grow() {
	old := g.slots
	g.slots = make([]groupSlot, 2*len(old))
	mask := uint64(len(g.slots) - 1)
	for _, s := range old {
		if s.count == 0 {
			continue
		}
		j := s.hash & mask
		for g.slots[j].count != 0 {
			j = (j + 1) & mask
		}
		g.slots[j] = s
	}
}

// flush adds the cached counts to t.
func (g *groupCache) flush(t *countTable) {
	for i := range g.slots {
		if s := &g.slots[i]; s.count != 0 {
			t.add(&s.key, s.count)
		}
	}
}

// validAddr6 checks an address as %pI6 prints it, two groups at a time.
func validAddr6(b []byte) bool {
	if len(b) != 39 || b[4] != ':' || b[9] != ':' || b[14] != ':' || b[19] != ':' ||
		b[24] != ':' || b[29] != ':' || b[34] != ':' {
		return false
	}
	for p := 0; p < 40; p += 10 {
		x := uint64(binary.BigEndian.Uint32(b[p:]))<<32 | uint64(binary.BigEndian.Uint32(b[p+5:]))
		if _, ok := hexLanes(x); !ok {
			return false
		}
	}
	return true
}
