//go:build linux

package health_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
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
	s := newServer(t, func(c net.Conn, _ <-chan struct{}) {
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
	if n := timeWaitTo(t, s.Addr().Port()); n > 0 {
		t.Errorf("%d TIME_WAIT sockets to the server's port after the check", n)
	}
}

// timeWaitTo counts the IPv4 TIME_WAIT sockets of this network namespace
// whose remote port is port.
func timeWaitTo(t *testing.T, port uint16) int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Skipf("reading the socket table: %v", err)
	}
	defer f.Close()
	remote := fmt.Sprintf(":%04X", port)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st ...; st 06 is TIME_WAIT.
		fs := strings.Fields(sc.Text())
		if len(fs) > 3 && strings.HasSuffix(fs[2], remote) && fs[3] == "06" {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
