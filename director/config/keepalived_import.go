package config

// `lvsd import-keepalived`: keepalived.conf (virtual servers, VRRP
// instances, scripts, sync groups, the sync daemon) turned into an lvsd
// config. What has no lvsd equivalent is listed as a warning with its
// file:line and left as a comment in the output, never dropped silently;
// the output is then loaded like any lvsd config, so an import that lvsd
// would refuse says why.

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/lvskit/lvskit/director/scripts"
	"gopkg.in/yaml.v3"
)

// ImportOptions configure ImportKeepalived.
type ImportOptions struct {
	// FS reads the file and its includes; nil means the operating
	// system's files.
	FS fs.FS
}

// Imported is the result of an import.
type Imported struct {
	// YAML is the lvsd config.
	YAML []byte
	// Warnings are the keepalived settings left out, each with its
	// file:line and why.
	Warnings []string
}

// keepalived's defaults where they differ from lvsd's.
const (
	kaDelayLoop      = 60 * time.Second
	kaConnectTimeout = 5 * time.Second
	kaVRRPVersion    = 2
)

// ImportKeepalived reads a keepalived.conf and returns the lvsd config
// that does the same. Syntax errors and values that cannot be read are
// errors naming file:line; settings lvsd lacks are warnings.
func ImportKeepalived(path string, opts ImportOptions) (*Imported, error) {
	stmts, err := parseKeepalived(path, opts.FS)
	if err != nil {
		return nil, err
	}
	c := &kaConverter{vrrpVersion: kaVRRPVersion}
	if err := c.convert(stmts); err != nil {
		return nil, err
	}
	root := c.document()
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# lvsd config imported from %s by `lvsd import-keepalived`.\n", path)
	if len(c.warnings) > 0 {
		fmt.Fprintf(&buf, "# %d keepalived settings were not imported: see the comments marked \"not imported\".\n", len(c.warnings))
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("writing the lvsd config: %w", err)
	}
	enc.Close()
	return &Imported{YAML: buf.Bytes(), Warnings: c.warnings}, nil
}

type kaConverter struct {
	warnings    []string
	scriptUser  string // global_defs script_user, as user[:group]
	security    bool   // global_defs enable_script_security
	hasScripts  bool
	vrrpVersion int
	syncDaemon  *yaml.Node
	timeouts    *yaml.Node
	scripts     []*yaml.Node
	groups      []*yaml.Node
	instances   []*yaml.Node
	services    []*yaml.Node
	topComments []string
}

// skip records a setting that is not imported, as a warning and as a
// comment on the node it belongs to (nil: at the top of the file).
func (c *kaConverter) skip(on *yaml.Node, s *kaStmt, why string) {
	msg := fmt.Sprintf("%s: %s: not imported: %s", s.at(), s, why)
	c.warnings = append(c.warnings, msg)
	comment := fmt.Sprintf("not imported (%s): %s: %s", s.at(), s, why)
	if on == nil {
		c.topComments = append(c.topComments, comment)
		return
	}
	if on.HeadComment != "" {
		on.HeadComment += "\n"
	}
	on.HeadComment += comment
}

