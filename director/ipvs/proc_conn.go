package ipvs

import (
	"encoding/binary"
	"io"
	"math"
	"net/netip"
	"time"
)

// Connection is one entry of the IPVS connection table, as
// /proc/net/ip_vs_conn (or ip_vs_conn_sync) lists it.
//
// Persistence templates are entries too: their client port is 0 and
// their client address is the client network (address & persistence
// mask). A template of a fwmark service has protocol "IP" (0) and shows
// the mark where other entries show the virtual address.
type Connection struct {
	// Protocol is TCP, UDP or SCTP; 0 for a fwmark template ("IP");
	// ICMP, ICMPv6, IPIP and GRE and "IP_n" by number.
	Protocol Protocol
	// Client is the client's address and port (FromIP, FPrt).
	Client netip.AddrPort
	// Virtual is the virtual address and port (ToIP, TPrt); the address
	// is invalid for a fwmark template, which has FWMark instead.
	Virtual netip.AddrPort
	// FWMark is the firewall mark of a fwmark service's template.
	FWMark uint32
	// RealServer is the real server's address and port (DestIP, DPrt).
	// Its family can differ from the client's (a tunnel real server).
	RealServer netip.AddrPort
	// State is the protocol state; for templates NONE or ASSURED.
	State ConnState
	// Expires is the time until the entry expires, in whole seconds.
	// The kernel prints a huge number for an entry whose timer already
	// ran; that saturates to the largest Duration.
	Expires time.Duration
	// Template is set for persistence templates.
	Template bool
	// PEName and PEData are the persistence engine ("sip") and its data
	// (the SIP Call-ID); empty without one. Only ip_vs_conn shows them.
	PEName, PEData string
	// Synced is set for entries created by the sync daemon (Origin SYNC);
	// only ip_vs_conn_sync shows it.
	Synced bool
}

// Family returns the family of the connection's client side.
func (c *Connection) Family() Family { return FamilyOf(c.Client.Addr()) }

// Active reports whether the kernel counts the entry in its real
// server's ActiveConn (else in InActConn; templates in neither): TCP in
// ESTABLISHED, SYN_SENT, SYN_RECV or SYNACK (tcp_state_active_table in
// ip_vs_proto_tcp.c), SCTP in ESTABLISHED; UDP entries never. The 6.12
// capture in testdata/proc/lab agrees with ip_vs's counts.
func (c *Connection) Active() bool {
	if c.Template {
		return false
	}
	switch c.Protocol {
	case TCP:
		switch c.State {
		case StateEstablished, StateSynSent, StateSynRecv, StateSynAck:
			return true
		}
	case SCTP:
		return c.State == StateEstablished
	}
	return false
}

// connFormat tells ip_vs_conn from ip_vs_conn_sync.
type connFormat uint8

const (
	formatConn     connFormat = iota // ... State Expires [PEName PEData]
	formatConnSync                   // ... State Origin Expires
)

// ScanConnections parses /proc/net/ip_vs_conn from r and calls fn for
// each entry, in file order, with a Connection that is reused: copy it
// to keep it. It stops at the first malformed line (a *ParseError naming
// the line) or at the first error fn returns, which it returns as is.
// It holds one line at a time, so it suits tables of millions of entries.
func ScanConnections(r io.Reader, fn func(*Connection) error) error {
	return scanConnections(r, "ip_vs_conn", formatConn, fn)
}

// ScanConnectionsSync is ScanConnections for /proc/net/ip_vs_conn_sync,
// which has an Origin column (Connection.Synced) and no PE columns.
func ScanConnectionsSync(r io.Reader, fn func(*Connection) error) error {
	return scanConnections(r, "ip_vs_conn_sync", formatConnSync, fn)
}

// ParseConnections parses a whole /proc/net/ip_vs_conn into a slice.
// Prefer ScanConnections or Aggregate for large tables.
func ParseConnections(r io.Reader) ([]Connection, error) {
	var out []Connection
	err := ScanConnections(r, func(c *Connection) error {
		out = append(out, *c)
		return nil
	})
	return out, err
}

