//go:build !linux

package ipvs

import (
	"fmt"
	"runtime"
)

// New returns ErrNotImplemented: IPVS exists only in Linux.
func New(Options) (Client, error) {
	return nil, fmt.Errorf("opening IPVS on %s/%s: %w", runtime.GOOS, runtime.GOARCH, ErrNotImplemented)
}
