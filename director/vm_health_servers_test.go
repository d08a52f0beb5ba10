//go:build vmtest && linux

package director_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lvskit/lvskit/internal/lab"
)

// hcServers are the health-check benchmark's real servers: listeners on
// many ports of one address, served by one epoll loop on one locked OS
// thread over non-blocking sockets, with no goroutine per connection and
// no net/http. A connection costs the server accept4, epoll_ctl, a read
// and close (and, for an HTTP request, one write of a fixed response),
// so that the checks a checker is served per second measure the
// checker, not the server. (The first version of this benchmark served
// with a goroutine per connection in Go's net package; that process
// saturated the emulated guest at 72-108% of a vCPU and the checkers'
// rates measured how it split its time.)
//
// It counts, for everything it serves, accepted connections and
// complete HTTP responses written.
type hcServers struct {
	first     int // port of the first listener
	accepts   atomic.Int64
	responses atomic.Int64
}

// hcResponse is what every HTTP request gets before the server closes.
const hcResponse = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"

// hcServerLoop is one epoll loop serving the listeners of one or more
// blocks of real servers.
type hcServerLoop struct {
	epfd, stopfd int
	cpu          int // the CPU its thread is pinned to, or -1

	mu        sync.Mutex   // guards blocks and listeners between listen and the loop
	blocks    []*hcServers // the epoll data of a socket names its block: -(i+1) a listener, i+1 a connection
	listeners []int

	partial map[int][]byte // the loop's: requests read in part, by socket
}

// startHCServerLoop starts the servers' loop; with cpu >= 0 its thread
// is pinned to that CPU. The loop ends, and every socket it holds is
// closed, when the benchmark ends.
func startHCServerLoop(b *testing.B, cpu int) *hcServerLoop {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		b.Fatalf("benchmark servers: epoll_create1: %v", err)
	}
	stopfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		b.Fatalf("benchmark servers: eventfd: %v", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, stopfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(stopfd)}); err != nil {
		b.Fatalf("benchmark servers: epoll_ctl: %v", err)
	}
	l := &hcServerLoop{epfd: epfd, stopfd: stopfd, partial: map[int][]byte{}, cpu: cpu}
	ready := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.run(ready)
	}()
	if err := <-ready; err != nil {
		wg.Wait()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		var one = [8]byte{1}
		_, _ = unix.Write(stopfd, one[:])
		wg.Wait()
	})
	return l
}

// listen opens n listeners on h's addr, ports first to first+n-1, and
// serves them on the loop.
func (l *hcServerLoop) listen(b *testing.B, h *lab.Host, addr [4]byte, n, first int) *hcServers {
	s := &hcServers{first: first}
	fds := make([]int, 0, n)
	err := h.Do(func() error {
		for i := range n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("socket: %w", err)
			}
			fds = append(fds, fd)
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				return fmt.Errorf("setsockopt SO_REUSEADDR: %w", err)
			}
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: addr, Port: first + i}); err != nil {
				return fmt.Errorf("bind port %d: %w", first+i, err)
			}
			if err := unix.Listen(fd, 512); err != nil {
				return fmt.Errorf("listen on port %d: %w", first+i, err)
			}
		}
		return nil
	})
	l.mu.Lock()
	l.blocks = append(l.blocks, s)
	block := int32(len(l.blocks))
	l.listeners = append(l.listeners, fds...) // closed by the loop at its end
	l.mu.Unlock()
	if err == nil {
		for _, fd := range fds {
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd), Pad: -block}
			if err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
				err = fmt.Errorf("epoll_ctl: %w", err)
				break
			}
		}
	}
	if err != nil {
		b.Fatalf("benchmark servers: listening on %d ports from %d in %s: %v", n, first, h.Name, err)
	}
	return s
}

// block is the block of real servers that a socket's epoll data names.
func (l *hcServerLoop) block(data int32) *hcServers {
	if data < 0 {
		data = -data
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.blocks[data-1]
}

func (l *hcServerLoop) run(ready chan<- error) {
	runtime.LockOSThread() // the pinning below is the thread's
	if l.cpu >= 0 {
		var set unix.CPUSet
		set.Set(l.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			ready <- fmt.Errorf("benchmark servers: pinning the server thread to CPU %d: %w", l.cpu, err)
			return
		}
	}
	ready <- nil
	defer func() {
		l.mu.Lock()
		for _, fd := range l.listeners {
			unix.Close(fd)
		}
		l.mu.Unlock()
		for fd := range l.partial {
			unix.Close(fd)
		}
		unix.Close(l.stopfd)
		unix.Close(l.epfd)
	}()
	events := make([]unix.EpollEvent, 512)
	buf := make([]byte, 4096)
	// conns are the connections open, so that they are closed at the
	// end: the value is unused.
	conns := map[int]struct{}{}
	defer func() {
		for fd := range conns {
			unix.Close(fd)
		}
	}()
	for {
		n, err := unix.EpollWait(l.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			switch {
			case fd == l.stopfd:
				return
			case ev.Pad < 0:
				s := l.block(ev.Pad)
				for {
					c, _, err := unix.Accept4(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
					if err != nil {
						break // EAGAIN, or a connection reset before accept
					}
					s.accepts.Add(1)
					ce := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c), Pad: -ev.Pad}
					if unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c, &ce) != nil {
						unix.Close(c)
						continue
					}
					conns[c] = struct{}{}
				}
			default:
				m, err := unix.Read(fd, buf)
				if err == unix.EAGAIN || err == unix.EINTR {
					continue
				}
				if err != nil || m == 0 {
					// A TCP check's close, a reset, or a checker that
					// gave up.
					l.closeConn(fd, conns)
					continue
				}
				req := buf[:m]
				if p, ok := l.partial[fd]; ok {
					req = append(p, req...)
				}
				if !bytes.Contains(req, []byte("\r\n\r\n")) {
					if len(req) > 64<<10 {
						l.closeConn(fd, conns)
						continue
					}
					l.partial[fd] = append([]byte(nil), req...)
					continue
				}
				if w, err := unix.Write(fd, []byte(hcResponse)); err == nil && w == len(hcResponse) {
					l.block(ev.Pad).responses.Add(1)
				}
				l.closeConn(fd, conns)
			}
		}
	}
}

func (l *hcServerLoop) closeConn(fd int, conns map[int]struct{}) {
	delete(l.partial, fd)
	delete(conns, fd)
	unix.Close(fd) // also leaves the epoll set
}

// served is the count that a check of kind makes grow by one.
func (s *hcServers) served(kind string) int64 {
	if kind == "http" {
		return s.responses.Load()
	}
	return s.accepts.Load()
}
