package tui

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
)

// FormatTable lays a table out as aligned text, two spaces between
// columns, numbers right-aligned; empty trailing columns are dropped.
func FormatTable(t Table, indent string) string {
	rows := append([][]Cell{t.Header}, t.Rows...)
	widths := make([]int, len(t.Header))
	for _, r := range rows {
		for i, c := range r {
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(c.Text))
			}
		}
	}
	var b strings.Builder
	for _, r := range rows {
		var line strings.Builder
		line.WriteString(indent)
		for i, c := range r {
			if i >= len(widths) || widths[i] == 0 {
				continue
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.Text))
			if c.Right {
				line.WriteString(pad + c.Text)
			} else {
				line.WriteString(c.Text + pad)
			}
			line.WriteString("  ")
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// WriteText prints a frame as lvstop --once --output text does: the
// header, the services, each service's real servers with their
// connection states, and the table's totals by state.
func WriteText(w io.Writer, f *Frame) error {
	var b strings.Builder
	for _, l := range HeaderLines(f) {
		b.WriteString(l + "\n")
	}
	b.WriteString("\n")
	svcs := SortedServices(f, ServiceByKey, false)
	if len(svcs) == 0 {
		b.WriteString("no virtual services\n")
	} else {
		b.WriteString(FormatTable(batchTable(f, ServiceRows(f, svcs)), ""))
	}
	for _, s := range svcs {
		fmt.Fprintf(&b, "\n%s %s", protoName(s.ServiceKey), ServiceName(s.ServiceKey))
		if s.Name != "" {
			fmt.Fprintf(&b, " (%s)", s.Name)
		}
		b.WriteString("\n")
		if len(s.RealServers) == 0 {
			b.WriteString("  no real servers\n")
			continue
		}
		b.WriteString(FormatTable(batchTable(f, RealServerRows(f, s)), "  "))
	}
	if f.Snap.HaveConns {
		fmt.Fprintf(&b, "\nconnection table: %s entries\n", groupDigits(uint64(f.Snap.ConnEntries)))
		if len(f.Snap.ByState) > 0 {
			b.WriteString(FormatTable(StateRows(f.Snap), "  "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// batchTable drops what one snapshot cannot fill: the deltas need a
// previous one.
func batchTable(f *Frame, t Table) Table {
	if f.Seq > 1 {
		return t
	}
	return DropColumns(t, "±")
}

// Report is lvstop --once --output json. The README documents it; add
// fields, never rename or remove them.
type Report struct {
	Taken         time.Time              `json:"taken"`
	Source        string                 `json:"source"`
	Director      string                 `json:"director,omitempty"`
	IPVS          *ReportIPVS            `json:"ipvs"`
	Totals        *ReportStats           `json:"totals"`
	ActiveConns   uint64                 `json:"active_conns"`
	InactiveConns uint64                 `json:"inactive_conns"`
	ConnTable     *ReportConnTable       `json:"connection_table"`
	Services      []ReportService        `json:"services"`
	VRRP          []statusapi.VRRPStatus `json:"vrrp,omitempty"`
	BGP           *statusapi.BGPStatus   `json:"bgp,omitempty"`
	Warnings      []string               `json:"warnings,omitempty"`
}

// ReportIPVS is what IPVS says about itself.
type ReportIPVS struct {
	Version       string `json:"version"`
	ConnTableSize uint32 `json:"conn_table_size"`
}

// ReportStats are counters since the service was added (or zeroed) and
// the kernel's estimated rates, per second.
type ReportStats struct {
	Conns      uint64 `json:"conns"`
	PacketsIn  uint64 `json:"packets_in"`
	PacketsOut uint64 `json:"packets_out"`
	BytesIn    uint64 `json:"bytes_in"`
	BytesOut   uint64 `json:"bytes_out"`
	CPS        uint64 `json:"cps"`
	PPSIn      uint64 `json:"pps_in"`
	PPSOut     uint64 `json:"pps_out"`
	BPSIn      uint64 `json:"bps_in"`
	BPSOut     uint64 `json:"bps_out"`
}

// ReportConnTable is the connection table, aggregated.
type ReportConnTable struct {
	Entries   int                `json:"entries"`
	Templates int                `json:"templates"`
	ByState   []ReportStateCount `json:"by_state"`
}

// ReportStateCount counts entries of one protocol in one state.
type ReportStateCount struct {
	Protocol string `json:"protocol"`
	State    string `json:"state"`
	Template bool   `json:"template"`
	Count    int    `json:"count"`
}

// ReportService is one virtual service.
type ReportService struct {
	Key                string             `json:"key"`
	Protocol           string             `json:"protocol,omitempty"`
	Address            string             `json:"address,omitempty"`
	Port               uint16             `json:"port,omitempty"`
	FWMark             uint32             `json:"fwmark,omitempty"`
	Family             string             `json:"family"`
	Name               string             `json:"name,omitempty"`
	Scheduler          string             `json:"scheduler"`
	Flags              string             `json:"flags,omitempty"`
	PersistenceTimeout uint32             `json:"persistence_timeout,omitempty"`
	RealServersUp      int                `json:"real_servers_up"`
	RealServersTotal   int                `json:"real_servers_total"`
	ActiveConns        uint64             `json:"active_conns"`
	InactiveConns      uint64             `json:"inactive_conns"`
	Stats              *ReportStats       `json:"stats"`
	RealServers        []ReportRealServer `json:"real_servers"`
}

// ReportRealServer is one real server of a service.
type ReportRealServer struct {
	Address         string         `json:"address"`
	Port            uint16         `json:"port"`
	Forwarding      string         `json:"forwarding"`
	Weight          int32          `json:"weight"`
	ActiveConns     uint32         `json:"active_conns"`
	InactiveConns   uint32         `json:"inactive_conns"`
	PersistentConns uint32         `json:"persistent_conns"`
	Stats           *ReportStats   `json:"stats"`
	States          map[string]int `json:"states"`
	Templates       int            `json:"templates"`
	Health          string         `json:"health,omitempty"`
	Why             string         `json:"why,omitempty"`
	Alerts          []string       `json:"alerts"`
}

func reportStats(s ipvs.Stats) *ReportStats {
	return &ReportStats{Conns: s.Conns, PacketsIn: s.PacketsIn, PacketsOut: s.PacketsOut, BytesIn: s.BytesIn, BytesOut: s.BytesOut,
		CPS: s.CPS, PPSIn: s.PPSIn, PPSOut: s.PPSOut, BPSIn: s.BPSIn, BPSOut: s.BPSOut}
}

// NewReport builds the JSON report of a frame.
func NewReport(f *Frame) Report {
	s := f.Snap
	r := Report{Taken: s.Taken.UTC(), Source: s.Source, Director: s.Director, ActiveConns: f.ActiveConns, InactiveConns: f.InactiveConns,
		Services: []ReportService{}, VRRP: s.VRRP, BGP: s.BGP, Warnings: s.Warnings}
	if s.HaveInfo {
		r.IPVS = &ReportIPVS{Version: s.Info.Version.String(), ConnTableSize: s.Info.ConnTableSize}
	}
	if s.HaveTotals || hasCounters(s) {
		r.Totals = reportStats(f.Totals)
	}
	if s.HaveConns {
		ct := &ReportConnTable{Entries: s.ConnEntries, Templates: s.ConnTemplates, ByState: []ReportStateCount{}}
		for k, n := range s.ByState {
			ct.ByState = append(ct.ByState, ReportStateCount{Protocol: ipvs.ProcProtocolName(k.Protocol), State: k.State.String(), Template: k.Template, Count: n})
		}
		sortStateCounts(ct.ByState)
		r.ConnTable = ct
	}
	for _, svc := range SortedServices(f, ServiceByKey, false) {
		rs := ReportService{
			Key: svc.ServiceKey.String(), Family: svc.Family.String(), Name: svc.Name, Scheduler: svc.Scheduler,
			Flags: ServiceFlags(svc.Service), RealServersUp: svc.Up(), RealServersTotal: len(svc.RealServers),
			ActiveConns: svc.ActiveConns(), InactiveConns: svc.InactiveConns(), RealServers: []ReportRealServer{},
		}
		if svc.Persistent() {
			rs.PersistenceTimeout = svc.Timeout
		}
		if svc.IsFWMark() {
			rs.FWMark = svc.FWMark
		} else {
			rs.Protocol, rs.Address, rs.Port = svc.Protocol.String(), svc.Address.String(), svc.Port
		}
		if svc.HasCounters {
			rs.Stats = reportStats(svc.Stats)
		}
		for i := range svc.RealServers {
			r := &svc.RealServers[i]
			out := ReportRealServer{
				Address: r.Address.String(), Port: r.Port, Forwarding: r.Forwarding.String(), Weight: r.Weight,
				ActiveConns: r.ActiveConns, InactiveConns: r.InactiveConns, PersistentConns: r.PersistentConns,
				States: map[string]int{}, Templates: r.Templates, Health: r.Health, Why: r.Why, Alerts: []string{},
			}
			if svc.HasCounters {
				out.Stats = reportStats(r.Stats)
			}
			for st, n := range r.States {
				if n > 0 {
					out.States[st.String()] = n
				}
			}
			for _, a := range RealServerAlerts(r) {
				out.Alerts = append(out.Alerts, a.ID)
			}
			rs.RealServers = append(rs.RealServers, out)
		}
		r.Services = append(r.Services, rs)
	}
	return r
}

func sortStateCounts(s []ReportStateCount) {
	// by template, protocol, state name: stable output for scripts and diffs
	slices.SortFunc(s, func(a, b ReportStateCount) int {
		if a.Template != b.Template {
			if a.Template {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.State, b.State))
	})
}

// WriteJSON prints the frame's report as indented JSON.
func WriteJSON(w io.Writer, f *Frame) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(NewReport(f))
}
