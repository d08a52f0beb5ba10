//go:build linux

package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// procSys is the Linux part of a Process. Each process leads its own
// process group, so that stopping it also stops what it forked (nginx
// workers, a shell's children).
type procSys struct {
	cmd *exec.Cmd
	pid int

	mu sync.Mutex
	// reaped is set just before the process is reaped: from then on its
	// PID, which is also the group's ID, may be reused, and it must not
	// be signalled any more.
	reaped bool
	// stopSignal is the last signal Stop sent, 0 if none.
	stopSignal syscall.Signal
}

func (h *Host) run(ctx context.Context, name string, args ...string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("running %s on %s: %w", commandLine(name, args), h.Name, err)
	}
	stdout := newOutputBuffer()
	p, err := h.newProcess(ctx, stdout, name, args...)
	if err != nil {
		return "", err
	}
	<-p.done
	if p.err != nil {
		if ctx.Err() != nil {
			return stdout.String(), fmt.Errorf("running %s on %s: %w (%v); output:\n%s", p, h.Name, ctx.Err(), p.err, p.Output())
		}
		return stdout.String(), fmt.Errorf("running %s on %s: %w; output:\n%s", p, h.Name, p.err, p.Output())
	}
	return stdout.String(), nil
}

// start runs a background process owned by the lab: teardown stops it.
func (h *Host) start(ctx context.Context, stdout io.Writer, name string, args ...string) (*Process, error) {
	l := h.lab
	p, err := h.newProcess(ctx, stdout, name, args...)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// newProcess starts `ip netns exec NS name args...`; ip execs the command
// in place, so the process is the command itself. It is stopped when
// ctx is done. Pdeathsig ends it if the test process dies without
// cleaning up.
func (h *Host) newProcess(ctx context.Context, stdout io.Writer, name string, args ...string) (*Process, error) {
	p := &Process{
		host: h,
		args: append([]string{name}, args...),
		out:  newOutputBuffer(),
		done: make(chan struct{}),
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.netns, name}, args...)...)
	cmd.Stdout = p.out
	if stdout != nil {
		cmd.Stdout = io.MultiWriter(p.out, stdout)
	}
	cmd.Stderr = p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// If something outside the process group still holds the output
	// pipes after the process exits, stop reading them after a while.
	cmd.WaitDelay = stopGrace
	if err := startOnSpawnerThread(cmd); err != nil {
		return nil, fmt.Errorf("starting %s on %s: %w", p, h.Name, err)
	}
	p.sys.cmd = cmd
	p.sys.pid = cmd.Process.Pid
	go p.wait()
	go func() {
		select {
		case <-ctx.Done():
			p.stop()
		case <-p.done:
		}
	}()
	return p, nil
}

// The parent-death signal fires when the thread that forked the child
// ends, not the process. Go ends threads whose goroutine exits while
// locked to them (as the namespace-creating goroutines do), and any
// thread may have forked a child before. So every child is forked from
// one thread that lives as long as the process: the spawner goroutine
// is locked to it and never returns.
var spawner struct {
	once sync.Once
	reqs chan spawnRequest
}

type spawnRequest struct {
	cmd  *exec.Cmd
	errc chan error
}

func startOnSpawnerThread(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // never unlocked
			for req := range spawner.reqs {
				req.errc <- req.cmd.Start()
			}
		}()
	})
	errc := make(chan error, 1)
	spawner.reqs <- spawnRequest{cmd: cmd, errc: errc}
	return <-errc
}

func (p *Process) pid() int { return p.sys.pid }

// wait waits for the process to exit without reaping it, kills what is
// left of its process group while the group ID cannot yet be reused,
// then reaps it.
func (p *Process) wait() {
	var info unix.Siginfo
	var err error
	for {
		err = unix.Waitid(unix.P_PID, p.sys.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	p.sys.mu.Lock()
	if err == nil {
		_ = unix.Kill(-p.sys.pid, unix.SIGKILL) // ESRCH: the group is empty
	}
	p.sys.reaped = true
	p.sys.mu.Unlock()
	p.err = p.sys.cmd.Wait()
	close(p.done)
}

// signal sends sig to the process group unless the process is already
// being reaped.
func (p *Process) signal(sig syscall.Signal) {
	p.sys.mu.Lock()
	defer p.sys.mu.Unlock()
	if p.sys.reaped {
		return
	}
	p.sys.stopSignal = sig
	_ = unix.Kill(-p.sys.pid, sig)
}

func (p *Process) stop() error {
	select {
	case <-p.done:
	default:
		p.signal(unix.SIGTERM)
		timer := time.NewTimer(stopGrace)
		select {
		case <-p.done:
		case <-timer.C:
			p.signal(unix.SIGKILL)
			<-p.done
		}
		timer.Stop()
	}
	return p.stopError()
}

// stopError is the process's exit error, except that dying of the
// signal Stop sent is a clean stop.
func (p *Process) stopError() error {
	var exitErr *exec.ExitError
	if p.err == nil || !errors.As(p.err, &exitErr) {
		return p.err
	}
	p.sys.mu.Lock()
	sent := p.sys.stopSignal
	p.sys.mu.Unlock()
	if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && sent != 0 && ws.Signaled() {
		if sig := ws.Signal(); sig == unix.SIGTERM || sig == unix.SIGKILL {
			return nil
		}
	}
	return p.err
}
