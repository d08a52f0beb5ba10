//go:build unix

package health_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
)

func newScript(t *testing.T, spec health.ScriptCheck) *health.ScriptChecker {
	t.Helper()
	c, err := health.NewScriptChecker(spec, health.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestScript(t *testing.T) {
	tests := []struct {
		name   string
		spec   health.ScriptCheck
		up     bool
		reason string
	}{
		{"exit 0", health.ScriptCheck{Argv: []string{"/bin/sh", "-c", "echo all good"}}, true, "script /bin/sh exited 0: all good"},
		{"exit 0 quietly", health.ScriptCheck{Argv: []string{"true"}}, true, "script true exited 0"},
		{"exit 2 with output", health.ScriptCheck{Argv: []string{"/bin/sh", "-c", "echo db down; echo >&2 'conn refused'; exit 2"}}, false,
			"script /bin/sh: exit status 2: db down | conn refused"},
		{"no shell between us and the program", health.ScriptCheck{Argv: []string{"/bin/echo", "a; exit 1", "$HOME"}}, true,
			"script /bin/echo exited 0: a; exit 1 $HOME"},
		{"environment", health.ScriptCheck{Argv: []string{"/bin/sh", "-c", `echo "$LVS_RS"`}, Env: []string{"LVS_RS=10.0.0.2:80"}}, true,
			"script /bin/sh exited 0: 10.0.0.2:80"},
		{"output capped", health.ScriptCheck{Argv: []string{"/bin/sh", "-c", "printf '%0300d' 0; exit 1"}, MaxOutput: 10}, false,
			"script /bin/sh: exit status 1: 0000000000 [+290 bytes]"},
		{"killed by a signal", health.ScriptCheck{Argv: []string{"/bin/sh", "-c", "kill -9 $$"}}, false, "script /bin/sh: signal: killed"},
		{"missing program", health.ScriptCheck{Argv: []string{"/nonexistent/check"}}, false,
			"starting script /nonexistent/check: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newScript(t, tt.spec).Check(context.Background())
			if r.Up != tt.up || r.Reason != tt.reason {
				t.Errorf("up=%v %q, want up=%v %q", r.Up, r.Reason, tt.up, tt.reason)
			}
			if !tt.up && strings.HasPrefix(tt.reason, "script") && !errorsIs(r.Err, health.ErrScriptFailed) {
				t.Errorf("error %v is not ErrScriptFailed", r.Err)
			}
		})
	}
}

// witness makes a FIFO and opens its reading end. A script given the
// FIFO's path opens it for writing, and its children inherit that;
// gone then blocks until every writer has exited, without polling.
func witness(t *testing.T) (path string, gone func() error) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "witness")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// Non-blocking open: it succeeds with no writer yet, so the script's
	// open for writing does not block either.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return path, func() error {
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, f) // EOF once no process holds the writing end
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			f.Close()
			return errors.New("a child of the script still holds the FIFO 5s after the check")
		}
	}
}

// TestScriptTimeoutKillsProcessGroup runs a script whose background
// child holds the output pipe: at the timeout both must die.
func TestScriptTimeoutKillsProcessGroup(t *testing.T) {
	const timeout = 500 * time.Millisecond
	fifo, gone := witness(t)
	c := newScript(t, health.ScriptCheck{
		Argv:    []string{"/bin/sh", "-c", `exec 3>"$0"; sleep 60 & echo started; wait`, fifo},
		Timeout: timeout,
	})
	r, took := checkAlongside(t, c, nil, healthyHTTP(t))
	assertDown(t, r, health.ErrTimeout, "timeout after 500ms running script /bin/sh (killed): started")
	assertEndsAtTimeout(t, took, timeout)
	if err := gone(); err != nil {
		t.Error(err)
	}
}

// TestScriptLeftoversKilled: a script that exits 0 but leaves a child
// behind passes, and the child is killed.
func TestScriptLeftoversKilled(t *testing.T) {
	fifo, gone := witness(t)
	c := newScript(t, health.ScriptCheck{
		Argv:    []string{"/bin/sh", "-c", `exec 3>"$0"; sleep 60 >&3 2>&3 &`, fifo},
		Timeout: 5 * time.Second,
	})
	if r := c.Check(context.Background()); !r.Up {
		t.Fatalf("down: %q", r.Reason)
	}
	if err := gone(); err != nil {
		t.Error(err)
	}
}

func TestScriptSpecErrors(t *testing.T) {
	for _, spec := range []health.ScriptCheck{{}, {Argv: []string{""}}, {Argv: []string{"true"}, Env: []string{"NOVALUE"}}} {
		if _, err := health.NewScriptChecker(spec, health.Env{}); err == nil {
			t.Errorf("%+v was accepted", spec)
		}
	}
}
