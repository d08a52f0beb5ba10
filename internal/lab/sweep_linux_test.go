//go:build linux

package lab

import (
	"fmt"
	"os"
	"testing"
)

func TestStaleNamespace(t *testing.T) {
	own := newLabID()
	pid := os.Getpid()
	for name, want := range map[string]bool{
		own + "-rs1":                                   false, // ours, alive
		fmt.Sprintf("lvs-%d-ffff-rs1", pid):            true,  // our PID, not our lab: an earlier process
		"lvs-1-abcd-client":                            false, // PID 1 is alive
		fmt.Sprintf("lvs-%d-abcd-switch", 1<<22+12345): true,  // above pid_max: gone
		"lvs-x-abcd-client":                            false,
		"lvs-123-client":                               false,
		"netns-of-someone-else":                        false,
		fmt.Sprintf("lvs-%d-abcd-Bad_Name", 1<<22+1):   false,
	} {
		if got := staleNamespace(name); got != want {
			t.Errorf("staleNamespace(%q) = %v, want %v", name, got, want)
		}
	}
}
