package probes

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TextOptions configure WriteText and WriteSummaryText.
type TextOptions struct {
	// Colour adds ANSI colours (for a terminal).
	Colour bool
	// Location is the time zone of a path's time; nil means time.Local.
	Location *time.Location
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiDim    = "\x1b[2m"
)

type painter bool

func (p painter) paint(code, s string) string {
	if !p || s == "" {
		return s
	}
	return code + s + ansiReset
}

func outcomeColour(o Outcome) string {
	switch o {
	case OutcomeForwarded:
		return ansiGreen
	case OutcomeDropped:
		return ansiBold + ansiRed
	case OutcomeLocal:
		return ansiYellow
	case OutcomeReply:
		return ansiCyan
	}
	return ansiDim
}

// WriteText prints one path as a block: a header line (time, netns,
// interface, tuple, TCP flags), one line per hop (time since the first
// hop, function, what happened there), and the outcome.
// A caller writing many paths should keep a TextWriter, which reuses
// its buffer and what it wrote of the hops before.
func WriteText(w io.Writer, p Path, opts TextOptions) error {
	return NewTextWriter(w, opts).WritePath(p)
}

// TextWriter writes paths as WriteText does, building each block in one
// buffer it keeps between paths: lvsdiag trace writes one for every
// traced packet. A hop equal to the one at the same place of an earlier
// path, but for its time, has its text copied, not made again (see
// JSONWriter). It is not safe for concurrent use.
type TextWriter struct {
	w    io.Writer
	opts TextOptions
	buf  []byte
	hops hopCache
}

// NewTextWriter returns a TextWriter that writes to w.
func NewTextWriter(w io.Writer, opts TextOptions) *TextWriter {
	return &TextWriter{w: w, opts: opts}
}

// WritePath writes one path's block.
func (t *TextWriter) WritePath(p Path) error {
	b := t.appendText(t.buf[:0], &p)
	if cap(b) <= maxKeptLine {
		t.buf = b
	} else {
		t.buf = nil
	}
	_, err := t.w.Write(b)
	return err
}

// appendText appends what WriteText prints, building the block in one
// buffer (a trace prints one for every packet).
func (t *TextWriter) appendText(b []byte, p *Path) []byte {
	opts := t.opts
	pt := painter(opts.Colour)
	// The header is never empty: it has the tuple or says it has none.
	if pt {
		b = append(b, ansiBold...)
	}
	b = appendHeader(b, p, opts.Location)
	if pt {
		b = append(b, ansiReset...)
	}
	b = append(b, '\n')
	width := 0
	for i := range p.Hops {
		width = max(width, len(p.Hops[i].Func))
	}
	var first time.Duration
	if len(p.Hops) > 0 {
		first = p.Hops[0].At
	}
	for i := range p.Hops {
		h := &p.Hops[i]
		line := len(b)
		b = append(b, "  "...)
		b = appendSinceFirst(b, h.At-first)
		b = append(b, "  "...)
		// The function, padded as fmt's %-*s pads (in runes); painted
		// unless that is empty, which it is when every Func is.
		paint := pt && width > 0
		if paint {
			b = append(b, ansiCyan...)
		}
		b = append(b, h.Func...)
		for n := utf8.RuneCountInString(h.Func); n < width; n++ {
			b = append(b, ' ')
		}
		if paint {
			b = append(b, ansiReset...)
		}
		b = append(b, "  "...)
		if text, ok := t.hops.lookup(i, h); ok {
			b = append(b, text...)
		} else {
			start := len(b)
			b = appendHopText(b, h)
			t.hops.store(i, h, b[start:])
		}
		end := len(b)
		for end > line && b[end-1] == ' ' {
			end--
		}
		b = append(b[:end], '\n')
	}
	b = append(b, "  => "...)
	b = pt.appendPainted(b, outcomeColour(p.Outcome), string(p.Outcome))
	b = append(b, ": "...)
	b = append(b, p.Why...)
	return append(b, "\n\n"...)
}

