package ipvs

import (
	"bufio"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/netip"
	"strings"
)

// connTableHeader is the first line of /proc/net/ip_vs_conn.
const connTableHeader = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"

// GenerateConnTable writes a synthetic /proc/net/ip_vs_conn with n
// entries, for benchmarks and demos. Lines follow the kernel's format
// (ip_vs_conn_seq_show) as captured from Linux 6.12 in
// testdata/proc/lab, and mix what a busy director shows: IPv4 and IPv6
// TCP in every state, UDP, SCTP, persistence templates of address and
// fwmark services ("IP", the mark in ToIP, ports 0), and SIP templates
// with the Call-ID as PE data. The same seed gives the same table.
func GenerateConnTable(w io.Writer, n int, seed uint64) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.WriteString(connTableHeader); err != nil {
		return err
	}
	g := connGen{rng: rand.New(rand.NewPCG(seed, 0x1f5ca))}
	var line []byte
	for range n {
		line = g.appendLine(line[:0])
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

type connGen struct {
	rng *rand.Rand
}

var (
	genTCPStates = []struct {
		name   string
		weight int
		maxTTL uint64
	}{
		{"ESTABLISHED", 550, 900}, {"TIME_WAIT", 250, 120}, {"FIN_WAIT", 80, 120},
		{"SYN_RECV", 40, 60}, {"CLOSE", 30, 10}, {"CLOSE_WAIT", 20, 60},
		{"LAST_ACK", 10, 30}, {"SYNACK", 10, 120}, {"SYN_SENT", 4, 120},
		{"LISTEN", 4, 120}, {"NONE", 2, 2},
	}
	genSCTPStates = []string{"ESTABLISHED", "INIT1", "INIT", "C-SENT", "C-REPLIED",
		"C-WAIT", "COOKIE", "C-ECHOED", "S-SENT", "S-RECEIVED", "S-ACK-SENT",
		"REJECTED", "CLOSED", "NONE"}
)

func (g *connGen) appendLine(b []byte) []byte {
	r := g.rng.IntN(1000)
	svc := uint32(g.rng.IntN(16))
	rs := uint32(g.rng.IntN(8))
	switch {
	case r < 600: // TCP over IPv4
		state, ttl := g.tcpState()
		return g.appendV4(b, "TCP", g.client4(), g.cport(), 0x0A000064+svc, 80+uint16(svc%2)*363,
			0x0A000200+svc*8+rs+1, 80, state, g.rng.Uint64N(ttl+1), "")
	case r < 750: // UDP over IPv4
		return g.appendV4(b, "UDP", g.client4(), g.cport(), 0x0A000080+svc%4, 53,
			0x0A000300+svc%4*8+rs+1, 53, "UDP", g.rng.Uint64N(301), "")
	case r < 850: // TCP over IPv6
		state, ttl := g.tcpState()
		return g.appendV6(b, "TCP", g.client6(), g.cport(), g.addr6(0xfd00_0000, 0x100+svc%4), 443,
			g.addr6(0xfd00_0002, 0x10+svc%4*8+rs), 443, state, g.rng.Uint64N(ttl+1))
	case r < 880: // SCTP over IPv4
		state := genSCTPStates[g.rng.IntN(len(genSCTPStates))]
		return g.appendV4(b, "SCTP", g.client4(), g.cport(), 0x0A0000A0, 3868,
			0x0A000400+rs+1, 3868, state, g.rng.Uint64N(901), "")
	case r < 920: // templates of persistent TCP services
		state := "ASSURED"
		if g.rng.IntN(10) == 0 {
			state = "NONE"
		}
		return g.appendV4(b, "TCP", g.client4()&0xFFFFFF00, 0, 0x0A000064+svc, 80+uint16(svc%2)*363,
			0x0A000200+svc*8+rs+1, 80, state, g.rng.Uint64N(361), "")
	case r < 950: // templates of fwmark services: the mark in ToIP
		return g.appendV4(b, "IP", g.client4(), 0, 1+svc%3, 0,
			0x0A000500+rs+1, 0, "ASSURED", g.rng.Uint64N(301), "")
	case r < 980: // UDP over IPv6
		return g.appendV6(b, "UDP", g.client6(), g.cport(), g.addr6(0xfd00_0000, 0x53), 53,
			g.addr6(0xfd00_0003, 0x10+rs), 53, "UDP", g.rng.Uint64N(301))
	case r < 990: // SIP over UDP to a service with the SIP persistence engine
		return g.appendV4(b, "UDP", g.client4(), 5060, 0x0A0000C0, 5060,
			0x0A000600+rs+1, 5060, "UDP", g.rng.Uint64N(301), "")
	default: // its templates, which carry the engine's data: the Call-ID
		pe := "sip " + uitoa(g.rng.Uint64N(1<<40)) + "@pc33.example.com"
		return g.appendV4(b, "UDP", g.client4(), 0, 0x0A0000C0, 5060,
			0x0A000600+rs+1, 5060, "ASSURED", g.rng.Uint64N(61), pe)
	}
}

func (g *connGen) tcpState() (string, uint64) {
	w := g.rng.IntN(1000)
	for _, s := range genTCPStates {
		if w < s.weight {
			return s.name, s.maxTTL
		}
		w -= s.weight
	}
	return "ESTABLISHED", 900
}

func (g *connGen) client4() uint32 {
	return 0xC6330000 | uint32(g.rng.IntN(1<<16)) // 198.51.0.0/16
}

func (g *connGen) cport() uint16 { return uint16(1024 + g.rng.IntN(64512)) }

func (g *connGen) client6() netip.Addr {
	return g.addr6(0x2001_0db8, uint32(g.rng.Uint32()))
}

func (g *connGen) addr6(prefix, low uint32) netip.Addr {
	var a [16]byte
	a[0], a[1], a[2], a[3] = byte(prefix>>24), byte(prefix>>16), byte(prefix>>8), byte(prefix)
	a[12], a[13], a[14], a[15] = byte(low>>24), byte(low>>16), byte(low>>8), byte(low)
	return netip.AddrFrom16(a)
}

const upperHex = "0123456789ABCDEF"
const lowerHex = "0123456789abcdef"

func appendHex(b []byte, v uint64, digits int) []byte {
	for i := digits - 1; i >= 0; i-- {
		b = append(b, upperHex[(v>>(uint(i)*4))&0xf])
	}
	return b
}

// appendPI6 appends an address as the kernel's %pI6 prints it.
func appendPI6(b []byte, a netip.Addr) []byte {
	x := a.As16()
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, lowerHex[x[i]>>4], lowerHex[x[i]&0xf], lowerHex[x[i+1]>>4], lowerHex[x[i+1]&0xf])
	}
	return b
}

