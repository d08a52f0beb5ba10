package health

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A socket closed while a forked child still holds it (lvsd runs
// modprobe at every reload) stays registered with epoll under its old
// descriptor number, and the next check's socket takes that number. The
// closed socket's late events must not decide the new check: here the
// first check's server closes its side as the check ends, and the
// second check's connect goes to a listener whose accept queue is full,
// so its SYN is dropped and it can only time out. Read by descriptor
// alone, the first socket's FIN made the second report "connected".
func TestLoopIgnoresAClosedSocketsEventsUnderItsOldDescriptor(t *testing.T) {
	a, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	accepted := make(chan net.Conn, 1)
	go func() { // ends when a is closed
		if c, err := a.Accept(); err == nil {
			accepted <- c
		}
	}()
	full := fullListener(t)

	var (
		dups   []int
		fds    []int
		second = &probe{}
	)
	results := make(chan loopResult, 2)
	var l *netLoop
	l, err = startNetLoop(netLoopOptions{
		Deliver: func(batch []loopResult, _ time.Time) {
			for _, r := range batch {
				results <- r
			}
		},
		closing: func(fd int) {
			fds = append(fds, fd)
			if len(fds) > 1 {
				return
			}
			// A child forked now holds the first check's socket.
			d, err := unix.Dup(fd)
			if err != nil {
				t.Error(err)
				return
			}
			dups = append(dups, d)
			// The second check begins in the loop's next round, on
			// the descriptor this close frees; the server's FIN is
			// on the first socket by then.
			second.reset(newLoopTarget(full, 300*time.Millisecond, nil), &entry{})
			l.submit(second)
			c := <-accepted
			c.Close()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		l.stop()
		for _, d := range dups {
			unix.Close(d)
		}
	}()
	first := &probe{}
	first.reset(newLoopTarget(netip.MustParseAddrPort(a.Addr().String()), 5*time.Second, nil), &entry{})
	l.submit(first)
	for _, want := range []string{"connected", "timeout"} {
		var r loopResult
		select {
		case r = <-results:
		case <-time.After(time.Minute):
			t.Fatalf("no result of the %s check in a minute", want)
		}
		if want == "connected" && !r.r.Up {
			t.Fatalf("the first check: %s, want connected", r.r.Reason)
		}
		if want == "timeout" && (r.r.Up || !errors.Is(r.r.Err, ErrTimeout)) {
			t.Errorf("the second check, whose SYN is dropped: up=%v %q; want a timeout", r.r.Up, r.r.Reason)
		}
	}
	if len(fds) != 2 || fds[0] != fds[1] {
		t.Fatalf("the checks' sockets were %v: the second did not take the first's descriptor, so this run shows nothing", fds)
	}
}

// fullListener listens on loopback with an accept queue of one and fills
// it: the kernel drops the SYNs that come next.
func fullListener(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4(sa.(*unix.SockaddrInet4).Addr), uint16(sa.(*unix.SockaddrInet4).Port))
	c, err := net.Dial("tcp4", addr.String()) // the one the queue holds
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return addr
}
