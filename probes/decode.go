package probes

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// rawEvent is struct event of bpf/trace.c as it sits in the ring buffer
// (little-endian; a test checks it against bpf2go's type).
type rawEvent struct {
	TS       uint64
	SKB      uint64
	PrevSKB  uint64
	Location uint64
	Ret      int64
	NetNS    uint32
	Ifindex  uint32
	CPU      uint32
	Reason   uint32
	Fn       uint16
	Flags    uint16
	Hook     uint8
	EntryFn  uint8
	PktLen   uint16
	Ifname   [16]byte
	Msg      [32]byte
	Conn     rawConn
	Dest     rawDest
	Svc      rawSvc
	Pkt      [pktMax]byte
	EntryAgo uint32
}

type rawConn struct {
	Caddr, Vaddr, Daddr [16]byte
	Cport, Vport, Dport uint16
	AF, DAF, Protocol   uint16
	State               uint16
	_                   uint16
	Flags               uint32
}

type rawDest struct {
	Addr      [16]byte
	Port      uint16
	AF        uint16
	Weight    int32
	ConnFlags uint32
}

type rawSvc struct {
	Addr     [16]byte
	Port     uint16
	AF       uint16
	Protocol uint16
	_        uint16
	FWMark   uint32
	Sched    [16]byte
}

const pktMax = 128

// parse fills r from a record of at least rawEventSize bytes, field by
// field at struct event's offsets (a test checks it against
// encoding/binary, which reads the same through reflection, ten times
// slower).
func (r *rawEvent) parse(b []byte) {
	le := binary.LittleEndian
	r.TS, r.SKB, r.PrevSKB, r.Location = le.Uint64(b[0:]), le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:])
	r.Ret = int64(le.Uint64(b[32:]))
	r.NetNS, r.Ifindex, r.CPU, r.Reason = le.Uint32(b[40:]), le.Uint32(b[44:]), le.Uint32(b[48:]), le.Uint32(b[52:])
	r.Fn, r.Flags, r.Hook, r.EntryFn, r.PktLen = le.Uint16(b[56:]), le.Uint16(b[58:]), b[60], b[61], le.Uint16(b[62:])
	copy(r.Ifname[:], b[64:80])
	copy(r.Msg[:], b[80:112])
	c := &r.Conn
	copy(c.Caddr[:], b[112:128])
	copy(c.Vaddr[:], b[128:144])
	copy(c.Daddr[:], b[144:160])
	c.Cport, c.Vport, c.Dport = le.Uint16(b[160:]), le.Uint16(b[162:]), le.Uint16(b[164:])
	c.AF, c.DAF, c.Protocol, c.State = le.Uint16(b[166:]), le.Uint16(b[168:]), le.Uint16(b[170:]), le.Uint16(b[172:])
	c.Flags = le.Uint32(b[176:])
	d := &r.Dest
	copy(d.Addr[:], b[180:196])
	d.Port, d.AF, d.Weight, d.ConnFlags = le.Uint16(b[196:]), le.Uint16(b[198:]), int32(le.Uint32(b[200:])), le.Uint32(b[204:])
	v := &r.Svc
	copy(v.Addr[:], b[208:224])
	v.Port, v.AF, v.Protocol, v.FWMark = le.Uint16(b[224:]), le.Uint16(b[226:]), le.Uint16(b[228:]), le.Uint32(b[232:])
	copy(v.Sched[:], b[236:252])
	copy(r.Pkt[:], b[252:252+pktMax])
	r.EntryAgo = le.Uint32(b[380:])
}

// rawEventSize is the size of one ring buffer record.
var rawEventSize = binary.Size(rawEvent{})

// event.flags, as enum event_flag in bpf/trace.c.
const (
	evExit   = 1
	evConn   = 2
	evDest   = 4
	evSvc    = 8
	evPkt    = 16
	evDrop   = 32
	evNoConn = 64
	evHook   = 128
	evEntry  = 256
)

