//go:build linux

package health

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// netLoop runs checks over non-blocking sockets on one goroutine. A
// check costs socket, connect, epoll_ctl and close (a TCP check), plus
// one sendmsg and usually one read (an HTTP check); epoll_wait, the
// clock reading and the deadline heap are shared by all checks in
// flight.
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
	deliver    func([]loopResult, time.Time)
	done       chan struct{} // closed when the loop's goroutine has ended

	mu        sync.Mutex
	submitted []*probe
	canceled  []*probe
	stopping  bool
	stopped   bool // the goroutine ended: submit refuses
	sleeping  atomic.Bool
	poked     atomic.Bool // wake was called while the loop was awake
	tick      atomic.Pointer[func(time.Time) (time.Time, bool)]

	// The rest belongs to the loop's goroutine.
	probes map[int]*probe // in flight, by socket
	// Sockets of passed HTTP checks waiting for the server's FIN
	// before they are closed, so that TIME_WAIT stays on the server's
	// side as with keepalived (which reads to the end of the
	// connection): by socket, and in the order they were added.
	draining map[int]time.Time
	drainQ   []drainingSocket
	timers   probeHeap
	results  []loopResult
	buf      []byte
	now      time.Time       // when epoll_wait last returned: the time of what the loop does
	events   uint32          // the events of the socket being stepped
	sum      [md5.Size]byte  // judge's digest, kept off the heap
	echo     []byte          // a ping's echo request, reused
	pingRaw  [2]bool         // IPv4, IPv6: ICMP sockets are refused, ping on raw ones
	ev       unix.EpollEvent // epoll_ctl's argument, kept off the heap
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

// probePhase is how far a check has come.
type probePhase uint8

const (
	phaseIdle probePhase = iota
	phaseConnect
	phaseSend
	phaseHead
	phaseBody
	phaseReply // a datagram check waits for its reply
	phaseSMTP  // an SMTP check sends and reads its replies
)

// probe is one check on the event loop. A target's probe is reused by
// its next check.
type probe struct {
	t        *loopTarget
	e        *entry
	fd       int
	phase    probePhase
	start    time.Time
	deadline time.Time
	index    int // in the deadline heap; -1 when not in it

	sent        int    // bytes of the request sent
	line        []byte // a head line read in part
	lines       int    // head lines read
	headBytes   int
	code        int
	length      int64     // Content-Length; -1 when absent
	want, taken int64     // body bytes to read, read
	sum         hash.Hash // the body's MD5 when the check has a digest; reused

	out      []byte // what to send (HTTP's request, SMTP's commands)
	smtpStep int    // the reply an SMTP check waits for
	seq      uint16 // a ping's echo sequence number
	rawPing  bool   // the ping went out on a raw socket
}

func (p *probe) reset(t *loopTarget, e *entry) {
	line, sum := p.line[:0], p.sum
	*p = probe{t: t, e: e, fd: -1, index: -1, line: line, length: -1, sum: sum}
	if t.ping != nil {
		p.seq = uint16(t.ping.seq.Add(1))
	}
}

