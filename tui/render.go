package tui

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
)

// Level is how a cell should stand out.
type Level uint8

// Levels, from plain to alarming.
const (
	Plain Level = iota
	Dim         // no data, zero
	Good        // up, improving
	Warn        // weight 0 with connections, health unknown
	Alert       // SYN_RECV pile-up, down
)

// Cell is one cell of a rendered table.
type Cell struct {
	Text  string
	Right bool // right-aligned (numbers)
	Level Level
}

// Table is a rendered view: a header and rows of cells. Pure render
// functions build them; the TUI and batch mode show them.
type Table struct {
	Header []Cell
	Rows   [][]Cell
}

func hdr(names ...string) []Cell {
	out := make([]Cell, len(names))
	for i, n := range names {
		out[i] = Cell{Text: n, Right: strings.HasPrefix(n, " ")}
		out[i].Text = strings.TrimLeft(n, " ")
	}
	return out
}

func txt(s string) Cell  { return Cell{Text: s} }
func num(n uint64) Cell  { return Cell{Text: groupDigits(n), Right: true, Level: dimIfZero(n)} }
func rate(n uint64) Cell { return Cell{Text: Human(n), Right: true, Level: dimIfZero(n)} }
func noData() Cell       { return Cell{Text: "-", Right: true, Level: Dim} }
func delta(d int64, have bool) Cell {
	if !have || d == 0 {
		return Cell{Text: "", Right: true, Level: Dim}
	}
	if d > 0 {
		return Cell{Text: "+" + strconv.FormatInt(d, 10), Right: true}
	}
	return Cell{Text: strconv.FormatInt(d, 10), Right: true}
}

func dimIfZero(n uint64) Level {
	if n == 0 {
		return Dim
	}
	return Plain
}

