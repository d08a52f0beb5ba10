package scripts_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/lvskit/lvskit/director/scripts"
	"github.com/lvskit/lvskit/director/scripts/scriptstest"
)

// system is a Debian-like tree: /usr/bin and /usr/local/bin root's,
// /bin a link to usr/bin, /tmp sticky and world-writable, a staff
// group (50) and a user alice (1000).
func system() *scriptstest.Host {
	h := scriptstest.New()
	h.AddGroup("staff", 50).AddUser(scripts.Account{Name: "alice", UID: 1000, GID: 1000})
	h.Dir("/usr/bin", 0o755, 0, 0).File("/usr/bin/pgrep", 0o755, 0, 0).File("/usr/bin/test", 0o755, 0, 0)
	h.Link("/bin", "usr/bin")
	h.Dir("/usr/local/bin", 0o2775, 0, 50) // Debian's: group staff may write
	h.Dir("/usr/local/libexec", 0o755, 0, 0).File("/usr/local/libexec/chk", 0o755, 0, 0)
	h.Dir("/tmp", fs.ModeSticky|0o777, 0, 0).Dir("/tmp/x", 0o777, 0, 0).File("/tmp/x/chk.sh", 0o755, 0, 0)
	h.File("/tmp/rootonly", 0o755, 0, 0)
	h.Dir("/etc/lvsd", 0o755, 0, 0).File("/etc/lvsd/group-w", 0o775, 0, 50).File("/etc/lvsd/root-group-w", 0o775, 0, 0)
	h.File("/etc/lvsd/alice", 0o755, 1000, 1000).File("/etc/lvsd/world-w", 0o777, 0, 0)
	h.File("/etc/lvsd/plain", 0o644, 0, 0)
	h.Link("/usr/local/libexec/to-tmp", "/tmp/x/chk.sh").Link("/usr/local/libexec/rel", "../libexec/./chk")
	h.Dir("/home/alice", 0o755, 1000, 1000).File("/home/alice/chk", 0o755, 0, 0)
	h.Link("/usr/local/libexec/via-home", "/home/alice/chk")
	h.Link("/usr/local/libexec/loop", "loop")
	return h
}

func TestVerify(t *testing.T) {
	tests := []struct {
		path string
		real string // when it is safe
		err  string // otherwise, the whole message
	}{
		{path: "/usr/bin/pgrep", real: "/usr/bin/pgrep"},
		{path: "/bin/pgrep", real: "/usr/bin/pgrep"},
		{path: "/usr/local/libexec/rel", real: "/usr/local/libexec/chk"},
		{path: "/usr/bin/../bin/test", real: "/usr/bin/test"},
		{path: "/etc/lvsd/root-group-w", real: "/etc/lvsd/root-group-w"},
		{path: "/tmp/x/chk.sh", err: "/tmp/x/chk.sh: /tmp is writable by every user (mode 1777; the sticky bit still lets anyone create a file or link here): move the program to a directory only root can write, such as /usr/local/libexec"},
		{path: "/tmp/rootonly", err: "/tmp/rootonly: /tmp is writable by every user (mode 1777; the sticky bit still lets anyone create a file or link here): move the program to a directory only root can write, such as /usr/local/libexec"},
		{path: "/etc/lvsd/group-w", err: "/etc/lvsd/group-w is group-writable by group staff (gid 50) (mode 0775): chmod g-w /etc/lvsd/group-w, or chgrp root /etc/lvsd/group-w"},
		{path: "/etc/lvsd/alice", err: "/etc/lvsd/alice is owned by user alice (uid 1000): chown root /etc/lvsd/alice"},
		{path: "/etc/lvsd/world-w", err: "/etc/lvsd/world-w is writable by every user (mode 0777): chmod o-w /etc/lvsd/world-w"},
		{path: "/usr/local/libexec/to-tmp", err: "/usr/local/libexec/to-tmp (through /usr/local/libexec/to-tmp -> /tmp/x/chk.sh): /tmp is writable by every user (mode 1777; the sticky bit still lets anyone create a file or link here): move the program to a directory only root can write, such as /usr/local/libexec"},
		{path: "/usr/local/libexec/via-home", err: "/usr/local/libexec/via-home (through /usr/local/libexec/via-home -> /home/alice/chk): /home/alice is owned by user alice (uid 1000): chown root /home/alice"},
		{path: "/usr/local/bin/anything", err: "/usr/local/bin/anything: /usr/local/bin/anything not found: install it, or correct the path"},
		{path: "/etc/lvsd/plain", err: "/etc/lvsd/plain: /etc/lvsd/plain is not executable (mode 0644): chmod 755 /etc/lvsd/plain"},
		{path: "/etc/lvsd", err: "/etc/lvsd: /etc/lvsd is not a regular file"},
		{path: "/usr/bin/pgrep/x", err: "/usr/bin/pgrep/x: /usr/bin/pgrep is not a directory"},
		{path: "/usr/local/libexec/loop", err: "/usr/local/libexec/loop: more than 40 symbolic links (a loop?)"},
		{path: "chk", err: "chk is not an absolute path: write the full path, such as /usr/local/bin/chk"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			real, err := scripts.Verify(system(), tt.path)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.err == "" && real != tt.real:
				t.Errorf("resolved to %s, want %s", real, tt.real)
			case tt.err != "" && err == nil:
				t.Fatalf("accepted (%s), want %q", real, tt.err)
			case tt.err != "" && err.Error() != tt.err:
				t.Errorf("error\n got %q\nwant %q", err, tt.err)
			}
		})
	}
}