// ReadConnections reads root/proc/net/ip_vs_conn into a slice. A missing
// file gives an error wrapping ErrIPVSUnavailable and fs.ErrNotExist.
func ReadConnections(root string) ([]Connection, error) {
	var out []Connection
	err := ScanConnectionsFile(root, func(c *Connection) error {
		out = append(out, *c)
		return nil
	})
	return out, err
}

// ScanConnectionsFile streams root/proc/net/ip_vs_conn through fn, as
// ScanConnections does.
func ScanConnectionsFile(root string, fn func(*Connection) error) error {
	f, path, err := openProc(root, ProcConn)
	if err != nil {
		return err
	}
	defer f.Close()
	return scanConnections(f, path, formatConn, fn)
}

// ReadConnectionsSync reads root/proc/net/ip_vs_conn_sync into a slice.
func ReadConnectionsSync(root string) ([]Connection, error) {
	f, path, err := openProc(root, ProcConnSync)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Connection
	err = scanConnections(f, path, formatConnSync, func(c *Connection) error {
		out = append(out, *c)
		return nil
	})
	return out, err
}

func scanConnections(r io.Reader, file string, format connFormat, fn func(*Connection) error) error {
	lr := newLineReader(r, file, 256<<10)
	var (
		c  Connection
		rc rawConn
	)
	for {
		line, ok := lr.next()
		if !ok {
			return lr.err
		}
		if skipConnLine(line, lr.line) {
			continue
		}
		if msg, bad := rc.parse(line, format, true); msg != "" {
			return connLineErr(file, lr.line, msg, bad)
		}
		rc.toConnection(&c)
		if err := fn(&c); err != nil {
			return err
		}
	}
}

// skipConnLine reports the header and blank lines.
func skipConnLine(line []byte, n int) bool {
	if len(line) == 0 {
		return true
	}
	return n == 1 && len(line) >= 4 && string(line[:4]) == "Pro "
}

func connLineErr(file string, line int, msg string, bad []byte) error {
	if bad == nil {
		return parseErr(file, line, "%s", msg)
	}
	return parseErr(file, line, "%s %s", msg, quote(bad))
}

// rawAddr is an address as the connection table prints it: an IPv4
// address in lo, or an IPv6 address in hi and lo.
type rawAddr struct {
	hi, lo uint64
	v6     bool
}

