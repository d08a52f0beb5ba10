package config

// A real server's health check, the sorry server and the quorum: what decides
// whether a real server, and the service, are up.

import (
	"net/netip"
	"time"

	"github.com/lvskit/lvskit/director/scripts"
)

// HealthCheck is how lvsd decides whether a real server is up.
//
// Each interval lvsd runs one check round: an attempt that must finish
// within timeout, repeated up to retry more times, retry_delay apart, until
// one succeeds. A real server goes down after `fall` failed rounds in a row
// and up again after `rise` good rounds in a row.
//
// The defaults differ from keepalived's (delay_loop 60s, connect_timeout
// 5s, one failed round after its retries takes a server down, one good
// round brings it back): a minute is too slow to notice a dead server, and
// a single lost SYN should not take one out. lvsd's defaults notice a dead
// server in about 15s (fall 3 × interval 5s) and need two good rounds to
// bring it back.
type HealthCheck struct {
	// Type (type) is tcp (connect), http or https (GET), script (run a
	// command; exit status 0 means up), dns (query), udp (send a
	// datagram; an ICMP unreachable means down), ping (ICMP echo), smtp
	// (greeting, HELO, QUIT), or none (no check: always up). Required.
	Type CheckType `yaml:"type"`

	// Interval (interval) is the time between rounds. Default 5s.
	Interval time.Duration `yaml:"interval"`
	// Timeout (timeout) bounds one attempt, including a script's run.
	// Default 3s (or the interval, if shorter). It may be longer than the
	// interval, as keepalived's connect_timeout may exceed delay_loop: a
	// check never overlaps itself, and the round after a check that ran
	// past its next one starts an interval after it ended, as in
	// keepalived.
	Timeout time.Duration `yaml:"timeout"`
	// Rise (rise) is how many good rounds in a row bring a server up.
	// Default 2.
	Rise int `yaml:"rise"`
	// Fall (fall) is how many failed rounds in a row take a server down.
	// Default 3.
	Fall int `yaml:"fall"`
	// Retry (retry) is how many more attempts a round makes after a
	// failed one before it counts as failed. Default 0.
	Retry int `yaml:"retry"`
	// RetryDelay (retry_delay) is the wait before each retry. Default 1s.
	RetryDelay time.Duration `yaml:"retry_delay"`

	// ConnectIP (connect_ip) checks another address than the real
	// server's. Not for script checks.
	ConnectIP netip.Addr `yaml:"connect_ip"`
	// ConnectPort (connect_port) checks another port than the real
	// server's; required when the real server has no port (fwmark and
	// port-0 services). Not for script checks.
	ConnectPort uint16 `yaml:"connect_port"`

	// Path (path) is the HTTP request path (http, https). Default "/".
	Path string `yaml:"path"`
	// StatusCodes (status_codes) are the HTTP statuses that mean up: a
	// list of codes (200) and ranges ("200-299"). Default 200-299.
	StatusCodes []StatusRange `yaml:"status_codes"`
	// Digest (digest) is the MD5 of the response body as 32 hex digits,
	// as keepalived's genhash prints it; when set, a different body means
	// down.
	Digest string `yaml:"digest"`
	// Host (host) is the HTTP Host header. Default: the address checked.
	Host string `yaml:"host"`
	// SNI (sni) is the TLS server name (https). Default: host, if set.
	SNI string `yaml:"sni"`
	// VerifyTLS (verify_tls) verifies the server's certificate against
	// the system roots and the SNI name (https). Default false, as
	// keepalived: real servers often present the public name's
	// certificate, not their own.
	VerifyTLS bool `yaml:"verify_tls"`

	// Command (command) is the script's argument list (script), run
	// without a shell: [/usr/local/bin/check-db, --port, "5432"].
	Command []string `yaml:"command"`
	// Shell (shell) runs command through /bin/sh -c instead; command is
	// then a single string, the shell script.
	Shell bool `yaml:"shell"`
	// ScriptUser (script_user) runs this script as another user than
	// lvsd.script_user: "user" or "user:group"; "root" for a script that
	// must be root.
	ScriptUser string `yaml:"script_user"`
	// Program is the command as lvsd runs it, resolved at load.
	Program *scripts.Program `yaml:"-"`

	// QueryName (query_name) is the DNS name asked (dns). Default ".",
	// as keepalived's DNS_CHECK.
	QueryName string `yaml:"query_name"`
	// QueryType (query_type) is the DNS record type asked: A, AAAA,
	// CNAME, MX, NS, PTR, SOA, SRV or TXT (dns). Default SOA, as
	// keepalived's DNS_CHECK.
	QueryType string `yaml:"query_type"`

	// Payload (payload) is the datagram a udp check sends, in hex
	// digits ("0a1b2c"; spaces allowed, a lone digit is one byte, as
	// keepalived reads it). Default keepalived's: 32 bytes of "keepalived
	// check - ".
	Payload string `yaml:"payload"`
	// RequireReply (require_reply) makes a udp check fail when no reply
	// comes within the timeout. Default false: silence passes (only an
	// ICMP unreachable fails), as keepalived's UDP_CHECK.
	RequireReply bool `yaml:"require_reply"`
	// Reply (reply) is what a udp check's reply must start with, in hex
	// digits as payload; an X digit matches anything. Compared over the
	// shorter of the two. Implies require_reply.
	Reply string `yaml:"reply"`
	// MinReplyBytes and MaxReplyBytes (min_reply_bytes, max_reply_bytes)
	// bound the length of a udp check's reply when reply is set.
	// Default 0 and 255, as keepalived.
	MinReplyBytes int `yaml:"min_reply_bytes"`
	MaxReplyBytes int `yaml:"max_reply_bytes"`
	// HELOName (helo_name) is the name an smtp check sends with HELO.
	// Default smtpchecker.keepalived.org, keepalived's.
	HELOName string `yaml:"helo_name"`
	// StartTLS (starttls) makes an smtp check say EHLO, upgrade the
	// connection with STARTTLS and say EHLO again over TLS before QUIT;
	// sni and verify_tls apply then. Default false (keepalived has no
	// such option).
	StartTLS bool `yaml:"starttls"`
}

