package keepalived

// virtual_server, virtual_server_group and real_server (the checkers inside a
// real_server are in lvs_check.go).

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"gopkg.in/yaml.v3"
)

// keepalived's defaults (keepalived/check/check_data.c, check_api.c,
// check_http.c, check_misc.c, check_dns.c, include/libipvs.h), written
// out wherever lvsd's differ.
const (
	defaultDelayLoop          = 60 * time.Second  // virtual server delay_loop
	defaultConnectTimeout     = 5 * time.Second   // virtual server connect_timeout
	defaultPersistenceTimeout = 360 * time.Second // IPVS_SVC_PERSISTENT_TIMEOUT
	defaultRetry              = 1                 // every checker but MISC_CHECK and DNS_CHECK
	defaultRetryDelay         = 1 * time.Second   // every checker but HTTP_GET, SSL_GET and DNS_CHECK
	defaultHTTPRetryDelay     = 3 * time.Second   // HTTP_GET, SSL_GET
	defaultDNSRetry           = 3                 // DNS_CHECK
	// MISC_CHECK: retry 0; misc_timeout defaults to the virtual server's
	// delay_loop. DNS_CHECK: delay_before_retry defaults to delay_loop.
)

// timing are the check settings keepalived inherits from the virtual
// server to the real server to the checker; nil is unset.
type timing struct {
	delayLoop, connectTimeout, retryDelay *time.Duration
	retry                                 *int
}

// service is a virtual_server block being imported.
type service struct {
	n                  *yaml.Node // every key but the identity (address, port, protocol, fwmark)
	s                  *stmt
	fwmark             bool
	protocol           string
	timing             timing
	host               string
	quorum             *yaml.Node
	persistence        *yaml.Node
	persistenceTimeout *time.Duration // nil: none written
	forwarding         bool
	inhibit            bool
	realServers        []*realServer
}

// realServer is a real_server block being imported.
type realServer struct {
	n       *yaml.Node
	s       *stmt
	port    bool
	timing  timing
	host    string
	inhibit *bool
	check   *check
}

// check is a checker block being imported.
type check struct {
	n           *yaml.Node
	kind        string // the keepalived keyword, lower case
	timing      timing
	urls        int
	miscTimeout *time.Duration
	// UDP_CHECK: reply data was given; the reply lengths written.
	reply        bool
	replyLengths []replyLength
}

// replyLength is a UDP_CHECK min_reply_length or max_reply_length.
type replyLength struct {
	key string
	n   int
	s   *stmt
}

func timingHandlers[T any](get func(T) (*timing, *yaml.Node), kind Kind) handlers[T] {
	dur := func(set func(*timing, time.Duration)) func(*converter, T, *stmt) error {
		return func(c *converter, t T, s *stmt) error {
			d, err := seconds(s)
			tm, _ := get(t)
			set(tm, d)
			return err
		}
	}
	h := handlers[T]{
		"delay_loop":         dur(func(t *timing, d time.Duration) { t.delayLoop = &d }),
		"connect_timeout":    dur(func(t *timing, d time.Duration) { t.connectTimeout = &d }),
		"delay_before_retry": dur(func(t *timing, d time.Duration) { t.retryDelay = &d }),
		"retry": func(c *converter, t T, s *stmt) error {
			v, err := intArg(s, 1, 0, 100)
			tm, _ := get(t)
			tm.retry = &v
			return err
		},
		"warmup": func(c *converter, t T, s *stmt) error {
			_, n := get(t)
			c.drop(n, s, kind, "lvsd starts checking at once, with a random delay of up to one interval")
			return nil
		},
		"smtp_alert": func(c *converter, t T, s *stmt) error {
			_, n := get(t)
			c.ignore(n, s, kind, "lvsd sends no e-mail")
			return nil
		},
	}
	alias(h, "retry", "nb_get_retry")
	return h
}

var serviceHandlers = timingHandlers(func(v *service) (*timing, *yaml.Node) { return &v.timing, v.n }, KindService)

func init() {
	h := serviceHandlers
	serviceSchedulerKeywords(h)
	serviceAddressKeywords(h)
	serviceFallbackKeywords(h)
	serviceRealServerKeywords(h)
}