func (a rawAddr) addr() netip.Addr {
	if !a.v6 {
		v := uint32(a.lo)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	var b [16]byte
	for i := range 8 {
		b[i] = byte(a.hi >> (56 - 8*i))
		b[8+i] = byte(a.lo >> (56 - 8*i))
	}
	return netip.AddrFrom16(b)
}

// rawConn is one parsed line before it becomes a Connection: the
// aggregation counts these without building netip values.
type rawConn struct {
	caddr, vaddr, daddr rawAddr
	cport, vport, dport uint16
	proto               Protocol
	state               ConnState
	synced              bool
	expires             uint64
	peName, peData      []byte // slices of the line
}

func (rc *rawConn) template() bool {
	return rc.cport == 0 && (rc.proto == ProtoIP || rc.state == StateNone || rc.state == StateAssured)
}

// fwmark returns the mark of a fwmark template: ip_vs_sched_persist()
// puts it where the virtual address goes, in the first 32 bits, in
// network order.
func (rc *rawConn) fwmark() uint32 {
	if rc.proto != ProtoIP || !rc.template() {
		return 0
	}
	if rc.vaddr.v6 {
		return uint32(rc.vaddr.hi >> 32)
	}
	return uint32(rc.vaddr.lo)
}

func (rc *rawConn) toConnection(c *Connection) {
	c.Protocol = rc.proto
	c.Client = netip.AddrPortFrom(rc.caddr.addr(), rc.cport)
	c.RealServer = netip.AddrPortFrom(rc.daddr.addr(), rc.dport)
	c.State = rc.state
	c.Template = rc.template()
	c.FWMark = rc.fwmark()
	if c.FWMark != 0 {
		c.Virtual = netip.AddrPortFrom(netip.Addr{}, rc.vport)
	} else {
		c.Virtual = netip.AddrPortFrom(rc.vaddr.addr(), rc.vport)
	}
	if rc.expires > math.MaxInt64/uint64(time.Second) {
		c.Expires = math.MaxInt64
	} else {
		c.Expires = time.Duration(rc.expires) * time.Second
	}
	c.Synced = rc.synced
	switch {
	case len(rc.peName) == 0:
		c.PEName = ""
	case string(rc.peName) == "sip":
		c.PEName = "sip"
	default:
		c.PEName = string(rc.peName)
	}
	c.PEData = string(rc.peData)
}

// hex4 and hex8 parse exactly four and eight hex digits (either case)
// eight lanes at a time in a uint64, without branches per digit.
func hex4(b []byte) (uint16, bool) {
	if len(b) < 4 {
		return 0, false
	}
	x := uint64(binary.BigEndian.Uint32(b))
	v, ok := hexLanes(x | 0x3030303000000000) // pad the high lanes with '0'
	return uint16(v), ok
}

func hex8(b []byte) (uint32, bool) {
	if len(b) < 8 {
		return 0, false
	}
	return hexLanes(binary.BigEndian.Uint64(b))
}

// hexLanes decodes eight ASCII hex digits held big-endian in x.
func hexLanes(x uint64) (uint32, bool) {
	const ones = 0x0101010101010101
	ok := hexMask(x) == 0x8080808080808080
	// Convert: a digit's value is its low nibble; a letter's is its low
	// nibble plus 9 (bit 6 tells letters from digits).
	v := x&(0x0f*ones) + 9*((x>>6)&ones)
	// Pack the eight nibbles into 32 bits.
	v = (v | v>>4) & 0x00ff00ff00ff00ff
	v = (v | v>>8) & 0x0000ffff0000ffff
	v = (v | v>>16) & 0xffffffff
	return uint32(v), ok
}

// hexMask has a byte's high bit set iff the byte is a hex digit.
func hexMask(x uint64) uint64 {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	// With the high bits clear, adding (0x80-k) to a byte sets its high
	// bit iff byte >= k, with no carry into the next byte.
	low7 := x &^ high
	lower := low7 | 0x20*ones
	isDigit := (low7 + (0x80-'0')*ones) &^ (low7 + (0x80-'9'-1)*ones)
	isLetter := (lower + (0x80-'a')*ones) &^ (lower + (0x80-'f'-1)*ones)
	return (isDigit | isLetter) &^ x & high
}

// parseRawAddr parses the address at the start of b, which the kernel
// prints as 8 hex digits (IPv4) or as %pI6: 8 groups of 4 hex digits
// (IPv6). It returns the address and its length.
func parseRawAddr(b []byte) (rawAddr, int, bool) {
	if len(b) >= 9 && b[8] == ' ' {
		v, ok := hex8(b)
		return rawAddr{lo: uint64(v)}, 8, ok
	}
	if len(b) < 39 || (len(b) > 39 && b[39] != ' ') {
		return rawAddr{}, 0, false
	}
	var a rawAddr
	a.v6 = true
	for g := range 8 {
		p := g * 5
		if g < 7 && b[p+4] != ':' {
			return rawAddr{}, 0, false
		}
		v, ok := hex4(b[p:])
		if !ok {
			return rawAddr{}, 0, false
		}
		if g < 4 {
			a.hi = a.hi<<16 | uint64(v)
		} else {
			a.lo = a.lo<<16 | uint64(v)
		}
	}
	return a, 39, true
}

// skipSpaces returns the index of the first non-space at or after i.
func skipSpaces(line []byte, i int) int {
	for i < len(line) && line[i] == ' ' {
		i++
	}
	return i
}

// fieldEnd returns the index of the first space at or after i.
func fieldEnd(line []byte, i int) int {
	for i < len(line) && line[i] != ' ' {
		i++
	}
	return i
}

// parse fills rc from one line. On error it returns a message and the
// offending field (nil when a field is missing). It does not allocate.
// With full unset it skips the client address and the expiry, which the
// aggregation does not need.
func (rc *rawConn) parse(line []byte, format connFormat, full bool) (string, []byte) {
	e := fieldEnd(line, 0)
	proto, ok := procProtocol(line[:e])
	if !ok {
		if e == 0 {
			return "missing protocol", nil
		}
		return "unknown protocol", line[:e]
	}
	rc.proto = proto

	i := skipSpaces(line, e)
	var n int
	if rc.caddr, n, ok = parseRawAddr(line[i:]); !ok {
		return "bad client address", line[i:fieldEnd(line, i)]
	}
	i += n + 1
	if rc.cport, ok = port(line, i); !ok {
		return "bad client port", line[min(i, len(line)):fieldEnd(line, min(i, len(line)))]
	}
	i += 5
	if rc.vaddr, n, ok = parseRawAddr(line[min(i, len(line)):]); !ok {
		return "bad virtual address", line[min(i, len(line)):fieldEnd(line, min(i, len(line)))]
	}
	if rc.vaddr.v6 != rc.caddr.v6 {
		return "virtual address family differs from client's", line[i : i+n]
	}
	i += n + 1
	if rc.vport, ok = port(line, i); !ok {
		return "bad virtual port", line[min(i, len(line)):fieldEnd(line, min(i, len(line)))]
	}
	i += 5
	if rc.daddr, n, ok = parseRawAddr(line[min(i, len(line)):]); !ok {
		return "bad real server address", line[min(i, len(line)):fieldEnd(line, min(i, len(line)))]
	}
	i += n + 1
	if rc.dport, ok = port(line, i); !ok {
		return "bad real server port", line[min(i, len(line)):fieldEnd(line, min(i, len(line)))]
	}
	i += 5
	return rc.parseAfterAddresses(line, i, format, full)
}

// parseAfterAddresses fills rc from line[i:], what follows the real
// server's port: the state, the origin (the sync format's LOCAL or SYNC),
// the expiry and the persistence engine. It returns as parse does.
func (rc *rawConn) parseAfterAddresses(line []byte, i int, format connFormat, full bool) (string, []byte) {
	if i > len(line) {
		return "missing state", nil
	}
	e := fieldEnd(line, i)
	if e == i {
		return "missing state", nil
	}
	rc.state, _ = connStateOf(line[i:e])

	rc.synced = false
	if format == formatConnSync {
		i = skipSpaces(line, e)
		e = fieldEnd(line, i)
		switch string(line[i:e]) {
		case "LOCAL":
		case "SYNC":
			rc.synced = true
		default:
			return "bad origin (want LOCAL or SYNC)", line[i:e]
		}
	}

	i = skipSpaces(line, e)
	e = fieldEnd(line, i)
	if e == i {
		return "missing expiry", nil
	}
	if full {
		var ok bool
		if rc.expires, ok = parseDec(line[i:e]); !ok {
			return "bad expiry seconds", line[i:e]
		}
	}

	rc.peName, rc.peData = nil, nil
	if skipSpaces(line, e) < len(line) {
		if format == formatConnSync {
			i = skipSpaces(line, e)
			if i < len(line) {
				return "unexpected field after expiry", line[i:fieldEnd(line, i)]
			}
			return "", nil
		}
		// " %s %s": the engine's name, then its data up to the end.
		i = e + 1
		e = fieldEnd(line, i)
		rc.peName = line[i:e]
		if e < len(line) {
			rc.peData = line[e+1:]
		}
	}
	return "", nil
}

// port parses the 4 hex digits of a port at line[i:], which must be
// followed by a space or the end of the line.
func port(line []byte, i int) (uint16, bool) {
	if i+4 > len(line) || (i+4 < len(line) && line[i+4] != ' ') {
		return 0, false
	}
	return hex4(line[i:])
}
