//go:build linux

package ipvs

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ServiceTable reads /proc/net/ip_vs of the client's namespace.
func (c *linuxClient) ServiceTable() (ServiceTable, error) {
	f, path, err := openProcNet(c.netns, "ip_vs")
	if err != nil {
		return ServiceTable{}, err
	}
	defer f.Close()
	// Large reads: each read(2) of the file makes the kernel walk its
	// service table from the start to the offset.
	return parseServiceTable(bufio.NewReaderSize(f, 1<<20), path)
}

// openProcNet opens /proc/thread-self/net/NAME in the network namespace
// at netns (the calling thread's when empty). The kernel binds a
// /proc/net file to the namespace of the thread that opens it, so the
// file is opened on a thread switched into the namespace, which is then
// switched back; reading it later, from any thread, reads that
// namespace.
func openProcNet(netns, name string) (*os.File, string, error) {
	path := "/proc/thread-self/net/" + name
	open := func() (*os.File, error) {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrIPVSUnavailable, err)
		}
		if err != nil {
			return nil, fmt.Errorf("reading IPVS state: %w", err)
		}
		return f, nil
	}
	if netns == "" {
		f, err := open()
		return f, path, err
	}
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	// A goroutine of its own: if the thread cannot be switched back it
	// stays locked and exits with the goroutine, and no other goroutine
	// ever runs in the wrong namespace.
	go func() {
		f, err := inNetNS(netns, open)
		done <- result{f, err}
	}()
	r := <-done
	if r.err != nil && r.f != nil {
		r.f.Close()
		r.f = nil
	}
	return r.f, netns + ":" + path, r.err
}

// inNetNS runs fn on this goroutine's thread switched into the network
// namespace at path, then switches the thread back; when that fails the
// thread stays locked, so the runtime retires it with the goroutine.
func inNetNS[T any](path string, fn func() (T, error)) (T, error) {
	var zero T
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return zero, fmt.Errorf("opening this thread's network namespace: %w", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return zero, fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return zero, fmt.Errorf("entering network namespace %s: %w", path, err)
	}
	v, ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return v, errors.Join(ferr, fmt.Errorf("leaving network namespace %s: %w", path, err))
	}
	runtime.UnlockOSThread()
	return v, ferr
}