// CheckType is a kind of health check.
type CheckType string

// Health check types.
const (
	CheckNone   CheckType = "none"
	CheckTCP    CheckType = "tcp"
	CheckHTTP   CheckType = "http"
	CheckHTTPS  CheckType = "https"
	CheckScript CheckType = "script"
	CheckDNS    CheckType = "dns"
	CheckUDP    CheckType = "udp"
	CheckPing   CheckType = "ping"
	CheckSMTP   CheckType = "smtp"
)

// Health check defaults.
const (
	DefaultCheckInterval   = 5 * time.Second
	DefaultCheckTimeout    = 3 * time.Second
	DefaultCheckRise       = 2
	DefaultCheckFall       = 3
	DefaultCheckRetry      = 0
	DefaultCheckRetryDelay = 1 * time.Second
	DefaultHTTPPath        = "/"
	DefaultDNSQueryName    = "."
	DefaultDNSQueryType    = "SOA"
	DefaultUDPMaxReply     = 255
	DefaultHELOName        = "smtpchecker.keepalived.org"
)

// StatusRange is an inclusive range of HTTP status codes; a single code
// has Low == High.
type StatusRange struct {
	Low, High int
}

// Contains reports whether code is in the range.
func (r StatusRange) Contains(code int) bool { return code >= r.Low && code <= r.High }

// SorryServer is the server that takes the traffic while no real server is
// up (keepalived's sorry_server).
type SorryServer struct {
	// Address (address) is the sorry server's IP address. Required.
	Address netip.Addr `yaml:"address"`
	// Port (port) is its port. Default: the service's port.
	Port uint16 `yaml:"port"`
	// Forwarding (forwarding) overrides the service's forwarding method.
	Forwarding Forwarding `yaml:"forwarding"`
	// Tunnel (tunnel) overrides the service's tunnel options.
	Tunnel *TunnelOptions `yaml:"tunnel"`
}

// Quorum watches the sum of the weights of the real servers that are up.
// The quorum is gained when that sum reaches weight + hysteresis and lost
// when it falls below weight - hysteresis, as keepalived's quorum.
type Quorum struct {
	// Weight (weight) is the threshold, 1 or more and at most the sum of
	// the real servers' weights. Required.
	Weight int `yaml:"weight"`
	// Hysteresis (hysteresis) keeps the quorum from flapping: 0 (default)
	// to weight - 1.
	Hysteresis int `yaml:"hysteresis"`
	// UpCommand (up_command) runs when the quorum is gained: an argument
	// list, run without a shell.
	UpCommand []string `yaml:"up_command"`
	// DownCommand (down_command) runs when the quorum is lost.
	DownCommand []string `yaml:"down_command"`
	// ScriptUser (script_user) runs both commands as another user than
	// lvsd.script_user.
	ScriptUser string `yaml:"script_user"`
	// UpProgram and DownProgram are the commands as lvsd runs them,
	// resolved at load.
	UpProgram, DownProgram *scripts.Program `yaml:"-"`
}
