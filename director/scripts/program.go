package scripts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// WaitDelay is how long a run waits, after the program exits or is
// killed, for output pipes that an escaped descendant still holds.
const WaitDelay = 500 * time.Millisecond

// Program is a command as lvsd runs it.
type Program struct {
	// Path is the executable. Load resolves and verifies it (an absolute
	// path); a name without a slash (a config loaded without checks) is
	// looked up in SafePath when the program starts.
	Path string
	// Args are the arguments, Args[0] the program as written.
	Args []string
	// Env is added to the environment, which otherwise holds only
	// PATH=SafePath ("KEY=value").
	Env []string
	// Dir is the working directory; empty means /.
	Dir string
	// User is whom it runs as; nil means lvsd's own user.
	User *Credential
}

// Command returns the program ready to start: in a process group of its
// own, which the context's end kills as a whole; with a clean
// environment; as its user with that user's groups; with no file
// descriptors beyond stdin, stdout and stderr (exec.Cmd opens every
// other one close-on-exec); stdin is /dev/null.
func (p Program) Command(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.Path)
	if !strings.Contains(p.Path, "/") {
		if full, err := lookSafePath(p.Path); err != nil {
			cmd.Err = err
		} else {
			cmd.Path = full
		}
	}
	cmd.Args = slices.Clone(p.Args)
	if len(cmd.Args) == 0 {
		cmd.Args = []string{p.Path}
	}
	cmd.Env = append([]string{"PATH=" + SafePath}, p.Env...)
	cmd.Dir = p.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	cmd.WaitDelay = WaitDelay
	setProcessAttributes(cmd, p.User)
	return cmd
}

// Run runs the program until it exits or ctx ends (its whole process
// group is then killed), and kills what it left behind in its group.
// The error names the program and carries the start of its output.
func (p Program) Run(ctx context.Context) error {
	cmd := p.Command(ctx)
	var out bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &out, n: 4096}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.Path, err)
	}
	err := cmd.Wait()
	KillGroup(cmd.Process.Pid)
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (killed: %w)", err, ctx.Err())
		}
		return fmt.Errorf("running %s: %w: %s", p.Path, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// String is the command as written.
func (p Program) String() string { return fmt.Sprintf("%q", p.Args) }

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	if k := min(len(b), l.n); k > 0 {
		l.w.Write(b[:k])
		l.n -= k
	}
	return len(b), nil
}

// lookSafePath finds name in SafePath, as exec.LookPath would in PATH.
func lookSafePath(name string) (string, error) {
	for _, dir := range filepath.SplitList(SafePath) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}
