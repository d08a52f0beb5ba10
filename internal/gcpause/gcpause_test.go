package gcpause_test

import (
	"runtime/debug"
	"testing"

	"github.com/lvskit/lvskit/internal/gcpause"
)

func TestDoTurnsTheCollectorOffAndBackOn(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(1 << 40))
	var percent, limit int64
	gcpause.Do(func() {
		percent = int64(debug.SetGCPercent(-1))
		limit = debug.SetMemoryLimit(-1)
	})
	if percent != -1 || limit != gcpause.Limit {
		t.Errorf("inside Do: GC percent %d, memory limit %d; want -1 (off) and %d", percent, limit, int64(gcpause.Limit))
	}
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("after Do: GC percent %d, want the 150 from before", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("after Do: memory limit %d, want the %d from before", got, int64(1<<40))
	}
}

func TestDoKeepsALowerMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(64 << 20))
	var limit int64
	gcpause.Do(func() { limit = debug.SetMemoryLimit(-1) })
	if limit != 64<<20 {
		t.Errorf("inside Do: memory limit %d, want the process's lower %d", limit, int64(64<<20))
	}
}
