//go:build vmtest

package director_test

// How the health-check benchmark measures a process: its CPU time, its
// system calls (strace -c over a window) and its output.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuTicks is utime+stime of every thread of pid, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	utime, stime, err := procTicks(pid)
	return utime + stime, err
}

const clockTicks = 100 // USER_HZ on Linux

// userTicks is utime of every thread of pid, in clock ticks: the part
// of cpuTicks spent outside the kernel.
func userTicks(pid int) (int64, error) {
	utime, _, err := procTicks(pid)
	return utime, err
}

// procTicks is utime and stime of every thread of pid, in clock ticks,
// from /proc/PID/stat.
func procTicks(pid int) (utime, stime int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parsing /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	return utime, stime, nil
}

// contextSwitches is the voluntary and involuntary context switches of
// every thread pid has now, from /proc/PID/task/*/status: the kernel's
// own count, which costs the measured process nothing (unlike strace).
// A thread that blocks (epoll_wait, nanosleep, a futex of the Go
// runtime) switches voluntarily.
func contextSwitches(pid int) (voluntary, involuntary int64, err error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue // the thread has ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
			switch {
			case err != nil:
			case name == "voluntary_ctxt_switches":
				voluntary += n
			case name == "nonvoluntary_ctxt_switches":
				involuntary += n
			}
		}
	}
	return voluntary, involuntary, nil
}

// syscallCount counts, with strace -c -f attached to every thread of
// pid, the syscalls over d, and returns them with the busiest syscalls
// and what the servers served while strace was attached. (The kernel's
// own per-thread counting, a hist trigger on raw_syscalls:sys_enter,
// patches kernel text when enabled, which crashes the kernel under
// multi-threaded TCG.)
// The window starts once strace says it has attached to every thread;
// served counts the checks the servers served meanwhile.
func syscallCount(b *testing.B, pid int, d time.Duration, served func() int64) (calls, connects, checks int64, top string) {
	out := filepath.Join(b.TempDir(), "strace.txt")
	cmd := exec.Command("strace", "-c", "-f", "-o", out, "-p", strconv.Itoa(pid))
	stderr := &lineWaiter{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting strace: %v", err)
	}
	// strace says "Process N attached with M threads" once it has
	// attached to all: the window starts then.
	deadline := time.Now().Add(30 * time.Second)
	for stderr.count("attached") == 0 {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			b.Fatalf("strace did not attach to %d within 30s: %s", pid, stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // polling strace's output, with a deadline
	}
	served0 := served()
	timer := time.NewTimer(d)
	<-timer.C
	checks = served() - served0
	_ = cmd.Process.Signal(syscall.SIGINT)
	// strace detaches from every thread before it writes its summary,
	// and a thread in a slow write (keepalived logging "thread timer
	// expired" to the serial console of a starved guest) can keep it
	// waiting: a run on a starved guest sat for 7 minutes with no output
	// in a measurement. Past 30s the window has no count, and the run
	// goes on.
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	stopWithin := time.NewTimer(30 * time.Second)
	defer stopWithin.Stop()
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			b.Fatalf("strace -p %d: %v: %s", pid, err, stderr.String())
		}
	case <-stopWithin.C:
		_ = cmd.Process.Kill()
		<-waited
		return 0, 0, checks, "no syscall count: strace did not detach within 30s of SIGINT"
	}
	text, err := os.ReadFile(out)
	if err != nil {
		b.Fatalf("reading strace's summary: %v (stderr: %s)", err, stderr.String())
	}
	calls = -1
	var names []string
	for _, line := range strings.Split(string(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] == "%" || strings.HasPrefix(f[0], "-") {
			continue
		}
		n, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			continue
		}
		name := f[len(f)-1]
		if name == "connect" {
			connects = n
		}
		if name == "total" {
			calls = n
		} else if len(names) < 10 {
			names = append(names, fmt.Sprintf("%s=%d", name, n))
		}
	}
	if calls < 0 {
		b.Fatalf("strace's summary has no total line:\n%s\nstderr: %s", text, stderr.String())
	}
	return calls, connects, checks, strings.Join(names, " ")
}

// lineWaiter is a concurrency-safe output buffer that can be searched.
type lineWaiter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *lineWaiter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *lineWaiter) count(substr string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Count(w.buf.Bytes(), []byte(substr))
}

func (w *lineWaiter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