// serviceSchedulerKeywords: how a virtual service schedules and forwards.
func serviceSchedulerKeywords(h handlers[*service]) {
	h["lb_algo"] = func(c *converter, v *service, s *stmt) error {
		yput(v.n, "scheduler", ystr(strings.ToLower(s.words[1])))
		return nil
	}
	alias(h, "lb_algo", "lvs_sched")
	for _, f := range []string{"flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port", "mh-fallback"} {
		h[f] = func(c *converter, v *service, s *stmt) error {
			var flags []*yaml.Node
			for i := 0; i+1 < len(v.n.Content); i += 2 {
				if v.n.Content[i].Value == "scheduler_flags" {
					flags = v.n.Content[i+1].Content
				}
			}
			yput(v.n, "scheduler_flags", yflowSeq(append(flags, ystr(s.keyword()))...))
			return nil
		}
	}
	h["hashed"] = func(c *converter, v *service, s *stmt) error {
		c.drop(v.n, s, KindService, "hashed is not a flag lvsd sets: write scheduler_flags [flag-1] if your scheduler needs it")
		return nil
	}
	h["lb_kind"] = func(c *converter, v *service, s *stmt) error {
		f, err := forwarding(s)
		yput(v.n, "forwarding", ystr(f))
		v.forwarding = true
		return err
	}
	alias(h, "lb_kind", "lvs_method")
}

// serviceAddressKeywords: what a virtual service matches, and how it
// keeps clients on one real server.
func serviceAddressKeywords(h handlers[*service]) {
	h["protocol"] = func(c *converter, v *service, s *stmt) error {
		p := strings.ToLower(s.words[1])
		if p != "tcp" && p != "udp" && p != "sctp" {
			return fmt.Errorf("%s: protocol %s: want TCP, UDP or SCTP", s.at(), s.words[1])
		}
		v.protocol = p
		if v.fwmark {
			c.ignore(v.n, s, KindService, "keepalived ignores protocol on a fwmark service, and so does lvsd: the firewall rule that sets the mark chooses the packets")
		}
		return nil
	}
	h["persistence_timeout"] = func(c *converter, v *service, s *stmt) error {
		d := defaultPersistenceTimeout
		if len(s.words) > 1 {
			n, err := strconv.Atoi(s.words[1])
			if err != nil || n < 0 || n > 31*86400 {
				return fmt.Errorf("%s: persistence_timeout %q: want whole seconds, at most 2678400 (31 days)", s.at(), s.words[1])
			}
			if n == 0 {
				c.note(v.n, s, KindService, true, "imported as no persistence: keepalived refuses 0 and runs the service without persistence")
				v.persistenceTimeout = nil
				return nil
			}
			d = time.Duration(n) * time.Second
		}
		v.persistenceTimeout = &d
		return nil
	}
	h["persistence_granularity"] = func(c *converter, v *service, s *stmt) error {
		yput(v.persistence, "netmask", ystr(s.words[1]))
		if v.persistenceTimeout == nil {
			// keepalived turns persistence on with its default timeout.
			d := defaultPersistenceTimeout
			v.persistenceTimeout = &d
		}
		return nil
	}
	h["persistence_engine"] = func(c *converter, v *service, s *stmt) error {
		yput(v.persistence, "engine", ystr(s.words[1]))
		return nil
	}
	h["ops"] = func(c *converter, v *service, s *stmt) error {
		yput(v.n, "one_packet", ybool(true))
		return nil
	}
	h["virtualhost"] = func(c *converter, v *service, s *stmt) error {
		v.host = s.words[1]
		return nil
	}
	h["ip_family"] = func(c *converter, v *service, s *stmt) error {
		switch strings.ToLower(s.words[1]) {
		case "inet":
		case "inet6":
			if v.fwmark {
				yput(v.n, "family", ystr(string(config.IPv6)))
			}
		default:
			return fmt.Errorf("%s: ip_family %s: want inet or inet6", s.at(), s.words[1])
		}
		return nil
	}
}

