package diag

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteDrillReport prints a drill's measurements and findings as text,
// markdown or JSON (diag/drill.schema.json).
func WriteDrillReport(w io.Writer, f *DrillFacts, fs []Finding, format Format) error {
	return writeReport(w, format, "drill",
		func() any { return drillJSON(f, fs) },
		func(b *strings.Builder) { writeDrillMarkdown(b, f, fs) },
		func(b *strings.Builder) { writeDrillText(b, f, fs) })
}

// writeReport renders a report in the format (JSON indented, markdown
// or text) and writes it at once: a failed encoding writes nothing.
func writeReport(w io.Writer, format Format, name string, value func() any, markdown, text func(*strings.Builder)) error {
	var b strings.Builder
	switch format {
	case JSON:
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		if err := enc.Encode(value()); err != nil {
			return fmt.Errorf("encoding the %s report: %w", name, err)
		}
	case Markdown:
		markdown(&b)
	default:
		text(&b)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing the %s report: %w", name, err)
	}
	return nil
}

func (f *DrillFacts) title() string {
	return fmt.Sprintf("lvsdiag drill: %s handover of VIP %v port %d, acting on %s", strings.ToUpper(string(f.Kind)), f.VIP, f.Port, f.Director)
}

// measures are the summary as label/value rows.
func (f *DrillFacts) measures() [][2]string {
	s := f.Summarize()
	rows := [][2]string{
		{"director let go", drillMs(s.Released)},
	}
	if f.Kind == DrillVRRP {
		rows = append(rows, [2]string{"peer became master", drillMs(s.TookOver) + peerName(f.NewDirector)})
		if f.ARPWatched {
			rows = append(rows, [2]string{"first gratuitous ARP", drillMs(s.FirstGARP)})
		} else {
			rows = append(rows, [2]string{"first gratuitous ARP", "not watched (no --interface)"})
		}
	}
	rows = append(rows,
		[2]string{"first request through the new path", drillMs(s.FirstForward)},
		[2]string{"new connections failed (handover)", fmt.Sprintf("%d of %d", s.Failed, s.Requests)},
		[2]string{"new connections failed (restore)", fmt.Sprint(s.FailedRestore)},
		[2]string{"longest outage", drillMs(s.LongestOutage)},
		[2]string{"slowest answered connection (handover)", drillMs(s.Slowest)},
		[2]string{"long-lived connections broken", fmt.Sprintf("%d of %d", s.LongBroken, s.Long)},
		[2]string{"restored after the drill ended", drillMs(s.Restored) + restoredState(f.RestoredState)},
	)
	return rows
}

func peerName(n string) string {
	if n == "" {
		return ""
	}
	return " (" + n + ")"
}

