package tui

// The real servers' rows (the drill-down), their alerts and connection
// states, the connection page's rows and the state table.

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
)

// SynRecvPileUp is when a real server's SYN_RECV entries stand out: at
// least SynRecvMin of them, and at least as many as ESTABLISHED. On a
// director SYN_RECV means the client's SYN went to the real server and
// the handshake has not completed through the director: a real server
// that does not answer, or (DR) answers through the wrong path.
const SynRecvMin = 5

// Finding is something about a real server a person should look at.
type Finding struct {
	ID    string // "syn_recv_pileup", "weight0_with_conns", "down"
	Short string // for the NOTE column
	Level Level
}

// RealServerAlerts lists what stands out about a real server.
func RealServerAlerts(r *RealServer) []Finding {
	var out []Finding
	syn, est := r.States[ipvs.StateSynRecv], r.States[ipvs.StateEstablished]
	if syn >= SynRecvMin && syn >= est {
		out = append(out, Finding{ID: "syn_recv_pileup", Short: fmt.Sprintf("SYN_RECV pile-up (%d)", syn), Level: Alert})
	}
	if conns := r.ActiveConns + r.InactiveConns; r.Weight == 0 && conns > 0 {
		out = append(out, Finding{ID: "weight0_with_conns", Short: fmt.Sprintf("weight 0, %d conns", conns), Level: Warn})
	}
	if r.Health == "down" {
		out = append(out, Finding{ID: "down", Short: "down", Level: Alert})
	}
	return out
}

// tcpStates are the drill-down's state columns for TCP services, in the
// order a connection goes through them.
var tcpStates = []ipvs.ConnState{
	ipvs.StateEstablished, ipvs.StateSynRecv, ipvs.StateFinWait, ipvs.StateTimeWait,
	ipvs.StateCloseWait, ipvs.StateLastAck, ipvs.StateClose, ipvs.StateNone,
}

// StateColumns are the connection states the drill-down of a service
// shows: TCP's eight for TCP (and fwmark) services, UDP for UDP,
// ESTABLISHED and CLOSED for SCTP, and any other state an entry is in.
func StateColumns(s *Service) []ipvs.ConnState {
	var cols []ipvs.ConnState
	switch {
	case s.IsFWMark() || s.Protocol == ipvs.TCP:
		cols = slices.Clone(tcpStates)
	case s.Protocol == ipvs.UDP:
		cols = []ipvs.ConnState{ipvs.StateUDP}
	case s.Protocol == ipvs.SCTP:
		cols = []ipvs.ConnState{ipvs.StateEstablished, ipvs.StateSCTPClosed}
	}
	var extra []ipvs.ConnState
	for _, r := range s.RealServers {
		for st, n := range r.States {
			if n > 0 && !slices.Contains(cols, st) && !slices.Contains(extra, st) {
				extra = append(extra, st)
			}
		}
	}
	slices.Sort(extra)
	return append(cols, extra...)
}

// stateHeader abbreviates a state for a column header.
func stateHeader(st ipvs.ConnState) string {
	switch st {
	case ipvs.StateEstablished:
		return "ESTAB"
	case ipvs.StateSynRecv:
		return "SYN_RCV"
	case ipvs.StateCloseWait:
		return "CLS_WAIT"
	}
	return st.String()
}

