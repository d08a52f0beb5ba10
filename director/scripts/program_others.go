//go:build !unix

package scripts

import "os/exec"

// setProcessAttributes leaves cmd as it is: without process groups and
// credentials, only the program itself is killed at the timeout, and it
// runs as lvsd.
func setProcessAttributes(*exec.Cmd, *Credential) {}

// KillGroup does nothing without process groups.
func KillGroup(int) {}
