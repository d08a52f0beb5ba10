package keepalived

// global_defs, vrrp_script, vrrp_sync_group and the commands they run.

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lvskit/lvskit/director/scripts"
	"gopkg.in/yaml.v3"
)

// keepalived's VRRP version when global_defs names none.
const defaultVRRPVersion = 2

var globalHandlers = handlers[*converter]{
	"vrrp_version": func(c *converter, _ *converter, s *stmt) error {
		v, err := intArg(s, 1, 2, 3)
		c.vrrpVersion = v
		return err
	},
	"lvs_sync_daemon": func(c *converter, _ *converter, s *stmt) error {
		// lvs_sync_daemon IF VRRP_INSTANCE [id N] [maxlen N] [port N] [ttl N] [group ADDR]
		if len(s.words) < 3 {
			return fmt.Errorf("%s: lvs_sync_daemon needs an interface and a vrrp instance", s.at())
		}
		sd := ymap("interface", ystr(s.words[1]), "vrrp_instance", ystr(s.words[2]))
		for i := 3; i < len(s.words); i += 2 {
			key := map[string]string{"id": "sync_id", "maxlen": "max_len", "port": "mcast_port", "ttl": "mcast_ttl", "group": "mcast_group"}[s.words[i]]
			if key == "" || i+1 >= len(s.words) {
				return fmt.Errorf("%s: lvs_sync_daemon: unknown option %q: want id, maxlen, port, ttl or group, each with a value", s.at(), s.words[i])
			}
			if key == "mcast_group" {
				yput(sd, key, ystr(s.words[i+1]))
				continue
			}
			n, err := strconv.Atoi(s.words[i+1])
			if err != nil {
				return fmt.Errorf("%s: lvs_sync_daemon %s %q: not a number", s.at(), s.words[i], s.words[i+1])
			}
			yput(sd, key, yint(n))
		}
		c.syncDaemon = sd
		return nil
	},
	"script_user": func(c *converter, _ *converter, s *stmt) error {
		// script_user USERNAME [GROUPNAME]
		u, err := user(s, 1)
		c.scriptUser = u
		return err
	},
	"enable_script_security": func(c *converter, _ *converter, s *stmt) error {
		c.security = true
		return nil
	},
	"lvs_timeouts": func(c *converter, _ *converter, s *stmt) error {
		t := ymap()
		for i := 1; i < len(s.words); i += 2 {
			key := map[string]string{"tcp": "tcp", "tcpfin": "tcp_fin", "udp": "udp"}[s.words[i]]
			if key == "" || i+1 >= len(s.words) {
				return fmt.Errorf("%s: lvs_timeouts: want tcp N, tcpfin N, udp N (seconds)", s.at())
			}
			n, err := strconv.Atoi(s.words[i+1])
			if err != nil || n < 0 {
				return fmt.Errorf("%s: lvs_timeouts: want tcp N, tcpfin N, udp N (seconds)", s.at())
			}
			yput(t, key, ystr((time.Duration(n) * time.Second).String()))
		}
		c.timeouts = t
		return nil
	},
}

// cosmeticGlobals are global_defs settings that change nothing lvsd
// does with traffic or the virtual addresses.
var cosmeticGlobals = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`router_id notification_email notification_email_from smtp_server smtp_connect_timeout
		smtp_helo_name smtp_alert smtp_alert_vrrp smtp_alert_checker enable_traps enable_snmp_vrrp enable_snmp_checker
		enable_snmp_rfc enable_snmp_rfcv2 enable_snmp_rfcv3 enable_snmp_keepalived snmp_socket max_auto_priority
		min_auto_priority_delay checker_log_all_failures process_names process_name vrrp_process_name checker_process_name
		bfd_process_name instance no_checker_emails vrrp_skip_check_adv_addr vrrp_notify_fifo vrrp_notify_fifo_script
		lvs_notify_fifo lvs_notify_fifo_script notify_fifo notify_fifo_script vrrp_check_unicast_src
		dynamic_interfaces linkbeat_use_polling default_interface`) {
		cosmeticGlobals[k] = true
	}
}

