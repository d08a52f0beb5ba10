package probes

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// JSONWriter writes a trace's JSON lines (probes/trace.schema.json): one
// per path and the summary last. It builds each line by appending into
// one buffer it keeps between lines, with no reflection: lvsdiag trace
// --output json writes a line for every traced packet, and
// encoding/json was half of its user-space time per event. The bytes
// are encoding/json's for the types pathJSON and summaryJSON (a test
// holds them equal). It writes a *Conn's object once and copies it while
// the same pointer comes again (a path and its hops share one): a Conn
// must not change after a path holding it was written, and nothing in
// this package changes one. It is not safe for concurrent use.
type JSONWriter struct {
	w    io.Writer
	line []byte
	text []byte // a hop's text, before it is escaped into line
	// conn is the last connection written and its JSON object: a path
	// and its hops share one *Conn (the decoder hands the same one out
	// while it does not change), written once per path, not per hop.
	conn     *Conn
	connJSON []byte
	// hops holds the last path's hops and their members after
	// since_first_ns: the packets of a stream take the same hops, and a
	// hop equal to the one before at its place (but for its time) is
	// copied, not written again. Like a Conn, what a Hop points to must
	// not change once written.
	hops hopCache
}

// hopCache remembers, for each place in a path, the last hop written
// there (its At left out) and the bytes written for it.
type hopCache struct {
	memo []hopMemo
}

// hopMemo is a hop (At left out) and what was written of it; split,
// for a writer that needs it, is where the hop's time goes in bytes.
type hopMemo struct {
	hop   Hop
	bytes []byte
	split int
}

// maxMemoHops bounds the hops remembered: the places of a forwarded
// packet's path, not those of a path with thousands of hops.
const maxMemoHops = 32

// lookup returns what was stored for hop i when it was h but for its
// time.
func (c *hopCache) lookup(i int, h *Hop) ([]byte, bool) {
	b, _, ok := c.lookupSplit(i, h)
	return b, ok
}

// lookupSplit is lookup with the split stored with the bytes.
func (c *hopCache) lookupSplit(i int, h *Hop) ([]byte, int, bool) {
	if i >= len(c.memo) {
		return nil, 0, false
	}
	m := &c.memo[i]
	key := *h
	key.At = 0
	if m.hop != key {
		return nil, 0, false
	}
	return m.bytes, m.split, true
}

// store remembers b, the bytes written for hop i, h.
func (c *hopCache) store(i int, h *Hop, b []byte) { c.storeSplit(i, h, nil, b) }

// storeSplit remembers head and tail as the bytes of hop i, h, split
// between them.
func (c *hopCache) storeSplit(i int, h *Hop, head, tail []byte) {
	if i >= maxMemoHops {
		return
	}
	if i >= len(c.memo) {
		c.memo = append(c.memo, make([]hopMemo, i+1-len(c.memo))...)
	}
	m := &c.memo[i]
	m.hop, m.bytes, m.split = *h, append(append(m.bytes[:0], head...), tail...), len(head)
	m.hop.At = 0
}

// NewJSONWriter returns a JSONWriter that writes to w.
func NewJSONWriter(w io.Writer) *JSONWriter { return &JSONWriter{w: w} }

// maxKeptLine is the largest line buffer a JSONWriter keeps for the next
// line: one path with thousands of hops must not pin its memory for the
// rest of the run.
const maxKeptLine = 1 << 20

// WritePath writes one path as one line.
func (j *JSONWriter) WritePath(p Path) error {
	line, err := j.appendPath(j.line[:0], &p)
	if err != nil {
		return err
	}
	return j.flush(line)
}

// WriteSummary writes a run's counts as one line.
func (j *JSONWriter) WriteSummary(s Summary) error {
	return j.flush(appendSummaryJSON(j.line[:0], &s))
}

func (j *JSONWriter) flush(line []byte) error {
	if cap(line) <= maxKeptLine {
		j.line = line
	} else {
		j.line = nil
	}
	_, err := j.w.Write(line)
	return err
}

// WriteJSON prints one path as one line of JSON (probes/trace.schema.json).
// A caller writing many paths should keep a JSONWriter, which reuses
// its buffer.
func WriteJSON(w io.Writer, p Path) error { return NewJSONWriter(w).WritePath(p) }

// WriteSummaryJSON prints a run's counts as the last line of JSON.
func WriteSummaryJSON(w io.Writer, s Summary) error { return NewJSONWriter(w).WriteSummary(s) }

// jsonObject appends an object's members, writing the commas between
// them.
type jsonObject struct {
	b    []byte
	more bool
}

func openObject(b []byte) jsonObject { return jsonObject{b: append(b, '{')} }