func loopSockaddr(ap netip.AddrPort) (any, bool) {
	a := ap.Addr()
	switch {
	case a.Zone() != "":
		return nil, false
	case a.Is4() || a.Is4In6():
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}, true
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}, true
}

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
	l := &netLoop{
		epfd: epfd, evfd: evfd, deliver: opts.Deliver, done: make(chan struct{}),
		probes: map[int]*probe{}, draining: map[int]time.Time{}, buf: make([]byte, 32<<10),
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
	l.wake()
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
	defer func() {
		for fd := range l.probes {
			unix.Close(fd)
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
	}()
	if netns != "" {
		if err := enterNetNS(netns); err != nil {
			ready <- err
			return
		}
	}
	ready <- nil
	events := make([]unix.EpollEvent, 256)
	var batch, cancels []*probe
	var woken bool // the last epoll_wait returned sockets' events
	l.now = time.Now()
	yielded := l.now
	for {
		now := l.now
		if now.Sub(yielded) >= yieldEvery {
			// The loop blocks in raw syscalls, never in the
			// scheduler, so Go's sysmon would take it for a goroutine
			// that hogs its P and interrupt it with a signal every
			// 10ms (a costly one in an emulated VM). Yielding now and
			// then tells the scheduler it is not stuck.
			runtime.Gosched()
			yielded = now
		}
		l.expire(now)
		l.flush()
		var wakeAt time.Time
		if tick := l.tick.Load(); tick != nil {
			// The scheduler submits the due checks: begun below, in
			// this round.
			if due, ok := (*tick)(now); ok {
				wakeAt = due
			}
		}
		l.mu.Lock()
		batch, l.submitted = l.submitted, batch[:0]
		cancels, l.canceled = l.canceled, cancels[:0]
		stopping := l.stopping
		l.mu.Unlock()
		if stopping {
			return
		}
		for i, p := range batch {
			l.begin(p, now)
			batch[i] = nil
		}
		for i, p := range cancels {
			if p.phase != phaseIdle && p.e != nil {
				l.failCheck(p, newError(ErrCanceled, context.Canceled, "canceled while %s %s", progressive(p.op()), p.t.target))
			}
			cancels[i] = nil
		}
		l.flush()

		if len(l.timers) > 0 && (wakeAt.IsZero() || l.timers[0].deadline.Before(wakeAt)) {
			wakeAt = l.timers[0].deadline
		}
		if len(l.drainQ) > 0 && (wakeAt.IsZero() || l.drainQ[0].until.Before(wakeAt)) {
			wakeAt = l.drainQ[0].until
		}
		wait := time.Duration(-1)
		if !wakeAt.IsZero() {
			wait = max(wakeAt.Sub(now), 0)
		}
		l.sleeping.Store(true)
		if l.poked.Swap(false) {
			wait = 0
		} else {
			l.mu.Lock()
			if len(l.submitted) > 0 || len(l.canceled) > 0 || l.stopping {
				wait = 0
			}
			l.mu.Unlock()
		}
		if woken && wait != 0 {
			// Let the events of more checks gather (wake still
			// interrupts the epoll_wait that follows at once).
			pause := batchWindow
			if wait > 0 {
				pause = min(pause, wait)
				wait -= pause
			}
			ts := unix.NsecToTimespec(int64(pause))
			_ = unix.Nanosleep(&ts, nil)
		}
		timeout := -1
		if wait >= 0 {
			timeout = int((wait + time.Millisecond - 1) / time.Millisecond)
		}
		n, err := unix.EpollWait(l.epfd, events, timeout)
		l.sleeping.Store(false)
		if err != nil && !errors.Is(err, unix.EINTR) {
			// Only a broken epoll descriptor gets here: fail what is in
			// flight and let the scheduler run checks on goroutines.
			for _, p := range l.probes {
				l.failCheck(p, fmt.Errorf("health check event loop: epoll_wait: %w", err))
			}
			l.flush()
			return
		}
		l.now = time.Now()
		woken = false
		for _, ev := range events[:max(n, 0)] {
			fd := int(ev.Fd)
			if fd == l.evfd {
				var b [8]byte
				_, _ = unix.Read(l.evfd, b[:])
				continue
			}
			woken = true
			if p := l.probes[fd]; p != nil {
				l.step(p, ev.Events)
			} else if _, ok := l.draining[fd]; ok {
				// The server's FIN (or more than it announced): done.
				delete(l.draining, fd)
				unix.Close(fd)
			}
		}
	}
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

// begin opens p's connection (or sends its datagram).
func (l *netLoop) begin(p *probe, now time.Time) {
	p.start, p.deadline, p.phase = now, now.Add(p.t.timeout), phaseConnect
	switch p.t.kind {
	case kindUDP:
		l.beginUDP(p)
		return
	case kindPing:
		l.beginPing(p)
		return
	}
	fd, err := unix.Socket(p.t.family(), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.failCheck(p, p.fail(os.NewSyscallError("socket", err)))
		return
	}
	// As keepalived's checkers do: close ends the connection with a
	// reset, not a FIN. A TCP check's connection, which the checker
	// closes first, then leaves no TIME_WAIT socket on the director
	// (at 1,000 checks a second, 60,000 of them that connect's choice
	// of a local port must step around) and costs four packets instead
	// of seven; an HTTP check's, closed after the server's FIN, skips
	// the last FIN and ACK.
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &abortiveClose); err != nil {
		unix.Close(fd)
		l.failCheck(p, p.fail(os.NewSyscallError("setsockopt SO_LINGER", err)))
		return
	}
	err = unix.Connect(fd, p.t.sockaddr.(unix.Sockaddr))
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		l.failCheck(p, p.fail(err))
		return
	}
	// Edge-triggered: the connect's completion, then the response,
	// each wake the loop once; EPOLLRDHUP says when the server's FIN
	// came with the response.
	l.watch(p, fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET)
}

