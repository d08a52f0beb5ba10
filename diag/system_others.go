//go:build !linux

package diag

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"time"
)

func notImplemented(what string) error {
	return fmt.Errorf("%s is implemented only on Linux, not on %s/%s", what, runtime.GOOS, runtime.GOARCH)
}

type stubSystem struct{}

// NewPinger returns a Pinger that reports it is not implemented here.
func NewPinger() Pinger { return stubSystem{} }

// NewARPProber returns an ARPProber that reports it is not implemented here.
func NewARPProber() ARPProber { return stubSystem{} }

// NewNetInfo returns a NetInfo that reports it is not implemented here.
func NewNetInfo() NetInfo { return stubSystem{} }

func (stubSystem) Ping(context.Context, netip.Addr, PingOptions) (PingResult, error) {
	return PingResult{}, notImplemented("ICMP")
}

func (stubSystem) Probe(context.Context, string, []netip.Addr, time.Duration) (ARPCapture, error) {
	return ARPCapture{}, notImplemented("ARP")
}

func (stubSystem) Links(context.Context) ([]Link, error) { return nil, notImplemented("reading links") }

func (stubSystem) RouteTo(context.Context, netip.Addr) (Route, error) {
	return Route{}, notImplemented("reading routes")
}
