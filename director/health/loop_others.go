//go:build !linux

package health

import (
	"fmt"
	"net/netip"
	"runtime"
	"time"
)

// netLoop is the event loop; there is none on this system.
type netLoop struct{}

// probe is one check on the event loop.
type probe struct{}

func loopSockaddr(netip.AddrPort) (any, bool) { return nil, false }

func startNetLoop(opts netLoopOptions) (*netLoop, error) {
	if opts.NetNS != "" {
		return nil, fmt.Errorf("making health checks in network namespace %s: not implemented on %s/%s", opts.NetNS, runtime.GOOS, runtime.GOARCH)
	}
	return nil, errNoNetLoop
}

func (p *probe) reset(*loopTarget, *entry) {}
func (l *netLoop) submit(*probe) bool      { return false }
func (l *netLoop) cancel(*probe)           {}
func (l *netLoop) stop()                   {}

func (l *netLoop) wake()                                      {}
func (l *netLoop) ended() <-chan struct{}                     { return nil }
func (l *netLoop) tickWith(func(time.Time) (time.Time, bool)) {}
