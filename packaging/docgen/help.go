package main

import (
	"fmt"
	"regexp"
	"strings"
)

// Help is one --help text, parsed: what the man page and the completion
// are built from.
type Help struct {
	// Summary is the top help's "prog: summary" first line, without
	// the program's name.
	Summary string
	// Usage are the lines of the Usage block, as printed.
	Usage []string
	// Prose are the paragraphs between the usage and the flags.
	Prose []string
	// Flags are the flags, in the order printed.
	Flags []Flag
}

// Flag is one flag as Go's flag package prints it.
type Flag struct {
	Name string
	// Arg is the value's placeholder ("file", "duration", "string");
	// empty for a boolean flag.
	Arg         string
	Description string
}

// ParseHelp parses the help of a program whose flags are printed by Go's
// flag.PrintDefaults: an optional "prog: summary" line, a "Usage:" block
// (or one "Usage: ..." line), paragraphs, then "Flags:" and the flags.
// name is the program's name, for the summary and for errors.
func ParseHelp(name, text string) (Help, error) {
	var h Help
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	i := 0
	if len(lines) > 0 && strings.HasPrefix(lines[0], name+": ") {
		h.Summary = strings.TrimPrefix(lines[0], name+": ")
		i = 1
	}
	for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
		i++
	}
	switch {
	case i < len(lines) && lines[i] == "Usage:":
		for i++; i < len(lines) && strings.HasPrefix(lines[i], "  "); i++ {
			h.Usage = append(h.Usage, strings.TrimPrefix(lines[i], "  "))
		}
	case i < len(lines) && strings.HasPrefix(lines[i], "Usage: "):
		h.Usage = []string{strings.TrimPrefix(lines[i], "Usage: ")}
		i++
	default:
		return h, fmt.Errorf("%s --help: no Usage: block (line %d)", name, i+1)
	}
	var para []string
	flush := func() {
		if len(para) > 0 {
			h.Prose = append(h.Prose, strings.Join(para, " "))
			para = nil
		}
	}
	for ; i < len(lines) && lines[i] != "Flags:"; i++ {
		if strings.TrimSpace(lines[i]) == "" {
			flush()
			continue
		}
		para = append(para, strings.TrimSpace(lines[i]))
	}
	flush()
	if i == len(lines) {
		return h, nil // no flags
	}
	flags, err := parseFlags(name, lines[i+1:], i+2)
	h.Flags = flags
	return h, err
}

// flagLine is "  -name placeholder" or "  -v\tdescription" (a short
// boolean's description on the same line).
var flagLine = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9-]*)(?: ([A-Za-z]+))?(?:\t(.*))?$`)

func parseFlags(name string, lines []string, firstLine int) ([]Flag, error) {
	var flags []Flag
	for n, l := range lines {
		if m := flagLine.FindStringSubmatch(l); m != nil {
			flags = append(flags, Flag{Name: m[1], Arg: m[2], Description: m[3]})
			continue
		}
		if strings.HasPrefix(l, "    \t") && len(flags) > 0 {
			f := &flags[len(flags)-1]
			f.Description = strings.TrimSpace(f.Description + " " + strings.TrimPrefix(l, "    \t"))
			continue
		}
		if strings.TrimSpace(l) == "" {
			continue
		}
		return flags, fmt.Errorf("%s --help: line %d %q is neither a flag nor its description", name, firstLine+n, l)
	}
	return flags, nil
}

// choices finds a closed set of values in a flag's description: "debug,
// info, warn or error", "report format: text, json or markdown".
var choices = regexp.MustCompile(`(?:^|: )((?:[a-z][a-z0-9-]*, )*[a-z][a-z0-9-]* or [a-z][a-z0-9-]*)(?:$| \(default)`)

// Choices returns the values a flag takes when its description lists
// them, else nil.
func (f Flag) Choices() []string {
	m := choices.FindStringSubmatch(f.Description)
	if m == nil {
		return nil
	}
	s := strings.ReplaceAll(m[1], " or ", ", ")
	return strings.Split(s, ", ")
}

// TakesPath reports whether the flag's value is a file or directory.
func (f Flag) TakesPath() (file, dir bool) {
	switch strings.ToLower(f.Arg) {
	case "file":
		return true, false
	case "dir":
		return false, true
	}
	return false, false
}

// subcommands are the words after the program's name in its usage lines
// ("lvsd check --config FILE" -> check).
func (h Help) subcommands(program string) []string {
	var out []string
	seen := map[string]bool{}
	for _, u := range h.Usage {
		rest, ok := strings.CutPrefix(u, program+" ")
		if !ok {
			continue
		}
		word, _, _ := strings.Cut(rest, " ")
		if subcommand.MatchString(word) && !seen[word] {
			seen[word] = true
			out = append(out, word)
		}
	}
	return out
}

var subcommand = regexp.MustCompile(`^[a-z][a-z-]+$`)