func unknownGlobal(c *converter, _ *converter, s *stmt) {
	if cosmeticGlobals[s.keyword()] {
		c.ignore(nil, s, KindGlobal, "it does not change what lvsd does with traffic or the virtual addresses")
		return
	}
	c.drop(nil, s, KindGlobal, "a keepalived global setting lvsd has no equivalent for")
}

var scriptHandlers = handlers[*yaml.Node]{
	"script": func(c *converter, n *yaml.Node, s *stmt) error {
		argv, shell := command(strings.Join(s.words[1:], " "))
		yput(n, "command", argv)
		if shell {
			yput(n, "shell", ybool(true))
		}
		c.hasScripts = true
		return nil
	},
	"user": func(c *converter, n *yaml.Node, s *stmt) error {
		// user USERNAME [GROUPNAME]
		u, err := user(s, 1)
		yput(n, "script_user", ystr(u))
		return err
	},
	"interval": durationKey("interval"),
	"timeout":  durationKey("timeout"),
	"weight": func(c *converter, n *yaml.Node, s *stmt) error {
		if len(s.words) > 2 {
			c.drop(n, s, KindVRRP, "reverse weights are not supported: the weight applies as written")
		}
		w, err := intArg(s, 1, -253, 253)
		yput(n, "weight", yint(w))
		return err
	},
	"rise": countKey("rise"),
	"fall": countKey("fall"),
}

// durationKey imports a number of seconds as an lvsd duration key.
func durationKey(key string) func(*converter, *yaml.Node, *stmt) error {
	return func(c *converter, n *yaml.Node, s *stmt) error {
		d, err := seconds(s)
		yput(n, key, ystr(d.String()))
		return err
	}
}

func countKey(key string) func(*converter, *yaml.Node, *stmt) error {
	return func(c *converter, n *yaml.Node, s *stmt) error {
		v, err := intArg(s, 1, 1, 1<<20)
		yput(n, key, yint(v))
		return err
	}
}

func (c *converter) vrrpScript(s *stmt) error {
	if len(s.words) != 2 || !s.hasBlock {
		return fmt.Errorf("%s: vrrp_script needs a name and a block", s.at())
	}
	n := ymap("name", ystr(s.words[1]))
	err := run(c, scriptHandlers, n, s.block, func(c *converter, n *yaml.Node, st *stmt) {
		c.drop(n, st, KindVRRP, "lvsd's track scripts have no such option")
	})
	if err != nil {
		return err
	}
	if yget(n, "command") == "" && !yhas(n, "command") {
		// keepalived runs a script with no script as a failing one;
		// such blocks (conditional configs) are left out.
		c.ignore(nil, s, KindVRRP, "the script has no command (for this config id): keepalived leaves it out, and so does lvsd")
		c.noScript[s.words[1]] = true
		return nil
	}
	c.origin[n] = s
	c.scripts = append(c.scripts, n)
	return nil
}

// notifyKeys are the notify commands of instances and sync groups.
var notifyKeys = map[string]string{"notify_master": "master", "notify_backup": "backup", "notify_fault": "fault", "notify_stop": "stop", "notify": "any"}

// notify imports a notify command into cmds (the notify block of n).
func (c *converter) notify(n, cmds *yaml.Node, s *stmt) {
	// notify_master COMMAND [USERNAME [GROUPNAME]]: the command is one
	// word, quoted when it has arguments.
	if c.commandUser(n, cmds, s, "notify commands") {
		yput(cmds, notifyKeys[s.keyword()], commandNode(s.words[1]))
		c.hasScripts = true
	}
}

// commandNode is a command line as an argument list; notify and quorum
// commands have no shell option, so shell syntax becomes /bin/sh -c.
func commandNode(line string) *yaml.Node {
	argv, shell := command(line)
	if shell {
		argv = yflow("/bin/sh", "-c", line)
	}
	return argv
}

