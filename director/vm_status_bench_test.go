//go:build vmtest

package director

import (
	"testing"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/lab"
)

// BenchmarkVMStatus10kx4 is benchStatus against the real kernel: GET
// /status at 10,000 x 4 while 50 real servers a second flap, the cached
// Status and the baseline that copies everything, side by side (and an
// earlier build's, LVSKIT_STATUS_BASELINE). Goal: p99 <= 50 ms.
func BenchmarkVMStatus10kx4(b *testing.B) {
	runStatusBaseline(b) // before this run's lab: each makes its own
	l := lab.New(b, lab.Options{})
	h := l.AddHost("director")
	kernel, err := ipvs.New(ipvs.Options{NetNS: h.NetNSPath()})
	if err != nil {
		b.Fatal(err)
	}
	defer kernel.Close()
	benchStatus(b, kernel, 10000, 30)
}
