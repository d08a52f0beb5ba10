package director

// Script security on the real filesystem, with a real unprivileged user
// created for the test: network tier (root), like the lab tests.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs/ipvstest"
	"github.com/lvskit/lvskit/director/scripts"
)

// scriptUser is a system user (with its own group and one
// supplementary group) that exists for one test.
type scriptUser struct {
	name, extra string
	uid, gid    string
	extraGID    string
}

func newScriptUser(t *testing.T) scriptUser {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root to create a user and own files: running as uid %d", os.Geteuid())
	}
	for _, tool := range []string{"useradd", "userdel", "groupadd", "groupdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (passwd package): %v", tool, err)
		}
	}
	u := scriptUser{name: fmt.Sprintf("lvst%d", os.Getpid()), extra: fmt.Sprintf("lvsx%d", os.Getpid())}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("groupadd", "--system", u.extra)
	t.Cleanup(func() { exec.Command("groupdel", u.extra).Run() })
	run("useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", "--groups", u.extra, u.name)
	t.Cleanup(func() { exec.Command("userdel", u.name).Run() })
	pu, err := user.Lookup(u.name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroup(u.extra)
	if err != nil {
		t.Fatal(err)
	}
	u.uid, u.gid, u.extraGID = pu.Uid, pu.Gid, g.Gid
	return u
}

// scriptTree is a root-owned directory outside /tmp (whose sticky,
// world-writable mode would refuse everything under it) holding the
// test's scripts.
type scriptTree struct {
	t    *testing.T
	root string
}

