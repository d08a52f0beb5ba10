package config

// Script security: every command the config runs is resolved (PATH
// lookups in scripts.SafePath), checked for who could change it, and
// given the user it runs as, when the config is loaded (never per run).

import (
	"errors"
	"fmt"
	"strings"

	"github.com/lvskit/lvskit/director/scripts"
)

// DefaultScriptUser is the user scripts run as when lvsd.script_user is
// not written and this user exists.
const DefaultScriptUser = "lvsd_script"

// ScriptRef is one command the configuration runs, as Load found it.
type ScriptRef struct {
	// At is where the command is written: file:line:col.
	At string
	// What says which command it is: "vrrp script chk_nginx",
	// "notify master of vrrp instance VI_1".
	What string
	// Program is how lvsd runs it.
	Program scripts.Program
	// AsRoot is true when it runs as root.
	AsRoot bool
	// User is the script_user written for this command ("" when it
	// runs as lvsd.script_user or the default).
	User string
	// Problem is why lvsd refuses it (or, with insecure_scripts, runs it
	// anyway); empty when it is safe.
	Problem string
}

// shellProgram is what shell: true runs a command with.
var shellProgram = []string{"/bin/sh", "-c"}

// argvOf is the argument list a command runs with.
func argvOf(command []string, shell bool) []string {
	if shell {
		return append(append([]string(nil), shellProgram...), strings.Join(command, " "))
	}
	return append([]string(nil), command...)
}

// unchecked is a command as it runs when the config was loaded without
// script checks: looked up in scripts.SafePath, as lvsd's own user.
func unchecked(command []string, shell bool) scripts.Program {
	argv := argvOf(command, shell)
	if len(argv) == 0 {
		return scripts.Program{}
	}
	return scripts.Program{Path: argv[0], Args: argv}
}

// Run is how lvsd runs the check's command (type script).
func (h *HealthCheck) Run() scripts.Program {
	if h.Program != nil {
		return *h.Program
	}
	return unchecked(h.Command, h.Shell)
}

// Run is how lvsd runs the script.
func (s *VRRPScript) Run() scripts.Program {
	if s.Program != nil {
		return *s.Program
	}
	return unchecked(s.Command, s.Shell)
}

// Run is how lvsd runs the notify command under key (master, backup,
// fault, stop or any); an empty Program when there is none.
func (n *VRRPNotify) Run(key string) scripts.Program {
	if p := n.Programs[key]; p != nil {
		return *p
	}
	return unchecked(n.command(key), false)
}

func (n *VRRPNotify) command(key string) []string {
	switch key {
	case "master":
		return n.Master
	case "backup":
		return n.Backup
	case "fault":
		return n.Fault
	case "stop":
		return n.Stop
	case "any":
		return n.Any
	}
	return nil
}

// Run is how lvsd runs the up (up true) or down command; an empty
// Program when there is none.
func (q *Quorum) Run(up bool) scripts.Program {
	p, cmd := q.DownProgram, q.DownCommand
	if up {
		p, cmd = q.UpProgram, q.UpCommand
	}
	if p != nil {
		return *p
	}
	return unchecked(cmd, false)
}

// scriptChecker resolves and checks the commands of one load.
type scriptChecker struct {
	c       *checker
	host    scripts.Host
	audit   bool
	global  *scripts.Credential // nil: lvsd's own user
	users   map[string]*scripts.Credential
	checked map[string]error // by executable as written, after PATH lookup
	real    map[string]string
}

// scriptSecurity resolves every command of the config. Problems are
// errors at the command, unless insecure_scripts (then warnings) or
// audit (then only recorded in cfg.Scripts).
func (c *checker) scriptSecurity(host scripts.Host, audit bool) {
	sc := &scriptChecker{c: c, host: host, audit: audit, users: map[string]*scripts.Credential{}, checked: map[string]error{}, real: map[string]string{}}
	d := &c.cfg.LVSD
	if c.written(&d.ScriptUser) {
		if c.valid(&d.ScriptUser) {
			sc.global, _ = sc.user(&d.ScriptUser)
		}
	} else if _, err := host.LookupUser(DefaultScriptUser); err == nil && host.Euid() == 0 {
		sc.global, _ = scripts.LookupCredential(host, DefaultScriptUser)
	}
	if d.InsecureScripts {
		c.cfg.ScriptWarnings = append(c.cfg.ScriptWarnings, "insecure_scripts: true: lvsd runs scripts that users other than root could change, handing them root: fix the ownership and modes named below and remove insecure_scripts")
	}
	for i := range c.cfg.VirtualServices {
		s := &c.cfg.VirtualServices[i]
		name := s.Name
		if name == "" {
			name = s.Key().String()
		}
		if h := s.HealthCheck; h != nil && h.Type == CheckScript {
			h.Program = sc.command("command", &h.Command, h.Shell, &h.ScriptUser, "health check of virtual service "+name)
		}
		for j := range s.RealServers {
			rs := &s.RealServers[j]
			if h := rs.HealthCheck; h != nil && h.Type == CheckScript && h != s.HealthCheck {
				h.Program = sc.command("command", &h.Command, h.Shell, &h.ScriptUser, fmt.Sprintf("health check of real server %s in %s", rs.Address, name))
			}
		}
		if q := s.Quorum; q != nil {
			q.UpProgram = sc.command("up_command", &q.UpCommand, false, &q.ScriptUser, "quorum up_command of "+name)
			q.DownProgram = sc.command("down_command", &q.DownCommand, false, &q.ScriptUser, "quorum down_command of "+name)
		}
	}
	v := &c.cfg.VRRP
	for i := range v.Scripts {
		s := &v.Scripts[i]
		s.Program = sc.command("command", &s.Command, s.Shell, &s.ScriptUser, "vrrp script "+s.Name)
	}
	notify := func(n *VRRPNotify, of string) {
		if n == nil {
			return
		}
		n.Programs = map[string]*scripts.Program{}
		for _, k := range []struct {
			key  string
			argv *[]string
		}{{"master", &n.Master}, {"backup", &n.Backup}, {"fault", &n.Fault}, {"stop", &n.Stop}, {"any", &n.Any}} {
			if p := sc.command(k.key, k.argv, false, &n.ScriptUser, "notify "+k.key+" of "+of); p != nil {
				n.Programs[k.key] = p
			}
		}
	}
	for i := range v.Instances {
		notify(v.Instances[i].Notify, "vrrp instance "+v.Instances[i].Name)
	}
	for i := range v.SyncGroups {
		notify(v.SyncGroups[i].Notify, "sync group "+v.SyncGroups[i].Name)
	}
	if len(c.cfg.Scripts) > 0 && !c.written(&d.ScriptUser) && sc.global == nil && host.Euid() == 0 {
		c.cfg.RootScriptsWarning = fmt.Sprintf("scripts run as root: no %s user exists and lvsd.script_user is not set: create the user (useradd --system --no-create-home --shell /usr/sbin/nologin %s) or set lvsd.script_user", DefaultScriptUser, DefaultScriptUser)
	}
}

