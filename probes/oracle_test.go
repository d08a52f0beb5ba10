package probes

// The writers as they were before they appended into reused buffers:
// fmt for the text and encoding/json for the JSON lines. They are the
// oracles the writers are held byte-identical to (jsonline_test.go), and
// the JSON types below are the schema's Go form.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// WriteText prints one path as a block: a header line (time, netns,
// interface, tuple, TCP flags), one line per hop (time since the first
// hop, function, what happened there), and the outcome.
func oracleWriteText(w io.Writer, p Path, opts TextOptions) error {
	var b strings.Builder
	pt := painter(opts.Colour)
	b.WriteString(pt.paint(ansiBold, oracleHeader(p, opts.Location)) + "\n")
	width := 0
	for _, h := range p.Hops {
		width = max(width, len(h.Func))
	}
	var first time.Duration
	if len(p.Hops) > 0 {
		first = p.Hops[0].At
	}
	for _, h := range p.Hops {
		fn := fmt.Sprintf("%-*s", width, h.Func)
		line := fmt.Sprintf("  %s  %s  %s", oracleSinceFirst(h.At-first), pt.paint(ansiCyan, fn), oracleHopText(h))
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	fmt.Fprintf(&b, "  => %s: %s\n\n", pt.paint(outcomeColour(p.Outcome), string(p.Outcome)), p.Why)
	_, err := io.WriteString(w, b.String())
	return err
}

func oracleSinceFirst(d time.Duration) string {
	return fmt.Sprintf("%10s", fmt.Sprintf("+%.3fms", float64(d)/float64(time.Millisecond)))
}

func oracleHeader(p Path, loc *time.Location) string {
	var parts []string
	if !p.At.IsZero() {
		if loc == nil {
			loc = time.Local
		}
		parts = append(parts, p.At.In(loc).Format("15:04:05.000000"))
	}
	if p.NetNS != 0 {
		parts = append(parts, fmt.Sprintf("netns %d", p.NetNS))
	}
	if p.Device != "" {
		parts = append(parts, p.Device)
	}
	if p.Tuple.Protocol != "" && p.Tuple.Dst.Addr().IsValid() {
		parts = append(parts, oracleTupleText(p.Tuple))
		if p.TCPFlags != "" {
			parts = append(parts, "["+p.TCPFlags+"]")
		}
	} else {
		parts = append(parts, "(headers not copied)")
	}
	if o := p.Outer; o != nil {
		parts = append(parts, "in "+oracleTupleText(*o))
	}
	return strings.Join(parts, " ")
}

func oracleTupleText(t Tuple) string {
	return fmt.Sprintf("%s %s -> %s", t.Protocol, oracleEndpoint(t.Src), oracleEndpoint(t.Dst))
}

// endpoint prints an address with its port, or alone when the protocol
// has no ports (ICMP, an IPIP outer header).
func oracleEndpoint(ap netip.AddrPort) string {
	if ap.Port() == 0 {
		return ap.Addr().String()
	}
	return ap.String()
}

// HopText says what happened at a hop, for a person:
// "TCP 192.168.0.100:80 wlc chose 10.0.0.12:80 (weight 3)". It uses the
// probe's Note and adds what the note does not say.
func oracleHopText(h Hop) string {
	var parts []string
	add := func(format string, args ...any) { parts = append(parts, fmt.Sprintf(format, args...)) }
	note := h.Note
	switch kindOf(h) {
	case kindReceive:
		if h.Device != "" {
			add("received on %s", h.Device)
		}
	case kindQueue:
		if h.Device != "" {
			add("queued on %s", h.Device)
		}
	case kindHook:
		if h.Hook != "" {
			parts = append(parts, h.Hook)
		}
		if note != "" {
			parts = append(parts, note)
			note = ""
		}
		if h.Func == FuncOutHook && h.Conn != nil {
			add("reply of %s, source rewritten to %s", oracleConnText(h.Conn), oracleEndpoint(h.Conn.Virtual))
		} else if h.Conn != nil {
			add("%s", oracleConnText(h.Conn))
		}
	case kindSchedule:
		switch {
		case h.Func == FuncSchedule && h.Service != nil && note != "":
			add("%s %s", h.Service, note)
			note = ""
		case h.Func == FuncSchedule && h.Service != nil && h.RealServer != nil:
			sched := ""
			if h.Service.Scheduler != "" {
				sched = " " + h.Service.Scheduler
			}
			add("%s%s chose %s (weight %d)", h.Service, sched, h.RealServer.Address, h.RealServer.Weight)
		case h.Conn != nil:
			if note != "" {
				parts = append(parts, note)
				note = ""
			}
			add("%s", oracleConnText(h.Conn))
		case h.RealServer != nil && note == "":
			add("new connection to %s (%s, weight %d)", h.RealServer.Address, h.RealServer.Forwarding.Describe(), h.RealServer.Weight)
		}
	case kindNoDest:
		if h.Service != nil {
			parts = append(parts, h.Service.String())
		}
		if note == "" {
			note = "no destination"
		}
	case kindXmit:
		// The connection says what the probe's note says, and more.
		if h.Conn != nil {
			add("%s", oracleConnText(h.Conn))
			note = ""
		} else if h.RealServer != nil {
			add("to %s", h.RealServer.Address)
		}
	case kindDrop:
		reason := strings.TrimPrefix(h.DropReason, "SKB_DROP_REASON_")
		d := "dropped"
		if reason != "" {
			d += ": " + reason
		}
		if h.DropLocation != "" {
			d += " at " + h.DropLocation
		}
		parts = append(parts, d)
		note = ""
	case kindFree:
		parts = append(parts, "freed")
	case kindLocal:
		parts = append(parts, "the local stack took it")
	default:
		if note != "" {
			parts = append(parts, note)
			note = ""
		}
		if h.Conn != nil {
			add("%s", oracleConnText(h.Conn))
		}
	}
	if note != "" {
		parts = append(parts, note)
	}
	if h.Verdict != VerdictNone {
		parts = append(parts, "-> "+string(h.Verdict))
	}
	return strings.Join(parts, ": ")
}

// connText prints a connection as ipvsadm -lc would describe it:
// "TCP 10.77.0.2:40000 -> 10.77.0.100:80 via 10.77.0.21:80 (direct
// route) ESTABLISHED".
func oracleConnText(c *Conn) string {
	s := fmt.Sprintf("%s %s -> %s via %s (%s)", c.Protocol, c.Client, c.Virtual, c.RealServer, c.Forwarding.Describe())
	if c.State != "" {
		s += " " + c.State
	}
	return strings.TrimSpace(s)
}

type pathJSON struct {
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	Time          *time.Time      `json:"time,omitempty"`
	NetNS         uint32          `json:"netns"`
	Device        string          `json:"device"`
	Tuple         *tupleJSON      `json:"tuple,omitempty"`
	TCPFlags      string          `json:"tcp_flags,omitempty"`
	Outer         *tupleJSON      `json:"outer,omitempty"`
	Outcome       Outcome         `json:"outcome"`
	Why           string          `json:"why"`
	Service       *serviceJSON    `json:"service,omitempty"`
	RealServer    *realServerJSON `json:"real_server,omitempty"`
	Conn          *connJSON       `json:"conn,omitempty"`
	Hops          []hopJSON       `json:"hops"`
}

type tupleJSON struct {
	Protocol string `json:"protocol"`
	Src      string `json:"src"`
	Dst      string `json:"dst"`
}

type serviceJSON struct {
	Protocol  string `json:"protocol,omitempty"`
	Address   string `json:"address,omitempty"`
	FWMark    uint32 `json:"fwmark,omitempty"`
	Scheduler string `json:"scheduler,omitempty"`
}

type realServerJSON struct {
	Address    string `json:"address"`
	Weight     int32  `json:"weight"`
	Forwarding string `json:"forwarding"`
}

type connJSON struct {
	Protocol   string `json:"protocol"`
	Client     string `json:"client"`
	Virtual    string `json:"virtual"`
	RealServer string `json:"real_server"`
	Forwarding string `json:"forwarding"`
	State      string `json:"state,omitempty"`
	Flags      uint32 `json:"flags"`
}

type hopJSON struct {
	Func         string          `json:"func"`
	AtNS         int64           `json:"at_ns"`
	SinceFirstNS int64           `json:"since_first_ns"`
	Hook         string          `json:"hook,omitempty"`
	Verdict      Verdict         `json:"verdict,omitempty"`
	Device       string          `json:"device,omitempty"`
	Service      *serviceJSON    `json:"service,omitempty"`
	RealServer   *realServerJSON `json:"real_server,omitempty"`
	Conn         *connJSON       `json:"conn,omitempty"`
	DropReason   string          `json:"drop_reason,omitempty"`
	DropLocation string          `json:"drop_location,omitempty"`
	Note         string          `json:"note,omitempty"`
	Text         string          `json:"text"`
}

func tupleOf(t *Tuple) *tupleJSON {
	if t == nil || t.Protocol == "" || !t.Dst.Addr().IsValid() {
		return nil
	}
	return &tupleJSON{Protocol: t.Protocol, Src: oracleEndpoint(t.Src), Dst: oracleEndpoint(t.Dst)}
}

func serviceOf(s *Service) *serviceJSON {
	if s == nil {
		return nil
	}
	j := &serviceJSON{Protocol: s.Protocol, FWMark: s.FWMark, Scheduler: s.Scheduler}
	if s.Address.IsValid() {
		j.Address = s.Address.String()
	}
	return j
}

func realServerOf(r *RealServer) *realServerJSON {
	if r == nil {
		return nil
	}
	return &realServerJSON{Address: r.Address.String(), Weight: r.Weight, Forwarding: r.Forwarding.String()}
}

func connOf(c *Conn) *connJSON {
	if c == nil {
		return nil
	}
	return &connJSON{Protocol: c.Protocol, Client: c.Client.String(), Virtual: c.Virtual.String(),
		RealServer: c.RealServer.String(), Forwarding: c.Forwarding.String(), State: c.State, Flags: c.Flags}
}

// WriteJSON prints one path as one line of JSON (probes/trace.schema.json).
func oracleWriteJSON(w io.Writer, p Path) error {
	j := pathJSON{Type: "path", SchemaVersion: TraceSchemaVersion, NetNS: p.NetNS, Device: p.Device,
		Tuple: tupleOf(&p.Tuple), TCPFlags: p.TCPFlags, Outer: tupleOf(p.Outer), Outcome: p.Outcome, Why: p.Why,
		Service: serviceOf(p.Service), RealServer: realServerOf(p.RealServer), Conn: connOf(p.Conn), Hops: []hopJSON{}}
	if !p.At.IsZero() {
		at := p.At.UTC()
		j.Time = &at
	}
	for _, h := range p.Hops {
		j.Hops = append(j.Hops, hopJSON{Func: h.Func, AtNS: int64(h.At), SinceFirstNS: int64(h.At - p.Hops[0].At),
			Hook: h.Hook, Verdict: h.Verdict, Device: h.Device, Service: serviceOf(h.Service),
			RealServer: realServerOf(h.RealServer), Conn: connOf(h.Conn), DropReason: h.DropReason,
			DropLocation: h.DropLocation, Note: h.Note, Text: oracleHopText(h)})
	}
	return oracleWriteLine(w, j)
}

type summaryJSON struct {
	Type          string        `json:"type"`
	SchemaVersion int           `json:"schema_version"`
	Packets       int           `json:"packets"`
	ByOutcome     outcomesJSON  `json:"by_outcome"`
	ByRealServer  []rsCountJSON `json:"by_real_server"`
	Drops         []dropJSON    `json:"drops"`
	Lost          uint64        `json:"lost"`
	Missed        uint64        `json:"missed"`
	Unseen        []string      `json:"unseen"`
}

type outcomesJSON struct {
	Forwarded int `json:"forwarded"`
	Reply     int `json:"reply"`
	Local     int `json:"local"`
	Dropped   int `json:"dropped"`
	Unknown   int `json:"unknown"`
}

type rsCountJSON struct {
	Address string `json:"address"`
	Packets int    `json:"packets"`
}

type dropJSON struct {
	Why     string `json:"why"`
	Packets int    `json:"packets"`
}

// WriteSummaryJSON prints a run's counts as the last line of JSON.
func oracleWriteSummaryJSON(w io.Writer, s Summary) error {
	o := s.ByOutcome
	j := summaryJSON{Type: "summary", SchemaVersion: TraceSchemaVersion, Packets: s.Packets, Lost: s.Lost, Missed: s.Missed,
		ByOutcome:    outcomesJSON{o[OutcomeForwarded], o[OutcomeReply], o[OutcomeLocal], o[OutcomeDropped], o[OutcomeUnknown]},
		ByRealServer: []rsCountJSON{}, Drops: []dropJSON{}, Unseen: []string{}}
	for _, c := range sortedCounts(s.ByRealServer, netip.AddrPort.Compare) {
		j.ByRealServer = append(j.ByRealServer, rsCountJSON{c.key.String(), c.n})
	}
	for _, c := range sortedCounts(s.Drops, strings.Compare) {
		j.Drops = append(j.Drops, dropJSON{c.key, c.n})
	}
	j.Unseen = append(j.Unseen, s.Unseen...)
	return oracleWriteLine(w, j)
}

func oracleWriteLine(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding a trace line: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}
