package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// labTree lays the 6.12 capture out as a saved root.
func labTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	net := filepath.Join(root, "proc", "net")
	if err := os.MkdirAll(net, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ip_vs", "ip_vs_conn", "ip_vs_stats"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "director", "ipvs", "testdata", "proc", "lab", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(net, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func runMain(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestBadFlagsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nope"}, "flag provided but not defined: -nope"},
		{[]string{"--once", "--output", "yaml"}, `--output "yaml": use text or json`},
		{[]string{"--output", "json"}, "--output applies to --once"},
		{[]string{"--interval", "soon"}, `invalid value "soon" for flag -interval`},
		{[]string{"--interval", "1ms"}, "--interval 1ms: use 100ms or more"},
		{[]string{"--proc", "/nonexistent/x"}, "--proc /nonexistent/x:"},
		{[]string{"--proc", "/tmp"}, "--proc /tmp: no IPVS files in it"},
		{[]string{"--lvsd", "not a url"}, "--lvsd: lvsd address"},
		{[]string{"--proc", "/tmp", "--lvsd", "127.0.0.1:9120"}, "--proc and --lvsd: choose one"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		code, _, stderr := runMain(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("lvstop %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
	if code, _, stderr := runMain("--help"); code != 0 || !strings.Contains(stderr, "--once --output text|json") {
		t.Errorf("--help: exit %d, %q", code, stderr)
	}
}

func TestOnceOnSavedTree(t *testing.T) {
	root := labTree(t)
	code, out, stderr := runMain("--proc", root, "--once")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"IPVS 1.2.1  conn table size 4,096", "TCP   10.0.0.100:80", "entries 42 (6 templates)", "connection table: 42 entries"} {
		if !strings.Contains(out, want) {
			t.Errorf("--once lacks %q:\n%s", want, out)
		}
	}
	code, out, stderr = runMain("--proc", root, "--once", "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		Services []struct {
			Key         string `json:"key"`
			ActiveConns int    `json:"active_conns"`
		} `json:"services"`
		ConnTable struct{ Entries int } `json:"connection_table"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Services) != 29 || r.Services[0].Key != "TCP 10.0.0.100:80" || r.Services[0].ActiveConns != 3 || r.ConnTable.Entries != 42 {
		t.Errorf("json: %+v", r)
	}
}

// TestTmux runs the built binary in tmux on a saved tree and reads the
// screen as a person would see it.
func TestTmux(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("needs tmux (Debian package tmux; scripts/install-deps.sh installs it)")
	}
	bin := filepath.Join(t.TempDir(), "lvstop")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	root := labTree(t)
	saveDir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "tmux.sock")
	tm := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tmux, append([]string{"-S", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	tm("new-session", "-d", "-x", "150", "-y", "40", "-e", "TERM=xterm-256color",
		fmt.Sprintf("cd %s && %s --proc %s --interval 500ms; echo lvstop exited $?; sleep 60", saveDir, bin, root))
	t.Cleanup(func() { exec.Command(tmux, "-S", sock, "kill-server").Run() })

	screen := func() string { return tm("capture-pane", "-p", "-t", "0") }
	waitFor := func(want ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		for {
			s := screen()
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(s, w)
			}
			if ok {
				return s
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the screen never showed %q:\n%s", want, s)
			case <-time.After(50 * time.Millisecond): // polling the pane: tmux has no change notification
			}
		}
	}
	keys := func(k ...string) { tm(append([]string{"send-keys", "-t", "0"}, k...)...) }

	s := waitFor("conn table size 4,096", "10.0.0.103:443", "services (29)")
	if !strings.Contains(s, "persist 300s /24") {
		t.Errorf("services view lacks the persistence of 10.0.0.103:443:\n%s", s)
	}
	keys("Enter")
	waitFor("real servers of TCP 10.0.0.100:80", "10.0.2.11:80", "ESTAB")
	keys("Escape")
	waitFor("services (29)")
	keys("c")
	waitFor("connections 1-", "of 42")
	keys("/", "state=ESTABLISHED", "Enter")
	s = waitFor("filter state=ESTABLISHED", "matched (42 entries)")
	for l := range strings.Lines(s) {
		if strings.HasPrefix(l, "TCP ") && !strings.Contains(l, "ESTABLISHED") {
			t.Errorf("filtered to ESTABLISHED but shows %q", l)
		}
	}
	keys("?")
	waitFor("lvstop keys", "save this snapshot")
	keys("Escape")
	// Wait for the help to close: an Escape and a key sent at once read
	// as Alt+key.
	waitForNot := func(gone string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		for strings.Contains(screen(), gone) {
			select {
			case <-ctx.Done():
				t.Fatalf("%q stayed on the screen", gone)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitForNot("lvstop keys")
	keys("w")
	waitFor("saved, replay with: lvstop --proc " + saveDir)
	keys("q")
	waitFor("lvstop exited 0")
	ents, _ := os.ReadDir(saveDir)
	if len(ents) != 1 {
		t.Fatalf("save dir holds %v", ents)
	}
	code, out, stderr := runMain("--proc", filepath.Join(saveDir, ents[0].Name()), "--once")
	if code != 0 || !strings.Contains(out, "entries 42 (6 templates)") {
		t.Errorf("replaying the saved tree: exit %d\n%s%s", code, out, stderr)
	}
}