// user resolves a script_user value, reporting problems at it.
func (sc *scriptChecker) user(p *string) (*scripts.Credential, bool) {
	if cred, ok := sc.users[*p]; ok {
		return cred, true
	}
	cred, err := scripts.LookupCredential(sc.host, *p)
	if err != nil {
		sc.c.at(p, "script_user: %v", err)
		return nil, false
	}
	if euid := sc.host.Euid(); euid != 0 && cred.UID != euid {
		sc.c.at(p, "script_user: lvsd runs as uid %d, not root, so it cannot run scripts as %s: run lvsd as root, or remove script_user", euid, *p)
		return nil, false
	}
	if euid := sc.host.Euid(); euid != 0 {
		cred = nil // lvsd's own user: nothing to switch
	}
	sc.users[*p] = cred
	return cred, true
}

// command resolves one command; nil when there is none.
func (sc *scriptChecker) command(key string, argv *[]string, shell bool, user *string, what string) *scripts.Program {
	c := sc.c
	if !c.valid(argv) || len(*argv) == 0 || (*argv)[0] == "" {
		return nil
	}
	if a := *argv; !shell && len(a) == 1 && strings.ContainsAny(a[0], " \t") {
		// the usual mistake, reported where commands are checked
		c.at(&a[0], "%s: %q is one argument holding spaces, and no shell runs it: write each argument as its own item ([%s])", key, a[0], strings.Join(strings.Fields(a[0]), ", "))
		return nil
	}
	cred := sc.global
	if c.written(user) {
		if !c.valid(user) {
			return nil
		}
		var ok bool
		if cred, ok = sc.user(user); !ok {
			return nil
		}
	}
	args := argvOf(*argv, shell)
	p := &scripts.Program{Path: args[0], Args: args, User: cred}
	real, err := sc.resolve(args[0])
	if real != "" {
		p.Path = real
	}
	at := c.cfg.pos.m[argv].value
	ref := ScriptRef{At: fmt.Sprintf("%s:%d:%d", at.file, at.line, at.column), What: what, Program: *p, AsRoot: cred.IsRoot() || cred == nil && sc.host.Euid() == 0}
	if c.written(user) {
		ref.User = *user
	}
	if err != nil {
		ref.Problem = err.Error()
	}
	c.cfg.Scripts = append(c.cfg.Scripts, ref)
	if err == nil || sc.audit {
		return p
	}
	if shell {
		key = "shell: true runs " + shellProgram[0] + ", and"
	}
	var ie *scripts.InsecureError
	switch {
	case c.cfg.LVSD.InsecureScripts:
		c.cfg.ScriptWarnings = append(c.cfg.ScriptWarnings, fmt.Sprintf("%s: %s: running it although others can change it: %v", ref.At, what, err))
	case errors.As(err, &ie):
		c.at(argv, "%s: others can change what lvsd runs as %s: %v (to accept the risk, set lvsd.insecure_scripts: true)", key, runsAs(cred, sc.host), err)
	default:
		c.at(argv, "%s: %v", key, err)
	}
	return p
}

// resolve looks the executable up once per load.
func (sc *scriptChecker) resolve(name string) (string, error) {
	if err, ok := sc.checked[name]; ok {
		return sc.real[name], err
	}
	real, err := scripts.LookPath(sc.host, name, scripts.SafePath)
	sc.checked[name], sc.real[name] = err, real
	return real, err
}

func runsAs(cred *scripts.Credential, h scripts.Host) string {
	switch {
	case cred.IsRoot():
		return "root"
	case cred != nil:
		return "user " + cred.User
	case h.Euid() == 0:
		return "root"
	}
	return "lvsd's user"
}
