// Package diag is lvsdiag's checklist: checks look at a director, a real
// server or a network segment and report Findings, each with the
// evidence that shows it and a fix an on-call engineer can paste; the
// renderers print them as text, JSON or markdown.
package diag

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity ranks findings.
type Severity int

const (
	// Info is worth knowing; nothing is broken.
	Info Severity = iota
	// Warning will hurt under some conditions (a failover, a reload).
	Warning
	// Critical is hurting now or will at the next failover.
	Critical
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	}
	return fmt.Sprintf("severity-%d", int(s))
}

// MarshalText implements encoding.TextMarshaler (JSON shows the name).
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Severity) UnmarshalText(b []byte) error {
	for _, v := range []Severity{Info, Warning, Critical} {
		if string(b) == v.String() {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("unknown severity %q", b)
}

// Finding is one problem a check found.
type Finding struct {
	// ID names the kind of problem, stable across releases, for
	// runbooks and alert routing ("vrrp-vrid-clash").
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Subject is what the problem is about ("VRID 51 (IPv4) on eth0").
	Subject string `json:"subject"`
	// Evidence is what was observed, one fact a line.
	Evidence []string `json:"evidence"`
	// Fix says what to do, with commands or configuration to paste.
	Fix string `json:"fix"`
}

// SortFindings orders findings most severe first, then by ID and
// subject, so reports are stable.
func SortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Subject, b.Subject))
	})
}

// Exit codes of lvsdiag.
const (
	// ExitClean: the checks ran and found nothing.
	ExitClean = 0
	// ExitFindings: the checks ran and found something.
	ExitFindings = 1
	// ExitCouldNotRun: the checks could not run (no privileges, no such
	// interface, bad flags).
	ExitCouldNotRun = 2
)

// ExitCode is ExitFindings when there is any finding, else ExitClean.
func ExitCode(fs []Finding) int {
	if len(fs) > 0 {
		return ExitFindings
	}
	return ExitClean
}

// Format is a report's output format.
type Format string

const (
	Text     Format = "text"
	JSON     Format = "json"
	Markdown Format = "markdown"
)

// ParseFormat checks an --output value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Text, JSON, Markdown:
		return f, nil
	}
	return "", fmt.Errorf("output format %q: want text, json or markdown", s)
}

// writeFindingsText prints findings as text blocks.
func writeFindingsText(b *strings.Builder, fs []Finding) {
	if len(fs) == 0 {
		b.WriteString("No findings.\n")
		return
	}
	fmt.Fprintf(b, "%d finding%s:\n", len(fs), plural(len(fs)))
	for _, f := range fs {
		writeFindingText(b, f, "", "["+strings.ToUpper(f.Severity.String())+"]")
	}
}

// writeFindingText prints one finding as a text block: its header line
// at indent, led by tag (the severity, coloured or not), its evidence
// and fix below. Every text report draws its findings with it.
func writeFindingText(b *strings.Builder, f Finding, indent, tag string) {
	fmt.Fprintf(b, "\n%s%s %s: %s\n", indent, tag, f.ID, f.Subject)
	fmt.Fprintf(b, "%s  Evidence:\n", indent)
	for _, e := range f.Evidence {
		fmt.Fprintf(b, "%s    - %s\n", indent, e)
	}
	fmt.Fprintf(b, "%s  Fix:\n", indent)
	for line := range strings.Lines(f.Fix) {
		fmt.Fprintf(b, "%s    %s\n", indent, strings.TrimRight(line, "\n"))
	}
}

// writeFindingsMarkdown prints findings as markdown sections.
func writeFindingsMarkdown(b *strings.Builder, fs []Finding) {
	if len(fs) == 0 {
		b.WriteString("\nNo findings.\n")
		return
	}
	for _, f := range fs {
		writeFindingMarkdown(b, f, "###")
	}
}

// writeFindingMarkdown prints one finding as a markdown section under a
// heading of the given level ("###"). Every markdown report draws its
// findings with it.
func writeFindingMarkdown(b *strings.Builder, f Finding, heading string) {
	fmt.Fprintf(b, "\n%s %s `%s`: %s\n\n", heading, strings.ToUpper(f.Severity.String()), f.ID, mdEscape(f.Subject))
	for _, e := range f.Evidence {
		fmt.Fprintf(b, "- %s\n", mdEscape(e))
	}
	fmt.Fprintf(b, "\nFix:\n\n```\n%s\n```\n", strings.TrimRight(f.Fix, "\n"))
}

var mdEscaper = strings.NewReplacer("|", `\|`, "*", `\*`, "_", `\_`, "`", "\\`", "<", "&lt;")

func mdEscape(s string) string { return mdEscaper.Replace(s) }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