func (o *jsonObject) close() []byte { return append(o.b, '}') }

// key starts a member: a comma if one came before, then "name":.
func (o *jsonObject) key(name string) {
	if o.more {
		o.b = append(o.b, ',')
	}
	o.more = true
	o.b = append(o.b, '"')
	o.b = append(o.b, name...)
	o.b = append(o.b, '"', ':')
}

func (o *jsonObject) str(name, v string) {
	o.key(name)
	o.b = appendJSONString(o.b, v)
}

// strOmit is a string member with omitempty.
func (o *jsonObject) strOmit(name, v string) {
	if v != "" {
		o.str(name, v)
	}
}

func (o *jsonObject) int(name string, v int64) {
	o.key(name)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *jsonObject) uint(name string, v uint64) {
	o.key(name)
	o.b = strconv.AppendUint(o.b, v, 10)
}

// addrPort is an address:port member as netip.AddrPort.String prints it.
func (o *jsonObject) addrPort(name string, ap netip.AddrPort) {
	o.key(name)
	o.b = append(o.b, '"')
	start := len(o.b)
	o.b = closeQuoted(appendAddrPort(o.b, ap), start)
}

// endpoint is a member as endpoint prints it (no port when it is 0).
func (o *jsonObject) endpoint(name string, ap netip.AddrPort) {
	o.key(name)
	o.b = append(o.b, '"')
	start := len(o.b)
	o.b = closeQuoted(appendEndpoint(o.b, ap), start)
}

// closeQuoted ends the JSON string whose unescaped text was appended at
// b[start:], after its opening quote. Addresses need no escaping, unless
// an IPv6 zone holds a quote or a control character: then the text is
// written again, escaped.
func closeQuoted(b []byte, start int) []byte {
	for _, c := range b[start:] {
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			raw := string(b[start:])
			return appendJSONString(b[:start-1], raw)
		}
	}
	return append(b, '"')
}

func (j *JSONWriter) appendPath(b []byte, p *Path) ([]byte, error) {
	o := openObject(b)
	o.str("type", "path")
	o.int("schema_version", TraceSchemaVersion)
	if !p.At.IsZero() {
		at := p.At.UTC()
		// encoding/json refuses what RFC 3339 cannot write: so does this.
		if y := at.Year(); y < 0 || y > 9999 {
			return b, fmt.Errorf("encoding a trace line: the path's time %s has a year outside of [0,9999]", at)
		}
		o.key("time")
		o.b = append(o.b, '"')
		o.b = at.AppendFormat(o.b, time.RFC3339Nano)
		o.b = append(o.b, '"')
	}
	o.uint("netns", uint64(p.NetNS))
	o.str("device", p.Device)
	appendTupleMember(&o, "tuple", &p.Tuple)
	o.strOmit("tcp_flags", p.TCPFlags)
	appendTupleMember(&o, "outer", p.Outer)
	o.str("outcome", string(p.Outcome))
	o.str("why", p.Why)
	appendServiceMember(&o, p.Service)
	appendRealServerMember(&o, p.RealServer)
	j.appendConnMember(&o, p.Conn)
	o.key("hops")
	o.b = append(o.b, '[')
	for i := range p.Hops {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = j.appendHop(o.b, i, &p.Hops[i], p.Hops[0].At)
	}
	o.b = append(o.b, ']')
	return append(o.close(), '\n'), nil
}

func (j *JSONWriter) appendHop(b []byte, i int, h *Hop, first time.Duration) []byte {
	// A hop seen at this place before (but for its time) is its
	// bytes then, its at_ns and since_first_ns written anew between
	// the head (up to "at_ns":) and the tail.
	if memo, split, ok := j.hops.lookupSplit(i, h); ok {
		b = append(b, memo[:split]...)
		b = strconv.AppendInt(b, int64(h.At), 10)
		b = append(b, `,"since_first_ns":`...)
		b = strconv.AppendInt(b, int64(h.At-first), 10)
		return append(b, memo[split:]...)
	}
	start := len(b)
	o := openObject(b)
	o.str("func", h.Func)
	o.key("at_ns")
	head := len(o.b)
	o.b = strconv.AppendInt(o.b, int64(h.At), 10)
	o.int("since_first_ns", int64(h.At-first))
	tail := len(o.b)
	b = j.appendHopTail(o, h)
	j.hops.storeSplit(i, h, b[start:head], b[tail:])
	return b
}