func (p painter) appendPainted(b []byte, code, s string) []byte {
	if !p || s == "" {
		return append(b, s...)
	}
	b = append(b, code...)
	b = append(b, s...)
	return append(b, ansiReset...)
}

// appendSinceFirst appends d as "+0.012ms", right-aligned in 10
// columns.
func appendSinceFirst(b []byte, d time.Duration) []byte {
	var num [32]byte
	n := append(num[:0], '+')
	// In whole microseconds with integers, as strconv would round the
	// milliseconds to 3 decimals: formatting a float was half of the
	// text output's time. A tie (500ns over), a negative or an
	// enormous d is left to strconv, which rounds the float's binary
	// value.
	if us, r := d/time.Microsecond, d%time.Microsecond; d >= 0 && d < 1<<50 && r != 500 {
		if r > 500 {
			us++
		}
		n = strconv.AppendInt(n, int64(us/1000), 10)
		frac := us % 1000
		n = append(n, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	} else {
		n = strconv.AppendFloat(n, float64(d)/float64(time.Millisecond), 'f', 3, 64)
	}
	n = append(n, "ms"...)
	for i := len(n); i < 10; i++ {
		b = append(b, ' ')
	}
	return append(b, n...)
}

// appendHeader appends the path's header line (without colour or line
// end): its parts separated by spaces.
func appendHeader(b []byte, p *Path, loc *time.Location) []byte {
	start := len(b)
	sep := func() {
		if len(b) > start {
			b = append(b, ' ')
		}
	}
	if !p.At.IsZero() {
		if loc == nil {
			loc = time.Local
		}
		b = p.At.In(loc).AppendFormat(b, "15:04:05.000000")
	}
	if p.NetNS != 0 {
		sep()
		b = append(b, "netns "...)
		b = strconv.AppendUint(b, uint64(p.NetNS), 10)
	}
	if p.Device != "" {
		sep()
		b = append(b, p.Device...)
	}
	sep()
	if p.Tuple.Protocol != "" && p.Tuple.Dst.Addr().IsValid() {
		b = appendTupleText(b, &p.Tuple)
		if p.TCPFlags != "" {
			b = append(b, " ["...)
			b = append(b, p.TCPFlags...)
			b = append(b, ']')
		}
	} else {
		b = append(b, "(headers not copied)"...)
	}
	if o := p.Outer; o != nil {
		b = append(b, " in "...)
		b = appendTupleText(b, o)
	}
	return b
}

func appendTupleText(b []byte, t *Tuple) []byte {
	b = append(b, t.Protocol...)
	b = append(b, ' ')
	b = appendEndpoint(b, t.Src)
	b = append(b, " -> "...)
	return appendEndpoint(b, t.Dst)
}

// appendEndpoint appends an address with its port, or alone when the
// protocol has no ports (ICMP, an IPIP outer header).
func appendEndpoint(b []byte, ap netip.AddrPort) []byte {
	if ap.Port() == 0 {
		return appendAddr(b, ap.Addr())
	}
	return appendAddrPort(b, ap)
}

// appendAddr and appendAddrPort append what String prints (AppendTo
// appends nothing for the zero value).
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, "invalid IP"...)
	}
	return a.AppendTo(b)
}

func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	if !ap.Addr().IsValid() {
		return append(b, "invalid AddrPort"...)
	}
	return ap.AppendTo(b)
}

// HopText says what happened at a hop, for a person:
// "TCP 192.168.0.100:80 wlc chose 10.0.0.12:80 (weight 3)". It uses the
// probe's Note and adds what the note does not say.
func HopText(h Hop) string { return string(appendHopText(nil, &h)) }

// textParts appends parts separated by ": ".
type textParts struct {
	b    []byte
	more bool
}

// next starts a part.
func (t *textParts) next() {
	if t.more {
		t.b = append(t.b, ": "...)
	}
	t.more = true
}

func (t *textParts) add(s string) {
	t.next()
	t.b = append(t.b, s...)
}

