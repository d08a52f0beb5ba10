package config

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/lvskit/lvskit/director/scripts"
	"gopkg.in/yaml.v3"
)

// VRRPScript is a track script (keepalived's vrrp_script): a command run
// every interval whose exit status moves the instances that track it.
//
//	vrrp:
//	  scripts:
//	    - name: chk_nginx
//	      command: [/usr/bin/pgrep, -x, nginx]   # run without a shell
//	      interval: 2s     # default 1s
//	      timeout: 1s      # default the interval
//	      rise: 2          # passes in a row to count as up (default 1)
//	      fall: 2          # failures in a row to count as down (default 1)
//	      weight: -20      # default 0: fault while down
type VRRPScript struct {
	// Name (name) is what track_scripts refer to. Required, unique.
	Name string `yaml:"name"`
	// Command (command) is the program and its arguments, run without a
	// shell; exit status 0 is a pass. Required.
	Command []string `yaml:"command"`
	// Shell (shell) runs command through /bin/sh -c instead.
	Shell bool `yaml:"shell"`
	// ScriptUser (script_user) runs it as another user than
	// lvsd.script_user: "user" or "user:group"; "root" for a script that
	// must be root.
	ScriptUser string `yaml:"script_user"`
	// Program is the command as lvsd runs it, resolved at load.
	Program *scripts.Program `yaml:"-"`
	// Interval (interval) is how often it runs. Default 1s.
	Interval time.Duration `yaml:"interval"`
	// Timeout (timeout) kills a run that takes longer (a failure).
	// Default the interval.
	Timeout time.Duration `yaml:"timeout"`
	// Rise (rise) and Fall (fall) are the passes and failures in a row
	// that turn it up and down. Default 1 each.
	Rise int `yaml:"rise"`
	Fall int `yaml:"fall"`
	// Weight (weight), -253 to 253: 0 puts the tracking instances in fault
	// while the script is down; a positive weight is added to their
	// priority while it is up; a negative one is subtracted while it is
	// down. Default 0.
	Weight int `yaml:"weight"`
}

// TrackInterface is a link an instance tracks: a name, or a mapping of
// name and weight.
type TrackInterface struct {
	// Name (name) is the link. Required.
	Name string `yaml:"name"`
	// Weight (weight), -253 to 253: unset or 0 puts the instance in fault
	// while the link is down; positive is added to the priority while it
	// is up, negative subtracted while it is down.
	Weight int `yaml:"weight"`
}

// TrackScript is a script an instance tracks: a name, or a mapping of
// name and a weight that overrides the script's.
type TrackScript struct {
	// Name (name) names a script of vrrp.scripts. Required.
	Name string `yaml:"name"`
	// Weight (weight) overrides the script's weight for this instance.
	Weight *int `yaml:"weight"`
}

// VRRPSyncGroup is a set of instances that fail over together: while
// any member is in fault (its interface is down, a tracked script or
// link put it there), every member is, so the peer takes all of them.
type VRRPSyncGroup struct {
	// Name (name) names the group in logs and notify commands. Required,
	// unique.
	Name string `yaml:"name"`
	// Instances (instances) are the members, two or more, each in at most
	// one group.
	Instances []string `yaml:"instances"`
	// Notify (notify) are commands run when the whole group has reached a
	// new state.
	Notify *VRRPNotify `yaml:"notify"`
}

// VRRPNotify are commands lvsd runs on state changes, each an argument
// list run without a shell; lvsd does not wait for them beyond 30s.
type VRRPNotify struct {
	// Master (master), Backup (backup), Fault (fault) and Stop (stop)
	// run on entering that state (stop: when lvsd stops).
	Master []string `yaml:"master"`
	Backup []string `yaml:"backup"`
	Fault  []string `yaml:"fault"`
	Stop   []string `yaml:"stop"`
	// Any (any) runs on every change with four arguments appended, as
	// keepalived's notify: INSTANCE or GROUP, the name, the new state
	// (MASTER, BACKUP, FAULT or STOP) and the priority.
	Any []string `yaml:"any"`
	// ScriptUser (script_user) runs these commands as another user than
	// lvsd.script_user.
	ScriptUser string `yaml:"script_user"`
	// Programs are the commands as lvsd runs them, resolved at load, by
	// key (master, backup, fault, stop, any).
	Programs map[string]*scripts.Program `yaml:"-"`
}

