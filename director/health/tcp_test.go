package health_test

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func TestTCP(t *testing.T) {
	s := newServer(t, silent)
	c, err := health.NewTCPChecker(health.TCPCheck{Address: s.Addr()}, health.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Check(context.Background()); !r.Up || r.Reason != "connected to "+s.Addr().String() {
		t.Errorf("up=%v %q, want up", r.Up, r.Reason)
	}

	closed := closedPort(t)
	c, _ = health.NewTCPChecker(health.TCPCheck{Address: closed}, health.Env{})
	assertDown(t, c.Check(context.Background()), syscall.ECONNREFUSED, "connect "+closed.String()+": connection refused")
}

func TestTCPTimeoutDoesNotBlockOthers(t *testing.T) {
	const timeout = 500 * time.Millisecond
	addr := netip.MustParseAddrPort("192.0.2.1:80") // TEST-NET-1; the dialer never completes anyway
	c, err := health.NewTCPChecker(health.TCPCheck{Address: addr, Timeout: timeout}, health.Env{Dialer: blackhole{}})
	if err != nil {
		t.Fatal(err)
	}
	r, took := checkAlongside(t, c, nil, healthyHTTP(t))
	assertDown(t, r, health.ErrTimeout, "timeout after 500ms connecting to 192.0.2.1:80")
	assertEndsAtTimeout(t, took, timeout)
}

func TestTCPSpecErrors(t *testing.T) {
	if _, err := health.NewTCPChecker(health.TCPCheck{Address: netip.MustParseAddrPort("10.0.0.2:0")}, health.Env{}); err == nil {
		t.Error("a TCP check without a port was accepted")
	}
}