// The owner may be lvsd's own user when lvsd does not run as root (it
// could change its own files anyway); nobody else.
func TestVerifyTrustsLVSDsOwnUser(t *testing.T) {
	h := system().SetEuid(1000)
	if _, err := scripts.Verify(h, "/etc/lvsd/alice"); err != nil {
		t.Errorf("lvsd running as alice refuses alice's script: %v", err)
	}
	if _, err := scripts.Verify(h.SetEuid(0), "/etc/lvsd/alice"); err == nil {
		t.Error("lvsd running as root accepts alice's script")
	}
}

func TestLookPath(t *testing.T) {
	h := system()
	h.File("/usr/local/bin/mine", 0o755, 0, 0).Dir("/opt/bin", 0o777, 0, 0).File("/opt/bin/mine", 0o755, 0, 0).File("/opt/bin/only-here", 0o755, 0, 0)
	h.File("/usr/bin/noexec", 0o644, 0, 0).File("/usr/sbin/noexec", 0o755, 0, 0)
	const path = "/usr/sbin:/usr/bin:/opt/bin"
	for _, tt := range []struct{ name, real, err string }{
		{name: "pgrep", real: "/usr/bin/pgrep"},
		{name: "noexec", real: "/usr/sbin/noexec"},
		{name: "only-here", err: "only-here (through only-here -> /opt/bin/only-here (from PATH)): /opt/bin is writable by every user (mode 0777): chmod o-w /opt/bin, or move the program to a directory only root can write"},
		{name: "missing", err: "missing: not found in /usr/sbin:/usr/bin:/opt/bin: write its full path"},
		{name: "/usr/bin/pgrep", real: "/usr/bin/pgrep"},
		{name: "./pgrep", err: "./pgrep is not an absolute path: write the full path, such as /usr/local/bin/pgrep"},
	} {
		real, err := scripts.LookPath(h, tt.name, path)
		switch {
		case tt.err == "" && (err != nil || real != tt.real):
			t.Errorf("%s: %q, %v; want %s", tt.name, real, err, tt.real)
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("%s: %q, %v\nwant error %q", tt.name, real, err, tt.err)
		}
	}
	var ie *scripts.InsecureError
	if _, err := scripts.LookPath(h, "only-here", path); !errors.As(err, &ie) || ie.Component != "/opt/bin" {
		t.Errorf("error %v: want an InsecureError naming /opt/bin", err)
	}
	if _, err := scripts.LookPath(h, "missing", path); !errors.Is(err, scripts.ErrNotFound) {
		t.Errorf("error %v is not ErrNotFound", err)
	}
}