// Defaults of a track script.
const (
	DefaultVRRPScriptInterval = time.Second
	MaxTrackWeight            = 253
)

func (ti *TrackInterface) decodeNode(d *decoder, n *yaml.Node, key string) {
	if n.Kind == yaml.ScalarNode {
		d.value(n, reflect.ValueOf(&ti.Name).Elem(), key)
		return
	}
	d.structure(n, reflect.ValueOf(ti).Elem(), key)
}

func (ts *TrackScript) decodeNode(d *decoder, n *yaml.Node, key string) {
	if n.Kind == yaml.ScalarNode {
		d.value(n, reflect.ValueOf(&ts.Name).Elem(), key)
		return
	}
	d.structure(n, reflect.ValueOf(ts).Elem(), key)
}

// vrrpScripts checks the scripts, fills in their defaults and returns
// them by name.
func (c *checker) vrrpScripts(scripts []VRRPScript) map[string]*VRRPScript {
	byName := map[string]*VRRPScript{}
	for i := range scripts {
		s := &scripts[i]
		if !c.valid(s) {
			continue
		}
		switch {
		case !c.written(&s.Name):
			c.at(s, "a vrrp script needs a name: write name: chk_nginx")
		case !c.valid(&s.Name):
		case s.Name == "":
			c.at(&s.Name, "name: empty: write a name such as chk_nginx")
		default:
			if first, dup := byName[s.Name]; dup {
				c.at(&s.Name, "duplicate vrrp script name %q: it is already used at %s: give each script its own name", s.Name, c.where(first))
			} else {
				byName[s.Name] = s
			}
		}
		if !c.written(&s.Command) || c.valid(&s.Command) && (len(s.Command) == 0 || s.Command[0] == "") {
			c.at(s, "a vrrp script needs a command: write command: [/usr/bin/pgrep, -x, nginx] (run without a shell; exit 0 is a pass)")
		}
		if !c.written(&s.Interval) {
			s.Interval = DefaultVRRPScriptInterval
		} else if c.valid(&s.Interval) && s.Interval < 100*time.Millisecond {
			c.at(&s.Interval, "interval: %v is too short: write 100ms or more", s.Interval)
		}
		if !c.written(&s.Timeout) {
			s.Timeout = s.Interval
		} else if c.valid(&s.Timeout) && s.Timeout <= 0 {
			c.at(&s.Timeout, "timeout: %v: write a positive duration, or leave it out for the interval", s.Timeout)
		}
		for _, rf := range []struct {
			name string
			p    *int
		}{{"rise", &s.Rise}, {"fall", &s.Fall}} {
			if !c.written(rf.p) {
				*rf.p = 1
			} else if c.valid(rf.p) && *rf.p < 1 {
				c.at(rf.p, "%s: %d: write 1 or more", rf.name, *rf.p)
			}
		}
		if c.valid(&s.Weight) {
			c.weight(&s.Weight)
		}
	}
	return byName
}

func (c *checker) weight(p *int) {
	if *p < -MaxTrackWeight || *p > MaxTrackWeight {
		c.at(p, "weight: %d is out of range: write -253 to 253 (0: fault while down)", *p)
	}
}

