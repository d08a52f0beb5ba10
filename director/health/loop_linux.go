//go:build linux

package health

import (
	"container/heap"
	"context"
	"crypto/md5"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// netLoop runs checks over non-blocking sockets on one goroutine. A
// check costs socket, setsockopt (SO_LINGER), connect, epoll_ctl and
// close (a TCP check), plus one sendto and usually one read (an HTTP
// check), all but socket made without the runtime's syscall
// bookkeeping (loop_sys_linux.go); epoll_wait, the clock reading and
// the deadline heap are shared by all checks in flight.
//
// A round of the loop reads the clock once, right after epoll_wait:
// the results, the deadlines of the checks it starts and the
// scheduler's dispatch all use that reading (in a VM without a usable
// TSC every reading is a syscall). A round that was woken by sockets
// is followed by a pause of batchWindow before the next epoll_wait, so
// that under load one wake-up serves the events of many checks rather
// than one each.
type netLoop struct {
	epfd, evfd int
	// canPark: the loop may park in Go's netpoller during a long wait
	// (not when its thread is locked in another network namespace).
	canPark bool
	deliver func([]loopResult, time.Time)
	closing func(fd int)  // netLoopOptions.closing
	done    chan struct{} // closed when the loop's goroutine has ended

	mu        sync.Mutex
	submitted []*probe
	canceled  []*probe
	stopping  bool
	stopped   bool // the goroutine ended: submit refuses
	sleeping  atomic.Bool
	poked     atomic.Bool // wake was called while the loop was awake
	// ticking: the loop is in the scheduler's dispatch and takes what
	// was submitted right after it, so a submit need not wake it (a
	// wake would only make its next epoll_wait return at once, for
	// nothing).
	ticking atomic.Bool
	tick    atomic.Pointer[func(time.Time) (time.Time, bool)]

	// The rest belongs to the loop's goroutine.
	probes []*probe // in flight, by socket (a descriptor indexes it)
	// Sockets of passed HTTP checks waiting for the server's FIN
	// before they are closed, so that TIME_WAIT stays on the server's
	// side as with keepalived (which reads to the end of the
	// connection): by socket, and in the order they were added.
	draining map[int]drainingSocket
	drainQ   []drainingSocket
	// tag numbers the sockets' registrations with epoll: an event
	// carries its socket's tag beside its descriptor, and one whose tag
	// is not the socket's now is a closed socket's (registrations
	// outlive close while a forked child holds the socket: see watch).
	tag     uint32
	timers  probeHeap
	results []loopResult
	buf     []byte
	now     time.Time       // when epoll_wait last returned (or the clock was last read): the time of what the loop does
	yielded time.Time       // when the loop last yielded to Go's scheduler
	worked  int             // events handled and checks begun since the clock was last read
	events  uint32          // the events of the socket being stepped
	sum     [md5.Size]byte  // judge's digest, kept off the heap
	echo    []byte          // a ping's echo request, reused
	pingRaw [2]bool         // IPv4, IPv6: ICMP sockets are refused, ping on raw ones
	ev      unix.EpollEvent // epoll_ctl's argument, kept off the heap
	spare   [2][]*probe     // the last round's submitted and canceled slices, reused
	backlog []*probe        // submitted, not begun yet (maxBegins)
}

// batchWindow is how long the loop pauses after a round woken by
// sockets before it waits again. It bounds the loop to about 1,000
// wake-ups a second under load, and adds at most this much to a
// check's measured duration and to when its timeout is noticed.
const batchWindow = time.Millisecond

// yieldEvery is how often the loop yields to Go's scheduler: often
// enough that sysmon (which preempts a goroutine running for 10ms
// without passing through the scheduler) never signals it.
const yieldEvery = 4 * time.Millisecond

// yieldLookEvery is how many sockets' events or begun checks the loop
// handles between two looks at the clock within a round, to yield
// there if yieldEvery has passed. A round of a loop that fell behind
// handles up to 256 events and begins up to maxBegins checks, each a
// few system calls: in an emulated VM (some 100-200us a check) that is
// tens of milliseconds, and sysmon signalled the loop 30-40 times a
// second (tgkill, rt_sigreturn) when it yielded only between rounds.
const yieldLookEvery = 16

// startNetLoop starts the event loop's goroutine; stop ends it.
func startNetLoop(opts netLoopOptions) (*netLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("starting the health check event loop: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("starting the health check event loop: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil, fmt.Errorf("starting the health check event loop: epoll_ctl: %w", err)
	}
	// O_NONBLOCK on the epoll instance lets Go's netpoller take it
	// (parkWait); epoll_wait itself ignores the flag.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil, fmt.Errorf("starting the health check event loop: making epoll non-blocking: %w", err)
	}
	l := &netLoop{
		epfd: epfd, evfd: evfd, canPark: opts.NetNS == "", deliver: opts.Deliver, closing: opts.closing, done: make(chan struct{}),
		draining: map[int]drainingSocket{}, buf: make([]byte, 32<<10),
	}
	ready := make(chan error, 1)
	go l.run(opts.NetNS, ready)
	if err := <-ready; err != nil {
		<-l.done
		return nil, err
	}
	return l, nil
}

