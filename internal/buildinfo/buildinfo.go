// Package buildinfo holds the version the binaries were built as.
//
// The Makefile stamps it from `git describe` (packaging/version.sh):
//
//	go build -ldflags "-X github.com/lvskit/lvskit/internal/buildinfo.version=1.2.0" ./cmd/...
//
// A plain `go build` leaves it "devel".
package buildinfo

import (
	"fmt"
	"runtime"
)

// version is set at link time with -X; it must stay an uninitialized-at-
// runtime string variable for -X to work.
var version = "devel"

// Version is the version the binary was built as: "1.2.0",
// "0.0.0+git412.g56cc55e", or "devel" when it was not stamped.
func Version() string { return version }

// GoVersion is the Go toolchain the binary was built with ("go1.26.8").
func GoVersion() string { return runtime.Version() }

// String is the one-line answer of `PROGRAM --version`:
// "lvsd (lvskit) 1.2.0, built with go1.26.8".
func String(program string) string {
	return fmt.Sprintf("%s (lvskit) %s, built with %s", program, Version(), GoVersion())
}
