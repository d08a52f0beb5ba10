//go:build linux

package health

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The event loop's system calls on its TCP sockets, made without the Go
// runtime's syscall bookkeeping (entersyscall and exitsyscall, a third
// of the loop's own CPU outside the kernel in a profile of 1,000 HTTP
// checks). Each of them returns at once: the sockets are non-blocking,
// and a socket closed with SO_LINGER at zero resets its connection
// rather than waiting for it to drain. Nothing that may block (epoll_wait,
// the batch pause) goes through here.

// sockaddr is a check's address as x/sys takes it and as connect(2)
// takes it.
type sockaddr struct {
	sa  unix.Sockaddr
	raw unix.RawSockaddrInet6 // a sockaddr_in for IPv4 (the larger type holds either)
	len uint32
}

func newSockaddr(sa unix.Sockaddr) *sockaddr {
	s := &sockaddr{sa: sa}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		r := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.raw))
		r.Family = unix.AF_INET
		port := (*[2]byte)(unsafe.Pointer(&r.Port))
		port[0], port[1] = byte(sa.Port>>8), byte(sa.Port)
		r.Addr = sa.Addr
		s.len = unix.SizeofSockaddrInet4
	case *unix.SockaddrInet6:
		s.raw.Family = unix.AF_INET6
		port := (*[2]byte)(unsafe.Pointer(&s.raw.Port))
		port[0], port[1] = byte(sa.Port>>8), byte(sa.Port)
		s.raw.Addr = sa.Addr
		s.raw.Scope_id = sa.ZoneId
		s.len = unix.SizeofSockaddrInet6
	}
	return s
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// connectNow starts a non-blocking connect of fd to sa: unix.EINPROGRESS
// while the handshake goes on.
func connectNow(fd int, sa *sockaddr) error {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa.raw)), uintptr(sa.len))
	return errnoErr(e)
}

// setAbortiveClose makes close reset fd's connection (SO_LINGER on, at
// zero seconds).
func setAbortiveClose(fd int) error {
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER,
		uintptr(unsafe.Pointer(&abortiveClose)), unsafe.Sizeof(abortiveClose), 0)
	return errnoErr(e)
}

// epollAdd registers fd with the epoll instance epfd.
func epollAdd(epfd, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), unix.EPOLL_CTL_ADD, uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

// sendNow sends what of b the socket fd takes at once (one sendto, no
// SIGPIPE): b must not be empty.
func sendNow(fd int, b []byte) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// readNow reads what the non-blocking socket fd holds into b (not
// empty): unix.EAGAIN when it holds nothing.
func readNow(fd int, b []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// closeNow closes one of the loop's sockets (non-blocking, or set to
// reset its connection at close).
func closeNow(fd int) {
	_, _, _ = unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}
