//go:build unix

package health

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup makes cmd lead a new process group and makes the
// context's cancellation kill that whole group.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// killProcessGroup kills what is left of the group that pid led, after
// the leader was reaped. While the group has members, the kernel does
// not hand its ID to a new process; once it has none, only a new group
// leader that got the same PID (PIDs cycle through pid_max first) could
// be hit, and kill then fails with ESRCH in practice.
func killProcessGroup(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}