// decoder turns ring buffer records into Events. Its tables come from
// the running kernel (or fixtures): drop reason names from BTF, symbols
// from /proc/kallsyms.
type decoder struct {
	dropReasons map[uint32]string
	symbols     *Symbols
	// lazySymbols, when symbols is nil, returns them once read (it may
	// wait for the reader).
	lazySymbols func() *Symbols
	packets     packetDecoder

	// raw is the record being decoded, kept between records: the packet
	// decoder's layers point into raw.Pkt, which would move every record
	// to the heap. Nothing an Event holds points into it.
	raw rawEvent
	// The values decoded from the last record, returned again (the same
	// pointer, the same string) when the next record says the same: the
	// hops of one packet, and one connection's packets, repeat them.
	// Events and paths never modify what these point to.
	last struct {
		conn    rawConn
		connOut *Conn
		dest    rawDest
		destOut *RealServer
		svc     rawSvc
		svcOut  *Service
		flags   uint16 // evConn|evDest|evSvc of the last record
	}
	names map[[16]byte]string // interfaces' and schedulers' names
	notes [fnMax]noteMemo
}

// noteMemo is a function's last note and what it was made of.
type noteMemo struct {
	conn   *Conn
	dest   *RealServer
	svc    *Service
	reason string
	note   string
	ok     bool
}

// maxNames bounds the interned names: interfaces come and go (veths).
const maxNames = 1024

// name returns the C string in b, the same string for the same bytes.
func (d *decoder) name(b *[16]byte) string {
	if n, ok := d.names[*b]; ok {
		return n
	}
	if d.names == nil || len(d.names) >= maxNames {
		d.names = make(map[[16]byte]string)
	}
	n := cString(b[:])
	d.names[*b] = n
	return n
}

// decode parses one record. It never panics on short or odd input.
func (d *decoder) decode(rec []byte) (Event, error) {
	r := &d.raw
	if len(rec) < rawEventSize {
		return Event{}, fmt.Errorf("decoding trace record: %d bytes, want %d", len(rec), rawEventSize)
	}
	r.parse(rec)
	fn := fnID(r.Fn)
	if fn == fnNone || fn >= fnMax {
		return Event{}, fmt.Errorf("decoding trace record: unknown function number %d", r.Fn)
	}
	ev := Event{
		SKB:     r.SKB,
		PrevSKB: r.PrevSKB,
		CPU:     r.CPU,
		NetNS:   r.NetNS,
		Hop: Hop{
			Func:   fn.String(),
			At:     time.Duration(r.TS),
			Device: d.name(&r.Ifname),
		},
	}
	h := &ev.Hop
	if r.Flags&evHook != 0 {
		h.Hook = hookName(r.Hook)
	}
	if r.Flags&evEntry != 0 {
		entry := fnID(r.EntryFn)
		if !isHook(entry) {
			return Event{}, fmt.Errorf("decoding trace record: the entry it carries is of function number %d, not a netfilter hook", r.EntryFn)
		}
		ev.Entry = HookEntry{Func: entry.String(), Hook: hookName(r.Hook), At: time.Duration(r.TS - uint64(r.EntryAgo))}
		if entry == fn {
			// The hook's own event: its whole visit (with its verdict),
			// or its entry alone, at the entry's time.
			h.At = ev.Entry.At
		}
	}
	if r.Flags&evExit != 0 && isHook(fn) {
		h.Verdict = verdictOf(r.Ret)
	}
	last := &d.last
	if r.Flags&evConn != 0 {
		if last.flags&evConn == 0 || r.Conn != last.conn {
			last.conn, last.connOut = r.Conn, decodeConn(&r.Conn)
		}
		h.Conn = last.connOut
	}
	if r.Flags&evDest != 0 {
		if last.flags&evDest == 0 || r.Dest != last.dest {
			last.dest, last.destOut = r.Dest, &RealServer{
				Address:    addrPort(r.Dest.AF, r.Dest.Addr, r.Dest.Port),
				Weight:     r.Dest.Weight,
				Forwarding: Forwarding(r.Dest.ConnFlags & 7),
			}
		}
		h.RealServer = last.destOut
	}
	if r.Flags&evSvc != 0 {
		if last.flags&evSvc == 0 || r.Svc != last.svc {
			last.svc, last.svcOut = r.Svc, decodeService(&r.Svc, d.name(&r.Svc.Sched))
		}
		h.Service = last.svcOut
	}
	last.flags |= r.Flags & (evConn | evDest | evSvc)
	if r.Flags&evDrop != 0 {
		h.DropReason = d.dropReason(r.Reason)
		h.DropLocation = d.location(r.Location)
	}
	if r.Flags&evPkt != 0 {
		n := int(r.PktLen)
		if n > pktMax {
			n = pktMax
		}
		ev.Tuple, ev.TCPFlags, ev.Outer = d.packets.decodePacket(r.Pkt[:n])
	}
	h.Note = d.note(fn, r, h)
	return ev, nil
}

