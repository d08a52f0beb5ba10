//go:build unix

package scripts

import (
	"os/exec"
	"syscall"
)

func setProcessAttributes(cmd *exec.Cmd, user *Credential) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if user != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: user.UID, Gid: user.GID, Groups: user.Groups}
	}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// KillGroup kills what is left of the process group that pid led, after
// the leader was reaped. While the group has members, the kernel does
// not hand its ID to a new process; once it has none, only a new group
// leader that got the same PID (PIDs cycle through pid_max first) could
// be hit, and kill then fails with ESRCH in practice.
func KillGroup(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}
