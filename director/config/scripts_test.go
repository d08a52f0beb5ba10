package config

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/lvskit/lvskit/director/scripts"
	"github.com/lvskit/lvskit/director/scripts/scriptstest"
)

// scriptHost is a director's filesystem: root's scripts in
// /usr/local/libexec/lvsd, a world-writable /tmp/x, a group-writable
// script, a link into /tmp, and a PATH directory (/usr/local/sbin)
// that group staff may write.
func scriptHost() *scriptstest.Host {
	h := scriptstest.New()
	h.AddGroup("staff", 50).AddUser(scripts.Account{Name: "alice", UID: 1000, GID: 1000})
	h.Dir("/usr/bin", 0o755, 0, 0).File("/usr/bin/pgrep", 0o755, 0, 0).Link("/bin", "usr/bin").File("/usr/bin/sh", 0o755, 0, 0)
	h.Dir("/usr/local/libexec/lvsd", 0o755, 0, 0).File("/usr/local/libexec/lvsd/chk", 0o755, 0, 0)
	h.File("/usr/local/libexec/lvsd/group-w", 0o775, 0, 50).Link("/usr/local/libexec/lvsd/to-tmp", "/tmp/x/chk.sh")
	h.Dir("/tmp", fs.ModeSticky|0o777, 0, 0).Dir("/tmp/x", 0o777, 0, 0).File("/tmp/x/chk.sh", 0o755, 0, 0)
	h.Dir("/usr/local/sbin", 0o775, 0, 50).File("/usr/local/sbin/notify-ops", 0o755, 0, 0)
	return h
}

const scriptsConfig = `lvsd:
  state_dir: /var/lib/lvsd
virtual_services:
  - name: web
    address: 192.168.0.100
    port: 80
    health_check: {type: script, command: [/tmp/x/chk.sh]}
    quorum: {weight: 1, up_command: [notify-ops, up]}
    real_servers:
      - address: 10.0.0.2
        health_check: {type: script, command: [/usr/local/libexec/lvsd/group-w], script_user: root}
      - address: 10.0.0.3
vrrp:
  scripts:
    - {name: chk_link, command: [/usr/local/libexec/lvsd/to-tmp]}
    - {name: chk_ok, command: [pgrep, -x, nginx]}
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: 51
      priority: 150
      virtual_addresses: [192.168.0.100]
      track_scripts: [chk_link, chk_ok]
      notify: {master: ["echo master >> /tmp/log"], backup: [/usr/local/libexec/lvsd/chk, BACKUP]}
`

