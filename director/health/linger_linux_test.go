//go:build linux

package health_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
)

// A passed TCP check on the event loop ends its connection as
// keepalived's TCP_CHECK does: with a reset. The real server reads
// ECONNRESET rather than EOF, and the director keeps no TIME_WAIT
// socket for it (at 1,000 checks a second, a closing handshake left
// 60,000 of them, and cost three more packets a check).
func TestTCPCheckEndsWithAResetAndLeavesNoTimeWait(t *testing.T) {
	readErr := make(chan error, 1)
	checker := make(chan string, 1) // the check's own address, as the server sees it
	s := newServer(t, func(c net.Conn, _ <-chan struct{}) {
		checker <- c.RemoteAddr().String()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	})
	c, err := health.NewTCPChecker(health.TCPCheck{Address: s.Addr(), Timeout: 5 * time.Second}, health.Env{})
	if err != nil {
		t.Fatal(err)
	}
	rs, ok := health.CheckOnEventLoop("", c)
	if !ok {
		t.Skip("no event loop on this system")
	}
	if !rs[0].Up {
		t.Fatalf("check failed: %s", rs[0].Reason)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the server read %v after the check, want a connection reset", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server saw nothing of the check's close within 10s")
	}
	local, err := netip.ParseAddrPort(<-checker)
	if err != nil {
		t.Fatal(err)
	}
	if n := timeWait(t, local.Port(), s.Addr().Port()); n > 0 {
		t.Errorf("%d TIME_WAIT sockets of the check's connection (port %d to %d) after the check", n, local.Port(), s.Addr().Port())
	}
}

// timeWait counts the IPv4 TIME_WAIT sockets of this network namespace
// from local port from to remote port to: the check's connection's, not
// another test's that happened to reach a server on the same port
// number earlier.
func timeWait(t *testing.T, from, to uint16) int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Skipf("reading the socket table: %v", err)
	}
	defer f.Close()
	local, remote := fmt.Sprintf(":%04X", from), fmt.Sprintf(":%04X", to)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st ...; st 06 is TIME_WAIT.
		fs := strings.Fields(sc.Text())
		if len(fs) > 3 && strings.HasSuffix(fs[1], local) && strings.HasSuffix(fs[2], remote) && fs[3] == "06" {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
