package diag

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// ReportOptions configure WriteReport.
type ReportOptions struct {
	Format Format
	// Colour adds ANSI colours to the text format (for a terminal).
	Colour bool
	// FailOn is the --fail-on severity, shown in the summary and the
	// JSON exit code.
	FailOn Severity
}

// WriteReport prints a checklist report. The text format groups
// findings under their check; JSON follows diag/report.schema.json;
// markdown is for a ticket.
func WriteReport(w io.Writer, rep *Report, opts ReportOptions) error {
	var b strings.Builder
	switch opts.Format {
	case JSON:
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		if err := enc.Encode(reportJSON(rep, opts.FailOn)); err != nil {
			return fmt.Errorf("encoding the report: %w", err)
		}
	case Markdown:
		writeReportMarkdown(&b, rep)
	default:
		writeReportText(&b, rep, opts.Colour)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// summary counts findings by severity and checks that could not run.
type summary struct {
	Findings    int `json:"findings"`
	Critical    int `json:"critical"`
	Warning     int `json:"warning"`
	Info        int `json:"info"`
	CouldNotRun int `json:"could_not_run"`
}

func (r *Report) summary() summary {
	var s summary
	for _, c := range r.Checks {
		if c.Status == StatusCouldNotRun {
			s.CouldNotRun++
		}
		for _, f := range c.Findings {
			s.Findings++
			switch f.Severity {
			case Critical:
				s.Critical++
			case Warning:
				s.Warning++
			default:
				s.Info++
			}
		}
	}
	return s
}

func (s summary) String() string {
	var parts []string
	if s.Findings == 0 {
		parts = append(parts, "no findings")
	} else {
		var by []string
		for _, x := range []struct {
			n    int
			name string
		}{{s.Critical, "critical"}, {s.Warning, "warning"}, {s.Info, "info"}} {
			if x.n > 0 {
				by = append(by, fmt.Sprintf("%d %s", x.n, x.name))
			}
		}
		parts = append(parts, fmt.Sprintf("%d finding%s (%s)", s.Findings, plural(s.Findings), strings.Join(by, ", ")))
	}
	if s.CouldNotRun > 0 {
		parts = append(parts, fmt.Sprintf("%d check%s could not run", s.CouldNotRun, plural(s.CouldNotRun)))
	}
	return strings.Join(parts, ", ")
}

func (r *Report) title() string {
	what := "VIP " + r.VIP.String()
	if r.Port != 0 {
		what += fmt.Sprintf(" port %d", r.Port)
	}
	if r.Mode == ModeRealServer {
		return "lvsdiag rs: real server checks for " + what
	}
	t := "lvsdiag: " + what + ", Host " + r.Host
	if r.Interface != "" {
		t += ", on " + r.Interface
	}
	return t
}

func (r *Report) when() string {
	return fmt.Sprintf("started %s, took %s", r.Start.UTC().Format(time.RFC3339), r.Duration.Round(10*time.Millisecond))
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiGreen  = "\x1b[32m"
	ansiCyan   = "\x1b[36m"
	ansiDim    = "\x1b[2m"
)

type painter bool

func (p painter) paint(code, s string) string {
	if !p {
		return s
	}
	return code + s + ansiReset
}

func (p painter) severity(s Severity) string {
	tag := "[" + strings.ToUpper(s.String()) + "]"
	switch s {
	case Critical:
		return p.paint(ansiBold+ansiRed, tag)
	case Warning:
		return p.paint(ansiYellow, tag)
	}
	return p.paint(ansiCyan, tag)
}

func (c CheckResult) statusText() string {
	switch c.Status {
	case StatusFindings:
		return fmt.Sprintf("%d finding%s", len(c.Findings), plural(len(c.Findings)))
	case StatusCouldNotRun:
		return "could not run"
	case StatusNotApplicable:
		return "not applicable"
	}
	return "ok"
}

func (p painter) status(c CheckResult) string {
	s := c.statusText()
	switch c.Status {
	case StatusOK:
		return p.paint(ansiGreen, s)
	case StatusFindings:
		if worst(c.Findings) == Critical {
			return p.paint(ansiBold+ansiRed, s)
		}
		return p.paint(ansiYellow, s)
	}
	return p.paint(ansiDim, s)
}

func worst(fs []Finding) Severity {
	w := Info
	for _, f := range fs {
		w = max(w, f.Severity)
	}
	return w
}

func writeReportText(b *strings.Builder, r *Report, colour bool) {
	p := painter(colour)
	b.WriteString(p.paint(ansiBold, r.title()) + "\n")
	fmt.Fprintf(b, "%s: %s\n", r.when(), r.summary())
	for _, c := range r.Checks {
		fmt.Fprintf(b, "\n%s %s\n", p.paint(ansiBold, fmt.Sprintf("%d. %s:", c.Number, c.Title)), p.status(c))
		if c.Reason != "" {
			fmt.Fprintf(b, "   %s\n", c.Reason)
		}
		for _, n := range c.Notes {
			fmt.Fprintf(b, "   %s\n", n)
		}
		for _, f := range c.Findings {
			writeFindingText(b, f, "   ", p.severity(f.Severity))
		}
	}
}

func writeReportMarkdown(b *strings.Builder, r *Report) {
	fmt.Fprintf(b, "## %s\n\n%s: %s.\n\n", mdEscape(r.title()), mdEscape(r.when()), r.summary())
	b.WriteString("| # | check | status |\n| --- | --- | --- |\n")
	for _, c := range r.Checks {
		status := c.statusText()
		if c.Reason != "" {
			status += ": " + c.Reason
		}
		fmt.Fprintf(b, "| %d | %s | %s |\n", c.Number, mdEscape(c.Title), mdEscape(status))
	}
	for _, c := range r.Checks {
		if c.Status == StatusNotApplicable || (len(c.Notes) == 0 && len(c.Findings) == 0) {
			continue
		}
		fmt.Fprintf(b, "\n### %d. %s\n\n", c.Number, mdEscape(c.Title))
		for _, n := range c.Notes {
			fmt.Fprintf(b, "- %s\n", mdEscape(n))
		}
		for _, f := range c.Findings {
			writeFindingMarkdown(b, f, "####")
		}
	}
}

// ReportSchemaVersion is the version of the JSON report's schema
// (diag/report.schema.json). Fields are only ever added within a
// version.
const ReportSchemaVersion = 1

type reportJSONDoc struct {
	SchemaVersion   int               `json:"schema_version"`
	Mode            Mode              `json:"mode"`
	VIP             string            `json:"vip"`
	Port            uint16            `json:"port"`
	Host            string            `json:"host"`
	Interface       string            `json:"interface"`
	Start           time.Time         `json:"start"`
	DurationSeconds float64           `json:"duration_seconds"`
	FailOn          Severity          `json:"fail_on"`
	ExitCode        int               `json:"exit_code"`
	Summary         summary           `json:"summary"`
	Checks          []checkResultJSON `json:"checks"`
}

type checkResultJSON struct {
	Number          int       `json:"number"`
	ID              CheckID   `json:"id"`
	Title           string    `json:"title"`
	Status          Status    `json:"status"`
	Reason          string    `json:"reason,omitempty"`
	DurationSeconds float64   `json:"duration_seconds"`
	Notes           []string  `json:"notes"`
	Findings        []Finding `json:"findings"`
}

func reportJSON(r *Report, failOn Severity) reportJSONDoc {
	doc := reportJSONDoc{
		SchemaVersion: ReportSchemaVersion, Mode: r.Mode, VIP: r.VIP.String(), Port: r.Port, Host: r.Host,
		Interface: r.Interface, Start: r.Start.UTC(), DurationSeconds: roundSeconds(r.Duration),
		FailOn: failOn, ExitCode: r.ExitCode(failOn), Summary: r.summary(), Checks: []checkResultJSON{},
	}
	for _, c := range r.Checks {
		cj := checkResultJSON{Number: c.Number, ID: c.ID, Title: c.Title, Status: c.Status, Reason: c.Reason,
			DurationSeconds: roundSeconds(c.Duration), Notes: c.Notes, Findings: c.Findings}
		if cj.Notes == nil {
			cj.Notes = []string{}
		}
		if cj.Findings == nil {
			cj.Findings = []Finding{}
		}
		for i := range cj.Findings {
			if cj.Findings[i].Evidence == nil {
				cj.Findings[i].Evidence = []string{}
			}
		}
		doc.Checks = append(doc.Checks, cj)
	}
	return doc
}

func roundSeconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}

// ParseSeverity checks a --fail-on value.
func ParseSeverity(s string) (Severity, error) {
	var v Severity
	if err := v.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("severity %q: want info, warning or critical", s)
	}
	return v, nil
}
