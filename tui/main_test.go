package tui

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine they started (the
// app's collector, ticker and saves among them) is still running at the
// end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
