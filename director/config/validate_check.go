package config

// Checking a health check's settings for its type: which keys apply, its timing,
// and what each checker (HTTP, UDP, SMTP, script, DNS) needs.

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"
)

// checkKeys says which check types each health_check key applies to; keys
// not listed apply to every type but none.
var checkKeys = map[string][]CheckType{
	"connect_ip":      {CheckTCP, CheckHTTP, CheckHTTPS, CheckDNS, CheckUDP, CheckPing, CheckSMTP},
	"connect_port":    {CheckTCP, CheckHTTP, CheckHTTPS, CheckDNS, CheckUDP, CheckSMTP},
	"payload":         {CheckUDP},
	"require_reply":   {CheckUDP},
	"reply":           {CheckUDP},
	"min_reply_bytes": {CheckUDP},
	"max_reply_bytes": {CheckUDP},
	"helo_name":       {CheckSMTP},
	"path":            {CheckHTTP, CheckHTTPS},
	"status_codes":    {CheckHTTP, CheckHTTPS},
	"digest":          {CheckHTTP, CheckHTTPS},
	"host":            {CheckHTTP, CheckHTTPS},
	"sni":             {CheckHTTPS, CheckSMTP},
	"verify_tls":      {CheckHTTPS, CheckSMTP},
	"starttls":        {CheckSMTP},
	"command":         {CheckScript},
	"shell":           {CheckScript},
	"script_user":     {CheckScript},
	"query_name":      {CheckDNS},
	"query_type":      {CheckDNS},
}

// dnsTypes are the record types a dns check may ask for.
var dnsTypes = []string{"A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT"}

func (c *checker) healthCheck(h *HealthCheck) {
	if !c.written(&h.Type) {
		c.at(h, "health_check needs a type: write type: tcp, http, https, script, dns, udp, ping, smtp or none")
		return
	}
	if !c.valid(&h.Type) {
		return
	}
	v := reflect.ValueOf(h).Elem()
	for _, f := range fieldsOf(v.Type()) {
		p := v.Field(f.index).Addr().Interface()
		if f.name == "type" || !c.written(p) {
			continue
		}
		types, limited := checkKeys[f.name]
		switch {
		case h.Type == CheckNone:
			c.atKey(p, "%s does not apply to type: none (no check): remove it, or choose a check type", f.name)
		case limited && !slices.Contains(types, h.Type):
			names := make([]string, len(types))
			for i, t := range types {
				names[i] = string(t)
			}
			c.atKey(p, "%s applies only to %s checks, not %s: remove it, or write type: %s", f.name, joinOr(names), h.Type, types[0])
		}
	}
	if h.Type == CheckNone {
		return
	}
	c.checkTiming(h)
	if c.valid(&h.ConnectIP) {
		if msg := unicast(h.ConnectIP); msg != "" {
			c.at(&h.ConnectIP, "connect_ip: %s %s: write the address to check, or leave it out to check the real server", h.ConnectIP, msg)
		}
	}
	if c.valid(&h.ConnectPort) && h.ConnectPort == 0 {
		c.at(&h.ConnectPort, "connect_port: 0 is not a port: write 1 to 65535, or leave it out to check the real server's port")
	}
	switch h.Type {
	case CheckHTTP, CheckHTTPS:
		c.httpCheck(h)
	case CheckScript:
		c.scriptCheck(h)
	case CheckDNS:
		c.dnsCheck(h)
	case CheckUDP:
		c.udpCheck(h)
	case CheckSMTP:
		c.smtpCheck(h)
	}
}

