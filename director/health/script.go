package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/lvskit/lvskit/director/scripts"
)

// DefaultMaxOutput is how much of a script's output a Result keeps.
const DefaultMaxOutput = 256

// ScriptCheck passes when a program exits with status 0 (keepalived's
// MISC_CHECK). The program is executed directly from Argv, never through
// a shell, as scripts.Program runs it: in a process group of its own
// (at the timeout the whole group is killed, and so is anything the
// program left behind when it exits), with a clean environment, as
// User.
type ScriptCheck struct {
	// Argv is the program and its arguments.
	Argv []string
	// Path is the executable, resolved and checked when the config was
	// loaded; empty means Argv[0], a path or a name looked up in
	// scripts.SafePath.
	Path string
	// User is whom the program runs as; nil means lvsd's own user.
	User *scripts.Credential
	// Env is added to the environment, which otherwise holds only
	// PATH=scripts.SafePath ("KEY=value").
	Env []string
	// Dir is the working directory; empty means /.
	Dir string
	// MaxOutput caps the bytes of combined stdout and stderr kept for
	// the reason; zero means DefaultMaxOutput. The rest is discarded as
	// it arrives.
	MaxOutput int
	// Timeout bounds the run; zero means DefaultTimeout.
	Timeout time.Duration
}

// NewChecker implements Spec.
func (c ScriptCheck) NewChecker(env Env) (Checker, error) { return NewScriptChecker(c, env) }

// ScriptChecker runs a ScriptCheck.
type ScriptChecker struct {
	spec      ScriptCheck
	env       Env
	name      string
	maxOutput int
	timeout   time.Duration
}

// NewScriptChecker validates spec and returns its checker.
func NewScriptChecker(spec ScriptCheck, env Env) (*ScriptChecker, error) {
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		return nil, errors.New("script check: no program given")
	}
	for _, kv := range spec.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("script check %s: environment entry %q: want KEY=value", spec.Argv[0], kv)
		}
	}
	spec.Argv, spec.Env = slices.Clone(spec.Argv), slices.Clone(spec.Env)
	if spec.Path == "" {
		spec.Path = spec.Argv[0]
	}
	c := &ScriptChecker{
		spec:      spec,
		env:       env.withDefaults(),
		name:      spec.Argv[0],
		maxOutput: spec.MaxOutput,
		timeout:   timeoutOrDefault(spec.Timeout),
	}
	if c.maxOutput <= 0 {
		c.maxOutput = DefaultMaxOutput
	}
	return c, nil
}

// Check runs the program and waits for it, or kills its process group at
// the timeout.
func (c *ScriptChecker) Check(ctx context.Context) Result {
	a, cancel := begin(ctx, c.timeout, "script "+c.name)
	defer cancel()
	out := &cappedBuffer{max: c.maxOutput}
	cmd := scripts.Program{Path: c.spec.Path, Args: c.spec.Argv, Env: c.spec.Env, Dir: c.spec.Dir, User: c.spec.User}.Command(a.ctx)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return failed(a.start, newError(nil, err, "starting script %s: %s", c.name, rootCause(err)))
	}
	err := cmd.Wait()
	scripts.KillGroup(cmd.Process.Pid) // what the script left behind
	output := out.summary()
	switch {
	case a.ctx.Err() != nil:
		e := a.fail("running", err)
		if errors.Is(e, ErrTimeout) {
			e = newError(ErrTimeout, err, "timeout after %s running script %s (killed)%s", a.budget, c.name, output)
		}
		return failed(a.start, e)
	case err != nil && cmd.ProcessState != nil && !cmd.ProcessState.Success():
		return failed(a.start, newError(ErrScriptFailed, err, "script %s: %s%s", c.name, cmd.ProcessState, output))
	case err != nil && !errors.Is(err, exec.ErrWaitDelay):
		return failed(a.start, newError(nil, err, "script %s: %v%s", c.name, err, output))
	}
	return passed(a.start, "script %s exited 0%s", c.name, output)
}

// cappedBuffer keeps the first max bytes written to it and counts the
// rest.
type cappedBuffer struct {
	mu      sync.Mutex
	max     int
	buf     bytes.Buffer
	dropped int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	keep := min(len(p), b.max-b.buf.Len())
	b.buf.Write(p[:keep])
	b.dropped += len(p) - keep
	return len(p), nil
}

// summary is the output on one line, for a reason: ": line one | line
// two [+123 bytes]", or "" when there was none.
func (b *cappedBuffer) summary() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.FieldsFunc(strings.ToValidUTF8(b.buf.String(), "?"), func(r rune) bool { return r == '\n' || r == '\r' })
	for i, l := range lines {
		lines[i] = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, strings.TrimSpace(l))
	}
	s := strings.Join(slicesDeleteEmpty(lines), " | ")
	if b.dropped > 0 {
		s += fmt.Sprintf(" [+%d bytes]", b.dropped)
	}
	if s == "" {
		return ""
	}
	return ": " + s
}

func slicesDeleteEmpty(ss []string) []string {
	out := ss[:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
