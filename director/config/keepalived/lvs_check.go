package keepalived

// The checker blocks inside a real_server (HTTP_GET, TCP_CHECK, MISC_CHECK,
// UDP_CHECK, SMTP_CHECK, ...): their keywords, and the timing each check
// inherits from its real server and virtual server.

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"gopkg.in/yaml.v3"
)

var checkHandlers = timingHandlers(func(ch *check) (*timing, *yaml.Node) { return &ch.timing, ch.n }, KindCheck)

func init() {
	h := checkHandlers
	checkCommonKeywords(h)
	checkUDPKeywords(h)
	checkSMTPKeywords(h)
}

// checkCommonKeywords: where a check connects, HTTP_GET's urls,
// MISC_CHECK's script and DNS_CHECK's query.
func checkCommonKeywords(h handlers[*check]) {
	h["misc_timeout"] = func(c *converter, ch *check, s *stmt) error {
		d, err := seconds(s)
		ch.miscTimeout = &d
		return err
	}
	h["connect_port"] = func(c *converter, ch *check, s *stmt) error {
		p, err := intArg(s, 1, 1, 65535)
		yput(ch.n, "connect_port", yint(p))
		return err
	}
	h["connect_ip"] = func(c *converter, ch *check, s *stmt) error {
		yput(ch.n, "connect_ip", ystr(s.words[1]))
		return nil
	}
	h["virtualhost"] = func(c *converter, ch *check, s *stmt) error {
		yput(ch.n, "host", ystr(s.words[1]))
		return nil
	}
	h["url"] = func(c *converter, ch *check, s *stmt) error {
		ch.urls++
		if ch.urls > 1 {
			c.drop(ch.n, s, KindCheck, "lvsd checks one url per real server: the first one was imported")
			return nil
		}
		return run(c, urlHandlers, ch, s.block, func(c *converter, ch *check, u *stmt) {
			c.drop(ch.n, u, KindCheck, "lvsd's http check has no equivalent")
		})
	}
	h["misc_path"] = func(c *converter, ch *check, s *stmt) error {
		argv, shell := command(strings.Join(s.words[1:], " "))
		yput(ch.n, "command", argv)
		if shell {
			yput(ch.n, "shell", ybool(true))
		}
		c.hasScripts = true
		return nil
	}
	h["user"] = func(c *converter, ch *check, s *stmt) error {
		// MISC_CHECK's user USERNAME [GROUPNAME]
		u, err := user(s, 1)
		yput(ch.n, "script_user", ystr(u))
		return err
	}
	h["type"] = func(c *converter, ch *check, s *stmt) error {
		yput(ch.n, "query_type", ystr(strings.ToUpper(s.words[1])))
		return nil
	}
	h["name"] = func(c *converter, ch *check, s *stmt) error {
		yput(ch.n, "query_name", ystr(s.words[1]))
		return nil
	}
}

// checkUDPKeywords: UDP_CHECK (keepalived/check/check_udp.c).
func checkUDPKeywords(h handlers[*check]) {
	h["payload"] = func(c *converter, ch *check, s *stmt) error {
		hex := strings.Join(s.words[1:], " ")
		if _, _, err := config.ParseHex(hex, false); err != nil {
			c.note(ch.n, s, KindCheck, true, fmt.Sprintf("not imported: %v: keepalived reports an invalid hex string and sends its default payload, as lvsd does without one", err))
			return nil
		}
		yput(ch.n, "payload", ystr(hex))
		return nil
	}
	h["require_reply"] = func(c *converter, ch *check, s *stmt) error {
		if len(s.words) == 1 {
			yput(ch.n, "require_reply", ybool(true))
			return nil
		}
		hex := strings.Join(s.words[1:], " ")
		if _, _, err := config.ParseHex(hex, true); err != nil {
			// keepalived requires a reply, of any content.
			c.note(ch.n, s, KindCheck, true, fmt.Sprintf("imported as require_reply without data: %v: keepalived reports an invalid hex string and then accepts any reply", err))
			yput(ch.n, "require_reply", ybool(true))
			return nil
		}
		ch.reply = true
		yput(ch.n, "reply", ystr(hex))
		return nil
	}
	for kw, key := range map[string]string{"min_reply_length": "min_reply_bytes", "max_reply_length": "max_reply_bytes"} {
		h[kw] = func(c *converter, ch *check, s *stmt) error {
			n, err := intArg(s, 1, 0, 65535)
			if err == nil {
				ch.replyLengths = append(ch.replyLengths, replyLength{key, n, s})
			}
			return err
		}
	}
}

// checkSMTPKeywords: SMTP_CHECK (keepalived/check/check_smtp.c).
func checkSMTPKeywords(h handlers[*check]) {
	h["helo_name"] = func(c *converter, ch *check, s *stmt) error {
		yput(ch.n, "helo_name", ystr(s.words[1]))
		return nil
	}
	h["host"] = func(c *converter, ch *check, s *stmt) error {
		c.drop(ch.n, s, KindCheck, "SMTP_CHECK's host block (deprecated in keepalived) checks another address: lvsd runs one check per real server; write connect_ip and connect_port instead")
		return nil
	}
	h["misc_dynamic"] = func(c *converter, ch *check, s *stmt) error {
		c.drop(ch.n, s, KindCheck, "lvsd does not set weights from a script's exit code: the script decides up or down only")
		return nil
	}
}