// enterNetNS moves the calling goroutine's thread into the namespace at
// path for good: the thread stays locked, and ends with the goroutine.
func enterNetNS(path string) error {
	runtime.LockOSThread()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering network namespace %s: %w", path, err)
	}
	return nil
}

// submit queues p's check; false when the loop has stopped.
func (l *netLoop) submit(p *probe) bool {
	l.mu.Lock()
	if l.stopped || l.stopping {
		l.mu.Unlock()
		return false
	}
	l.submitted = append(l.submitted, p)
	l.mu.Unlock()
	if !l.ticking.Load() {
		l.wake()
	}
	return true
}

// cancel ends p's check, if it still runs, with ErrCanceled.
func (l *netLoop) cancel(p *probe) {
	l.mu.Lock()
	if !l.stopped {
		l.canceled = append(l.canceled, p)
	}
	l.mu.Unlock()
	l.wake()
}

// stop ends the loop: the checks in flight are dropped without results.
// It returns when the loop's goroutine has ended.
func (l *netLoop) stop() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	l.wake()
	<-l.done
}

// tickWith makes the loop call tick (the Scheduler's dispatch) once in
// each round with the round's clock reading, and sleep no later than
// the due time it returns.
func (l *netLoop) tickWith(tick func(now time.Time) (time.Time, bool)) {
	l.tick.Store(&tick)
	l.wake()
}

// ended is closed when the loop's goroutine has ended.
func (l *netLoop) ended() <-chan struct{} { return l.done }

// wake interrupts epoll_wait, if the loop sleeps in it, or makes its
// next one return at once.
func (l *netLoop) wake() {
	if l.sleeping.CompareAndSwap(true, false) {
		var one = [8]byte{1}
		_, _ = unix.Write(l.evfd, one[:])
		return
	}
	l.poked.Store(true)
}

func (l *netLoop) run(netns string, ready chan<- error) {
	defer close(l.done)
	defer l.closeAll()
	if netns != "" {
		if err := enterNetNS(netns); err != nil {
			ready <- err
			return
		}
	}
	ready <- nil
	events := make([]unix.EpollEvent, 256)
	var woken bool // the last epoll_wait returned sockets' events
	l.now = time.Now()
	l.yielded = l.now
	for {
		l.maybeYield()
		wakeAt, ok := l.round()
		if !ok {
			return
		}
		n, parked, err := l.waitEvents(events, l.waitFor(wakeAt), woken)
		if parked {
			l.yielded = l.now // the scheduler ran the loop again: as good as a yield
		}
		if err != nil {
			// Only a broken epoll descriptor gets here: fail what is in
			// flight and let the scheduler run checks on goroutines.
			for _, p := range l.probes {
				if p != nil {
					l.failCheck(p, fmt.Errorf("health check event loop: epoll_wait: %w", err))
				}
			}
			l.flush()
			return
		}
		l.now = time.Now()
		woken = l.handleEvents(events[:n])
	}
}

