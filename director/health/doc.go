// Package health checks lvsd's real servers and decides, with a rise/fall
// state machine, whether each one is up.
//
// It has three layers, each usable on its own:
//
//   - Checkers probe a server once: TCP connect, HTTP or HTTPS GET
//     (status codes, an optional MD5 body digest as keepalived's genhash
//     computes it), a script, a DNS query, and with keepalived's
//     semantics a UDP datagram, an ICMP echo or an SMTP greeting, HELO
//     and QUIT. Each implements Checker;
//     Check honours the check's timeout and the context, and returns a
//     Result with a reason a person can read ("HTTP 503 from
//     10.0.0.2:80").
//   - Machine is the rise/fall state machine of one real server: pure,
//     deterministic, driven by Results only.
//   - Scheduler runs the checks of many targets with a bounded number of
//     concurrent checks, jittered intervals and an injected Clock, keeps
//     each target's Machine across Update calls when its check did not
//     change (health survives a reload), and publishes transitions.
//
// The package does not import lvsd's config: the director converts its
// config into Targets whose Check is one of TCPCheck, HTTPCheck,
// ScriptCheck, DNSCheck, UDPCheck, PingCheck or SMTPCheck.
//
// Checks run in the caller's network namespace, through the Dialer in
// Env (a *net.Dialer by default); with no Dialer, on Linux, the
// Scheduler runs TCP, plain HTTP, UDP, ping and SMTP checks on one event
// loop (see SchedulerOptions.NetNS). Ping checks never use a Dialer.
package health