func (c *checker) udpCheck(h *HealthCheck) {
	if c.valid(&h.Payload) {
		switch data, _, err := ParseHex(h.Payload, false); {
		case err != nil:
			c.at(&h.Payload, "payload: %v: write the datagram in hex digits, such as 0a1b2c", err)
		case len(data) > 65507:
			c.at(&h.Payload, "payload: %d bytes: a datagram holds at most 65507", len(data))
		}
	}
	if c.valid(&h.Reply) {
		if _, _, err := ParseHex(h.Reply, true); err != nil {
			c.at(&h.Reply, "reply: %v: write the expected reply in hex digits, X for a digit that may be anything, such as 0aXX2c", err)
		}
	}
	if !c.written(&h.MaxReplyBytes) {
		h.MaxReplyBytes = DefaultUDPMaxReply
	}
	for _, n := range []struct {
		name string
		p    *int
	}{{"min_reply_bytes", &h.MinReplyBytes}, {"max_reply_bytes", &h.MaxReplyBytes}} {
		if c.valid(n.p) && (*n.p < 0 || *n.p > 65535) {
			c.at(n.p, "%s: %d is out of range: write 0 to 65535", n.name, *n.p)
		}
	}
	if c.valid(&h.MinReplyBytes) && c.valid(&h.MaxReplyBytes) && h.MinReplyBytes > h.MaxReplyBytes {
		c.at(&h.MinReplyBytes, "min_reply_bytes: %d is above max_reply_bytes %d: the check could never pass", h.MinReplyBytes, h.MaxReplyBytes)
	}
	if (c.written(&h.MinReplyBytes) || c.written(&h.MaxReplyBytes)) && !c.written(&h.Reply) {
		p := any(&h.MinReplyBytes)
		if !c.written(&h.MinReplyBytes) {
			p = &h.MaxReplyBytes
		}
		c.at(p, "min_reply_bytes and max_reply_bytes apply only with reply (as in keepalived): write reply: with the expected bytes, or remove them")
	}
}

func (c *checker) smtpCheck(h *HealthCheck) {
	for _, p := range []any{&h.SNI, &h.VerifyTLS} {
		if c.written(p) && !h.StartTLS {
			c.atKey(p, "sni and verify_tls apply to an smtp check only with starttls: true: add it, or remove them")
		}
	}
	c.sni(h)
	switch {
	case !c.written(&h.HELOName):
		h.HELOName = DefaultHELOName
	case c.valid(&h.HELOName) && (h.HELOName == "" || strings.ContainsAny(h.HELOName, " \t\r\n\x00")):
		c.at(&h.HELOName, "helo_name: %q is not a host name: write this director's name, such as lvs1.example.com (default %s)", h.HELOName, DefaultHELOName)
	}
}

func (c *checker) checkTiming(h *HealthCheck) {
	if !c.written(&h.Interval) {
		h.Interval = DefaultCheckInterval
	} else if c.valid(&h.Interval) && h.Interval < 100*time.Millisecond {
		c.at(&h.Interval, "interval: %v is too short: write at least 100ms (default %v)", h.Interval, DefaultCheckInterval)
	}
	if !c.written(&h.Timeout) {
		h.Timeout = min(DefaultCheckTimeout, h.Interval)
	} else if c.valid(&h.Timeout) {
		// A timeout longer than the interval is allowed, as keepalived
		// allows connect_timeout > delay_loop: the scheduler never
		// overlaps two rounds of one check, and the round after a slow
		// one starts an interval after it ended.
		if h.Timeout < time.Millisecond {
			c.at(&h.Timeout, "timeout: %v is too short: write at least 1ms (default %v)", h.Timeout, DefaultCheckTimeout)
		}
	}
	counts := []struct {
		name string
		p    *int
		def  int
		min  int
	}{{"rise", &h.Rise, DefaultCheckRise, 1}, {"fall", &h.Fall, DefaultCheckFall, 1}, {"retry", &h.Retry, DefaultCheckRetry, 0}}
	for _, n := range counts {
		switch {
		case !c.written(n.p):
			*n.p = n.def
		case c.valid(n.p) && *n.p < n.min:
			c.at(n.p, "%s: %d is too small: write %d or more (default %d)", n.name, *n.p, n.min, n.def)
		case c.valid(n.p) && *n.p > 1000:
			c.at(n.p, "%s: %d is too large: write at most 1000 (default %d)", n.name, *n.p, n.def)
		}
	}
	if !c.written(&h.RetryDelay) {
		h.RetryDelay = DefaultCheckRetryDelay
	}
}