// groupDigits writes 1234567 as 1,234,567.
func groupDigits(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// Human writes a rate in at most 5 characters: 999, 1.2K, 12K, 123K, 1.2M.
func Human(n uint64) string {
	if n < 1000 {
		return strconv.FormatUint(n, 10)
	}
	v := float64(n)
	for _, unit := range []string{"K", "M", "G", "T", "P"} {
		v /= 1000
		if v < 9.95 {
			return strconv.FormatFloat(v, 'f', 1, 64) + unit
		}
		if v < 999.5 {
			return strconv.FormatFloat(v, 'f', 0, 64) + unit
		}
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + "E"
}

// ServiceName is the SERVICE column: "10.0.0.100:80", "[2001:db8::1]:53",
// or a firewall mark ("1", "2 IPv6") beside PRO "FWM".
func ServiceName(k ipvs.ServiceKey) string {
	if k.IsFWMark() {
		s := strconv.FormatUint(uint64(k.FWMark), 10)
		if k.Family == ipvs.IPv6 {
			s += " IPv6"
		}
		return s
	}
	return addrPortString(k.Address, k.Port)
}

func protoName(k ipvs.ServiceKey) string {
	if k.IsFWMark() {
		return "FWM"
	}
	return k.Protocol.String()
}

// ServiceFlags is the FLAGS column: persistence, one-packet scheduling
// and the scheduler's flags, as ipvsadm names them.
func ServiceFlags(s ipvs.Service) string {
	var f []string
	if s.Persistent() {
		p := "persist " + strconv.FormatUint(uint64(s.Timeout), 10) + "s"
		full := 32
		if s.Family == ipvs.IPv6 {
			full = 128
		}
		if s.NetmaskBits != 0 && int(s.NetmaskBits) != full {
			p += " /" + strconv.Itoa(int(s.NetmaskBits))
		}
		f = append(f, p)
	}
	if s.PersistenceEngine != "" {
		f = append(f, "pe "+s.PersistenceEngine)
	}
	if s.Flags&ipvs.FlagOnePacket != 0 {
		f = append(f, "ops")
	}
	sched := []string{"flag-1", "flag-2", "flag-3"}
	if s.Scheduler == "sh" || s.Scheduler == "mh" {
		sched = []string{s.Scheduler + "-fallback", s.Scheduler + "-port", "flag-3"}
	}
	for i, bit := range []ipvs.ServiceFlags{ipvs.SchedFlag1, ipvs.SchedFlag2, ipvs.SchedFlag3} {
		if s.Flags&bit != 0 {
			f = append(f, sched[i])
		}
	}
	return strings.Join(f, ",")
}

// ServiceColumn is a column of the services view, to sort by.
type ServiceColumn int

// Services view sort orders. ServiceByKey is by protocol, address, port.
const (
	ServiceByKey ServiceColumn = iota
	ServiceByActive
	ServiceByInactive
	ServiceByCPS
	ServiceByPPSIn
	ServiceByBPSIn
	ServiceByBPSOut
	numServiceColumns
)

var serviceColumnNames = [numServiceColumns]string{"SERVICE", "ACTIVE", "INACT", "CPS", "PPS IN", "B/S IN", "B/S OUT"}

func (c ServiceColumn) String() string {
	if c >= 0 && c < numServiceColumns {
		return serviceColumnNames[c]
	}
	return "?"
}

func serviceSortValue(c ServiceColumn, s *Service) uint64 {
	switch c {
	case ServiceByActive:
		return s.ActiveConns()
	case ServiceByInactive:
		return s.InactiveConns()
	case ServiceByCPS:
		return s.Stats.CPS
	case ServiceByPPSIn:
		return s.Stats.PPSIn
	case ServiceByBPSIn:
		return s.Stats.BPSIn
	case ServiceByBPSOut:
		return s.Stats.BPSOut
	}
	return 0
}

// SortedServices returns the frame's services in the order asked: by
// key, or by a number, largest first (Desc reverses either).
func SortedServices(f *Frame, by ServiceColumn, desc bool) []*Service {
	out := make([]*Service, len(f.Snap.Services))
	for i := range f.Snap.Services {
		out[i] = &f.Snap.Services[i]
	}
	slices.SortStableFunc(out, func(a, b *Service) int {
		var c int
		if by != ServiceByKey {
			c = cmp.Compare(serviceSortValue(by, b), serviceSortValue(by, a))
		}
		if c == 0 && a.ServiceKey != b.ServiceKey {
			c = 1
			if a.ServiceKey.Less(b.ServiceKey) {
				c = -1
			}
		}
		if desc {
			return -c
		}
		return c
	})
	return out
}

// ServiceRows renders the services view: one row per virtual service,
// in the order given.
func ServiceRows(f *Frame, svcs []*Service) Table {
	t := Table{Header: hdr("PRO", "SERVICE", "NAME", "SCHED", "FLAGS", " RS", " ACTIVE", " ±", " INACT", " ±", " CPS", " PPS IN", " PPS OUT", " B/S IN", " B/S OUT", "NOTE")}
	for _, s := range svcs {
		d, haveDelta := f.Services[s.ServiceKey]
		rsCell := Cell{Text: fmt.Sprintf("%d/%d", s.Up(), len(s.RealServers)), Right: true}
		switch {
		case len(s.RealServers) == 0:
			rsCell.Level = Alert
		case s.Up() == 0:
			rsCell.Level = Alert
		case s.Up() < len(s.RealServers):
			rsCell.Level = Warn
		}
		row := []Cell{
			txt(protoName(s.ServiceKey)), txt(ServiceName(s.ServiceKey)), txt(s.Name), txt(s.Scheduler), txt(ServiceFlags(s.Service)),
			rsCell,
			num(s.ActiveConns()), delta(d.Active, haveDelta),
			num(s.InactiveConns()), delta(d.Inactive, haveDelta),
		}
		if s.HasCounters {
			row = append(row, rate(s.Stats.CPS), rate(s.Stats.PPSIn), rate(s.Stats.PPSOut), rate(s.Stats.BPSIn), rate(s.Stats.BPSOut))
		} else {
			row = append(row, noData(), noData(), noData(), noData(), noData())
		}
		row = append(row, serviceNote(s))
		t.Rows = append(t.Rows, row)
	}
	return t
}

// serviceNote summarises what stands out among a service's real servers.
func serviceNote(s *Service) Cell {
	var notes []string
	lvl := Plain
	for i := range s.RealServers {
		for _, a := range RealServerAlerts(&s.RealServers[i]) {
			notes = append(notes, a.Short+" "+s.RealServers[i].Key().String())
			lvl = max(lvl, a.Level)
		}
	}
	if len(s.RealServers) == 0 {
		notes = append(notes, "no real servers")
		lvl = Alert
	}
	if len(notes) > 2 {
		notes = append(notes[:2], fmt.Sprintf("+%d more", len(notes)-2))
	}
	return Cell{Text: strings.Join(notes, "; "), Level: lvl}
}

// sparkBars are the eight heights of a sparkline.
var sparkBars = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws the last width points of h, scaled to its maximum.
func Sparkline(h []uint64, width int) string {
	if len(h) < 2 {
		return "" // one point has no shape
	}
	if len(h) > width {
		h = h[len(h)-width:]
	}
	var top uint64
	for _, v := range h {
		top = max(top, v)
	}
	var b strings.Builder
	for _, v := range h {
		i := 0
		if top > 0 {
			i = int(v * uint64(len(sparkBars)-1) / top)
		}
		b.WriteRune(sparkBars[i])
	}
	return b.String()
}

// HeaderLines renders the header: who and what, the totals with their
// history, VRRP, and warnings.
func HeaderLines(f *Frame) []string {
	s := f.Snap
	var l1 []string
	name := s.Director
	if name == "" {
		name = "-"
	}
	l1 = append(l1, "director "+name)
	if s.HaveInfo {
		l1 = append(l1, "IPVS "+s.Info.Version.String(), "conn table size "+groupDigits(uint64(s.Info.ConnTableSize)))
	}
	l1 = append(l1, "source "+s.Source, s.Taken.Format("15:04:05"))
	lines := []string{strings.Join(l1, "  ")}

	var l2 []string
	if s.HaveConns {
		l2 = append(l2, fmt.Sprintf("entries %s (%s templates)", groupDigits(uint64(s.ConnEntries)), groupDigits(uint64(s.ConnTemplates))))
	}
	l2 = append(l2, spark("active "+groupDigits(f.ActiveConns), f.ActiveHistory, 20), "inactive "+groupDigits(f.InactiveConns))
	lines = append(lines, strings.Join(l2, "  "))
	if s.HaveTotals || hasCounters(s) {
		t := f.Totals
		lines = append(lines, strings.Join([]string{
			spark("CPS "+Human(t.CPS), f.CPSHistory, 20),
			spark("in "+Human(t.PPSIn)+" pkt/s "+Human(t.BPSIn)+" B/s", f.BPSInHistory, 10),
			spark("out "+Human(t.PPSOut)+" pkt/s "+Human(t.BPSOut)+" B/s", f.BPSOutHistory, 10),
		}, "  "))
	}
	for _, v := range s.VRRP {
		line := fmt.Sprintf("VRRP %s vrid %d on %s: %s prio %d", v.Name, v.VRID, v.Interface, strings.ToUpper(v.State), v.Priority)
		if v.State == "master" {
			line += " holds " + strings.Join(v.VIPs, " ")
		} else {
			if v.Master != "" {
				line += " master " + v.Master
			}
			line += " (VIPs " + strings.Join(v.VIPs, " ") + ")"
		}
		lines = append(lines, line)
	}
	if s.BGP != nil {
		lines = append(lines, bgpHeaderLine(s.BGP))
	}
	for _, w := range s.Warnings {
		lines = append(lines, "! "+w)
	}
	return lines
}

// bgpHeaderLine says what lvsd announces and whether its peers are up:
// "BGP as 65001: announces 192.168.0.100/32; withdrawn 192.168.0.101/32
// (TCP 192.168.0.101:80 has no real server up); peers 10.0.0.1 up".
func bgpHeaderLine(b *statusapi.BGPStatus) string {
	var announced, withdrawn, peers []string
	for _, v := range b.VIPs {
		if v.Announced {
			announced = append(announced, v.Prefix)
		} else {
			withdrawn = append(withdrawn, v.Prefix+" ("+v.Reason+")")
		}
	}
	for _, p := range b.Peers {
		state := "up"
		if !p.Up {
			state = "DOWN (" + p.State + ")"
		}
		peers = append(peers, p.Address+" "+state)
	}
	parts := []string{}
	if b.Phase != "running" {
		parts = append(parts, strings.ToUpper(b.Phase))
	}
	if len(announced) > 0 {
		parts = append(parts, "announces "+strings.Join(announced, " "))
	}
	if len(withdrawn) > 0 {
		parts = append(parts, "withdrawn "+strings.Join(withdrawn, ", "))
	}
	if len(peers) == 0 {
		peers = []string{"none known yet"}
	}
	parts = append(parts, "peers "+strings.Join(peers, ", "))
	return fmt.Sprintf("BGP as %d: %s", b.ASN, strings.Join(parts, "; "))
}

func hasCounters(s *Snapshot) bool {
	return slices.ContainsFunc(s.Services, func(v Service) bool { return v.HasCounters })
}

// spark appends a sparkline of h to label, when h has a shape.
func spark(label string, h []uint64, width int) string {
	if l := Sparkline(h, width); l != "" {
		return label + " " + l
	}
	return label
}

// DropColumns removes the columns whose header is one of names.
func DropColumns(t Table, names ...string) Table {
	var keep []int
	for i, c := range t.Header {
		if !slices.Contains(names, c.Text) {
			keep = append(keep, i)
		}
	}
	pick := func(cells []Cell) []Cell {
		out := make([]Cell, 0, len(keep))
		for _, i := range keep {
			if i < len(cells) {
				out = append(out, cells[i])
			}
		}
		return out
	}
	out := Table{Header: pick(t.Header)}
	for _, r := range t.Rows {
		out.Rows = append(out.Rows, pick(r))
	}
	return out
}
