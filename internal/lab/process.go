package lab

// A process started in a host's namespace: its output, its end, stopping it.

import (
	"context"
	"fmt"
	"strings"
)

// Process is a background command started by Host.Start.
type Process struct {
	host *Host
	args []string
	out  *outputBuffer
	done chan struct{}
	err  error // set before done is closed
	sys  procSys
}

// String returns the command line.
func (p *Process) String() string { return strings.Join(p.args, " ") }

// Pid is the process's ID; it also leads its own process group.
func (p *Process) Pid() int { return p.pid() }

// Output returns what the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Done is closed when the process has exited and been waited for.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how the process ended (nil while it runs).
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// WaitForOutput blocks until the process's output has a line containing
// substr and returns the line. It fails when ctx is done or the process
// exits first.
func (p *Process) WaitForOutput(ctx context.Context, substr string) (string, error) {
	line, ok := p.out.waitFor(ctx, substr, p.done)
	if ok {
		return line, nil
	}
	select {
	case <-p.done:
		return "", fmt.Errorf("waiting for %q from %s on %s: process exited (%v); output:\n%s", substr, p, p.host.Name, p.err, p.Output())
	default:
		return "", fmt.Errorf("waiting for %q from %s on %s: %w", substr, p, p.host.Name, ctx.Err())
	}
}

// Stop sends SIGTERM to the process group, SIGKILL after 5s, and waits
// for the process. It returns nil when the process exited on its own
// with status 0 or was ended by Stop's signal.
func (p *Process) Stop() error {
	return p.stop()
}

// commandLine joins a command and its arguments for messages.
func commandLine(name string, args []string) string {
	return strings.Join(append([]string{name}, args...), " ")
}
