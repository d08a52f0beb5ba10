package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lvskit/lvskit/director/config"
)

// goFlagHelp is what flag.PrintDefaults prints, with the cases it has:
// a placeholder from backquotes, a type name, a boolean on its own line
// and a one-letter boolean with its description on the same line.
const goFlagHelp = `prog: does things

Usage:
  prog --config FILE                  run
  prog check --config FILE            validate

Flags:
  -config file
    	the config file (default "/etc/prog.yaml")
  -log-level string
    	debug, info, warn or error (default "info")
  -once
    	print one snapshot and exit
  -v	log what the checks do to stderr
`

func TestParseHelpReadsGoFlagOutput(t *testing.T) {
	h, err := ParseHelp("prog", goFlagHelp)
	if err != nil {
		t.Fatal(err)
	}
	if h.Summary != "does things" || len(h.Usage) != 2 {
		t.Errorf("summary %q usage %q", h.Summary, h.Usage)
	}
	want := []Flag{
		{"config", "file", `the config file (default "/etc/prog.yaml")`},
		{"log-level", "string", `debug, info, warn or error (default "info")`},
		{"once", "", "print one snapshot and exit"},
		{"v", "", "log what the checks do to stderr"},
	}
	if !slices.Equal(h.Flags, want) {
		t.Errorf("flags\n got %q\nwant %q", h.Flags, want)
	}
	if got := h.Flags[1].Choices(); !slices.Equal(got, []string{"debug", "info", "warn", "error"}) {
		t.Errorf("choices of --log-level: %q", got)
	}
	if got := h.subcommands("prog"); !slices.Equal(got, []string{"check"}) {
		t.Errorf("subcommands %q", got)
	}
}

// A help text docgen does not understand stops the build, naming the
// line, rather than dropping a flag from the man page.
func TestParseHelpRefusesWhatItDoesNotUnderstand(t *testing.T) {
	_, err := ParseHelp("prog", goFlagHelp+"  --weird line\n")
	if err == nil || !strings.Contains(err.Error(), `line 15 "  --weird line"`) {
		t.Errorf("err = %v, want one naming line 15", err)
	}
	if _, err := ParseHelp("prog", "no usage here\n"); err == nil {
		t.Error("a help without Usage: parsed")
	}
}

func readReference(t *testing.T) Reference {
	t.Helper()
	path := filepath.Join("..", "..", "examples", "reference.yaml")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := ParseReference(path, text)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// Every key written in the reference, live or commented out, has an
// entry in lvsd.yaml(5).
func TestEveryReferenceKeyIsInTheManPage(t *testing.T) {
	ref := readReference(t)
	documented := map[string]bool{}
	for _, k := range ref.Keys {
		documented[k.Path[strings.LastIndexAny(k.Path, ".]")+1:]] = true
	}
	keyLine := regexp.MustCompile(`^\s*(?:#\s*)?(?:- )?([a-z_]+):(?:\s|$)`)
	for i, l := range strings.Split(ref.Text, "\n") {
		if m := keyLine.FindStringSubmatch(l); m != nil && !documented[m[1]] {
			t.Errorf("reference.yaml:%d: key %q is not in lvsd.yaml(5)", i+1, m[1])
		}
	}
	man := string(ref.ConfigMan("1.0", "2026-01-01"))
	for _, want := range []string{`.B virtual_services[].real_servers[].weight`, `.B lvsd.state_dir`, `.B virtual_services[].fwmark`} {
		if !strings.Contains(man, want) {
			t.Errorf("lvsd.yaml(5) lacks %s", want)
		}
	}
}

// The package's /etc/lvsd/lvsd.yaml loads as it is shipped, keeps the
// state where the unit's StateDirectory= puts it, and installs nothing.
func TestDefaultConfigLoadsAndInstallsNothing(t *testing.T) {
	def := readReference(t).DefaultConfig()
	cfg, err := config.Parse("lvsd.yaml", def, config.LoadOptions{})
	if err != nil {
		t.Fatalf("the default config does not load:\n%v\n%s", err, def)
	}
	if len(cfg.VirtualServices) != 0 || len(cfg.VRRP.Instances) != 0 {
		t.Errorf("the default config installs %d services and %d VRRP instances, want none", len(cfg.VirtualServices), len(cfg.VRRP.Instances))
	}
	if cfg.LVSD.StateDir != "/var/lib/lvsd" {
		t.Errorf("state_dir %q, want /var/lib/lvsd (the unit's StateDirectory=lvsd)", cfg.LVSD.StateDir)
	}
	unit, err := os.ReadFile(filepath.Join("..", "lvsd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "StateDirectory=lvsd\n") {
		t.Error("lvsd.service no longer has StateDirectory=lvsd")
	}
	// The rest of the reference is there, commented out, to edit in
	// place.
	if !strings.Contains(string(def), "\n#virtual_services:\n#  - name: web") {
		t.Error("the default config does not carry the reference's virtual_services, commented out")
	}
}

func TestCompletionIsValidBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	h, err := ParseHelp("prog", goFlagHelp)
	if err != nil {
		t.Fatal(err)
	}
	script := Page{Program: "prog", Top: h}.Completion()
	path := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s\n%s", err, out, script)
	}
	for _, want := range []string{"compgen -W 'debug info warn error'", "-config | --config)\n\t\t_filedir\n", "compgen -W 'check'"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("completion lacks %q:\n%s", want, script)
		}
	}
}

// ParseHelp reads the output of programs it runs: whatever it is given,
// it returns an error or flags with names, never panics.
func FuzzParseHelp(f *testing.F) {
	f.Add("prog", goFlagHelp)
	f.Add("prog", "Usage: prog [flags]\n\nFlags:\n  -v\tverbose\n")
	f.Add("prog", "prog: x\nUsage:\n")
	f.Fuzz(func(t *testing.T, name, text string) {
		h, err := ParseHelp(name, text)
		if err != nil {
			return
		}
		for _, fl := range h.Flags {
			if fl.Name == "" {
				t.Errorf("a flag without a name from %q", text)
			}
			fl.Choices()
		}
		h.subcommands(name)
		Page{Program: name, Top: h}.Man()
		Page{Program: name, Top: h}.Completion()
	})
}

// ParseReference takes any YAML without panicking, and every key it
// reports has a path.
func FuzzParseReference(f *testing.F) {
	ref, err := os.ReadFile(filepath.Join("..", "..", "examples", "reference.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ref)
	f.Add([]byte("# intro\n\na:\n  # b: 1  # doc\n  c: [1, 2]  # list\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		r, err := ParseReference("fuzz.yaml", text)
		if err != nil {
			return
		}
		for _, k := range r.Keys {
			if k.Path == "" {
				t.Errorf("a key without a path from %q", text)
			}
		}
		r.ConfigMan("1", "2026-01-01")
		r.DefaultConfig()
	})
}