// commandUser turns the USERNAME [GROUPNAME] after a notify or quorum
// command into the script_user of the block holding the commands (lvsd
// has one per block). A command whose user differs from the block's
// (or the block's default) is not imported: it would run as another
// user than keepalived ran it.
func (c *converter) commandUser(on, block *yaml.Node, s *stmt, what string) bool {
	u := ""
	if len(s.words) > 2 {
		var err error
		if u, err = user(s, 2); err != nil {
			c.drop(on, s, KindScript, err.Error())
			return false
		}
	}
	set := false
	for i := 0; i+1 < len(block.Content); i += 2 {
		switch block.Content[i].Value {
		case "master", "backup", "fault", "stop", "any", "up_command", "down_command":
			set = true
		}
	}
	prev := yget(block, "script_user")
	switch {
	case !set:
		if u != "" {
			yput(block, "script_user", ystr(u))
		}
	case prev != u:
		was := prev
		if was == "" {
			was = "the default script user"
		}
		c.drop(on, s, KindScript, fmt.Sprintf("lvsd runs all %s of a block as one script_user, and the others run as %s: run this one as that user too, or through a wrapper", what, was))
		return false
	}
	return true
}

// user reads USERNAME [GROUPNAME] from word i on as lvsd's user[:group].
func user(s *stmt, i int) (string, error) {
	w := s.words[i:]
	if len(w) == 0 || len(w) > 2 {
		return "", fmt.Errorf("%s: %s: want a user name and optionally a group name", s.at(), s.words[0])
	}
	u := strings.Join(w, ":")
	if _, _, err := scripts.ParseUser(u); err != nil {
		return "", fmt.Errorf("%s: %s: %w", s.at(), s.words[0], err)
	}
	return u, nil
}

// syncGroup is a vrrp_sync_group block being imported.
type syncGroup struct{ n, cmds *yaml.Node }

var syncGroupHandlers = handlers[*syncGroup]{
	"group": func(c *converter, g *syncGroup, s *stmt) error {
		var names []string
		for _, m := range s.block {
			names = append(names, m.words...)
		}
		yput(g.n, "instances", yflow(names...))
		return nil
	},
}

func init() {
	for k := range notifyKeys {
		syncGroupHandlers[k] = func(c *converter, g *syncGroup, s *stmt) error {
			c.notify(g.n, g.cmds, s)
			return nil
		}
	}
}

// keepalivedSyncGroupKeywords are what keepalived reads in a
// vrrp_sync_group besides group and the notify commands.
var keepalivedSyncGroupKeywords = map[string]bool{
	"global_tracking": true, "sync_group_tracking_weight": true, "track_interface": true, "track_script": true,
	"track_file": true, "track_process": true, "track_bfd": true, "notify_priority_changes": true, "smtp_alert": true,
}

func (c *converter) syncGroup(s *stmt) error {
	if len(s.words) != 2 || !s.hasBlock {
		return fmt.Errorf("%s: vrrp_sync_group needs a name and a block", s.at())
	}
	g := &syncGroup{n: ymap("name", ystr(s.words[1])), cmds: ymap()}
	err := run(c, syncGroupHandlers, g, s.block, func(c *converter, g *syncGroup, st *stmt) {
		if st.keyword() == "smtp_alert" {
			c.ignore(g.n, st, KindVRRP, "lvsd sends no e-mail")
			return
		}
		if len(st.words) == 1 && !st.hasBlock && !keepalivedSyncGroupKeywords[st.keyword()] {
			// keepalived reports "Unknown keyword" and goes on without it.
			c.ignore(g.n, st, KindVRRP, "not a keepalived keyword either (instances go inside group { }): keepalived ignores it, and so does lvsd")
			return
		}
		c.drop(g.n, st, KindVRRP, "lvsd sync groups take only instances and notify commands")
	})
	if err != nil {
		return err
	}
	if len(g.cmds.Content) > 0 {
		yput(g.n, "notify", g.cmds)
	}
	c.origin[g.n] = s
	c.syncGroups = append(c.syncGroups, g.n)
	return nil
}