// maybeYield yields to Go's scheduler if yieldEvery has passed since
// the loop last did, by l.now. The loop blocks in raw syscalls, never in
// the scheduler, so Go's sysmon would take it for a goroutine that hogs
// its P and interrupt it with a signal every 10ms (a costly one in an
// emulated VM), then yield for it anyway. Yielding first tells the
// scheduler it is not stuck.
func (l *netLoop) maybeYield() {
	if l.now.Sub(l.yielded) >= yieldEvery {
		runtime.Gosched()
		l.yielded = l.now
	}
}

// didWork counts an event handled or a check begun; every
// yieldLookEvery of them it reads the clock into l.now (what follows in
// the round is timed by it) and yields if it is time.
func (l *netLoop) didWork() {
	if l.worked++; l.worked < yieldLookEvery {
		return
	}
	l.worked = 0
	l.now = time.Now()
	l.maybeYield()
}

// closeAll closes every socket the loop holds, when its goroutine ends,
// and makes submit refuse.
func (l *netLoop) closeAll() {
	for fd, p := range l.probes {
		if p != nil {
			unix.Close(fd)
		}
	}
	for fd := range l.draining {
		unix.Close(fd)
	}
	unix.Close(l.evfd)
	unix.Close(l.epfd)
	l.mu.Lock()
	l.stopped = true
	l.submitted, l.canceled = nil, nil
	l.mu.Unlock()
}

// round does what is due at l.now: it ends the checks past their
// deadline, has the scheduler submit the due checks, begins the
// submitted ones and ends the canceled ones. It returns when the loop
// must look again (zero for never, unless woken), and false when the
// loop is stopping.
func (l *netLoop) round() (wakeAt time.Time, ok bool) {
	now := l.now
	l.expire(now)
	l.flush()
	// What a wake asked for until now is looked at below: the
	// scheduler's dispatch runs after this (under its lock, after the
	// change that signalled), and the submitted and canceled checks and
	// stop are read after it. Only a wake from here on must make the
	// next epoll_wait return at once.
	l.poked.Store(false)
	if tick := l.tick.Load(); tick != nil {
		// The scheduler submits the due checks: begun below, in
		// this round.
		l.ticking.Store(true)
		due, ok := (*tick)(now)
		l.ticking.Store(false)
		if ok {
			wakeAt = due
		}
	}
	l.mu.Lock()
	batch, cancels := l.submitted, l.canceled
	l.submitted, l.canceled = l.spare[0][:0], l.spare[1][:0]
	stopping := l.stopping
	l.mu.Unlock()
	if stopping {
		return time.Time{}, false
	}
	for i, p := range batch {
		p.queued = true
		l.backlog = append(l.backlog, p)
		batch[i] = nil
	}
	for i, p := range cancels {
		switch {
		case p.queued:
			l.dropQueued(p)
			p.start = now
			l.failCheck(p, newError(ErrCanceled, context.Canceled, "canceled while %s %s", progressive(p.op()), p.t.target))
		case p.phase != phaseIdle && p.e != nil:
			l.failCheck(p, newError(ErrCanceled, context.Canceled, "canceled while %s %s", progressive(p.op()), p.t.target))
		}
		cancels[i] = nil
	}
	l.spare[0], l.spare[1] = batch, cancels
	if l.beginQueued() {
		wakeAt = now // more to begin once the events that came are handled
	}
	l.flush()
	if len(l.timers) > 0 && (wakeAt.IsZero() || l.timers[0].deadline.Before(wakeAt)) {
		wakeAt = l.timers[0].deadline
	}
	if len(l.drainQ) > 0 && (wakeAt.IsZero() || l.drainQ[0].until.Before(wakeAt)) {
		wakeAt = l.drainQ[0].until
	}
	return wakeAt, true
}

// maxBegins is how many checks a round begins at most. The rest wait
// for the next round, after the events that came meanwhile: a loop
// that fell behind (a starved VM, a burst of due checks) finishes the
// checks in flight before it begins more, and a check's deadline,
// counted from the round's clock reading, is not eaten by the begins
// before its own.
const maxBegins = 64

