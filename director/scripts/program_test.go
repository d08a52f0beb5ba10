//go:build unix

package scripts_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/scripts"
)

func fmtIDs(c *scripts.Credential) string { return fmt.Sprintf("%d/%d %v", c.UID, c.GID, c.Groups) }

// A program gets PATH=SafePath and what it is given, nothing of lvsd's
// environment, and only stdin, stdout and stderr.
func TestProgramEnvironmentAndFiles(t *testing.T) {
	t.Setenv("LVSD_SECRET", "leaked")
	leak, err := os.Open(os.Args[0]) // an fd lvsd holds open
	if err != nil {
		t.Fatal(err)
	}
	defer leak.Close()
	run := func(p scripts.Program) string {
		t.Helper()
		cmd := p.Command(context.Background())
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v", p, err)
		}
		return strings.Join(strings.Fields(out.String()), " ")
	}
	env := run(scripts.Program{Path: "/usr/bin/env", Args: []string{"env"}, Env: []string{"LVS_RS=10.0.0.2:80"}})
	if want := "PATH=" + scripts.SafePath + " LVS_RS=10.0.0.2:80"; env != want {
		t.Errorf("environment %q, want %q", env, want)
	}
	// 0, 1, 2, and the one ls opens to read the directory
	if fds := run(scripts.Program{Path: "ls", Args: []string{"ls", "/proc/self/fd"}}); fds != "0 1 2 3" {
		t.Errorf("open fds %q, want 0 1 2 and the one ls reads", fds)
	}
	if dir := run(scripts.Program{Path: "/bin/pwd", Args: []string{"pwd"}}); dir != "/" {
		t.Errorf("working directory %q, want /", dir)
	}
}

func TestProgramRunErrors(t *testing.T) {
	err := scripts.Program{Path: "/bin/sh", Args: []string{"sh", "-c", "echo broken; exit 3"}}.Run(context.Background())
	if err == nil || err.Error() != "running /bin/sh: exit status 3: broken" {
		t.Errorf("error %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = scripts.Program{Path: "/bin/sh", Args: []string{"sh", "-c", "sleep 60"}}.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "killed: context deadline exceeded") {
		t.Errorf("error %v", err)
	}
	err = scripts.Program{Path: "no-such-program-here", Args: []string{"no-such-program-here"}}.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "executable file not found") {
		t.Errorf("error %v", err)
	}
}