func (c *kaConverter) convert(stmts []*kaStmt) error {
	// global_defs first: vrrp_version applies to every instance.
	for _, s := range stmts {
		if s.keyword() == "global_defs" {
			if err := c.globalDefs(s); err != nil {
				return err
			}
		}
	}
	for _, s := range stmts {
		var err error
		switch s.keyword() {
		case "global_defs":
		case "vrrp_script":
			err = c.vrrpScript(s)
		case "vrrp_sync_group":
			err = c.syncGroup(s)
		case "vrrp_instance":
			err = c.vrrpInstance(s)
		case "virtual_server":
			err = c.virtualServer(s)
		default:
			c.skip(nil, s, "lvsd has no equivalent")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *kaConverter) globalDefs(g *kaStmt) error {
	for _, s := range g.block {
		if err := kaValue(s); err != nil {
			return err
		}
		switch s.keyword() {
		case "vrrp_version":
			v, err := kaInt(s, 1, 2, 3)
			if err != nil {
				return err
			}
			c.vrrpVersion = v
		case "lvs_sync_daemon":
			// lvs_sync_daemon IF VRRP_INSTANCE [id N] [maxlen N] [port N] [ttl N] [group ADDR]
			if len(s.words) < 3 {
				return fmt.Errorf("%s: lvs_sync_daemon needs an interface and a vrrp instance", s.at())
			}
			sd := ymap("interface", ystr(s.words[1]), "vrrp_instance", ystr(s.words[2]))
			for i := 3; i+1 < len(s.words); i += 2 {
				key := map[string]string{"id": "sync_id", "maxlen": "max_len", "port": "mcast_port", "ttl": "mcast_ttl", "group": "mcast_group"}[s.words[i]]
				if key == "" {
					return fmt.Errorf("%s: lvs_sync_daemon: unknown option %q", s.at(), s.words[i])
				}
				if key == "mcast_group" {
					yput(sd, key, ystr(s.words[i+1]))
				} else {
					n, err := strconv.Atoi(s.words[i+1])
					if err != nil {
						return fmt.Errorf("%s: lvs_sync_daemon %s %q: not a number", s.at(), s.words[i], s.words[i+1])
					}
					yput(sd, key, yint(n))
				}
			}
			c.syncDaemon = sd
		case "script_user":
			// script_user USERNAME [GROUPNAME]
			u, err := kaUser(s, 1)
			if err != nil {
				return err
			}
			c.scriptUser = u
		case "enable_script_security":
			c.security = true
		case "lvs_timeouts":
			t := ymap()
			for i := 1; i+1 < len(s.words); i += 2 {
				key := map[string]string{"tcp": "tcp", "tcpfin": "tcp_fin", "udp": "udp"}[s.words[i]]
				n, err := strconv.Atoi(s.words[i+1])
				if key == "" || err != nil {
					return fmt.Errorf("%s: lvs_timeouts: want tcp N, tcpfin N, udp N (seconds)", s.at())
				}
				yput(t, key, ystr((time.Duration(n) * time.Second).String()))
			}
			c.timeouts = t
		default:
			c.skip(nil, s, "a keepalived global setting lvsd has no use for")
		}
	}
	return nil
}

func (c *kaConverter) vrrpScript(s *kaStmt) error {
	if len(s.words) != 2 || !s.hasBlock {
		return fmt.Errorf("%s: vrrp_script needs a name and a block", s.at())
	}
	n := ymap("name", ystr(s.words[1]))
	for _, st := range s.block {
		if err := kaValue(st); err != nil {
			return err
		}
		switch st.keyword() {
		case "script":
			if len(st.words) < 2 {
				return fmt.Errorf("%s: script needs a command", st.at())
			}
			argv, shell := kaCommand(strings.Join(st.words[1:], " "))
			yput(n, "command", argv)
			if shell {
				yput(n, "shell", ybool(true))
			}
			c.hasScripts = true
		case "user":
			// user USERNAME [GROUPNAME]
			u, err := kaUser(st, 1)
			if err != nil {
				return err
			}
			yput(n, "script_user", ystr(u))
		case "interval", "timeout":
			d, err := kaSeconds(st)
			if err != nil {
				return err
			}
			yput(n, st.keyword(), ystr(d.String()))
		case "weight":
			if len(st.words) > 2 {
				c.skip(n, st, "reverse weights are not supported")
			}
			w, err := kaInt(st, 1, -253, 253)
			if err != nil {
				return err
			}
			yput(n, "weight", yint(w))
		case "rise", "fall":
			v, err := kaInt(st, 1, 1, 1<<20)
			if err != nil {
				return err
			}
			yput(n, st.keyword(), yint(v))
		default:
			c.skip(n, st, "lvsd runs track scripts as itself, without this option")
		}
	}
	c.scripts = append(c.scripts, n)
	return nil
}

func (c *kaConverter) notify(n, cmds *yaml.Node, st *kaStmt) bool {
	key := map[string]string{"notify_master": "master", "notify_backup": "backup", "notify_fault": "fault", "notify_stop": "stop", "notify": "any"}[st.keyword()]
	if key == "" {
		return false
	}
	// notify_master COMMAND [USERNAME [GROUPNAME]]: the command is one
	// word, quoted when it has arguments.
	if c.commandUser(n, cmds, st, "notify commands") {
		yput(cmds, key, kaCommandNode(st.words[1]))
		c.hasScripts = true
	}
	return true
}

// kaCommandNode is a command line as an argument list; notify and quorum
// commands have no shell option, so shell syntax becomes /bin/sh -c.
func kaCommandNode(line string) *yaml.Node {
	argv, shell := kaCommand(line)
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
func (c *kaConverter) commandUser(on, block *yaml.Node, st *kaStmt, what string) bool {
	u := ""
	if len(st.words) > 2 {
		var err error
		if u, err = kaUser(st, 2); err != nil {
			c.skip(on, st, err.Error())
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
		c.skip(on, st, fmt.Sprintf("lvsd runs all %s of a block as one script_user, and the others run as %s: run this one as that user too, or through a wrapper", what, was))
		return false
	}
	return true
}

// kaUser reads USERNAME [GROUPNAME] from word i on as lvsd's user[:group].
func kaUser(s *kaStmt, i int) (string, error) {
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

func (c *kaConverter) syncGroup(s *kaStmt) error {
	if len(s.words) != 2 || !s.hasBlock {
		return fmt.Errorf("%s: vrrp_sync_group needs a name and a block", s.at())
	}
	n := ymap("name", ystr(s.words[1]))
	cmds := ymap()
	for _, st := range s.block {
		if err := kaValue(st); err != nil {
			return err
		}
		switch {
		case st.keyword() == "group":
			var names []string
			for _, m := range st.block {
				names = append(names, m.words...)
			}
			yput(n, "instances", yflow(names...))
		case c.notify(n, cmds, st):
		default:
			c.skip(n, st, "lvsd sync groups take only instances and notify commands")
		}
	}
	if len(cmds.Content) > 0 {
		yput(n, "notify", cmds)
	}
	c.groups = append(c.groups, n)
	return nil
}

func (c *kaConverter) vrrpInstance(s *kaStmt) error {
	if len(s.words) != 2 || !s.hasBlock {
		return fmt.Errorf("%s: vrrp_instance needs a name and a block", s.at())
	}
	name := s.words[1]
	n := ymap("name", ystr(name))
	version := c.vrrpVersion
	var vips, peers, trackIfs, trackScripts []*yaml.Node
	cmds := ymap()
	garp := ymap()
	for _, st := range s.block {
		if err := kaValue(st); err != nil {
			return err
		}
		kw := st.keyword()
		switch kw {
		case "interface":
			yput(n, "interface", ystr(st.words[1]))
		case "virtual_router_id", "priority":
			v, err := kaInt(st, 1, 1, 255)
			if err != nil {
				return err
			}
			yput(n, kw, yint(v))
		case "version":
			v, err := kaInt(st, 1, 2, 3)
			if err != nil {
				return err
			}
			version = v
		case "advert_int":
			d, err := kaSeconds(st)
			if err != nil {
				return err
			}
			yput(n, "advert_interval", ystr(d.String()))
		case "nopreempt":
			yput(n, "preempt", ybool(false))
		case "preempt":
		case "preempt_delay":
			d, err := kaSeconds(st)
			if err != nil {
				return err
			}
			yput(n, "preempt_delay", ystr(d.String()))
		case "state":
			c.skip(n, st, "lvsd starts every instance as backup; the highest priority becomes master")
		case "authentication":
			var pass string
			for _, a := range st.block {
				if err := kaValue(a); err != nil {
					return err
				}
				switch {
				case a.keyword() == "auth_type" && len(a.words) == 2 && strings.EqualFold(a.words[1], "PASS"):
				case a.keyword() == "auth_pass" && len(a.words) == 2:
					pass = a.words[1]
				default:
					c.skip(n, a, "lvsd supports only auth_type PASS (version 2)")
				}
			}
			if pass != "" {
				yput(n, "authentication", ymap("password", ystr(pass)))
			}
		case "virtual_ipaddress", "virtual_ipaddress_excluded":
			for _, a := range st.block {
				if err := kaValue(a); err != nil {
					return err
				}
				v, err := c.virtualAddress(n, a)
				if err != nil {
					return err
				}
				vips = append(vips, v)
			}
		case "unicast_src_ip", "mcast_src_ip":
			yput(n, "source_address", ystr(st.words[1]))
		case "unicast_peer":
			for _, p := range st.block {
				peers = append(peers, ystr(p.words[0]))
				if len(p.words) > 1 {
					c.skip(n, p, "unicast peer options are not supported")
				}
			}
		case "track_interface":
			for _, t := range st.block {
				w, err := kaWeight(t)
				if err != nil {
					return err
				}
				if w == 0 {
					trackIfs = append(trackIfs, ystr(t.words[0]))
				} else {
					trackIfs = append(trackIfs, yflowMap("name", ystr(t.words[0]), "weight", yint(w)))
				}
			}
		case "track_script":
			for _, t := range st.block {
				w, err := kaWeight(t)
				if err != nil {
					return err
				}
				if len(t.words) == 1 {
					trackScripts = append(trackScripts, ystr(t.words[0]))
				} else {
					trackScripts = append(trackScripts, yflowMap("name", ystr(t.words[0]), "weight", yint(w)))
				}
			}
		case "garp_master_delay", "garp_master_refresh", "garp_interval":
			d, err := kaSeconds(st)
			if err != nil {
				return err
			}
			yput(garp, map[string]string{"garp_master_delay": "delay", "garp_master_refresh": "refresh", "garp_interval": "interval"}[kw], ystr(d.String()))
		case "garp_master_repeat", "garp_master_refresh_repeat":
			v, err := kaInt(st, 1, 1, 100)
			if err != nil {
				return err
			}
			yput(garp, map[string]string{"garp_master_repeat": "repeat", "garp_master_refresh_repeat": "refresh_repeat"}[kw], yint(v))
		case "lvs_sync_daemon_interface":
			c.syncDaemon = ymap("interface", ystr(st.words[1]), "vrrp_instance", ystr(name))
		case "native_ipv6":
		case "dont_track_primary":
			c.skip(n, st, "lvsd always tracks the instance's own interface")
		default:
			if !c.notify(n, cmds, st) {
				c.skip(n, st, "lvsd has no equivalent")
			}
		}
	}
	yput(n, "version", yint(version))
	if len(vips) > 0 {
		yput(n, "virtual_addresses", yseq(vips...))
	}
	if len(peers) > 0 {
		yput(n, "unicast_peers", yflowSeq(peers...))
	}
	if len(garp.Content) > 0 {
		garp.Style = yaml.FlowStyle
		yput(n, "garp", garp)
	}
	if len(trackIfs) > 0 {
		yput(n, "track_interfaces", yflowSeq(trackIfs...))
	}
	if len(trackScripts) > 0 {
		yput(n, "track_scripts", yflowSeq(trackScripts...))
	}
	if len(cmds.Content) > 0 {
		yput(n, "notify", cmds)
	}
	c.instances = append(c.instances, n)
	return nil
}

// virtualAddress reads "ADDR[/LEN] [dev IF] [label L] [brd ...] ...".
func (c *kaConverter) virtualAddress(inst *yaml.Node, a *kaStmt) (*yaml.Node, error) {
	addr := a.words[0]
	if p, err := netip.ParsePrefix(addr); err == nil {
		addr = p.Addr().String()
		if p.Bits() != p.Addr().BitLen() {
			c.skip(inst, a, fmt.Sprintf("lvsd holds virtual addresses as /%d host addresses", p.Addr().BitLen()))
		}
	} else if _, err := netip.ParseAddr(addr); err != nil {
		return nil, fmt.Errorf("%s: virtual address %q: not an address", a.at(), addr)
	}
	m := yflowMap("address", ystr(addr))
	for i := 1; i < len(a.words); i++ {
		switch a.words[i] {
		case "dev", "label":
			if i+1 >= len(a.words) {
				return nil, fmt.Errorf("%s: %s needs a value", a.at(), a.words[i])
			}
			yput(m, a.words[i], ystr(a.words[i+1]))
			i++
		case "brd", "scope", "metric", "preferred_lft", "valid_lft":
			i++
		default:
			c.skip(inst, a, fmt.Sprintf("address option %q is not supported", a.words[i]))
		}
	}
	if len(m.Content) == 2 {
		return ystr(addr), nil
	}
	return m, nil
}

func (c *kaConverter) virtualServer(s *kaStmt) error {
	n := ymap()
	switch {
	case len(s.words) == 3 && s.words[1] == "fwmark":
		v, err := kaInt(s, 2, 1, 1<<32-1)
		if err != nil {
			return err
		}
		yput(n, "fwmark", yint(v))
	case len(s.words) == 3 && s.words[1] != "group":
		if _, err := netip.ParseAddr(s.words[1]); err != nil {
			return fmt.Errorf("%s: virtual_server %s: not an address", s.at(), s.words[1])
		}
		yput(n, "address", ystr(s.words[1]))
		p, err := kaInt(s, 2, 0, 65535)
		if err != nil {
			return err
		}
		yput(n, "port", yint(p))
	default:
		c.skip(nil, s, "virtual_server groups are not supported: write one virtual service per address")
		return nil
	}
	interval := kaDelayLoop
	var host string
	quorum := ymap()
	persistence := ymap()
	var realServers []*yaml.Node
	var checks []*yaml.Node
	quiesce := 0
	for _, st := range s.block {
		if err := kaValue(st); err != nil {
			return err
		}
		kw := st.keyword()
		switch kw {
		case "delay_loop":
			d, err := kaSeconds(st)
			if err != nil {
				return err
			}
			interval = d
		case "lb_algo", "lvs_sched":
			yput(n, "scheduler", ystr(strings.ToLower(st.words[1])))
		case "lb_kind", "lvs_method":
			f, err := kaForwarding(st)
			if err != nil {
				return err
			}
			yput(n, "forwarding", ystr(f))
		case "protocol":
			yput(n, "protocol", ystr(strings.ToLower(st.words[1])))
		case "persistence_timeout":
			d, err := kaSeconds(st)
			if err != nil {
				return err
			}
			yput(persistence, "timeout", ystr(d.String()))
		case "persistence_granularity":
			yput(persistence, "netmask", ystr(st.words[1]))
		case "persistence_engine":
			yput(persistence, "engine", ystr(st.words[1]))
		case "ops":
			yput(n, "one_packet", ybool(true))
		case "virtualhost":
			host = st.words[1]
		case "sorry_server":
			if len(st.words) != 3 {
				return fmt.Errorf("%s: sorry_server needs an address and a port", st.at())
			}
			p, err := kaInt(st, 2, 0, 65535)
			if err != nil {
				return err
			}
			yput(n, "sorry_server", yflowMap("address", ystr(st.words[1]), "port", yint(p)))
		case "quorum", "hysteresis":
			v, err := kaInt(st, 1, 0, 1<<30)
			if err != nil {
				return err
			}
			yput(quorum, map[string]string{"quorum": "weight", "hysteresis": "hysteresis"}[kw], yint(v))
		case "quorum_up", "quorum_down":
			// quorum_up COMMAND [USERNAME [GROUPNAME]]
			if c.commandUser(n, quorum, st, "quorum commands") {
				yput(quorum, map[string]string{"quorum_up": "up_command", "quorum_down": "down_command"}[kw], kaCommandNode(st.words[1]))
				c.hasScripts = true
			}
		case "inhibit_on_failure":
			quiesce = -1 // the service says so for all
		case "real_server":
			rs, check, inhibit, err := c.realServer(n, st)
			if err != nil {
				return err
			}
			realServers = append(realServers, rs)
			checks = append(checks, check)
			if inhibit && quiesce >= 0 {
				quiesce++
			}
		default:
			c.skip(n, st, "lvsd has no equivalent")
		}
	}
	if len(persistence.Content) > 0 {
		persistence.Style = yaml.FlowStyle
		yput(n, "persistence", persistence)
	}
	if len(quorum.Content) > 0 {
		yput(n, "quorum", quorum)
	}
	switch {
	case quiesce < 0 || quiesce > 0 && quiesce == len(realServers):
		yput(n, "on_failure", ystr(string(Quiesce)))
	case quiesce > 0:
		yput(n, "on_failure", ystr(string(Quiesce)))
		n.HeadComment = strings.TrimPrefix(n.HeadComment+"\nonly some real servers had inhibit_on_failure: lvsd quiesces them all", "\n")
		c.warnings = append(c.warnings, fmt.Sprintf("%s: inhibit_on_failure on some real servers only: lvsd quiesces every real server of the service", s.at()))
	}
	// The checks get keepalived's interval and Host, and move to the
	// service when every real server has the same one.
	for _, ch := range checks {
		if ch != nil {
			yput(ch, "interval", ystr(interval.String()))
			if host != "" && (yget(ch, "type") == "http" || yget(ch, "type") == "https") && yget(ch, "host") == "" {
				yput(ch, "host", ystr(host))
			}
		}
	}
	if len(checks) > 0 && checks[0] != nil && allSame(checks) {
		yput(n, "health_check", checks[0])
	} else {
		for i, ch := range checks {
			if ch != nil {
				yput(realServers[i], "health_check", ch)
			}
		}
	}
	if len(realServers) > 0 {
		yput(n, "real_servers", yseq(realServers...))
	}
	c.services = append(c.services, n)
	return nil
}

// realServer reads a real_server block: the real server, its check (nil
// for none) and whether it has inhibit_on_failure.
func (c *kaConverter) realServer(svc *yaml.Node, s *kaStmt) (*yaml.Node, *yaml.Node, bool, error) {
	if len(s.words) != 3 {
		return nil, nil, false, fmt.Errorf("%s: real_server needs an address and a port", s.at())
	}
	if _, err := netip.ParseAddr(s.words[1]); err != nil {
		return nil, nil, false, fmt.Errorf("%s: real_server %s: not an address", s.at(), s.words[1])
	}
	port, err := kaInt(s, 2, 0, 65535)
	if err != nil {
		return nil, nil, false, err
	}
	rs := ymap("address", ystr(s.words[1]), "port", yint(port))
	var check *yaml.Node
	inhibit := false
	for _, st := range s.block {
		if err := kaValue(st); err != nil {
			return nil, nil, false, err
		}
		kw := st.keyword()
		switch kw {
		case "weight":
			w, err := kaInt(st, 1, 0, MaxWeight)
			if err != nil {
				return nil, nil, false, err
			}
			yput(rs, "weight", yint(w))
		case "uthreshold", "lthreshold":
			v, err := kaInt(st, 1, 0, 1<<31)
			if err != nil {
				return nil, nil, false, err
			}
			yput(rs, map[string]string{"uthreshold": "upper_threshold", "lthreshold": "lower_threshold"}[kw], yint(v))
		case "lvs_method":
			f, err := kaForwarding(st)
			if err != nil {
				return nil, nil, false, err
			}
			yput(rs, "forwarding", ystr(f))
		case "inhibit_on_failure":
			inhibit = true
		case "http_get", "ssl_get", "tcp_check", "misc_check", "dns_check":
			if check != nil {
				c.skip(rs, st, "lvsd runs one check per real server: the first one was imported")
				continue
			}
			check, err = c.check(rs, st)
			if err != nil {
				return nil, nil, false, err
			}
		default:
			c.skip(rs, st, "lvsd has no equivalent")
		}
	}
	return rs, check, inhibit, nil
}

// check converts one checker block. keepalived takes a server out after
// one failed check (after its retries) and back after one success.
func (c *kaConverter) check(rs *yaml.Node, s *kaStmt) (*yaml.Node, error) {
	kw := s.keyword()
	typ := map[string]string{"http_get": "http", "ssl_get": "https", "tcp_check": "tcp", "misc_check": "script", "dns_check": "dns"}[kw]
	ch := ymap("type", ystr(typ))
	timeout := kaConnectTimeout
	urls := 0
	for _, st := range s.block {
		if err := kaValue(st); err != nil {
			return nil, err
		}
		switch st.keyword() {
		case "connect_timeout", "misc_timeout":
			d, err := kaSeconds(st)
			if err != nil {
				return nil, err
			}
			timeout = d
		case "connect_port":
			p, err := kaInt(st, 1, 1, 65535)
			if err != nil {
				return nil, err
			}
			yput(ch, "connect_port", yint(p))
		case "connect_ip":
			yput(ch, "connect_ip", ystr(st.words[1]))
		case "retry", "nb_get_retry":
			v, err := kaInt(st, 1, 0, 100)
			if err != nil {
				return nil, err
			}
			yput(ch, "retry", yint(v))
		case "delay_before_retry":
			d, err := kaSeconds(st)
			if err != nil {
				return nil, err
			}
			yput(ch, "retry_delay", ystr(d.String()))
		case "virtualhost":
			yput(ch, "host", ystr(st.words[1]))
		case "url":
			urls++
			if urls > 1 {
				c.skip(rs, st, "lvsd checks one url per real server: the first one was imported")
				continue
			}
			for _, u := range st.block {
				if err := kaValue(u); err != nil {
					return nil, err
				}
				switch u.keyword() {
				case "path":
					yput(ch, "path", ystr(u.words[1]))
				case "digest":
					yput(ch, "digest", ystr(u.words[1]))
				case "status_code":
					var codes []*yaml.Node
					for _, w := range u.words[1:] {
						codes = append(codes, ystr(w))
					}
					yput(ch, "status_codes", yflowSeq(codes...))
				default:
					c.skip(rs, u, "lvsd has no equivalent")
				}
			}
		case "misc_path":
			argv, shell := kaCommand(strings.Join(st.words[1:], " "))
			yput(ch, "command", argv)
			if shell {
				yput(ch, "shell", ybool(true))
			}
			c.hasScripts = true
		case "user":
			// MISC_CHECK's user USERNAME [GROUPNAME]
			u, err := kaUser(st, 1)
			if err != nil {
				return nil, err
			}
			yput(ch, "script_user", ystr(u))
		case "type":
			yput(ch, "query_type", ystr(strings.ToUpper(st.words[1])))
		case "name":
			yput(ch, "query_name", ystr(st.words[1]))
		default:
			c.skip(rs, st, "lvsd has no equivalent")
		}
	}
	yput(ch, "timeout", ystr(timeout.String()))
	yput(ch, "rise", yint(1))
	yput(ch, "fall", yint(1))
	return ch, nil
}

// document assembles the lvsd config.
func (c *kaConverter) document() *yaml.Node {
	root := ymap()
	if c.scriptUser != "" {
		yput(root, "lvsd", ymap("script_user", ystr(c.scriptUser)))
	}
	switch {
	case !c.hasScripts:
	case c.security:
		c.topComments = append(c.topComments, "enable_script_security: lvsd always refuses scripts that users other than root could change.")
	default:
		c.topComments = append(c.topComments, "no enable_script_security: keepalived ran scripts that users other than root could change (with a warning);\nlvsd refuses them: run lvsd check --config FILE on the director to find them.")
	}
	if c.hasScripts && c.scriptUser == "" {
		c.topComments = append(c.topComments, "no script_user: keepalived ran scripts as keepalived_script if that user existed, else as root;\nlvsd runs them as lvsd_script if that user exists, else as root: create lvsd_script, or set lvsd.script_user.")
	}
	ipvsNode := ymap()
	if c.timeouts != nil {
		c.timeouts.Style = yaml.FlowStyle
		yput(ipvsNode, "timeouts", c.timeouts)
	}
	if c.syncDaemon != nil {
		c.syncDaemon.Style = yaml.FlowStyle
		yput(ipvsNode, "sync_daemon", c.syncDaemon)
	}
	if len(ipvsNode.Content) > 0 {
		yput(root, "ipvs", ipvsNode)
	}
	if len(c.services) > 0 {
		yput(root, "virtual_services", yseq(c.services...))
	}
	vrrpNode := ymap()
	if len(c.scripts) > 0 {
		yput(vrrpNode, "scripts", yseq(c.scripts...))
	}
	if len(c.groups) > 0 {
		yput(vrrpNode, "sync_groups", yseq(c.groups...))
	}
	if len(c.instances) > 0 {
		yput(vrrpNode, "instances", yseq(c.instances...))
	}
	if len(vrrpNode.Content) > 0 {
		yput(root, "vrrp", vrrpNode)
	}
	if len(c.topComments) > 0 {
		root.HeadComment = strings.Join(c.topComments, "\n")
	}
	return root
}

// kaCommand splits a keepalived command line into arguments; shell is
// true when it uses shell syntax, and the argv is then the whole line.
func kaCommand(line string) (*yaml.Node, bool) {
	line = strings.TrimSpace(line)
	if strings.ContainsAny(line, "|&;<>$`*?(){}[]\"'\\") {
		return yflow(line), true
	}
	return yflow(strings.Fields(line)...), false
}

// kaValued are the keywords that take a value.
var kaValued = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`vrrp_version lvs_sync_daemon lvs_timeouts script interval timeout weight rise fall
		notify_master notify_backup notify_fault notify_stop notify interface virtual_router_id priority version
		advert_int preempt_delay unicast_src_ip mcast_src_ip garp_master_delay garp_master_refresh garp_interval
		garp_master_repeat garp_master_refresh_repeat lvs_sync_daemon_interface delay_loop lb_algo lvs_sched lb_kind
		lvs_method protocol persistence_timeout persistence_granularity persistence_engine virtualhost sorry_server
		quorum hysteresis quorum_up quorum_down uthreshold lthreshold connect_timeout misc_timeout connect_port
		connect_ip retry nb_get_retry delay_before_retry path digest status_code misc_path type name auth_type auth_pass
		script_user user`) {
		kaValued[k] = true
	}
}

// kaValue checks that a statement that takes a value has one.
func kaValue(s *kaStmt) error {
	if kaValued[s.keyword()] && len(s.words) < 2 {
		return fmt.Errorf("%s: %s needs a value", s.at(), s.words[0])
	}
	return nil
}

// kaSeconds reads a statement's seconds (fractions allowed).
func kaSeconds(s *kaStmt) (time.Duration, error) {
	if len(s.words) < 2 {
		return 0, fmt.Errorf("%s: %s needs a number of seconds", s.at(), s.words[0])
	}
	f, err := strconv.ParseFloat(s.words[1], 64)
	if err != nil || f < 0 || f > 1e6 {
		return 0, fmt.Errorf("%s: %s %q: want a number of seconds", s.at(), s.words[0], s.words[1])
	}
	return time.Duration(f * float64(time.Second)).Round(time.Millisecond), nil
}

// kaInt reads word i of a statement as an integer in [lo, hi].
func kaInt(s *kaStmt, i, lo, hi int) (int, error) {
	if len(s.words) <= i {
		return 0, fmt.Errorf("%s: %s needs a number", s.at(), s.words[0])
	}
	v, err := strconv.Atoi(s.words[i])
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s: %s %q: want a whole number from %d to %d", s.at(), s.words[0], s.words[i], lo, hi)
	}
	return v, nil
}

// kaWeight reads "NAME [weight W]".
func kaWeight(s *kaStmt) (int, error) {
	switch {
	case len(s.words) == 1:
		return 0, nil
	case len(s.words) >= 3 && strings.EqualFold(s.words[1], "weight"):
		v, err := strconv.Atoi(s.words[2])
		if err != nil || v < -253 || v > 253 {
			return 0, fmt.Errorf("%s: %s weight %q: want a whole number from -253 to 253", s.at(), s.words[0], s.words[2])
		}
		return v, nil
	}
	return 0, fmt.Errorf("%s: %s: want a name, optionally followed by weight N", s.at(), s)
}

func kaForwarding(s *kaStmt) (string, error) {
	if len(s.words) == 2 {
		switch strings.ToUpper(s.words[1]) {
		case "NAT":
			return string(Masquerade), nil
		case "DR":
			return string(DirectRoute), nil
		case "TUN":
			return string(Tunnel), nil
		}
	}
	return "", fmt.Errorf("%s: %s: want NAT, DR or TUN", s.at(), s)
}

// YAML node helpers.

func ystr(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
func yint(i int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(i)}
}
func ybool(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

func ymap(kv ...any) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(kv); i += 2 {
		yput(m, kv[i].(string), kv[i+1].(*yaml.Node))
	}
	return m
}

func yflowMap(kv ...any) *yaml.Node {
	m := ymap(kv...)
	m.Style = yaml.FlowStyle
	return m
}

// yput sets key in a mapping, replacing an earlier value.
func yput(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, ystr(key), v)
}

func yget(m *yaml.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1].Value
		}
	}
	return ""
}

func yseq(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: items}
}

func yflowSeq(items ...*yaml.Node) *yaml.Node {
	s := yseq(items...)
	s.Style = yaml.FlowStyle
	return s
}

func yflow(words ...string) *yaml.Node {
	var items []*yaml.Node
	for _, w := range words {
		items = append(items, ystr(w))
	}
	return yflowSeq(items...)
}

// allSame reports whether every node encodes the same.
func allSame(nodes []*yaml.Node) bool {
	first, err := yaml.Marshal(nodes[0])
	if err != nil {
		return false
	}
	for _, n := range nodes[1:] {
		if n == nil {
			return false
		}
		b, err := yaml.Marshal(n)
		if err != nil || !bytes.Equal(b, first) {
			return false
		}
	}
	return true
}
