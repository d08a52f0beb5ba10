//go:build vmtest

package director_test

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestVMHealthBenchJudgesOnlyUnstarvedTurns: the benchmark's ratio pools
// the turns served at 98% of the rate or more, says how many of each
// side it left out, and is not judged when a side has none. (It runs on
// the host too: it only computes.)
func TestVMHealthBenchJudgesOnlyUnstarvedTurns(t *testing.T) {
	turn := func(tool string, servedPerSec float64, perCheck time.Duration) hcRun {
		served := int64(servedPerSec * 10)
		return hcRun{tool: tool, servedPerSec: servedPerSec, served: served, cpu: perCheck * time.Duration(served), syscallsCheck: 7}
	}
	const n = 1000
	ours := []hcRun{turn("lvsd", 995, 500*time.Microsecond), turn("lvsd", 500, 2*time.Millisecond)}
	theirs := []hcRun{turn("keepalived", 1001, 600*time.Microsecond), turn("keepalived", 979, 900*time.Microsecond)}
	ratio, line := judgeRatio(n, ours, theirs)
	if math.Abs(ratio-500.0/600.0) > 1e-9 {
		t.Errorf("ratio %v, want 500us/600us from the unstarved turns only (%s)", ratio, line)
	}
	if !strings.Contains(line, "1 of 2 rounds of lvsd and 1 of 2 of keepalived starved") {
		t.Errorf("the line does not say what was left out: %s", line)
	}

	ratio, line = judgeRatio(n, ours[1:], theirs)
	if !math.IsNaN(ratio) || !strings.Contains(line, "not judged") {
		t.Errorf("with every lvsd turn starved: ratio %v, line %q; want NaN, not judged", ratio, line)
	}
}
