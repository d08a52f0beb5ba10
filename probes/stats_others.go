//go:build !linux || !amd64

package probes

import (
	"fmt"
	"io"
	"runtime"
)

// EnableRunStats returns ErrUnsupported.
func EnableRunStats() (io.Closer, error) {
	return nil, fmt.Errorf("enabling BPF run-time statistics on %s/%s: %w", runtime.GOOS, runtime.GOARCH, ErrUnsupported)
}

// AllProgramStats returns ErrUnsupported.
func AllProgramStats() (map[uint32]ProgramStats, error) {
	return nil, fmt.Errorf("reading BPF program statistics on %s/%s: %w", runtime.GOOS, runtime.GOARCH, ErrUnsupported)
}