// note returns what note returns, again without building it when the
// function's last note was made of the same values. A scheduler's
// message is not remembered (it comes from the record's bytes).
func (d *decoder) note(fn fnID, r *rawEvent, h *Hop) string {
	if fn == fnIPVSSchedulerErr {
		return note(fn, r, h)
	}
	m := &d.notes[fn]
	if m.ok && m.conn == h.Conn && m.dest == h.RealServer && m.svc == h.Service && m.reason == h.DropReason {
		return m.note
	}
	*m = noteMemo{conn: h.Conn, dest: h.RealServer, svc: h.Service, reason: h.DropReason, note: note(fn, r, h), ok: true}
	return m.note
}

func (d *decoder) dropReason(r uint32) string {
	if n, ok := d.dropReasons[r]; ok {
		return n
	}
	return "reason " + strconv.FormatUint(uint64(r), 10)
}

func (d *decoder) location(addr uint64) string {
	if d.symbols == nil && d.lazySymbols != nil {
		d.symbols = d.lazySymbols()
	}
	if d.symbols != nil {
		if s, ok := d.symbols.Describe(addr); ok {
			return s
		}
	}
	return fmt.Sprintf("0x%x", addr)
}

// note says what IPVS decided at this hop, for a person.
func note(fn fnID, r *rawEvent, h *Hop) string {
	switch fn {
	case fnIPVSConnInGet:
		if h.Conn == nil {
			return "no connection"
		}
		return "connection found (" + h.Conn.State + ")"
	case fnIPVSConnOutGet:
		if h.Conn == nil {
			return "no connection for this reply"
		}
		return "reply of connection " + h.Conn.Client.String() + " -> " + h.Conn.Virtual.String() + " (" + h.Conn.State + ")"
	case fnTCPConnSchedule, fnUDPConnSchedule, fnSCTPConnSchedule:
		return "no connection, scheduling"
	case fnIPVSSchedule:
		if h.RealServer == nil {
			return "no real server chosen"
		}
		sched := ""
		if h.Service != nil && h.Service.Scheduler != "" {
			sched = h.Service.Scheduler + " "
		}
		return fmt.Sprintf("%schose %v (weight %d)", sched, h.RealServer.Address, h.RealServer.Weight)
	case fnIPVSConnNew:
		if h.Conn == nil {
			return "no connection created"
		}
		return "new connection (" + h.Conn.Forwarding.Describe() + ")"
	case fnIPVSSchedulerErr:
		msg := cString(r.Msg[:])
		if msg == "" {
			msg = "no destination available"
		}
		return "IPVS found no destination: " + msg
	case fnIPVSLeave:
		return "IPVS could not schedule the packet (ip_vs_leave)"
	case fnKfreeSKB:
		return "dropped: " + h.DropReason
	}
	if isXmit(fn) && h.Conn != nil {
		return h.Conn.Forwarding.Describe() + " to " + h.Conn.RealServer.String()
	}
	return ""
}

func decodeConn(c *rawConn) *Conn {
	proto := protoName(uint8(c.Protocol))
	return &Conn{
		Protocol:   proto,
		Client:     addrPort(c.AF, c.Caddr, c.Cport),
		Virtual:    addrPort(c.AF, c.Vaddr, c.Vport),
		RealServer: addrPort(c.DAF, c.Daddr, c.Dport),
		Forwarding: Forwarding(c.Flags & 7),
		State:      stateName(uint8(c.Protocol), c.State),
		Flags:      c.Flags,
	}
}