// beginQueued begins up to maxBegins queued checks, each at l.now;
// true when some are left.
func (l *netLoop) beginQueued() bool {
	n := min(len(l.backlog), maxBegins)
	for i, p := range l.backlog[:n] {
		p.queued = false
		l.begin(p, l.now)
		l.backlog[i] = nil
		l.didWork()
	}
	rest := copy(l.backlog, l.backlog[n:])
	clear(l.backlog[rest:])
	l.backlog = l.backlog[:rest]
	return rest > 0
}

// dropQueued takes p, not begun yet, out of the queue.
func (l *netLoop) dropQueued(p *probe) {
	p.queued = false
	l.backlog = slices.DeleteFunc(l.backlog, func(q *probe) bool { return q == p })
}

// handleEvents steps the checks whose sockets have events; true when
// there were any (not only the eventfd's).
func (l *netLoop) handleEvents(events []unix.EpollEvent) (woken bool) {
	for _, ev := range events {
		fd, tag := int(ev.Fd), uint32(ev.Pad)
		if fd == l.evfd {
			var b [8]byte
			_, _ = unix.Read(l.evfd, b[:])
			continue
		}
		woken = true
		l.didWork()
		if p := l.probeAt(fd); p != nil && p.tag == tag {
			l.step(p, ev.Events)
		} else if d, ok := l.draining[fd]; ok && d.tag == tag {
			// The server's FIN (or more than it announced): done.
			delete(l.draining, fd)
			closeNow(fd)
		}
		// Otherwise the event is a closed socket's whose descriptor
		// a new one has taken: not the new one's to act on.
	}
	return woken
}

// flush hands the finished checks to the scheduler in one batch.
func (l *netLoop) flush() {
	if len(l.results) == 0 {
		return
	}
	l.deliver(l.results, l.now)
	clear(l.results)
	l.results = l.results[:0]
}

// expire ends the checks whose deadline has passed.
func (l *netLoop) expire(now time.Time) {
	l.sweep(now)
	for len(l.timers) > 0 && !l.timers[0].deadline.After(now) {
		p := l.timers[0]
		if p.t.kind == kindUDP && !p.t.udp.requireReply {
			// keepalived's UDP_CHECK: silence is no failure.
			l.finish(p, Result{Up: true, Reason: p.t.udp.silentPass, Time: p.start})
			continue
		}
		l.failCheck(p, newError(ErrTimeout, os.ErrDeadlineExceeded, "timeout after %s %s %s", p.t.timeout, progressive(p.op()), p.t.target))
	}
}

// failCheck ends p's check as failed with err.
func (l *netLoop) failCheck(p *probe, err error) {
	l.finish(p, Result{Reason: err.Error(), Err: err, Time: p.start})
}

// finish closes p's socket and queues its result, timed on the loop's
// clock reading (in a VM without a usable TSC every reading of the
// clock is a syscall).
func (l *netLoop) finish(p *probe, r Result) {
	r.Duration = l.now.Sub(p.start)
	if p.fd >= 0 {
		if l.closing != nil {
			l.closing(p.fd)
		}
		closeNow(p.fd)
		l.probes[p.fd] = nil
		p.fd = -1
	}
	if p.index >= 0 {
		heap.Remove(&l.timers, p.index)
	}
	p.phase = phaseIdle
	l.results = append(l.results, loopResult{e: p.e, r: r})
}

// probeAt is the check in flight on socket fd, if any.
func (l *netLoop) probeAt(fd int) *probe {
	if fd < 0 || fd >= len(l.probes) {
		return nil
	}
	return l.probes[fd]
}

// setProbe records p as the check in flight on socket fd.
func (l *netLoop) setProbe(fd int, p *probe) {
	if fd >= len(l.probes) {
		n := max(fd+1, 2*len(l.probes), 64)
		l.probes = slices.Grow(l.probes, n-len(l.probes))[:n]
	}
	l.probes[fd] = p
}

// probeHeap orders checks in flight by deadline.
type probeHeap []*probe

func (h probeHeap) Len() int           { return len(h) }
func (h probeHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h probeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *probeHeap) Push(x any) {
	p := x.(*probe)
	p.index = len(*h)
	*h = append(*h, p)
}
func (h *probeHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	p.index = -1
	*h = old[:len(old)-1]
	return p
}
