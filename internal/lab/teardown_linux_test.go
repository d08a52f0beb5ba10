//go:build linux

package lab_test

// A lab is torn down whole: processes, namespaces and links, even after a
// failed subtest or a crashed run.

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvskit/lvskit/internal/lab"
)

// labNamespaces lists the named namespaces whose names start with prefix.
func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(lab.NetNSDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

func rootLinks(t *testing.T) []string {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifaces {
		names = append(names, i.Name)
	}
	return names
}

func TestTeardownLeavesNothing(t *testing.T) {
	requireRoot(t)
	linksBefore := rootLinks(t)
	var id string
	var pid int
	t.Run("lab", func(t *testing.T) {
		l := lab.New(t, lab.Options{})
		id = l.ID()
		for _, name := range []string{"client", "director", "rs1", "rs2"} {
			h := l.AddHost(name)
			h.AddAddr("lo", "192.168.99.1/32")
		}
		pid = l.Host("rs1").Start(t.Context(), "sleep", "300").Pid()
		l.Host("rs2").StartGoHTTP(lab.HTTPOptions{})
		l.Capture("")
		if got := labNamespaces(t, id); len(got) != 5 {
			t.Errorf("namespaces while the lab runs = %v, want switch and 4 hosts", got)
		}
	})
	if id == "" {
		t.Skip("the lab subtest made no lab (skipped)")
	}
	if left := labNamespaces(t, id); len(left) != 0 {
		t.Errorf("namespaces left after teardown: %v", left)
	}
	if linksAfter := rootLinks(t); !slices.Equal(linksBefore, linksAfter) {
		t.Errorf("root namespace links changed:\nbefore %v\nafter  %v", linksBefore, linksAfter)
	}
	if err := waitExited(pid, 10*time.Second); err != nil {
		t.Errorf("background process after teardown: %v", err)
	}
}

// waitExited waits until process pid has exited (it may stay a zombie
// of a parent that does not reap), by polling its pidfd, which becomes
// readable when the process exits.
func waitExited(pid int, timeout time.Duration) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return nil // gone and reaped
	}
	if err != nil {
		return fmt.Errorf("opening pidfd of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(timeout.Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("polling pidfd of %d: %w", pid, err)
		}
		if n == 0 {
			return fmt.Errorf("process %d still running after %v", pid, timeout)
		}
		return nil
	}
}

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper for TestFailingSubtestTearsDown and TestCrashedRunIsSwept")
	}
	l := lab.New(t, lab.Options{})
	rs := l.AddHost("rs")
	p := rs.Start(t.Context(), "sh", "-c", "echo hello-from-$((6*7)); exec sleep 300")
	if _, err := p.WaitForOutput(t.Context(), "hello-from-42"); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LAB_ID=%s\nPROC_PID=%d\n", l.ID(), p.Pid())
	switch mode {
	case "fail":
		t.Run("failing", func(t *testing.T) {
			t.Fatal("deliberate failure")
		})
	case "crash":
		os.Exit(3) // no cleanup runs
	}
}

// runHelper runs TestHelperProcess in a child process and returns its
// output, exit error, lab ID and background process ID.
func runHelper(t *testing.T, mode string) (out string, err error, id string, pid int) {
	t.Helper()
	requireRoot(t)
	cmd := exec.CommandContext(testContext(t), os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	b, err := cmd.CombinedOutput()
	out = string(b)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "LAB_ID="); ok {
			id = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "PROC_PID="); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if _, reason, skipped := strings.Cut(out, "--- SKIP: TestHelperProcess"); skipped {
		t.Skipf("helper skipped: %s", strings.TrimSpace(reason))
	}
	if id == "" || pid == 0 {
		t.Fatalf("helper printed no lab ID or PID (%v):\n%s", err, out)
	}
	return out, err, id, pid
}

func TestFailingSubtestTearsDown(t *testing.T) {
	t.Parallel()
	out, err, id, pid := runHelper(t, "fail")
	if err == nil {
		t.Fatalf("helper with a failing subtest passed:\n%s", out)
	}
	for _, want := range []string{"deliberate failure", "hello-from-42", "lab: state at failure"} {
		if !strings.Contains(out, want) {
			t.Errorf("output of the failed helper lacks %q:\n%s", want, out)
		}
	}
	if left := labNamespaces(t, id); len(left) != 0 {
		t.Errorf("namespaces left after a failed test: %v", left)
	}
	if err := waitExited(pid, 10*time.Second); err != nil {
		t.Errorf("background process after the failed test: %v", err)
	}
}

func TestCrashedRunIsSwept(t *testing.T) {
	t.Parallel()
	out, err, id, pid := runHelper(t, "crash")
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Fatalf("crashing helper: %v, want exit status 3:\n%s", err, out)
	}
	// The crash left the namespaces; the parent-death signal ended the
	// background process.
	if err := waitExited(pid, 10*time.Second); err != nil {
		t.Errorf("background process after the crash: %v", err)
	}
	// Another lab's sweep (maybe a parallel test's) removes them.
	lab.New(t, lab.Options{})
	if left := labNamespaces(t, id); len(left) != 0 {
		t.Errorf("namespaces of a crashed run left after New: %v", left)
	}
}