func decodeService(s *rawSvc, scheduler string) *Service {
	svc := &Service{Scheduler: scheduler, FWMark: s.FWMark}
	if s.FWMark == 0 {
		svc.Protocol = protoName(uint8(s.Protocol))
		svc.Address = addrPort(s.AF, s.Addr, s.Port)
	}
	return svc
}

const (
	afInet  = 2
	afInet6 = 10
)

func addrPort(af uint16, a [16]byte, port uint16) netip.AddrPort {
	switch af {
	case afInet:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[:4])), port)
	case afInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a), port)
	}
	return netip.AddrPort{}
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func itoa(i int) string { return strconv.Itoa(i) }

var hookNames = [...]string{"PRE_ROUTING", "LOCAL_IN", "FORWARD", "LOCAL_OUT", "POST_ROUTING"}

func hookName(h uint8) string {
	if int(h) < len(hookNames) {
		return hookNames[h]
	}
	return "hook " + itoa(int(h))
}

func verdictOf(ret int64) Verdict {
	switch ret & 0xff { // NF_VERDICT_MASK
	case 0:
		return VerdictDrop
	case 1:
		return VerdictAccept
	case 2:
		return VerdictStolen
	case 3:
		return VerdictQueue
	case 4:
		return VerdictRepeat
	}
	return Verdict("verdict " + strconv.FormatInt(ret, 10))
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "TCP"
	case 17:
		return "UDP"
	case 132:
		return "SCTP"
	case 1:
		return "ICMP"
	case 58:
		return "ICMPv6"
	}
	return "proto " + itoa(int(p))
}

// The protocol states as ipvsadm -lc names them (IP_VS_TCP_S_*,
// IP_VS_UDP_S_*, IP_VS_SCTP_S_* in include/net/ip_vs.h).
var (
	tcpStates  = [...]string{"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK"}
	sctpStates = [...]string{"NONE", "INIT1", "INIT", "COOKIE_SENT", "COOKIE_REPLIED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED", "SHUTDOWN_SENT", "SHUTDOWN_RECEIVED", "SHUTDOWN_ACK_SENT", "REJECTED", "CLOSED"}
)

func stateName(proto uint8, s uint16) string {
	switch proto {
	case 6:
		if int(s) < len(tcpStates) {
			return tcpStates[s]
		}
	case 17:
		if s == 0 {
			return "UDP"
		}
	case 132:
		if int(s) < len(sctpStates) {
			return sctpStates[s]
		}
	}
	return "state " + itoa(int(s))
}

// packetDecoder decodes copied headers without allocating: gopacket's
// layers decoded in place, one set per decoder (the reader decodes
// thousands of events a second).
type packetDecoder struct {
	ip4, inner4 layers.IPv4
	ip6, inner6 layers.IPv6
	tcp         layers.TCP
	tcpHeader   [20]byte
	udp         layers.UDP
	sctp        layers.SCTP
}

// fixedTCPHeader is b's first 20 bytes (zero-padded) with a data offset
// of 5: a TCP header without its options.
func (pd *packetDecoder) fixedTCPHeader(b []byte) []byte {
	h := pd.tcpHeader[:]
	clear(h)
	copy(h, b)
	h[12] = 5<<4 | h[12]&0x0f
	return h
}

// network decodes an IP header into the given layers and returns its
// addresses, protocol and payload.
func (pd *packetDecoder) network(b []byte, v4 *layers.IPv4, v6 *layers.IPv6) (src, dst netip.Addr, proto layers.IPProtocol, payload []byte, ok bool) {
	if len(b) == 0 {
		return
	}
	switch b[0] >> 4 {
	case 4:
		if v4.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
			return
		}
		src, _ = netip.AddrFromSlice(v4.SrcIP.To4())
		dst, _ = netip.AddrFromSlice(v4.DstIP.To4())
		if v4.Flags&layers.IPv4MoreFragments == 0 && v4.FragOffset != 0 {
			return src, dst, v4.Protocol, nil, true // no transport header here
		}
		return src, dst, v4.Protocol, v4.Payload, true
	case 6:
		if v6.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
			return
		}
		src, _ = netip.AddrFromSlice(v6.SrcIP.To16())
		dst, _ = netip.AddrFromSlice(v6.DstIP.To16())
		return src, dst, v6.NextHeader, v6.Payload, true
	}
	return
}