// Every command others could change is refused at its file:line, naming
// the component and who can write it; the safe ones pass.
func TestScriptSecurityRefuses(t *testing.T) {
	_, err := Parse("lvsd.yaml", []byte(scriptsConfig), LoadOptions{FS: mapFS(nil), Scripts: scriptHost()})
	var errs ErrorList
	if !errors.As(err, &errs) {
		t.Fatalf("accepted: %v", err)
	}
	want := []string{
		"lvsd.yaml:7:43: command: others can change what lvsd runs as root: /tmp/x/chk.sh: /tmp is writable by every user (mode 1777; the sticky bit still lets anyone create a file or link here): move the program to a directory only root can write, such as /usr/local/libexec (to accept the risk, set lvsd.insecure_scripts: true)",
		"lvsd.yaml:8:37: up_command: others can change what lvsd runs as root: notify-ops (through notify-ops -> /usr/local/sbin/notify-ops (from PATH)): /usr/local/sbin is group-writable by group staff (gid 50) (mode 0775): chmod g-w /usr/local/sbin, or chgrp root /usr/local/sbin (to accept the risk, set lvsd.insecure_scripts: true)",
		"lvsd.yaml:11:47: command: others can change what lvsd runs as root: /usr/local/libexec/lvsd/group-w is group-writable by group staff (gid 50) (mode 0775): chmod g-w /usr/local/libexec/lvsd/group-w, or chgrp root /usr/local/libexec/lvsd/group-w (to accept the risk, set lvsd.insecure_scripts: true)",
		"lvsd.yaml:15:33: command: others can change what lvsd runs as root: /usr/local/libexec/lvsd/to-tmp (through /usr/local/libexec/lvsd/to-tmp -> /tmp/x/chk.sh): /tmp is writable by every user (mode 1777; the sticky bit still lets anyone create a file or link here): move the program to a directory only root can write, such as /usr/local/libexec (to accept the risk, set lvsd.insecure_scripts: true)",
		`lvsd.yaml:24:25: master: "echo master >> /tmp/log" is one argument holding spaces, and no shell runs it: write each argument as its own item ([echo, master, >>, /tmp/log])`,
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// With insecure_scripts the same config loads; each problem is a
// warning, and the programs keep their resolved paths.
func TestInsecureScriptsWarns(t *testing.T) {
	conf := strings.Replace(scriptsConfig, "state_dir: /var/lib/lvsd", "insecure_scripts: true", 1)
	conf = strings.Replace(conf, `["echo master >> /tmp/log"]`, "[/bin/pgrep]", 1)
	cfg, err := Parse("lvsd.yaml", []byte(conf), LoadOptions{FS: mapFS(nil), Scripts: scriptHost()})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cfg.ScriptWarnings); n != 5 { // the opt-out, 4 scripts
		t.Errorf("%d warnings, want 5:\n%s", n, strings.Join(cfg.ScriptWarnings, "\n"))
	}
	if w := cfg.ScriptWarnings[1]; !strings.HasPrefix(w, "lvsd.yaml:7:43: health check of virtual service web: running it although others can change it: /tmp/x/chk.sh: /tmp is writable") {
		t.Errorf("warning %q", w)
	}
	if p := cfg.VRRP.Scripts[0].Run(); p.Path != "/tmp/x/chk.sh" || p.Args[0] != "/usr/local/libexec/lvsd/to-tmp" {
		t.Errorf("link script runs %s %q", p.Path, p.Args)
	}
	if p := cfg.VRRP.Scripts[1].Run(); p.Path != "/usr/bin/pgrep" || strings.Join(p.Args, " ") != "pgrep -x nginx" {
		t.Errorf("PATH lookup runs %s %q", p.Path, p.Args)
	}
	if p := cfg.VRRP.Instances[0].Notify.Run("master"); p.Path != "/usr/bin/pgrep" {
		t.Errorf("notify master runs %s (through the /bin link: /usr/bin/pgrep)", p.Path)
	}
	if last := cfg.RootScriptsWarning; !strings.HasPrefix(last, "scripts run as root: no lvsd_script user exists and lvsd.script_user is not set") {
		t.Errorf("last warning %q", last)
	}
}

// script_user: the global one, a per-script one, lvsd_script by
// default; unknown users are errors at the setting.
func TestScriptUsers(t *testing.T) {
	h := scriptHost()
	h.AddUser(scripts.Account{Name: "lvsd_script", UID: 998, GID: 998, Groups: []uint32{998}}).AddGroup("lvsd_script", 998)
	h.AddUser(scripts.Account{Name: "checker", UID: 997, GID: 997, Groups: []uint32{997, 50}}).AddGroup("checker", 997)
	conf := `vrrp:
  scripts:
    - {name: a, command: [/usr/local/libexec/lvsd/chk]}
    - {name: b, command: [/usr/local/libexec/lvsd/chk], script_user: "checker:staff"}
    - {name: c, command: [/usr/local/libexec/lvsd/chk], script_user: root}
`
	cfg, err := Parse("lvsd.yaml", []byte(conf), LoadOptions{FS: mapFS(nil), Scripts: h})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"lvsd_script:lvsd_script 998/998 [998]", "checker:staff 997/50 [997 50]", "root:root 0/0 [0]"} {
		u := cfg.VRRP.Scripts[i].Run().User
		if got := u.String() + " " + ids(u); got != want {
			t.Errorf("script %d runs as %s, want %s", i, got, want)
		}
	}
	if len(cfg.ScriptWarnings) != 0 || cfg.RootScriptsWarning != "" {
		t.Errorf("warnings %q %q", cfg.ScriptWarnings, cfg.RootScriptsWarning)
	}
	if !cfg.Scripts[2].AsRoot || cfg.Scripts[0].AsRoot {
		t.Errorf("as root: %+v", cfg.Scripts)
	}

	conf = "lvsd: {script_user: nobody:wheel}\n" + strings.Replace(conf, `"checker:staff"`, "bob", 1)
	_, err = Parse("lvsd.yaml", []byte(conf), LoadOptions{FS: mapFS(nil), Scripts: h})
	want := "lvsd.yaml:1:21: script_user: group wheel does not exist: create it (groupadd --system wheel) or name another\n" +
		"lvsd.yaml:5:70: script_user: user bob does not exist: create it (useradd --system --no-create-home --shell /usr/sbin/nologin bob) or name another"
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
}

// lvsd not running as root can run scripts only as itself.
func TestScriptUserNeedsRoot(t *testing.T) {
	h := scriptHost().SetEuid(1000)
	conf := "lvsd: {script_user: nobody}\nvrrp:\n  scripts:\n    - {name: a, command: [/usr/local/libexec/lvsd/chk]}\n"
	_, err := Parse("lvsd.yaml", []byte(conf), LoadOptions{FS: mapFS(nil), Scripts: h})
	if want := "lvsd.yaml:1:21: script_user: lvsd runs as uid 1000, not root, so it cannot run scripts as nobody: run lvsd as root, or remove script_user"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

// The audit (lvsdiag) loads the config and records the problems.
func TestAuditScripts(t *testing.T) {
	conf := strings.Replace(scriptsConfig, `["echo master >> /tmp/log"]`, "[/bin/pgrep]", 1)
	h := scriptHost()
	cfg, err := Parse("lvsd.yaml", []byte(conf), LoadOptions{FS: mapFS(nil), Scripts: h, AuditScripts: true})
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, s := range cfg.Scripts {
		if s.Problem != "" {
			bad = append(bad, s.At+" "+s.What)
		}
	}
	want := "lvsd.yaml:7:43 health check of virtual service web|lvsd.yaml:11:47 health check of real server 10.0.0.2 in web|lvsd.yaml:8:37 quorum up_command of web|lvsd.yaml:15:33 vrrp script chk_link"
	if strings.Join(bad, "|") != want {
		t.Errorf("problems %q", bad)
	}
	// Checked once at load: running a program reads nothing.
	n := h.Lstats()
	_ = cfg.VRRP.Scripts[1].Run()
	if h.Lstats() != n {
		t.Error("Run read the filesystem")
	}
}

func ids(c *scripts.Credential) string {
	if c == nil {
		return "-"
	}
	return strings.Trim(strings.Join([]string{itoa(c.UID) + "/" + itoa(c.GID), groupList(c.Groups)}, " "), " ")
}

func itoa(v uint32) string { return strings.TrimSpace(strings.Repeat(" ", 0) + uitoa(v)) }

func uitoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

func groupList(g []uint32) string {
	s := make([]string, len(g))
	for i, v := range g {
		s[i] = uitoa(v)
	}
	return "[" + strings.Join(s, " ") + "]"
}
