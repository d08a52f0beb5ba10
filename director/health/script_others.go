//go:build !unix

package health

import "os/exec"

// ownProcessGroup leaves cmd as it is: without process groups, only the
// program itself is killed at the timeout.
func ownProcessGroup(*exec.Cmd) {}

func killProcessGroup(int) {}