// tracking checks an instance's track_interfaces and track_scripts.
func (c *checker) tracking(in *VRRPInstance) {
	seen := map[string]bool{}
	for i := range in.TrackInterfaces {
		ti := &in.TrackInterfaces[i]
		if !c.valid(ti) || !c.valid(&ti.Name) {
			continue
		}
		switch {
		case !validInterfaceName(ti.Name):
			c.at(&ti.Name, "track_interfaces: %q is not an interface name: write a name such as eth1", ti.Name)
		case seen[ti.Name]:
			c.at(&ti.Name, "track_interfaces: %s is listed twice: list each link once", ti.Name)
		}
		seen[ti.Name] = true
		if c.valid(&ti.Weight) {
			c.weight(&ti.Weight)
		}
	}
	seen = map[string]bool{}
	for i := range in.TrackScripts {
		ts := &in.TrackScripts[i]
		if !c.valid(ts) || !c.valid(&ts.Name) {
			continue
		}
		if _, ok := c.scripts[ts.Name]; !ok {
			names := slices.Sorted(maps.Keys(c.scripts))
			hint := "define it under vrrp: {scripts: [{name: " + ts.Name + ", command: [...]}]}"
			if len(names) > 0 {
				hint = "write one of " + strings.Join(names, ", ") + ", or " + hint
			}
			c.at(&ts.Name, "track_scripts: %q is not a vrrp script: %s", ts.Name, hint)
		} else if seen[ts.Name] {
			c.at(&ts.Name, "track_scripts: %s is listed twice: list each script once", ts.Name)
		}
		seen[ts.Name] = true
		if ts.Weight != nil && c.valid(ts.Weight) {
			c.weight(ts.Weight)
		}
	}
}

func (c *checker) notify(n *VRRPNotify) {
	for _, cmd := range []*[]string{&n.Master, &n.Backup, &n.Fault, &n.Stop, &n.Any} {
		if c.written(cmd) && c.valid(cmd) && (len(*cmd) == 0 || (*cmd)[0] == "") {
			c.at(cmd, "an empty notify command: write the program and its arguments, [/usr/local/bin/lvs-notify, master], or leave the key out")
		}
	}
}

// syncGroups checks the sync groups against the instances by name.
func (c *checker) syncGroups(groups []VRRPSyncGroup, instances map[string]*VRRPInstance) {
	names := map[string]*VRRPSyncGroup{}
	member := map[string]*VRRPSyncGroup{}
	for i := range groups {
		g := &groups[i]
		if !c.valid(g) {
			continue
		}
		if !c.written(&g.Name) {
			c.at(g, "a sync group needs a name: write name: G1")
		} else if c.valid(&g.Name) {
			if first, dup := names[g.Name]; dup {
				c.at(&g.Name, "duplicate sync group name %q: it is already used at %s", g.Name, c.where(first))
			}
			names[g.Name] = g
		}
		if c.valid(&g.Instances) && len(g.Instances) < 2 {
			c.at(g, "a sync group needs two or more instances: write instances: [VI_1, VI_2]")
		}
		for j := range g.Instances {
			name := &g.Instances[j]
			if !c.valid(name) {
				continue
			}
			if _, ok := instances[*name]; !ok {
				c.at(name, "instances: %q is not a vrrp instance of this config: write the name of one (%s)", *name, strings.Join(instanceNames(&c.cfg.VRRP), ", "))
				continue
			}
			if other, dup := member[*name]; dup {
				if other == g {
					c.at(name, "instances: %s is listed twice in this group", *name)
				} else {
					c.at(name, "instances: %s is already in sync group %q: an instance belongs to one group at most", *name, other.Name)
				}
				continue
			}
			member[*name] = g
		}
		if g.Notify != nil {
			c.notify(g.Notify)
		}
	}
}

// SyncGroupOf returns the sync group the instance belongs to, or nil.
func (v *VRRP) SyncGroupOf(instance string) *VRRPSyncGroup {
	for i := range v.SyncGroups {
		for _, n := range v.SyncGroups[i].Instances {
			if n == instance {
				return &v.SyncGroups[i]
			}
		}
	}
	return nil
}

// Script returns the script of that name, or nil.
func (v *VRRP) Script(name string) *VRRPScript {
	for i := range v.Scripts {
		if v.Scripts[i].Name == name {
			return &v.Scripts[i]
		}
	}
	return nil
}
