package ipvs

import (
	"bytes"
	"encoding/binary"
)

// groupCache is Aggregate's fast path. All entries of one group share the
// text from ToIP to the end of State ("0A000064 0050 0A00020B 0050
// ESTABLISHED"), so it counts lines by that text, with the protocol and
// what it needs of the client (family, port zero), and decodes the text
// once per group instead of once per line. The client's address and port
// are still checked on every line; the rest of the line is checked when
// its text is first seen, by the full parser.
//
// The lookup touches only small, dense arrays (index, groups, arena: a
// few hundred KiB for thousands of groups), which stay in the CPU's
// cache; a table of whole slots did not.
type groupCache struct {
	index  []uint32 // open addressing: a group's number + 1, or 0; a power of two long
	groups []groupEntry
	keys   []aggKey // the decoded groups, by number
	arena  []byte   // the groups' texts
	fixed  *fixedCache
}

type groupEntry struct {
	hash     uint64
	head     uint64 // the protocol's name packed, and the client bits
	off, len uint32 // of the text in arena
	count    int
}

const (
	headClient6  = 1 << 0 // the client address is IPv6
	headPortZero = 1 << 1 // the client port is 0 (a template, with the right state)
)

func newGroupCache() *groupCache {
	return &groupCache{index: make([]uint32, 1024), arena: make([]byte, 0, 16<<10), fixed: newFixedCache()}
}

// groupKey reads what groups a line: its protocol and the client's
// address family and zero port packed in head, and the text from the
// virtual address to the state; ok is false for a line the fast path
// cannot vouch for.
func groupKey(line []byte) (head uint64, text []byte, ok bool) {
	// Protocol: "TCP", "UDP", "SCTP", "IP", ... up to 7 bytes, packed.
	e := 0
	for e < len(line) && e < 8 && line[e] != ' ' {
		e++
	}
	if e == 0 || e > 7 {
		return 0, nil, false
	}
	for _, c := range line[:e] {
		head = head<<8 | uint64(c)
	}
	head <<= 8
	i := skipSpaces(line, e)

	// Client address and port, checked on every line.
	switch {
	case i+9 <= len(line) && line[i+8] == ' ':
		if _, ok := hex8(line[i:]); !ok {
			return 0, nil, false
		}
		i += 9
	case i+40 <= len(line) && line[i+39] == ' ':
		if !validAddr6(line[i : i+39]) {
			return 0, nil, false
		}
		head |= headClient6
		i += 40
	default:
		return 0, nil, false
	}
	if i+5 > len(line) || line[i+4] != ' ' {
		return 0, nil, false
	}
	cport, ok := hex4(line[i:])
	if !ok {
		return 0, nil, false
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
			return 0, nil, false
		}
		if i+5 > len(line) || line[i+4] != ' ' {
			return 0, nil, false
		}
		i += 5
	}
	// The state, padded to 11 by the kernel ("%-11s "), then the expiry:
	// the line must not end before it, nor end in a space.
	end := i + 11
	if end+1 >= len(line) || line[end] != ' ' || line[i] == ' ' || line[len(line)-1] == ' ' {
		return 0, nil, false
	}
	return head, line[start:end], true
}

// countLine counts a line and reports true, or reports false for the
// caller to parse the line in full: for a shape the fast path does not
// know, a line it cannot vouch for, or an error to report.
func (g *groupCache) countLine(line []byte, rc *rawConn) bool {
	head, text, ok := groupKey(line)
	if !ok {
		return false
	}
	h := hashText(text, head)
	mask := uint64(len(g.index) - 1)
	for j := h & mask; ; j = (j + 1) & mask {
		n := g.index[j]
		if n == 0 {
			// A new group: the full parser checks the line and decodes it.
			if msg, _ := rc.parse(line, formatConn, false); msg != "" {
				return false
			}
			g.arena = append(g.arena, text...)
			g.groups = append(g.groups, groupEntry{hash: h, head: head,
				off: uint32(len(g.arena) - len(text)), len: uint32(len(text)), count: 1})
			g.keys = append(g.keys, rc.aggKey())
			g.index[j] = uint32(len(g.groups))
			if 2*len(g.groups) > len(g.index) {
				g.grow()
			}
			return true
		}
		e := &g.groups[n-1]
		if e.hash == h && e.head == head && bytes.Equal(g.arena[e.off:e.off+e.len], text) {
			e.count++
			return true
		}
	}
}

func (g *groupCache) grow() {
	g.index = make([]uint32, 2*len(g.index))
	mask := uint64(len(g.index) - 1)
	for n, e := range g.groups {
		j := e.hash & mask
		for g.index[j] != 0 {
			j = (j + 1) & mask
		}
		g.index[j] = uint32(n + 1)
	}
}

// flush adds the cached counts to t.
func (g *groupCache) flush(t *countTable) {
	t.reserve(len(g.groups) + len(g.fixed.v4.entries) + len(g.fixed.v6.entries))
	g.fixed.flush(t)
	for n := range g.groups {
		t.add(&g.keys[n], g.groups[n].count)
	}
}

// hashText hashes a group's text (at least 8 bytes) and head, a word at
// a time.
func hashText(text []byte, head uint64) uint64 {
	const m = 0x9e3779b97f4a7c15
	h := head * m
	for b := text; len(b) > 8; b = b[8:] {
		h = (h ^ binary.LittleEndian.Uint64(b)) * m
		h ^= h >> 32
	}
	h = (h ^ binary.LittleEndian.Uint64(text[len(text)-8:])) * m
	return h ^ h>>29
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
