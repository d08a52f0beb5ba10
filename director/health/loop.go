package health

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// The event loop: on Linux the Scheduler runs TCP connects and plain
// HTTP GETs (no TLS, no Dialer of the caller's) on one goroutine over
// non-blocking sockets and epoll, with their deadlines in one heap and
// their results handed back in batches, instead of a goroutine and a
// net.Dialer per check. Checker.Check, HTTPS, scripts, DNS and checks
// through a caller's Dialer keep a goroutine each; so does every check
// on other systems.

// errNoNetLoop is startNetLoop's answer where there is no event loop.
var errNoNetLoop = errors.New("no event loop for health checks on this system")

// loopKind is what a check on the event loop does.
type loopKind uint8

const (
	kindStream loopKind = iota // a TCP connect, or an HTTP GET when http is set
	kindUDP
	kindPing
	kindSMTP
)

// loopTarget is what the event loop needs to run a check.
type loopTarget struct {
	kind      loopKind
	addr      netip.AddrPort
	target    string // addr as messages show it
	connected string // a passed TCP check's reason
	timeout   time.Duration
	sockaddr  any          // the platform's socket address of addr
	http      *HTTPChecker // kindStream: nil for a TCP connect
	udp       *UDPChecker
	ping      *pingState
	smtp      *SMTPChecker
}

// newLoopTarget describes a check for the event loop; nil when the
// check cannot run there (an address with a zone).
func newLoopTarget(addr netip.AddrPort, timeout time.Duration, http *HTTPChecker) *loopTarget {
	sa, ok := loopSockaddr(addr)
	if !ok {
		return nil
	}
	target := addr.String()
	return &loopTarget{addr: addr, target: target, connected: "connected to " + target, timeout: timeout, sockaddr: sa, http: http}
}

// loopTargetOf returns the event loop's description of c's check, if it
// can run there.
func loopTargetOf(c Checker) (*loopTarget, bool) {
	switch c := c.(type) {
	case *TCPChecker:
		return c.loop, c.loop != nil
	case *HTTPChecker:
		return c.loop, c.loop != nil
	case *UDPChecker:
		return c.loop, c.loop != nil
	case *PingChecker:
		return c.loop, c.loop != nil
	case *SMTPChecker:
		return c.loop, c.loop != nil
	}
	return nil, false
}

// loopResult is a finished check of the event loop.
type loopResult struct {
	e *entry
	r Result
}

// netLoopOptions configure the event loop.
type netLoopOptions struct {
	// NetNS is the path of a network namespace to make the
	// connections in; empty means the process's.
	NetNS string
	// Deliver receives each batch of finished checks, on the loop's
	// goroutine, with the loop's reading of the clock for the round
	// that finished them; it must not keep the slice.
	Deliver func(batch []loopResult, now time.Time)
	// closing, if set, is called on the loop's goroutine with each
	// finished check's socket just before the loop closes it: a test's
	// stand-in for a process forked at that moment (see watch).
	closing func(fd int)
}

// checkOnLoop runs t's check once on an event loop of its own: the
// Checker.Check of checks that have no other way to run (ping). It
// returns when the check ends or ctx is done.
func checkOnLoop(ctx context.Context, t *loopTarget) Result {
	start := time.Now()
	results := make(chan Result, 1)
	l, err := startNetLoop(netLoopOptions{Deliver: func(batch []loopResult, _ time.Time) {
		for _, r := range batch {
			results <- r.r
		}
	}})
	if err != nil {
		return failed(start, fmt.Errorf("%s check of %s: %w", t.kindName(), t.target, err))
	}
	defer l.stop()
	p := &probe{}
	p.reset(t, &entry{})
	if !l.submit(p) {
		return failed(start, fmt.Errorf("%s check of %s: the event loop stopped", t.kindName(), t.target))
	}
	select {
	case r := <-results:
		return r
	case <-ctx.Done():
		return failed(start, newError(ErrCanceled, ctx.Err(), "canceled while checking %s", t.target))
	}
}

// kindName names t's kind of check for messages.
func (t *loopTarget) kindName() string {
	switch {
	case t.kind == kindUDP:
		return "udp"
	case t.kind == kindPing:
		return "ping"
	case t.kind == kindSMTP:
		return "smtp"
	case t.http != nil:
		return "http"
	}
	return "tcp"
}
