package lab

import (
	"os"
	"runtime"
	"testing"
)

// The CPU a busy loop burns shows in both counters.
func TestCPUCountersGrowWithWork(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	busy0, err := BusyCPU()
	if err != nil {
		t.Fatal(err)
	}
	own0, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Spin until this process's counter moves by a few ticks: a
	// condition, not a duration.
	x := 0
	for {
		for i := range 1 << 20 {
			x += i
		}
		own, err := ProcessCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if own-own0 >= 3*1e7 { // 30 ms: three ticks
			break
		}
	}
	busy, err := BusyCPU()
	if err != nil {
		t.Fatal(err)
	}
	if busy <= busy0 {
		t.Errorf("BusyCPU did not grow (%v -> %v) while this process used CPU (x=%d)", busy0, busy, x)
	}
	if _, err := ProcessCPU(-1); err == nil {
		t.Error("ProcessCPU(-1) did not fail")
	}
}