// appendHopTail writes a hop's members after since_first_ns, and ends
// its object.
func (j *JSONWriter) appendHopTail(o jsonObject, h *Hop) []byte {
	o.strOmit("hook", h.Hook)
	o.strOmit("verdict", string(h.Verdict))
	o.strOmit("device", h.Device)
	appendServiceMember(&o, h.Service)
	appendRealServerMember(&o, h.RealServer)
	j.appendConnMember(&o, h.Conn)
	o.strOmit("drop_reason", h.DropReason)
	o.strOmit("drop_location", h.DropLocation)
	o.strOmit("note", h.Note)
	j.text = appendHopText(j.text[:0], h)
	o.key("text")
	o.b = appendJSONString(o.b, j.text)
	return o.close()
}

// appendTupleMember writes what tupleOf would: nothing for a tuple the
// probe did not see.
func appendTupleMember(o *jsonObject, name string, t *Tuple) {
	if t == nil || t.Protocol == "" || !t.Dst.Addr().IsValid() {
		return
	}
	o.key(name)
	m := openObject(o.b)
	m.str("protocol", t.Protocol)
	m.endpoint("src", t.Src)
	m.endpoint("dst", t.Dst)
	o.b = m.close()
}

func appendServiceMember(o *jsonObject, s *Service) {
	if s == nil {
		return
	}
	o.key("service")
	m := openObject(o.b)
	m.strOmit("protocol", s.Protocol)
	if s.Address.IsValid() {
		m.addrPort("address", s.Address)
	}
	if s.FWMark != 0 {
		m.uint("fwmark", uint64(s.FWMark))
	}
	m.strOmit("scheduler", s.Scheduler)
	o.b = m.close()
}

func appendRealServerMember(o *jsonObject, r *RealServer) {
	if r == nil {
		return
	}
	o.key("real_server")
	m := openObject(o.b)
	m.addrPort("address", r.Address)
	m.int("weight", int64(r.Weight))
	m.str("forwarding", r.Forwarding.String())
	o.b = m.close()
}

// appendConnMember writes a connection, from the copy of its object
// kept while the same *Conn comes again. The decoder never changes a
// Conn it handed out, and nor does anything else.
func (j *JSONWriter) appendConnMember(o *jsonObject, c *Conn) {
	if c == nil {
		return
	}
	o.key("conn")
	if c != j.conn {
		j.conn, j.connJSON = c, appendConnJSON(j.connJSON[:0], c)
	}
	o.b = append(o.b, j.connJSON...)
}

func appendConnJSON(b []byte, c *Conn) []byte {
	m := openObject(b)
	m.str("protocol", c.Protocol)
	m.addrPort("client", c.Client)
	m.addrPort("virtual", c.Virtual)
	m.addrPort("real_server", c.RealServer)
	m.str("forwarding", c.Forwarding.String())
	m.strOmit("state", c.State)
	m.uint("flags", uint64(c.Flags))
	return m.close()
}

func appendSummaryJSON(b []byte, s *Summary) []byte {
	o := openObject(b)
	o.str("type", "summary")
	o.int("schema_version", TraceSchemaVersion)
	o.int("packets", int64(s.Packets))
	o.key("by_outcome")
	m := openObject(o.b)
	for _, oc := range [...]Outcome{OutcomeForwarded, OutcomeReply, OutcomeLocal, OutcomeDropped, OutcomeUnknown} {
		m.int(string(oc), int64(s.ByOutcome[oc]))
	}
	o.b = m.close()
	o.key("by_real_server")
	o.b = append(o.b, '[')
	for i, c := range sortedCounts(s.ByRealServer, netip.AddrPort.Compare) {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		m := openObject(o.b)
		m.addrPort("address", c.key)
		m.int("packets", int64(c.n))
		o.b = m.close()
	}
	o.b = append(o.b, ']')
	o.key("drops")
	o.b = append(o.b, '[')
	for i, c := range sortedCounts(s.Drops, strings.Compare) {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		m := openObject(o.b)
		m.str("why", c.key)
		m.int("packets", int64(c.n))
		o.b = m.close()
	}
	o.b = append(o.b, ']')
	o.uint("lost", s.Lost)
	o.uint("missed", s.Missed)
	o.key("unseen")
	o.b = append(o.b, '[')
	for i, u := range s.Unseen {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = appendJSONString(o.b, u)
	}
	o.b = append(o.b, ']')
	return append(o.close(), '\n')
}

// appendJSONString appends s as a JSON string the way encoding/json
// writes it with HTML escaping off: quotes and backslashes escaped,
// control characters as \n, \t, ... or \u00XX, bytes that are not UTF-8
// as \ufffd, and U+2028 and U+2029 (which JavaScript takes for line
// ends) as \u2028 and \u2029.
func appendJSONString[S string | []byte](b []byte, s S) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[done:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			done = i
			continue
		}
		// A rune is at most 4 bytes: converting them alone keeps the
		// []byte form from allocating.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[done:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[done:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	b = append(b, s[done:]...)
	return append(b, '"')
}