func appendPadded(b []byte, s string, width int) []byte { // %-Ns
	b = append(b, s...)
	for i := len(s); i < width; i++ {
		b = append(b, ' ')
	}
	return b
}

func appendExpires(b []byte, v uint64) []byte { // %7lu
	d := uitoa(v)
	for n := len(d); n < 7; n++ {
		b = append(b, ' ')
	}
	return append(b, d...)
}

// appendConnLine formats an entry as ip_vs_conn_seq_show() does:
// "%-3s %08X %04X %08X %04X %s %04X %-11s %7lu%s\n", with %pI6 for IPv6
// addresses and " NAME DATA" for a persistence engine.
func appendConnLine(b []byte, rc *rawConn) []byte {
	b = appendPadded(b, ProcProtocolName(rc.proto), 3)
	b = append(b, ' ')
	b = appendRawAddr(b, rc.caddr)
	b = append(b, ' ')
	b = appendHex(b, uint64(rc.cport), 4)
	b = append(b, ' ')
	b = appendRawAddr(b, rc.vaddr)
	b = append(b, ' ')
	b = appendHex(b, uint64(rc.vport), 4)
	b = append(b, ' ')
	b = appendRawAddr(b, rc.daddr)
	b = append(b, ' ')
	b = appendHex(b, uint64(rc.dport), 4)
	b = append(b, ' ')
	b = appendPadded(b, rc.state.String(), 11)
	b = append(b, ' ')
	b = appendExpires(b, rc.expires)
	if len(rc.peName) > 0 {
		b = append(b, ' ')
		b = append(b, rc.peName...)
		b = append(b, ' ')
		b = append(b, rc.peData...)
	}
	return append(b, '\n')
}

func appendRawAddr(b []byte, a rawAddr) []byte {
	if !a.v6 {
		return appendHex(b, a.lo, 8)
	}
	return appendPI6(b, a.addr())
}

func raw4(v uint32) rawAddr { return rawAddr{lo: uint64(v)} }

func raw6(a netip.Addr) rawAddr {
	b := a.As16()
	return rawAddr{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), v6: true}
}

func (g *connGen) appendV4(b []byte, proto string, caddr uint32, cport uint16, vaddr uint32, vport uint16,
	daddr uint32, dport uint16, state string, expires uint64, pe string) []byte {
	rc := rawConn{caddr: raw4(caddr), vaddr: raw4(vaddr), daddr: raw4(daddr),
		cport: cport, vport: vport, dport: dport, expires: expires}
	rc.proto, _ = procProtocol([]byte(proto))
	rc.state, _ = ParseConnState(state)
	if name, data, ok := strings.Cut(pe, " "); ok {
		rc.peName, rc.peData = []byte(name), []byte(data)
	}
	return appendConnLine(b, &rc)
}

func (g *connGen) appendV6(b []byte, proto string, caddr netip.Addr, cport uint16, vaddr netip.Addr, vport uint16,
	daddr netip.Addr, dport uint16, state string, expires uint64) []byte {
	rc := rawConn{caddr: raw6(caddr), vaddr: raw6(vaddr), daddr: raw6(daddr),
		cport: cport, vport: vport, dport: dport, expires: expires}
	rc.proto, _ = procProtocol([]byte(proto))
	rc.state, _ = ParseConnState(state)
	return appendConnLine(b, &rc)
}
