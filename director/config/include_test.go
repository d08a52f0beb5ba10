package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const mainWithInclude = `include: conf.d/
lvsd:
  resync_interval: 10s
virtual_services:
  - address: 192.168.0.100
    port: 80
`

func TestIncludeDirectory(t *testing.T) {
	files := map[string]string{
		"lvsd.yaml": mainWithInclude,
		"conf.d/20-b.yaml": `virtual_services:
  - {address: 192.168.0.100, port: 444}
`,
		"conf.d/10-a.yaml": `virtual_services:
  - {address: 192.168.0.100, port: 443}
`,
		"conf.d/notes.txt":      "not yaml: ignored",
		"conf.d/.hidden.yaml":   "virtual_services: [{port: x}]",
		"conf.d/empty.yaml":     "",
		"conf.d/sub/deep.yaml":  "virtual_services: [{port: x}]",
		"conf.d/30-c.yaml.orig": "virtual_services: [{port: x}]",
	}
	checkErrors(t, loadErrors(t, files, LoadOptions{}), nil)
	cfg := mustLoad(t, files)
	want := []string{"lvsd.yaml", "conf.d/10-a.yaml", "conf.d/20-b.yaml", "conf.d/empty.yaml"}
	if strings.Join(cfg.Files, " ") != strings.Join(want, " ") {
		t.Errorf("Files = %q, want %q", cfg.Files, want)
	}
	var ports []uint16
	for _, s := range cfg.VirtualServices {
		ports = append(ports, s.Port)
	}
	if len(ports) != 3 || ports[0] != 80 || ports[1] != 443 || ports[2] != 444 {
		t.Errorf("services in file order: ports %v, want [80 443 444]", ports)
	}
	if d := cfg.Desired(); d[1].Source != "conf.d/10-a.yaml:2" {
		t.Errorf("Source of the included service = %q, want conf.d/10-a.yaml:2", d[1].Source)
	}
}

func TestIncludeErrorsNameTheIncludedFile(t *testing.T) {
	files := map[string]string{
		"lvsd.yaml": mainWithInclude,
		"conf.d/a.yaml": `virtual_services:
  - address: 192.168.0.100
    port: 80
    real_servers:
      - {address: 10.0.0.2, wieght: 1}
`,
		"conf.d/b.yaml": `lvsd:
  state_dir: /tmp
include: more.d/
virtual_services:
  - {address: 192.168.0.100, port: 80}
  - {address: 192.168.0.100, port: 81, scheduler: rrr}
`,
		"conf.d/c.yaml": "virtual_services:\n\t- port: 80\n",
	}
	checkErrors(t, loadErrors(t, files, LoadOptions{}), []string{
		`conf.d/a.yaml:2:5: duplicate virtual service TCP 192.168.0.100:80: it is already defined at lvsd.yaml:5:5: merge the two entries into one`,
		`conf.d/a.yaml:5:29: unknown key "wieght" in a real server: did you mean "weight"?`,
		`conf.d/b.yaml:1:1: lvsd belongs in the main file: an included file holds only virtual_services`,
		`conf.d/b.yaml:3:1: include is allowed only in the main file: list every directory there`,
		`conf.d/b.yaml:5:5: duplicate virtual service TCP 192.168.0.100:80: it is already defined at lvsd.yaml:5:5: merge the two entries into one`,
		`conf.d/b.yaml:6:51: scheduler: unknown scheduler "rrr": did you mean "rr"?`,
		`conf.d/c.yaml:2:1: invalid YAML: a tab in the indentation: indent with spaces`,
	})
}

func TestIncludeProblems(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{{
		name:  "missing directory",
		files: map[string]string{"lvsd.yaml": "include: conf.d/\n"},
		want:  []string{"lvsd.yaml:1:10: include: conf.d/: no such file or directory: check the path"},
	}, {
		name: "list with a missing file and a repeat",
		files: map[string]string{
			"lvsd.yaml":     "include:\n  - conf.d\n  - conf.d/a.yaml\n  - nope.yaml\n",
			"conf.d/a.yaml": "virtual_services: []\n",
		},
		want: []string{
			"lvsd.yaml:3:5: include: a.yaml is already included: list each file once",
			"lvsd.yaml:4:5: include: nope.yaml: no such file or directory: check the path",
		},
	}, {
		name:  "the main file itself",
		files: map[string]string{"lvsd.yaml": "include: lvsd.yaml\n"},
		want:  []string{"lvsd.yaml:1:10: include: lvsd.yaml is the main file itself: include a directory of other files, such as conf.d/"},
	}, {
		name:  "the main file's directory is skipped",
		files: map[string]string{"lvsd.yaml": "include: .\n", "other.yaml": "virtual_services: [{address: 10.0.0.1, port: 1}]\n"},
	}, {
		name:  "absolute path in an fs.FS",
		files: map[string]string{"lvsd.yaml": "include: /etc/lvsd/conf.d\n"},
		want:  []string{`lvsd.yaml:1:10: include: "/etc/lvsd/conf.d" is absolute: write a path relative to lvsd.yaml`},
	}, {
		name:  "wrong type",
		files: map[string]string{"lvsd.yaml": "include: {dir: conf.d}\n"},
		want:  []string{"lvsd.yaml:1:10: include: expected a directory or file path (conf.d/), or a list of them, got a mapping"},
	}, {
		name: "included file is not a mapping",
		files: map[string]string{
			"lvsd.yaml":     "include: conf.d/\n",
			"conf.d/a.yaml": "- address: 10.0.0.1\n",
		},
		want: []string{"conf.d/a.yaml:1:1: expected a mapping of settings at the top of the file (virtual_services: ...), got a list"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, loadErrors(t, tc.files, LoadOptions{}), tc.want)
		})
	}
}

// TestIncludeOnDisk loads from the operating system: paths are joined to
// the main file's directory and messages use them as Load was given them.
func TestIncludeOnDisk(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/lvsd.yaml", "include: conf.d/\n")
	write("etc/conf.d/web.yaml", "virtual_services:\n  - address: 192.168.0.100\n    port: 80\n    forwarding: nat\n")
	main := filepath.Join(dir, "etc", "lvsd.yaml")
	_, err := Load(main, LoadOptions{})
	want := filepath.Join(dir, "etc", "conf.d", "web.yaml") + `:4:17: forwarding: "nat": write masquerade`
	if err == nil || err.Error() != want {
		t.Fatalf("Load error:\n%v\nwant:\n%s", err, want)
	}

	write("etc/conf.d/web.yaml", "virtual_services:\n  - address: 192.168.0.100\n    port: 80\n")
	cfg, err := Load(main, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Files) != 2 || cfg.Files[1] != filepath.Join(dir, "etc", "conf.d", "web.yaml") {
		t.Errorf("Files = %q", cfg.Files)
	}

	missing := filepath.Join(dir, "nope.yaml")
	_, err = Load(missing, LoadOptions{})
	if want := missing + ": no such file or directory: check the path"; err == nil || err.Error() != want {
		t.Errorf("Load of a missing file: %v, want %s", err, want)
	}
}

func mustLoad(t *testing.T, files map[string]string) *Config {
	t.Helper()
	fsys := mapFS(files)
	cfg, err := Load("lvsd.yaml", LoadOptions{FS: fsys})
	if err != nil {
		t.Fatalf("Load:\n%v", err)
	}
	return cfg
}
