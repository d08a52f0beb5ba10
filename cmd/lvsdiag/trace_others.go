//go:build !linux

package main

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
)

func openTrace(context.Context, *traceOptions, *slog.Logger) (*tracing, error) {
	return nil, fmt.Errorf("tracing with eBPF is not implemented on %s/%s: run lvsdiag trace on a Linux director", runtime.GOOS, runtime.GOARCH)
}