func appendHopText(b []byte, h *Hop) []byte {
	t := textParts{b: b}
	note := h.Note
	switch kindOf(*h) {
	case kindReceive:
		if h.Device != "" {
			t.add("received on ")
			t.b = append(t.b, h.Device...)
		}
	case kindQueue:
		if h.Device != "" {
			t.add("queued on ")
			t.b = append(t.b, h.Device...)
		}
	case kindHook:
		if h.Hook != "" {
			t.add(h.Hook)
		}
		if note != "" {
			t.add(note)
			note = ""
		}
		if h.Func == FuncOutHook && h.Conn != nil {
			t.add("reply of ")
			t.b = appendConnText(t.b, h.Conn)
			t.b = append(t.b, ", source rewritten to "...)
			t.b = appendEndpoint(t.b, h.Conn.Virtual)
		} else if h.Conn != nil {
			t.next()
			t.b = appendConnText(t.b, h.Conn)
		}
	case kindSchedule:
		switch {
		case h.Func == FuncSchedule && h.Service != nil && note != "":
			t.next()
			t.b = appendServiceText(t.b, h.Service)
			t.b = append(t.b, ' ')
			t.b = append(t.b, note...)
			note = ""
		case h.Func == FuncSchedule && h.Service != nil && h.RealServer != nil:
			t.next()
			t.b = appendServiceText(t.b, h.Service)
			if h.Service.Scheduler != "" {
				t.b = append(t.b, ' ')
				t.b = append(t.b, h.Service.Scheduler...)
			}
			t.b = append(t.b, " chose "...)
			t.b = appendAddrPort(t.b, h.RealServer.Address)
			t.b = append(t.b, " (weight "...)
			t.b = strconv.AppendInt(t.b, int64(h.RealServer.Weight), 10)
			t.b = append(t.b, ')')
		case h.Conn != nil:
			if note != "" {
				t.add(note)
				note = ""
			}
			t.next()
			t.b = appendConnText(t.b, h.Conn)
		case h.RealServer != nil && note == "":
			t.add("new connection to ")
			t.b = appendAddrPort(t.b, h.RealServer.Address)
			t.b = append(t.b, " ("...)
			t.b = append(t.b, h.RealServer.Forwarding.Describe()...)
			t.b = append(t.b, ", weight "...)
			t.b = strconv.AppendInt(t.b, int64(h.RealServer.Weight), 10)
			t.b = append(t.b, ')')
		}
	case kindNoDest:
		if h.Service != nil {
			t.next()
			t.b = appendServiceText(t.b, h.Service)
		}
		if note == "" {
			note = "no destination"
		}
	case kindXmit:
		// The connection says what the probe's note says, and more.
		if h.Conn != nil {
			t.next()
			t.b = appendConnText(t.b, h.Conn)
			note = ""
		} else if h.RealServer != nil {
			t.add("to ")
			t.b = appendAddrPort(t.b, h.RealServer.Address)
		}
	case kindDrop:
		t.add("dropped")
		if reason := strings.TrimPrefix(h.DropReason, "SKB_DROP_REASON_"); reason != "" {
			t.b = append(t.b, ": "...)
			t.b = append(t.b, reason...)
		}
		if h.DropLocation != "" {
			t.b = append(t.b, " at "...)
			t.b = append(t.b, h.DropLocation...)
		}
		note = ""
	case kindFree:
		t.add("freed")
	case kindLocal:
		t.add("the local stack took it")
	default:
		if note != "" {
			t.add(note)
			note = ""
		}
		if h.Conn != nil {
			t.next()
			t.b = appendConnText(t.b, h.Conn)
		}
	}
	if note != "" {
		t.add(note)
	}
	if h.Verdict != VerdictNone {
		t.add("-> ")
		t.b = append(t.b, h.Verdict...)
	}
	return t.b
}

// appendServiceText appends what Service.String prints.
func appendServiceText(b []byte, s *Service) []byte {
	if s.FWMark != 0 {
		b = append(b, "FWM "...)
		return strconv.AppendUint(b, uint64(s.FWMark), 10)
	}
	if s.Protocol == "" {
		b = append(b, "IP"...)
	} else {
		b = append(b, s.Protocol...)
	}
	b = append(b, ' ')
	return appendAddrPort(b, s.Address)
}

