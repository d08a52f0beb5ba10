package diag

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteVRRPReport prints the census and its findings in the format.
func WriteVRRPReport(w io.Writer, c *VRRPCensus, fs []Finding, f Format) error {
	return writeReport(w, f, "vrrp",
		func() any { return vrrpJSON(c, fs) },
		func(b *strings.Builder) { writeVRRPMarkdown(b, c, fs) },
		func(b *strings.Builder) { writeVRRPText(b, c, fs) })
}

// speakerRow is one line of the census table.
func speakerRow(c *VRRPCensus, r *VirtualRouter, s *Speaker) []string {
	ttls := make([]string, len(s.TTLs))
	for i, t := range s.TTLs {
		ttls[i] = fmt.Sprint(t)
	}
	auth := s.AuthType.String()
	if s.Version != 2 {
		auth = "-"
	}
	return []string{
		fmt.Sprint(r.VRID), r.Family.String(), fmt.Sprintf("v%d", s.Version), s.Source.String(),
		fmt.Sprint(s.Priority), s.Interval.String(), auth, strings.Join(ttls, ","),
		fmt.Sprint(s.Adverts), c.offset(s.FirstSeen), c.offset(s.LastSeen), string(s.Role), addrList(s.Addresses),
	}
}

var vrrpColumns = []string{"VRID", "FAMILY", "VERSION", "SOURCE", "PRIORITY", "INTERVAL", "AUTH", "TTL",
	"ADVERTS", "FIRST", "LAST", "ROLE", "VIRTUAL ADDRESSES"}

func (c *VRRPCensus) summary() string {
	return fmt.Sprintf("VRRP census on %s: listened %s from %s, %d packet%s, %d virtual router%s",
		c.Interface, c.End.Sub(c.Start).Round(time.Millisecond), c.Start.UTC().Format(time.RFC3339),
		c.Packets, plural(c.Packets), len(c.Routers), plural(len(c.Routers)))
}

func writeVRRPText(b *strings.Builder, c *VRRPCensus, fs []Finding) {
	b.WriteString(c.summary() + "\n")
	if len(c.Routers) > 0 {
		b.WriteString("(times are seconds after the start; masters advertise, backups are silent)\n\n")
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(vrrpColumns, "\t"))
		for i := range c.Routers {
			r := &c.Routers[i]
			for j := range r.Speakers {
				fmt.Fprintln(tw, strings.Join(speakerRow(c, r, &r.Speakers[j]), "\t"))
			}
		}
		tw.Flush()
	}
	for _, inv := range c.Invalid {
		fmt.Fprintf(b, "invalid: %d packet%s from %s (MAC %s)\n", inv.Count, plural(inv.Count), inv.Source, inv.MAC)
	}
	b.WriteString("\n")
	writeFindingsText(b, fs)
}

func writeVRRPMarkdown(b *strings.Builder, c *VRRPCensus, fs []Finding) {
	fmt.Fprintf(b, "## %s\n\n", mdEscape(c.summary()))
	if len(c.Routers) > 0 {
		b.WriteString("| " + strings.Join(vrrpColumns, " | ") + " |\n")
		b.WriteString(strings.Repeat("| --- ", len(vrrpColumns)) + "|\n")
		for i := range c.Routers {
			r := &c.Routers[i]
			for j := range r.Speakers {
				row := speakerRow(c, r, &r.Speakers[j])
				for k := range row {
					row[k] = mdEscape(row[k])
				}
				b.WriteString("| " + strings.Join(row, " | ") + " |\n")
			}
		}
		b.WriteString("\nTimes are seconds after the start; masters advertise, backups are silent.\n")
	}
	for _, inv := range c.Invalid {
		fmt.Fprintf(b, "\nInvalid: %d packet%s from %s (MAC %s).\n", inv.Count, plural(inv.Count), inv.Source, mdEscape(inv.MAC))
	}
	b.WriteString("\n### Findings\n")
	writeFindingsMarkdown(b, fs)
}

// The JSON shape: stable field names, durations as strings, times in
// RFC 3339.
type vrrpReportJSON struct {
	Interface string              `json:"interface"`
	Start     time.Time           `json:"start"`
	End       time.Time           `json:"end"`
	Packets   int                 `json:"packets"`
	Routers   []virtualRouterJSON `json:"routers"`
	Invalid   []InvalidSource     `json:"invalid"`
	Findings  []Finding           `json:"findings"`
}

type virtualRouterJSON struct {
	Family   string        `json:"family"`
	VRID     uint8         `json:"vrid"`
	Masters  []string      `json:"masters"`
	Speakers []speakerJSON `json:"speakers"`
}

type speakerJSON struct {
	Source       string    `json:"source"`
	MAC          string    `json:"mac,omitempty"`
	Version      int       `json:"version"`
	Priority     int       `json:"priority"`
	Interval     string    `json:"interval"`
	Addresses    []string  `json:"addresses"`
	AuthType     string    `json:"auth_type"`
	TTLs         []int     `json:"ttls"`
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
	Adverts      int       `json:"adverts"`
	PriorityZero int       `json:"priority_zero"`
	Role         Role      `json:"role"`
}

func vrrpJSON(c *VRRPCensus, fs []Finding) vrrpReportJSON {
	out := vrrpReportJSON{
		Interface: c.Interface, Start: c.Start.UTC(), End: c.End.UTC(), Packets: c.Packets,
		Routers: []virtualRouterJSON{}, Invalid: c.Invalid, Findings: fs,
	}
	if out.Invalid == nil {
		out.Invalid = []InvalidSource{}
	}
	if out.Findings == nil {
		out.Findings = []Finding{}
	}
	for i := range c.Routers {
		r := &c.Routers[i]
		rj := virtualRouterJSON{Family: r.Family.String(), VRID: r.VRID, Masters: []string{}}
		for _, m := range r.Masters() {
			rj.Masters = append(rj.Masters, m.String())
		}
		for _, s := range r.Speakers {
			sj := speakerJSON{
				Source: s.Source.String(), MAC: s.MAC, Version: int(s.Version), Priority: int(s.Priority),
				Interval: s.Interval.String(), AuthType: s.AuthType.String(), TTLs: s.TTLs,
				FirstSeen: s.FirstSeen.UTC(), LastSeen: s.LastSeen.UTC(), Adverts: s.Adverts,
				PriorityZero: s.PriorityZero, Role: s.Role, Addresses: []string{},
			}
			for _, a := range s.Addresses {
				sj.Addresses = append(sj.Addresses, a.String())
			}
			rj.Speakers = append(rj.Speakers, sj)
		}
		out.Routers = append(out.Routers, rj)
	}
	return out
}
