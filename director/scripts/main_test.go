package scripts_test

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/lvskit/lvskit/director/scripts"
)

// TestMain does what lvsd's main does: descriptors the test binary
// inherited from whatever ran it must not reach the programs it runs.
func TestMain(m *testing.M) {
	if runtime.GOOS == "linux" {
		if err := scripts.CloseInheritedOnExec(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}
