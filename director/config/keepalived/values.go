package keepalived

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"gopkg.in/yaml.v3"
)

// command splits a keepalived command line into arguments; shell is
// true when it uses shell syntax, and the argv is then the whole line.
func command(line string) (*yaml.Node, bool) {
	line = strings.TrimSpace(line)
	if strings.ContainsAny(line, "|&;<>$`*?(){}[]\"'\\") {
		return yflow(line), true
	}
	return yflow(strings.Fields(line)...), false
}

// valued are the keywords that take a value.
var valued = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`vrrp_version lvs_sync_daemon lvs_timeouts script interval timeout weight rise fall
		notify_master notify_backup notify_fault notify_stop notify interface virtual_router_id priority version
		advert_int preempt_delay unicast_src_ip mcast_src_ip garp_master_delay garp_master_refresh garp_interval
		garp_master_repeat garp_master_refresh_repeat lvs_sync_daemon_interface delay_loop lb_algo lvs_sched lb_kind
		lvs_method protocol persistence_granularity persistence_engine virtualhost sorry_server
		quorum hysteresis quorum_up quorum_down uthreshold lthreshold connect_timeout misc_timeout connect_port
		connect_ip retry nb_get_retry delay_before_retry path digest status_code misc_path type name auth_type auth_pass
		script_user user payload min_reply_length max_reply_length helo_name`) {
		valued[k] = true
	}
}

// needsValue checks that a statement that takes a value has one.
func needsValue(s *stmt) error {
	if valued[s.keyword()] && len(s.words) < 2 {
		return fmt.Errorf("%s: %s needs a value", s.at(), s.words[0])
	}
	return nil
}

// seconds reads a statement's seconds (fractions allowed).
func seconds(s *stmt) (time.Duration, error) {
	if len(s.words) < 2 {
		return 0, fmt.Errorf("%s: %s needs a number of seconds", s.at(), s.words[0])
	}
	f, err := strconv.ParseFloat(s.words[1], 64)
	if err != nil || f < 0 || f > 1e6 {
		return 0, fmt.Errorf("%s: %s %q: want a number of seconds", s.at(), s.words[0], s.words[1])
	}
	return time.Duration(f * float64(time.Second)).Round(time.Millisecond), nil
}

// intArg reads word i of a statement as an integer in [lo, hi].
func intArg(s *stmt, i, lo, hi int) (int, error) {
	if len(s.words) <= i {
		return 0, fmt.Errorf("%s: %s needs a number", s.at(), s.words[0])
	}
	v, err := strconv.Atoi(s.words[i])
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s: %s %q: want a whole number from %d to %d", s.at(), s.words[0], s.words[i], lo, hi)
	}
	return v, nil
}

// trackWeight reads "NAME [weight W]".
func trackWeight(s *stmt) (int, error) {
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

func forwarding(s *stmt) (string, error) {
	if len(s.words) == 2 {
		switch strings.ToUpper(s.words[1]) {
		case "NAT":
			return string(config.Masquerade), nil
		case "DR":
			return string(config.DirectRoute), nil
		case "TUN":
			return string(config.Tunnel), nil
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

func yhas(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return true
		}
	}
	return false
}

func ydel(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}