func TestLookupCredential(t *testing.T) {
	h := system()
	h.AddUser(scripts.Account{Name: "lvsd_script", UID: 998, GID: 998, Groups: []uint32{998, 50}}).AddGroup("lvsd_script", 998)
	for _, tt := range []struct{ spec, want, err string }{
		{spec: "lvsd_script", want: "lvsd_script:lvsd_script 998/998 [998 50]"},
		{spec: "lvsd_script:staff", want: "lvsd_script:staff 998/50 [998 50]"},
		{spec: "root", want: "root:root 0/0 [0]"},
		{spec: "bob", err: "user bob does not exist: create it (useradd --system --no-create-home --shell /usr/sbin/nologin bob) or name another"},
		{spec: "lvsd_script:wheel", err: "group wheel does not exist: create it (groupadd --system wheel) or name another"},
		{spec: ":staff", err: `":staff" is not a user: write a user name, or user:group, such as lvsd_script or lvsd_script:nogroup`},
		{spec: "a b", err: `"a b" is not a user: write a user name, or user:group, such as lvsd_script or lvsd_script:nogroup`},
	} {
		c, err := scripts.LookupCredential(h, tt.spec)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%s: %v, want error %q", tt.spec, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.spec, err)
			continue
		}
		if got := strings.TrimSpace(c.String() + " " + fmtIDs(c)); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.spec, got, tt.want)
		}
	}
}

// A script's interpreter is checked too: the #! line, and the program
// /usr/bin/env looks up.
func TestVerifyInterpreter(t *testing.T) {
	h := system()
	h.File("/usr/bin/env", 0o755, 0, 0).File("/usr/bin/python3", 0o755, 0, 0).File("/usr/bin/sh", 0o755, 0, 0)
	h.Dir("/opt/venv/bin", 0o755, 1000, 1000).File("/opt/venv/bin/python", 0o755, 1000, 1000)
	h.Dir("/usr/local/sbin", 0o777, 0, 0).File("/usr/local/sbin/ruby", 0o755, 0, 0)
	h.Script("/usr/local/libexec/ok.sh", 0o755, 0, 0, "#!/bin/sh -e\nexit 0\n")
	h.Script("/usr/local/libexec/ok.py", 0o755, 0, 0, "#!/usr/bin/env python3\n")
	h.Script("/usr/local/libexec/venv.py", 0o755, 0, 0, "#!/opt/venv/bin/python\n")
	h.Script("/usr/local/libexec/env.rb", 0o755, 0, 0, "#! /usr/bin/env -S ruby -w\n")
	h.Script("/usr/local/libexec/gone", 0o755, 0, 0, "#!/usr/bin/perl\n")
	for _, tt := range []struct{ path, err string }{
		{path: "/usr/local/libexec/ok.sh"},
		{path: "/usr/local/libexec/ok.py"},
		{path: "/usr/local/libexec/venv.py", err: "/usr/local/libexec/venv.py (through /usr/local/libexec/venv.py runs /opt/venv/bin/python (#!)): /opt/venv/bin is owned by user alice (uid 1000): chown root /opt/venv/bin"},
		{path: "/usr/local/libexec/env.rb", err: "/usr/local/libexec/env.rb (through /usr/local/libexec/env.rb runs ruby (#!), ruby -> /usr/local/sbin/ruby (from PATH)): /usr/local/sbin is writable by every user (mode 0777): chmod o-w /usr/local/sbin, or move the program to a directory only root can write"},
		{path: "/usr/local/libexec/gone", err: "/usr/local/libexec/gone: its interpreter (#!): /usr/bin/perl: /usr/bin/perl not found: install it, or correct the path"},
	} {
		_, err := scripts.Verify(h, tt.path)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s refused: %v", tt.path, err)
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("%s:\n got %v\nwant %s", tt.path, err, tt.err)
		}
	}
}