// RealServerRows renders the drill-down of one service: its real servers
// with forwarding, weight, connection counts, rates and states.
func RealServerRows(f *Frame, s *Service) Table {
	states := StateColumns(s)
	names := []string{"REAL SERVER", "FWD", " WEIGHT", " ACTIVE", " ±", " INACT", " ±", " CPS", " PPS IN", " B/S IN", " B/S OUT"}
	for _, st := range states {
		names = append(names, " "+stateHeader(st))
	}
	names = append(names, " TMPL")
	if f.Snap.HaveHealth {
		names = append(names, "HEALTH")
	}
	names = append(names, "NOTE")
	t := Table{Header: hdr(names...)}
	for i := range s.RealServers {
		r := &s.RealServers[i]
		d, haveDelta := f.RealServers[RealServerID{s.ServiceKey, r.Key()}]
		w := Cell{Text: strconv.Itoa(int(r.Weight)), Right: true}
		if r.Weight == 0 {
			w.Level = Warn
		}
		row := []Cell{
			txt(r.Key().String()), txt(r.Forwarding.String()), w,
			num(uint64(r.ActiveConns)), delta(d.Active, haveDelta),
			num(uint64(r.InactiveConns)), delta(d.Inactive, haveDelta),
		}
		if s.HasCounters {
			row = append(row, rate(r.Stats.CPS), rate(r.Stats.PPSIn), rate(r.Stats.BPSIn), rate(r.Stats.BPSOut))
		} else {
			row = append(row, noData(), noData(), noData(), noData())
		}
		alerts := RealServerAlerts(r)
		for _, st := range states {
			if !f.Snap.HaveConns {
				row = append(row, noData())
				continue
			}
			c := num(uint64(r.States[st]))
			if st == ipvs.StateSynRecv && slices.ContainsFunc(alerts, func(a Finding) bool { return a.ID == "syn_recv_pileup" }) {
				c.Level = Alert
			}
			row = append(row, c)
		}
		if f.Snap.HaveConns {
			row = append(row, num(uint64(r.Templates)))
		} else {
			row = append(row, noData())
		}
		if f.Snap.HaveHealth {
			h := Cell{Text: r.Health}
			switch r.Health {
			case "up":
				h.Level = Good
			case "down":
				h.Level = Alert
			case "":
				h = Cell{Text: "-", Level: Dim}
			default:
				h.Level = Warn
			}
			row = append(row, h)
		}
		var notes []string
		lvl := Plain
		for _, a := range alerts {
			if a.ID == "down" {
				continue // the HEALTH column says it; the note says why
			}
			notes = append(notes, a.Short)
			lvl = max(lvl, a.Level)
		}
		if r.Why != "" {
			notes = append(notes, r.Why)
			lvl = max(lvl, Alert)
		}
		row = append(row, Cell{Text: strings.Join(notes, "; "), Level: lvl})
		t.Rows = append(t.Rows, row)
	}
	return t
}

// ConnRows renders a page of the connection table. Expiry counts down
// from the snapshot: now is when the row is drawn.
func ConnRows(p *ConnPage, taken, now time.Time) Table {
	t := Table{Header: hdr("PRO", "STATE", " EXPIRES", "CLIENT", "VIRTUAL", "REAL SERVER", "")}
	if p == nil {
		return t
	}
	elapsed := now.Sub(taken).Truncate(time.Second)
	for i := range p.Rows {
		c := &p.Rows[i]
		left := max(0, c.Expires-max(0, elapsed))
		st := Cell{Text: c.State.String()}
		switch c.State {
		case ipvs.StateSynRecv:
			st.Level = Warn
		case ipvs.StateEstablished:
			st.Level = Good
		}
		virtual := c.Virtual.String()
		if c.FWMark != 0 {
			virtual = "FWM " + strconv.FormatUint(uint64(c.FWMark), 10)
		}
		var tags []string
		if c.Template {
			tags = append(tags, "template")
		}
		if c.PEName != "" {
			tags = append(tags, c.PEName+" "+c.PEData)
		}
		t.Rows = append(t.Rows, []Cell{
			txt(ipvs.ProcProtocolName(c.Protocol)), st, {Text: Expiry(left), Right: true},
			txt(c.Client.String()), txt(virtual), txt(c.RealServer.String()), {Text: strings.Join(tags, " "), Level: Dim},
		})
	}
	return t
}

// Expiry writes a duration as ipvsadm -lc does: mm:ss, or h:mm:ss.
func Expiry(d time.Duration) string {
	s := int64(d / time.Second)
	if s >= 100*3600 {
		return "never"
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%02d:%02d", s/60, s%60)
}

// StateRows renders the connection table's totals by protocol and state.
func StateRows(s *Snapshot) Table {
	t := Table{Header: hdr("PRO", "STATE", " ENTRIES", "")}
	keys := make([]ipvs.ProtocolState, 0, len(s.ByState))
	for k := range s.ByState {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b ipvs.ProtocolState) int {
		if a.Template != b.Template {
			if a.Template {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(ipvs.ProcProtocolName(a.Protocol), ipvs.ProcProtocolName(b.Protocol)); c != 0 {
			return c
		}
		return cmp.Compare(a.State, b.State)
	})
	for _, k := range keys {
		tag := ""
		if k.Template {
			tag = "templates"
		}
		t.Rows = append(t.Rows, []Cell{txt(ipvs.ProcProtocolName(k.Protocol)), txt(k.State.String()), num(uint64(s.ByState[k])), {Text: tag, Level: Dim}})
	}
	return t
}