// serviceFallbackKeywords: the sorry server and the quorum.
func serviceFallbackKeywords(h handlers[*service]) {
	h["sorry_server"] = func(c *converter, v *service, s *stmt) error {
		if len(s.words) < 2 || len(s.words) > 3 {
			return fmt.Errorf("%s: sorry_server needs an address and a port", s.at())
		}
		if _, err := netip.ParseAddr(s.words[1]); err != nil {
			return fmt.Errorf("%s: sorry_server %s: not an address", s.at(), s.words[1])
		}
		ss := yflowMap("address", ystr(s.words[1]))
		if len(s.words) == 3 {
			p, err := intArg(s, 2, 0, 65535)
			if err != nil {
				return err
			}
			yput(ss, "port", yint(p))
		}
		if f := yget(v.n, "sorry_server_forwarding"); f != "" {
			yput(ss, "forwarding", ystr(f))
		}
		yput(v.n, "sorry_server", ss)
		return nil
	}
	h["sorry_server_lvs_method"] = func(c *converter, v *service, s *stmt) error {
		f, err := forwarding(s)
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(v.n.Content); i += 2 {
			if v.n.Content[i].Value == "sorry_server" {
				yput(v.n.Content[i+1], "forwarding", ystr(f))
				return nil
			}
		}
		c.ignore(v.n, s, KindService, "there is no sorry_server before it")
		return nil
	}
	h["quorum"] = func(c *converter, v *service, s *stmt) error {
		n, err := intArg(s, 1, 1, 1<<30)
		yput(v.quorum, "weight", yint(n))
		return err
	}
	h["hysteresis"] = func(c *converter, v *service, s *stmt) error {
		n, err := intArg(s, 1, 0, 1<<30)
		yput(v.quorum, "hysteresis", yint(n))
		return err
	}
	for kw, key := range map[string]string{"quorum_up": "up_command", "quorum_down": "down_command"} {
		h[kw] = func(c *converter, v *service, s *stmt) error {
			// quorum_up COMMAND [USERNAME [GROUPNAME]]
			if c.commandUser(v.n, v.quorum, s, "quorum commands") {
				yput(v.quorum, key, commandNode(s.words[1]))
				c.hasScripts = true
			}
			return nil
		}
	}
	h["inhibit_on_failure"] = func(c *converter, v *service, s *stmt) error {
		v.inhibit = true
		return nil
	}
}

// serviceRealServerKeywords: the real servers, and keepalived's start and
// stop behaviour around them.
func serviceRealServerKeywords(h handlers[*service]) {
	h["real_server"] = func(c *converter, v *service, s *stmt) error {
		rs, err := c.realServer(v, s)
		if err == nil {
			v.realServers = append(v.realServers, rs)
		}
		return err
	}
	h["alpha"] = func(c *converter, v *service, s *stmt) error {
		c.drop(v.n, s, KindRealServer, "lvsd adds real servers as up and takes them out after their first failed checks; keepalived's alpha keeps them out until their first good check")
		return nil
	}
	h["omega"] = func(c *converter, v *service, s *stmt) error {
		c.drop(v.n, s, KindScript, "lvsd does not run quorum_down when it stops")
		return nil
	}
}

var realServerHandlers = timingHandlers(func(r *realServer) (*timing, *yaml.Node) { return &r.timing, r.n }, KindRealServer)

// checkers are the keepalived checkers lvsd has, by keyword.
var checkers = map[string]config.CheckType{
	"http_get": config.CheckHTTP, "ssl_get": config.CheckHTTPS, "tcp_check": config.CheckTCP,
	"misc_check": config.CheckScript, "dns_check": config.CheckDNS,
	"udp_check": config.CheckUDP, "ping_check": config.CheckPing, "smtp_check": config.CheckSMTP,
}

func init() {
	h := realServerHandlers
	h["weight"] = func(c *converter, r *realServer, s *stmt) error {
		w, err := intArg(s, 1, 0, config.MaxWeight)
		yput(r.n, "weight", yint(w))
		return err
	}
	for kw, key := range map[string]string{"uthreshold": "upper_threshold", "lthreshold": "lower_threshold"} {
		h[kw] = func(c *converter, r *realServer, s *stmt) error {
			v, err := intArg(s, 1, 0, 1<<31)
			yput(r.n, key, yint(v))
			return err
		}
	}
	h["lvs_method"] = func(c *converter, r *realServer, s *stmt) error {
		f, err := forwarding(s)
		yput(r.n, "forwarding", ystr(f))
		return err
	}
	h["inhibit_on_failure"] = func(c *converter, r *realServer, s *stmt) error {
		t := true
		r.inhibit = &t
		return nil
	}
	h["virtualhost"] = func(c *converter, r *realServer, s *stmt) error {
		r.host = s.words[1]
		return nil
	}
	for kw := range checkers {
		h[kw] = func(c *converter, r *realServer, s *stmt) error {
			if r.check != nil {
				c.drop(r.n, s, KindCheck, "lvsd runs one check per real server: the first one was imported")
				return nil
			}
			ch, err := c.check(r, s)
			r.check = ch
			return err
		}
	}
	for _, kw := range []string{"bfd_check", "file_check"} {
		h[kw] = func(c *converter, r *realServer, s *stmt) error {
			c.drop(r.n, s, KindCheck, fmt.Sprintf("lvsd has no %s checker yet: the real server is imported unchecked (always up), where keepalived took it out when the check failed", strings.ToUpper(strings.TrimSuffix(kw, "_check"))))
			return nil
		}
	}
	for _, kw := range []string{"notify_up", "notify_down"} {
		h[kw] = func(c *converter, r *realServer, s *stmt) error {
			c.drop(r.n, s, KindScript, "lvsd runs no command when a real server goes up or down: watch the status API or the metrics")
			return nil
		}
	}
}
