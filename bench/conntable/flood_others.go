//go:build !linux

package main

import (
	"fmt"
	"net/netip"
	"runtime"
)

func flood(int, netip.AddrPort) error {
	return fmt.Errorf("flood: raw sockets are implemented only on Linux, not %s", runtime.GOOS)
}
