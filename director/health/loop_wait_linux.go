//go:build linux

package health

// How the net loop sleeps between rounds: epoll_wait until the next
// deadline, after a short pause that batches a busy loop's events, or
// parked in Go's netpoller when the wait is long.

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// waitFor is how long the loop may sleep before wakeAt (-1: until
// woken), or 0 when there is work already (a wake, a submit, a cancel
// or a stop since the round began). From here until the next
// epoll_wait returns, wake writes the eventfd.
func (l *netLoop) waitFor(wakeAt time.Time) time.Duration {
	wait := time.Duration(-1)
	if !wakeAt.IsZero() {
		wait = max(wakeAt.Sub(l.now), 0)
	}
	l.sleeping.Store(true)
	if l.poked.Swap(false) {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.submitted) > 0 || len(l.canceled) > 0 || l.stopping {
		return 0
	}
	return wait
}

// waitEvents waits up to wait (-1: until woken) for events. After a
// round woken by sockets it first pauses batchWindow, so that the
// events of more checks gather (wake still interrupts the epoll_wait
// that follows at once). A wait of parkAfter or longer parks in Go's
// netpoller (parkWait); parked says that the scheduler resumed the
// loop's goroutine from there.
func (l *netLoop) waitEvents(events []unix.EpollEvent, wait time.Duration, woken bool) (n int, parked bool, err error) {
	defer l.sleeping.Store(false)
	if woken && wait != 0 {
		pause := batchWindow
		if wait > 0 {
			pause = min(pause, wait)
			wait -= pause
		}
		ts := unix.NsecToTimespec(int64(pause))
		_ = unix.Nanosleep(&ts, nil)
	}
	if l.canPark && (wait < 0 || wait >= parkAfter) {
		if n, parked, ok, err := l.parkWait(events, wait); ok {
			return n, parked, err
		}
	}
	timeout := -1
	if wait >= 0 {
		timeout = int((wait + time.Millisecond - 1) / time.Millisecond)
	}
	n, err = unix.EpollWait(l.epfd, events, timeout)
	if errors.Is(err, unix.EINTR) {
		return 0, false, nil
	}
	return max(n, 0), false, err
}

// parkAfter is the shortest wait that parks in Go's netpoller rather
// than blocking in epoll_wait. The runtime takes a goroutine that sits
// in one system call for 10ms for a stuck one: it signals its thread,
// hands its P to another thread, and its monitor then polls every 20us
// for a while. A loop with few checks (tens of real servers) waits
// that long between rounds; parked, its thread sleeps in the netpoller
// and the runtime stays quiet (at 20 HTTP checks a second on the host,
// a third of the CPU per check).
const parkAfter = 10 * time.Millisecond

// parkWait waits up to wait (-1: until woken) for events with the
// loop's goroutine parked in Go's netpoller, on a duplicate of the
// epoll descriptor registered there for the wait only (registered for
// good, every event would also wake the netpoller's thread while the
// loop runs). ok is false when the netpoller cannot take it; parked,
// when the netpoller (not the deadline's timer) resumed the goroutine.
func (l *netLoop) parkWait(events []unix.EpollEvent, wait time.Duration) (n int, parked, ok bool, err error) {
	dup, err := unix.FcntlInt(uintptr(l.epfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return 0, false, false, nil
	}
	f := os.NewFile(uintptr(dup), "health check epoll")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, false, false, nil
	}
	var deadline time.Time
	if wait >= 0 {
		deadline = time.Now().Add(wait)
	}
	if err := f.SetReadDeadline(deadline); err != nil {
		return 0, false, false, nil // not pollable
	}
	calls := 0
	var waitErr error
	err = rc.Read(func(uintptr) bool {
		calls++
		n, waitErr = unix.EpollWait(l.epfd, events, 0)
		return n > 0 || (waitErr != nil && waitErr != unix.EINTR)
	})
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, false, true, nil
	case err != nil:
		return 0, false, false, nil
	case waitErr == unix.EINTR:
		waitErr = nil
	}
	return max(n, 0), calls > 1, true, waitErr
}