func (c *checker) httpCheck(h *HealthCheck) {
	switch {
	case !c.written(&h.Path):
		h.Path = DefaultHTTPPath
	case c.valid(&h.Path) && !strings.HasPrefix(h.Path, "/"):
		c.at(&h.Path, "path: %q must start with /: write /%s", h.Path, h.Path)
	case c.valid(&h.Path) && strings.ContainsAny(h.Path, " \t\r\n"):
		c.at(&h.Path, "path: %q has a space: write it URL-encoded (%%20)", h.Path)
	}
	if len(h.StatusCodes) == 0 {
		if c.written(&h.StatusCodes) {
			c.at(&h.StatusCodes, "status_codes: empty: list the codes that mean up, such as [200] or [\"200-299\"]")
		}
		h.StatusCodes = []StatusRange{{200, 299}}
	}
	if c.valid(&h.Digest) {
		d := strings.ToLower(h.Digest)
		if len(d) != 32 || strings.Trim(d, "0123456789abcdef") != "" {
			c.at(&h.Digest, "digest: %q is not an MD5 digest: write the 32 hex digits genhash prints for the page (genhash -s ADDRESS -p PORT -u PATH)", h.Digest)
		}
		h.Digest = d
	}
	if c.valid(&h.Host) && (h.Host == "" || strings.ContainsAny(h.Host, " \t\r\n/")) {
		c.at(&h.Host, "host: %q is not a host name: write the Host header the server expects, such as www.example.com", h.Host)
	}
	c.sni(h)
	if h.Type == CheckHTTPS && !c.written(&h.SNI) && h.Host != "" {
		if _, err := netip.ParseAddr(h.Host); err != nil {
			h.SNI = h.Host
		}
	}
}

// sni checks a TLS server name.
func (c *checker) sni(h *HealthCheck) {
	if c.valid(&h.SNI) {
		if _, err := netip.ParseAddr(h.SNI); err == nil {
			c.at(&h.SNI, "sni: %s is an IP address, which TLS cannot send as a server name: write the certificate's host name, or remove sni", h.SNI)
		} else if h.SNI == "" || strings.ContainsAny(h.SNI, " \t\r\n/:") {
			c.at(&h.SNI, "sni: %q is not a host name: write the certificate's host name, such as www.example.com", h.SNI)
		}
	}
}

func (c *checker) scriptCheck(h *HealthCheck) {
	switch {
	case !c.written(&h.Command):
		c.at(h, "a script check needs a command: write command: [/usr/local/bin/check, --port, \"80\"] (exit status 0 means up)")
	case !c.valid(&h.Command):
	case len(h.Command) == 0:
		c.at(&h.Command, "command: empty: write the program and its arguments, such as [/usr/local/bin/check, --port, \"80\"]")
	case h.Shell && len(h.Command) != 1:
		c.at(&h.Command, "command: with shell: true, write the script as one string: command: [\"check-a && check-b\"]")
	case h.Command[0] == "":
		c.at(&h.Command[0], "command: the program is empty: write its path first, such as /usr/local/bin/check")
	case !h.Shell && len(h.Command) == 1 && strings.ContainsAny(h.Command[0], " \t"):
		c.at(&h.Command[0], "command: %q is one argument holding spaces, and no shell runs it: write each argument as its own item ([%s]), or set shell: true", h.Command[0], strings.Join(strings.Fields(h.Command[0]), ", "))
	}
}

func (c *checker) dnsCheck(h *HealthCheck) {
	if !c.written(&h.QueryName) {
		h.QueryName = DefaultDNSQueryName
	} else if c.valid(&h.QueryName) && (h.QueryName == "" || len(h.QueryName) > 253 || strings.ContainsAny(h.QueryName, " \t\r\n")) {
		c.at(&h.QueryName, "query_name: %q is not a DNS name: write a name such as example.com (default %q)", h.QueryName, DefaultDNSQueryName)
	}
	if !c.written(&h.QueryType) {
		h.QueryType = DefaultDNSQueryType
	} else if c.valid(&h.QueryType) {
		if up := strings.ToUpper(h.QueryType); slices.Contains(dnsTypes, up) {
			h.QueryType = up
		} else {
			c.at(&h.QueryType, "query_type: unknown record type %q: write %s", h.QueryType, joinOr(dnsTypes))
		}
	}
}

// needsPort reports whether a check connects to a port.
func needsPort(t CheckType) bool {
	return t == CheckTCP || t == CheckHTTP || t == CheckHTTPS || t == CheckDNS || t == CheckUDP || t == CheckSMTP
}
