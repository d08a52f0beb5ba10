package health

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// TCPCheck passes when a TCP connection to Address is accepted.
type TCPCheck struct {
	// Address is where to connect: the real server's address and port,
	// or another (keepalived's connect_ip and connect_port).
	Address netip.AddrPort
	// Timeout bounds the connect; zero means DefaultTimeout.
	Timeout time.Duration
}

// NewChecker implements Spec.
func (c TCPCheck) NewChecker(env Env) (Checker, error) { return NewTCPChecker(c, env) }

// TCPChecker runs a TCPCheck.
type TCPChecker struct {
	spec    TCPCheck
	timeout time.Duration
	env     Env
	loop    *loopTarget // nil: not on the Scheduler's event loop
}

// NewTCPChecker validates spec and returns its checker.
func NewTCPChecker(spec TCPCheck, env Env) (*TCPChecker, error) {
	if !spec.Address.IsValid() || spec.Address.Port() == 0 {
		return nil, fmt.Errorf("tcp check of %s: need an address and a port", spec.Address)
	}
	c := &TCPChecker{spec: spec, timeout: timeoutOrDefault(spec.Timeout), env: env.withDefaults()}
	if c.env.defaultDialer {
		c.loop = newLoopTarget(spec.Address, c.timeout, nil)
	}
	return c, nil
}

// Check connects and closes the connection at once.
func (c *TCPChecker) Check(ctx context.Context) Result {
	target := c.spec.Address.String()
	a, cancel := begin(ctx, c.timeout, target)
	defer cancel()
	conn, err := c.env.Dialer.DialContext(a.ctx, "tcp", target)
	if err != nil {
		return failed(a.start, a.fail("connect", err))
	}
	conn.Close()
	return passed(a.start, "connected to %s", target)
}