var urlHandlers = handlers[*check]{
	"path":   func(c *converter, ch *check, s *stmt) error { yput(ch.n, "path", ystr(s.words[1])); return nil },
	"digest": func(c *converter, ch *check, s *stmt) error { yput(ch.n, "digest", ystr(s.words[1])); return nil },
	"status_code": func(c *converter, ch *check, s *stmt) error {
		var codes []*yaml.Node
		for _, w := range s.words[1:] {
			codes = append(codes, ystr(w))
		}
		yput(ch.n, "status_codes", yflowSeq(codes...))
		return nil
	},
}

// finishCheck writes a check's timing as keepalived resolves it: the
// checker's own setting, else the real server's, else the virtual
// server's, else the checker's default.
func (c *converter) finishCheck(v *service, rs *realServer, ch *check) *yaml.Node {
	pick := func(get func(timing) *time.Duration, def time.Duration) time.Duration {
		for _, t := range []timing{ch.timing, rs.timing, v.timing} {
			if d := get(t); d != nil {
				return *d
			}
		}
		return def
	}
	svcDelay := defaultDelayLoop
	if v.timing.delayLoop != nil {
		svcDelay = *v.timing.delayLoop
	}
	interval := pick(func(t timing) *time.Duration { return t.delayLoop }, defaultDelayLoop)
	timeout := pick(func(t timing) *time.Duration { return t.connectTimeout }, defaultConnectTimeout)
	retry, retryDelay := defaultRetry, defaultRetryDelay
	switch ch.kind {
	case "misc_check":
		retry = 0
		timeout = svcDelay // keepalived: misc_timeout, else the virtual server's delay_loop
		if ch.miscTimeout != nil {
			timeout = *ch.miscTimeout
		}
	case "http_get", "ssl_get":
		retryDelay = defaultHTTPRetryDelay
	case "dns_check":
		retry, retryDelay = defaultDNSRetry, interval
	}
	for _, t := range []timing{ch.timing, rs.timing, v.timing} {
		if t.retry != nil {
			retry = *t.retry
			break
		}
	}
	retryDelay = pick(func(t timing) *time.Duration { return t.retryDelay }, retryDelay)
	for _, l := range ch.replyLengths {
		if !ch.reply {
			// keepalived checks the lengths only against reply data.
			c.ignore(ch.n, l.s, KindCheck, "keepalived applies it only with require_reply data, and there is none")
			continue
		}
		yput(ch.n, l.key, yint(l.n))
	}
	host := rs.host
	if host == "" {
		host = v.host
	}
	typ := yget(ch.n, "type")
	if host != "" && (typ == string(config.CheckHTTP) || typ == string(config.CheckHTTPS)) && yget(ch.n, "host") == "" {
		yput(ch.n, "host", ystr(host))
	}
	yput(ch.n, "interval", ystr(interval.String()))
	yput(ch.n, "timeout", ystr(timeout.String()))
	// keepalived takes a server out after one failed round (after its
	// retries) and back after one good one.
	yput(ch.n, "rise", yint(1))
	yput(ch.n, "fall", yint(1))
	yput(ch.n, "retry", yint(retry))
	if retry > 0 {
		yput(ch.n, "retry_delay", ystr(retryDelay.String()))
	}
	return ch.n
}

// realServer reads a real_server block: ADDRESS [PORT].
func (c *converter) realServer(v *service, s *stmt) (*realServer, error) {
	if len(s.words) < 2 || len(s.words) > 3 {
		return nil, fmt.Errorf("%s: real_server needs an address and a port (a fwmark service's real servers may leave the port out)", s.at())
	}
	if _, err := netip.ParseAddr(s.words[1]); err != nil {
		return nil, fmt.Errorf("%s: real_server %s: not an address", s.at(), s.words[1])
	}
	rs := &realServer{n: ymap("address", ystr(s.words[1])), s: s}
	c.origin[rs.n] = s
	if len(s.words) == 3 {
		port, err := intArg(s, 2, 0, 65535)
		if err != nil {
			return nil, err
		}
		yput(rs.n, "port", yint(port))
		rs.port = true
	}
	err := run(c, realServerHandlers, rs, s.block, func(c *converter, rs *realServer, st *stmt) {
		c.drop(rs.n, st, KindRealServer, "lvsd has no equivalent")
	})
	return rs, err
}

// check reads one checker block.
func (c *converter) check(rs *realServer, s *stmt) (*check, error) {
	ch := &check{n: ymap("type", ystr(string(checkers[s.keyword()]))), kind: s.keyword()}
	c.origin[ch.n] = s
	err := run(c, checkHandlers, ch, s.block, func(c *converter, ch *check, st *stmt) {
		c.drop(ch.n, st, KindCheck, "lvsd's "+yget(ch.n, "type")+" check has no equivalent")
	})
	return ch, err
}