// abortiveClose is SO_LINGER on with a zero timeout: close resets the
// connection.
var abortiveClose = unix.Linger{Onoff: 1, Linger: 0}

// watch makes fd p's socket, waited on for events, until p's deadline.
func (l *netLoop) watch(p *probe, fd int, events uint32) {
	l.ev = unix.EpollEvent{Events: events, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &l.ev); err != nil {
		unix.Close(fd)
		l.failCheck(p, p.fail(os.NewSyscallError("epoll_ctl", err)))
		return
	}
	p.fd = fd
	l.probes[fd] = p
	heap.Push(&l.timers, p)
}

// family is the address family of t's address.
func (t *loopTarget) family() int {
	if _, ok := t.sockaddr.(*unix.SockaddrInet6); ok {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// step moves p on after events on its socket.
func (l *netLoop) step(p *probe, events uint32) {
	l.events = events
	switch p.t.kind {
	case kindUDP:
		l.stepUDP(p, events)
		return
	case kindPing:
		l.stepPing(p, events)
		return
	}
	if p.phase == phaseConnect {
		// A refused or unreachable connect reports EPOLLERR (and
		// EPOLLHUP); its errno is the socket's pending error. Only
		// then is SO_ERROR read.
		if events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			errno, err := unix.GetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err == nil && errno != 0 {
				err = unix.Errno(errno)
			}
			if err != nil {
				l.failCheck(p, p.fail(err))
				return
			}
		}
		if events&(unix.EPOLLOUT|unix.EPOLLIN) == 0 {
			return
		}
		if p.t.kind == kindSMTP {
			p.phase = phaseSMTP
			l.stepSMTP(p, events)
			return
		}
		if p.t.http == nil {
			l.finish(p, Result{Up: true, Reason: p.t.connected, Time: p.start})
			return
		}
		p.phase, p.out = phaseSend, p.t.http.request
	}
	if p.phase == phaseSMTP {
		l.stepSMTP(p, events)
		return
	}
	if p.phase == phaseSend {
		if !l.send(p) {
			return
		}
		p.phase = phaseHead
		if events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
			// The response cannot be there yet: its arrival is the
			// next edge. (A read now would only say EAGAIN.)
			return
		}
	}
	l.receive(p)
}

// send writes what is left of p.out; true when all of it is sent.
func (l *netLoop) send(p *probe) bool {
	req := p.out
	for p.sent < len(req) {
		n, err := unix.SendmsgN(p.fd, req[p.sent:], nil, nil, unix.MSG_NOSIGNAL)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err != nil:
			l.failCheck(p, p.fail(err))
			return false
		}
		p.sent += n
	}
	return true
}

// receive reads what the socket holds, until it would block or the
// check is judged.
func (l *netLoop) receive(p *probe) {
	for p.fd >= 0 {
		n, err := unix.Read(p.fd, l.buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return
		case err != nil:
			l.failCheck(p, p.fail(err))
			return
		case n == 0:
			if p.phase == phaseBody {
				l.judge(p, true)
			} else {
				l.failCheck(p, p.fail(io.EOF))
			}
			return
		}
		l.consume(p, l.buf[:n])
	}
}