// decodePacket reads the copied headers (from the IP header on) with
// gopacket's layers: the tuple, TCP flags, and for IP-in-IP the outer
// header.
func (pd *packetDecoder) decodePacket(b []byte) (Tuple, string, *Tuple) {
	src, dst, proto, payload, ok := pd.network(b, &pd.ip4, &pd.ip6)
	if !ok {
		return Tuple{}, "", nil
	}
	var outer *Tuple
	if proto == layers.IPProtocolIPv4 || proto == layers.IPProtocolIPv6 {
		isrc, idst, iproto, ipayload, ok := pd.network(payload, &pd.inner4, &pd.inner6)
		if ok {
			outer = &Tuple{Protocol: ipProto(proto), Src: netip.AddrPortFrom(src, 0), Dst: netip.AddrPortFrom(dst, 0)}
			src, dst, proto, payload = isrc, idst, iproto, ipayload
		}
	}
	t := Tuple{Protocol: ipProto(proto), Src: netip.AddrPortFrom(src, 0), Dst: netip.AddrPortFrom(dst, 0)}
	flags := ""
	switch proto {
	case layers.IPProtocolTCP:
		// Only the fixed header: what a trace shows needs no options,
		// and gopacket v1.7.0 panics on some malformed MPTCP options
		// (FuzzDecode), which any client can send.
		if len(payload) >= 14 && pd.tcp.DecodeFromBytes(pd.fixedTCPHeader(payload), gopacket.NilDecodeFeedback) == nil {
			t.Src, t.Dst = netip.AddrPortFrom(src, uint16(pd.tcp.SrcPort)), netip.AddrPortFrom(dst, uint16(pd.tcp.DstPort))
			flags = tcpFlags(&pd.tcp)
		}
	case layers.IPProtocolUDP:
		if pd.udp.DecodeFromBytes(payload, gopacket.NilDecodeFeedback) == nil {
			t.Src, t.Dst = netip.AddrPortFrom(src, uint16(pd.udp.SrcPort)), netip.AddrPortFrom(dst, uint16(pd.udp.DstPort))
		}
	case layers.IPProtocolSCTP:
		if pd.sctp.DecodeFromBytes(payload, gopacket.NilDecodeFeedback) == nil {
			t.Src, t.Dst = netip.AddrPortFrom(src, uint16(pd.sctp.SrcPort)), netip.AddrPortFrom(dst, uint16(pd.sctp.DstPort))
		}
	}
	return t, flags, outer
}

func ipProto(p layers.IPProtocol) string {
	switch p {
	case layers.IPProtocolIPv4:
		return "IPIP"
	case layers.IPProtocolIPv6:
		return "IPv6"
	case layers.IPProtocolGRE:
		return "GRE"
	}
	return protoName(uint8(p))
}

// tcpFlags names a header's flags: "SYN", "FIN|ACK".
func tcpFlags(t *layers.TCP) string {
	i := 0
	for bit, on := range [...]bool{t.SYN, t.FIN, t.RST, t.PSH, t.ACK, t.URG, t.ECE, t.CWR} {
		if on {
			i |= 1 << bit
		}
	}
	return tcpFlagNames[i]
}

// tcpFlagNames holds every combination's name, made once: naming a
// packet's flags is then no allocation.
var tcpFlagNames = func() (names [256]string) {
	order := [...]string{"SYN", "FIN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}
	for i := range names {
		var f []string
		for bit, name := range order {
			if i&(1<<bit) != 0 {
				f = append(f, name)
			}
		}
		names[i] = strings.Join(f, "|")
	}
	return names
}()