func newScriptTree(t *testing.T) *scriptTree {
	dir, err := os.MkdirTemp("/run", "lvsd-scriptsec-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	st := &scriptTree{t: t, root: dir}
	st.chmod(dir, 0o755)
	return st
}

func (st *scriptTree) path(p string) string { return filepath.Join(st.root, p) }

func (st *scriptTree) chmod(p string, mode os.FileMode) {
	if err := os.Chmod(p, mode); err != nil { // past the umask
		st.t.Fatal(err)
	}
}

func (st *scriptTree) dir(p string, mode os.FileMode) string {
	p = st.path(p)
	if err := os.Mkdir(p, mode); err != nil {
		st.t.Fatal(err)
	}
	st.chmod(p, mode)
	return p
}

// writeIDScript writes a shell script that records `id` and its environment
// in the file named by its first argument.
func writeIDScript(t *testing.T, p string, mode os.FileMode) string {
	t.Helper()
	body := "#!/bin/sh\n{ id -u; id -g; id -G; env; } > \"$1\"\n"
	if err := os.WriteFile(p, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestScriptsRunAsTheScriptUser: a check script runs with the script
// user's uid, gid and supplementary groups and a clean environment; one
// marked script_user: root runs as root. lvsd is the daemon as
// cmd/lvsd wires it (the real filesystem and user database), on a fake
// IPVS.
func TestScriptsRunAsTheScriptUser(t *testing.T) {
	u := newScriptUser(t)
	st := newScriptTree(t)
	st.dir("bin", 0o755)
	out := st.dir("out", 0o755)
	if err := os.Chown(out, atoi(t, u.uid), atoi(t, u.gid)); err != nil {
		t.Fatal(err)
	}
	whoami := writeIDScript(t, st.path("bin/whoami.sh"), 0o755)
	t.Setenv("LVSD_TEST_SECRET", "must not reach scripts")

	path := filepath.Join(t.TempDir(), "lvsd.yaml")
	writeConfig(t, path, fmt.Sprintf(`lvsd:
  script_user: %s
virtual_services:
  - address: 192.168.0.100
    port: 80
    health_check: {type: script, command: [%s, %s], interval: 100ms, timeout: 100ms}
    real_servers:
      - address: 10.0.0.1
      - address: 10.0.0.2
        health_check: {type: script, command: [%s, %s], script_user: root, interval: 100ms, timeout: 100ms}
`, u.name, whoami, filepath.Join(out, "user"), whoami, filepath.Join(out, "root")))
	d, err := NewDaemon(DaemonOptions{ConfigPath: path, Client: ipvstest.New(), StateDir: t.TempDir(), Load: config.LoadOptions{Scripts: scripts.OS()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	read := func(name string) []string {
		var lines []string
		waitFor(t, name+"'s id", func() bool {
			b, err := os.ReadFile(filepath.Join(out, name))
			lines = strings.Split(strings.TrimSpace(string(b)), "\n")
			// PATH comes after the id lines
			return err == nil && slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "PATH=") })
		})
		return lines
	}
	got := read("user")
	groups := strings.Fields(got[2])
	slices.Sort(groups)
	want := []string{u.gid, u.extraGID}
	slices.Sort(want)
	if got[0] != u.uid || got[1] != u.gid || !slices.Equal(groups, want) {
		t.Errorf("the script ran as uid %s gid %s groups %v; want %s %s %v (%s)", got[0], got[1], groups, u.uid, u.gid, want, u.name)
	}
	for _, l := range got[3:] {
		if strings.HasPrefix(l, "LVSD_TEST_SECRET=") {
			t.Errorf("lvsd's environment reached the script: %s", l)
		}
		if strings.HasPrefix(l, "PATH=") && l != "PATH="+scripts.SafePath {
			t.Errorf("script's %s, want PATH=%s", l, scripts.SafePath)
		}
	}
	if root := read("root"); root[0] != "0" || root[1] != "0" {
		t.Errorf("the script_user: root check ran as uid %s gid %s", root[0], root[1])
	}
}

// TestScriptsOthersCanChangeAreRefused: a script in a world-writable
// directory, a group-writable script, a link into /tmp and a PATH
// lookup that leads into a writable directory are each refused at load
// with their file:line and who can write what; insecure_scripts runs
// them, with a warning for each at start.
func TestScriptsOthersCanChangeAreRefused(t *testing.T) {
	u := newScriptUser(t)
	st := newScriptTree(t)
	st.dir("bin", 0o755)
	ww := st.dir("ww", 0o777)
	out := st.dir("out", 0o777)
	inWW := writeIDScript(t, filepath.Join(ww, "chk.sh"), 0o755)
	groupW := writeIDScript(t, st.path("bin/gw.sh"), 0o775)
	if err := os.Chown(groupW, 0, atoi(t, u.extraGID)); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	for _, d := range []string{filepath.Dir(tmp), tmp} { // the script user must reach it
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeIDScript(t, filepath.Join(tmp, "chk.sh"), 0o755)
	link := st.path("bin/link")
	if err := os.Symlink(filepath.Join(tmp, "chk.sh"), link); err != nil {
		t.Fatal(err)
	}
	// A name found through scripts.SafePath: /usr/local/sbin is root's,
	// but the name is a link into the world-writable directory.
	inPath := "lvsd-test-" + u.name
	if err := os.Symlink(inWW, filepath.Join("/usr/local/sbin", inPath)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join("/usr/local/sbin", inPath)) })

	conf := func(extra string) string {
		path := filepath.Join(t.TempDir(), "lvsd.yaml")
		writeConfig(t, path, fmt.Sprintf(`lvsd:
  script_user: %s
%svirtual_services:
  - address: 192.168.0.100
    port: 80
    real_servers:
      - address: 10.0.0.1
        health_check: {type: script, command: [%s, %s/1], interval: 100ms, timeout: 100ms}
      - address: 10.0.0.2
        health_check: {type: script, command: [%s, %s/2], interval: 100ms, timeout: 100ms}
      - address: 10.0.0.3
        health_check: {type: script, command: [%s, %s/3], interval: 100ms, timeout: 100ms}
      - address: 10.0.0.4
        health_check: {type: script, command: [%s, %s/4], interval: 100ms, timeout: 100ms}
`, u.name, extra, inWW, out, groupW, out, link, out, inPath, out))
		return path
	}
	path := conf("")
	_, err := config.Load(path, config.LoadOptions{Scripts: scripts.OS()})
	var errs config.ErrorList
	if !errors.As(err, &errs) || len(errs) != 4 {
		t.Fatalf("want 4 problems, got %v", err)
	}
	for i, want := range []string{
		fmt.Sprintf("%s:8:47: command: others can change what lvsd runs as user %s: %s: %s is writable by every user (mode 0777): chmod o-w %s", path, u.name, inWW, ww, ww),
		fmt.Sprintf("%s:10:47: command: others can change what lvsd runs as user %s: %s is group-writable by group %s (gid %s) (mode 0775): chmod g-w %s", path, u.name, groupW, u.extra, u.extraGID, groupW),
		fmt.Sprintf("%s:12:47: command: others can change what lvsd runs as user %s: %s (through %s -> %s/chk.sh): /tmp is writable by every user (mode 1777; the sticky bit", path, u.name, link, link, tmp),
		fmt.Sprintf("%s:14:47: command: others can change what lvsd runs as user %s: %s (through %s -> /usr/local/sbin/%s (from PATH), /usr/local/sbin/%s -> %s): %s is writable by every user (mode 0777)", path, u.name, inPath, inPath, inPath, inPath, inWW, ww),
	} {
		if !strings.HasPrefix(errs[i].Error(), want) {
			t.Errorf("problem %d:\n got %s\nwant %s...", i+1, errs[i], want)
		}
	}

	// The opt-out: the same scripts run, each named in a warning.
	path = conf("  insecure_scripts: true\n")
	var logs syncBuffer
	d, err := NewDaemon(DaemonOptions{
		ConfigPath: path, Client: ipvstest.New(), StateDir: t.TempDir(), Load: config.LoadOptions{Scripts: scripts.OS()},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for i := 1; i <= 4; i++ {
		waitFor(t, fmt.Sprintf("insecure script %d to run", i), func() bool {
			b, err := os.ReadFile(filepath.Join(out, fmt.Sprint(i)))
			return err == nil && strings.HasPrefix(string(b), u.uid+"\n")
		})
	}
	text := logs.String()
	for _, want := range []string{
		"level=WARN msg=\"insecure_scripts: true: lvsd runs scripts that users other than root could change",
		fmt.Sprintf("%s:9:47: health check of real server 10.0.0.1 in TCP 192.168.0.100:80: running it although others can change it: %s: %s is writable by every user", path, inWW, ww),
		fmt.Sprintf("%s:15:47: health check of real server 10.0.0.4", path),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestScriptUserTimeoutKillsItsGroup: at the timeout lvsd kills the
// whole process group of a program running as another user, children
// included.
func TestScriptUserTimeoutKillsItsGroup(t *testing.T) {
	u := newScriptUser(t)
	cred, err := scripts.LookupCredential(scripts.OS(), u.name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	p := scripts.Program{Path: "/bin/sh", Args: []string{"sh", "-c", "sleep 60 & sleep 60; wait"}, User: cred}
	if err := p.Run(ctx); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("run: %v, want killed at the timeout", err)
	}
	waitFor(t, "no process of "+u.name+" left", func() bool {
		return exec.Command("pgrep", "-u", u.uid).Run() != nil // exit 1: none
	})
}