// consume parses data, the next bytes of the response, as the blocking
// checker's bufio.Reader of headerLineBytes would.
func (l *netLoop) consume(p *probe, data []byte) {
	c := p.t.http
	for p.phase == phaseHead && len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(p.line)+len(data) >= headerLineBytes {
				l.failCheck(p, newError(ErrBadResponse, nil, "malformed response from %s: header line longer than %d bytes", p.t.target, headerLineBytes))
				return
			}
			p.line = append(p.line, data...)
			return
		}
		if len(p.line)+i+1 > headerLineBytes {
			l.failCheck(p, newError(ErrBadResponse, nil, "malformed response from %s: header line longer than %d bytes", p.t.target, headerLineBytes))
			return
		}
		line := data[:i+1]
		if len(p.line) > 0 {
			p.line = append(p.line, line...)
			line = p.line
		}
		data = data[i+1:]
		p.headBytes += len(line)
		if p.headBytes > maxHeaderBytes {
			l.failCheck(p, newError(ErrBadResponse, nil, "malformed response from %s: headers longer than %d bytes", p.t.target, maxHeaderBytes))
			return
		}
		done, err := c.headLine(p.lines, line, &p.code, &p.length)
		p.lines++
		p.line = p.line[:0]
		switch {
		case err != nil:
			l.failCheck(p, err)
			return
		case !done:
			continue
		case !c.statusOK(p.code):
			l.failCheck(p, newError(ErrUnexpectedStatus, nil, "HTTP %d from %s", p.code, p.t.target))
			return
		}
		if p.want, err = c.bodyWant(p.length); err != nil {
			l.failCheck(p, err)
			return
		}
		if c.digest != nil {
			if p.sum == nil {
				p.sum = md5.New()
			}
			p.sum.Reset()
		}
		p.phase = phaseBody
	}
	if p.phase != phaseBody {
		return
	}
	take := min(int64(len(data)), p.want-p.taken)
	if c.digest != nil {
		p.sum.Write(data[:take])
	}
	p.taken += take
	if p.taken >= p.want {
		l.judge(p, false)
	}
}

// judge ends an HTTP check whose body has been read, up to the end of
// the connection when eof is true.
func (l *netLoop) judge(p *probe, eof bool) {
	var got []byte
	if p.t.http.digest != nil {
		got = p.sum.Sum(l.sum[:0])
	}
	msg, err := p.t.http.judgeBody(p.code, p.length, p.taken, got)
	if err != nil {
		l.failCheck(p, err)
		return
	}
	r := Result{Up: true, Reason: msg, Time: p.start}
	if !eof && p.taken == p.length && p.fd >= 0 && l.events&unix.EPOLLRDHUP == 0 {
		// The whole body came by its Content-Length; the server's FIN
		// is on its way (had it come with the body, EPOLLRDHUP would
		// say so, and the socket is closed at once).
		fd := p.fd
		delete(l.probes, fd)
		p.fd = -1
		until := l.now.Add(drainFor)
		l.draining[fd] = until
		l.drainQ = append(l.drainQ, drainingSocket{fd, until})
	}
	l.finish(p, r)
}

// drainFor is how long a passed HTTP check's socket waits for the
// server's FIN before it is closed anyway.
const drainFor = 250 * time.Millisecond

type drainingSocket struct {
	fd    int
	until time.Time
}

// sweep closes the sockets that waited drainFor for a FIN in vain.
func (l *netLoop) sweep(now time.Time) {
	n := 0
	for _, d := range l.drainQ {
		if d.until.After(now) {
			break
		}
		n++
		if until, ok := l.draining[d.fd]; ok && until.Equal(d.until) {
			delete(l.draining, d.fd)
			unix.Close(d.fd)
		}
	}
	if n > 0 {
		l.drainQ = append(l.drainQ[:0], l.drainQ[n:]...)
	}
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
		unix.Close(p.fd)
		delete(l.probes, p.fd)
		p.fd = -1
	}
	if p.index >= 0 {
		heap.Remove(&l.timers, p.index)
	}
	p.phase = phaseIdle
	l.results = append(l.results, loopResult{e: p.e, r: r})
}

// op names the step p is in, as the blocking checkers name it in
// messages.
func (p *probe) op() string {
	switch {
	case p.phase == phaseSend:
		return "sending request to"
	case p.phase == phaseHead && p.lines == 0:
		return "reading status line from"
	case p.phase == phaseHead:
		return "reading headers from"
	case p.phase == phaseBody:
		return "reading body from"
	case p.phase == phaseSMTP && p.sent < len(p.out):
		return "sending " + strings.Fields(string(p.out))[0] + " to"
	case p.phase == phaseSMTP:
		return smtpOp(p.smtpStep)
	case p.phase == phaseReply && p.t.kind == kindPing:
		return "waiting for an echo reply from"
	case p.phase == phaseReply:
		return "waiting for a reply from"
	case p.t.kind == kindPing:
		return "ping"
	case p.t.kind == kindUDP:
		return "sending to"
	}
	return "connect"
}

// fail describes err, from p's current step, as the blocking checkers
// do: "connect 10.0.0.2:80: connection refused".
func (p *probe) fail(err error) error {
	return newError(nil, err, "%s %s: %s", p.op(), p.t.target, rootCause(err))
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
