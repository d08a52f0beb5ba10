//go:build !linux || !amd64

package probes

import (
	"context"
	"fmt"
	"runtime"
)

// Tracer is not implemented on this GOOS/GOARCH.
type Tracer struct{}

// Open returns ErrUnsupported.
func Open(Options) (*Tracer, error) {
	return nil, fmt.Errorf("opening the tracer on %s/%s: %w", runtime.GOOS, runtime.GOARCH, ErrUnsupported)
}

// Read returns ErrUnsupported.
func (*Tracer) Read(context.Context) (Event, error) { return Event{}, ErrUnsupported }

// Unseen returns nothing.
func (*Tracer) Unseen() []string { return nil }

// Attachments returns nothing.
func (*Tracer) Attachments() []Attachment { return nil }

// Buffered returns false.
func (*Tracer) Buffered() bool { return false }

// Lost returns 0.
func (*Tracer) Lost() (uint64, error) { return 0, ErrUnsupported }

// Missed returns 0.
func (*Tracer) Missed() (uint64, error) { return 0, ErrUnsupported }

// Close does nothing.
func (*Tracer) Close() error { return nil }

// NetNSInode returns ErrUnsupported.
func NetNSInode(name string) (uint32, error) {
	return 0, fmt.Errorf("finding network namespace %s: %w", name, ErrUnsupported)
}
