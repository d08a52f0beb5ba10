package scripts

import (
	"os"
	"strconv"
	"syscall"
)

// CloseInheritedOnExec marks every file descriptor above 2 close-on-exec,
// so that no program lvsd runs inherits one. exec.Cmd passes on only
// stdin, stdout and stderr of the files Go opened (all close-on-exec),
// but descriptors lvsd itself inherited from whatever started it (a
// shell, a supervisor) stay open across exec unless marked. It changes
// the whole process: only main calls it, once, at start.
func CloseInheritedOnExec() error {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		if fd, err := strconv.Atoi(n); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
	return nil
}
