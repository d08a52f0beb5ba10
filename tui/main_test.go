package tui

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine they started (the
// app's collector, ticker and saves among them) is still running at the
// end. The lab's spawner thread (the VM tests') lives as long as the
// process on purpose: children get their parent-death signal from it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/lvskit/lvskit/internal/lab.startOnSpawnerThread.func1.1"))
}