// appendConnText appends a connection as ipvsadm -lc would describe it:
// "TCP 10.77.0.2:40000 -> 10.77.0.100:80 via 10.77.0.21:80 (direct
// route) ESTABLISHED".
func appendConnText(b []byte, c *Conn) []byte {
	start := len(b)
	b = append(b, c.Protocol...)
	b = append(b, ' ')
	b = appendAddrPort(b, c.Client)
	b = append(b, " -> "...)
	b = appendAddrPort(b, c.Virtual)
	b = append(b, " via "...)
	b = appendAddrPort(b, c.RealServer)
	b = append(b, " ("...)
	b = append(b, c.Forwarding.Describe()...)
	b = append(b, ')')
	if c.State != "" {
		b = append(b, ' ')
		b = append(b, c.State...)
	}
	// No leading space without a protocol (strings.TrimSpace's trim).
	trimmed := bytes.TrimSpace(b[start:])
	return b[:start+copy(b[start:], trimmed)]
}

// WriteSummaryText prints a run's counts: packets by outcome, per real
// server, drops by reason, events lost, and the hops this kernel cannot
// show.
func WriteSummaryText(w io.Writer, s Summary, opts TextOptions) error {
	var b strings.Builder
	pt := painter(opts.Colour)
	fmt.Fprintf(&b, "%s %d packet%s traced", pt.paint(ansiBold, "Summary:"), s.Packets, plural(s.Packets))
	for _, o := range outcomes {
		if n := s.ByOutcome[o]; n > 0 {
			fmt.Fprintf(&b, ", %d %s", n, outcomeNoun(o, n))
		}
	}
	b.WriteString("\n")
	for _, c := range sortedCounts(s.ByRealServer, netip.AddrPort.Compare) {
		fmt.Fprintf(&b, "  to %s: %d\n", c.key, c.n)
	}
	for _, c := range sortedCounts(s.Drops, strings.Compare) {
		fmt.Fprintf(&b, "  %s: %d dropped\n", pt.paint(ansiRed, c.key), c.n)
	}
	lost := fmt.Sprintf("events lost: %d", s.Lost)
	if s.Lost > 0 {
		lost = pt.paint(ansiBold+ansiRed, lost+" (the ring buffer was full: some paths lack hops)")
	}
	if s.Missed > 0 {
		lost += ", " + pt.paint(ansiBold+ansiRed, fmt.Sprintf("probe runs skipped: %d (a probe fired on a CPU where it was already running: some paths lack hops)", s.Missed))
	}
	b.WriteString(lost + "\n")
	if len(s.Unseen) > 0 {
		b.WriteString("not visible on this kernel:\n")
		for _, u := range s.Unseen {
			fmt.Fprintf(&b, "  %s\n", pt.paint(ansiYellow, u))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// outcomes in the order a summary lists them.
var outcomes = []Outcome{OutcomeForwarded, OutcomeReply, OutcomeLocal, OutcomeDropped, OutcomeUnknown}

func outcomeNoun(o Outcome, n int) string {
	switch o {
	case OutcomeLocal:
		return "to the local stack"
	case OutcomeReply:
		if n == 1 {
			return "NAT reply"
		}
		return "NAT replies"
	case OutcomeUnknown:
		return "unknown"
	}
	return string(o)
}

type count[K any] struct {
	key K
	n   int
}

// sortedCounts orders counts most first, then by key.
func sortedCounts[K comparable](m map[K]int, compare func(a, b K) int) []count[K] {
	var out []count[K]
	for k, n := range m {
		out = append(out, count[K]{k, n})
	}
	slices.SortFunc(out, func(a, b count[K]) int { return cmp.Or(cmp.Compare(b.n, a.n), compare(a.key, b.key)) })
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// TraceSchemaVersion is the version of the JSON lines' schema
// (probes/trace.schema.json). Fields are only ever added within a
// version.
const TraceSchemaVersion = 1