func restoredState(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func (f *DrillFacts) when() string {
	return fmt.Sprintf("started %s, took %s; times are from the request", f.Start.UTC().Format(time.RFC3339), f.End.Sub(f.Start).Round(10*time.Millisecond))
}

func writeDrillText(b *strings.Builder, f *DrillFacts, fs []Finding) {
	b.WriteString(f.title() + "\n" + f.when() + "\n\nMeasured from this client:\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, r := range f.measures() {
		fmt.Fprintf(tw, "  %s\t%s\n", r[0], r[1])
	}
	tw.Flush()
	b.WriteString("\nTimeline:\n")
	tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, e := range f.timeline() {
		fmt.Fprintf(tw, "  %s\t  %s\n", e[0], e[1])
	}
	tw.Flush()
	for _, n := range f.Notes {
		fmt.Fprintf(b, "Note: %s\n", n)
	}
	b.WriteString("\n")
	writeFindingsText(b, fs)
}

func writeDrillMarkdown(b *strings.Builder, f *DrillFacts, fs []Finding) {
	fmt.Fprintf(b, "## %s\n\n%s.\n\n| measured from this client | |\n| --- | --- |\n", mdEscape(f.title()), mdEscape(f.when()))
	for _, r := range f.measures() {
		fmt.Fprintf(b, "| %s | %s |\n", mdEscape(r[0]), mdEscape(r[1]))
	}
	b.WriteString("\n| time | event |\n| ---: | --- |\n")
	for _, e := range f.timeline() {
		fmt.Fprintf(b, "| %s | %s |\n", e[0], mdEscape(e[1]))
	}
	for _, n := range f.Notes {
		fmt.Fprintf(b, "\nNote: %s\n", mdEscape(n))
	}
	b.WriteString("\n### Findings\n")
	writeFindingsMarkdown(b, fs)
}

type drillJSONReport struct {
	SchemaVersion int              `json:"schema_version"`
	Kind          DrillKind        `json:"kind"`
	VIP           string           `json:"vip"`
	Port          uint16           `json:"port"`
	Director      string           `json:"director"`
	Target        string           `json:"target"`
	Peers         []string         `json:"peers"`
	HoldSeconds   float64          `json:"hold_seconds"`
	Start         time.Time        `json:"start"`
	Requested     *time.Time       `json:"requested"`
	Duration      float64          `json:"duration_seconds"`
	NewDirector   string           `json:"new_director"`
	Measured      drillJSONMeasure `json:"measured"`
	Timeline      []drillJSONEvent `json:"timeline"`
	Notes         []string         `json:"notes"`
	ExitCode      int              `json:"exit_code"`
	Findings      []Finding        `json:"findings"`
}

type drillJSONMeasure struct {
	ReleasedSeconds      *float64 `json:"released_seconds"`
	TookOverSeconds      *float64 `json:"took_over_seconds"`
	FirstGARPSeconds     *float64 `json:"first_garp_seconds"`
	FirstForwardSeconds  *float64 `json:"first_forward_seconds"`
	RestoredSeconds      *float64 `json:"restored_seconds"`
	Requests             int      `json:"requests"`
	Failed               int      `json:"failed"`
	FailedRestore        int      `json:"failed_restore"`
	LongestOutageSeconds float64  `json:"longest_outage_seconds"`
	SlowestSeconds       float64  `json:"slowest_seconds"`
	Long                 int      `json:"long_lived"`
	LongBroken           int      `json:"long_lived_broken"`
}

type drillJSONEvent struct {
	Offset string `json:"offset"`
	Event  string `json:"event"`
}

func secs(d time.Duration) *float64 {
	if d == notSeen {
		return nil
	}
	v := d.Seconds()
	return &v
}

func drillJSON(f *DrillFacts, fs []Finding) drillJSONReport {
	s := f.Summarize()
	r := drillJSONReport{
		SchemaVersion: 1, Kind: f.Kind, VIP: f.VIP.String(), Port: f.Port, Director: f.Director, Target: f.Target,
		Peers: f.Peers, HoldSeconds: f.Hold.Seconds(), Start: f.Start.UTC(), Duration: f.End.Sub(f.Start).Seconds(),
		NewDirector: f.NewDirector, Notes: f.Notes, ExitCode: ExitCode(fs), Findings: fs,
		Measured: drillJSONMeasure{
			ReleasedSeconds: secs(s.Released), TookOverSeconds: secs(s.TookOver), FirstGARPSeconds: secs(s.FirstGARP),
			FirstForwardSeconds: secs(s.FirstForward), RestoredSeconds: secs(s.Restored),
			Requests: s.Requests, Failed: s.Failed, FailedRestore: s.FailedRestore, LongestOutageSeconds: s.LongestOutage.Seconds(), SlowestSeconds: s.Slowest.Seconds(),
			Long: s.Long, LongBroken: s.LongBroken,
		},
		Timeline: []drillJSONEvent{},
	}
	if !f.Requested.IsZero() {
		t := f.Requested.UTC()
		r.Requested = &t
	}
	if r.Peers == nil {
		r.Peers = []string{}
	}
	if r.Notes == nil {
		r.Notes = []string{}
	}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	for _, e := range f.timeline() {
		r.Timeline = append(r.Timeline, drillJSONEvent{e[0], e[1]})
	}
	return r
}
