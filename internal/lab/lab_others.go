//go:build !linux

package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
)

type (
	labSys  struct{}
	hostSys struct{}
	procSys struct{}
)

func newLabID() string { return NamePrefix + "0-0000" }

// newLab skips the test: labs need Linux network namespaces.
func newLab(t testing.TB, _ *Lab) {
	t.Helper()
	t.Skipf("needs Linux network namespaces: %v (GOOS=%s)", ErrNotImplemented, runtime.GOOS)
}

func notImplemented(op string) error {
	return fmt.Errorf("%s on %s/%s: %w", op, runtime.GOOS, runtime.GOARCH, ErrNotImplemented)
}

func (l *Lab) addHost(string, []netip.Prefix) (*Host, error) {
	return nil, notImplemented("adding a host")
}

func (h *Host) addAddrs(string, ...netip.Prefix) error { return notImplemented("adding an address") }
func (h *Host) addDummy(string) error                  { return notImplemented("adding a dummy link") }
func (h *Host) addRoute(netip.Prefix, netip.Addr) error {
	return notImplemented("adding a route")
}
func (h *Host) mac() (net.HardwareAddr, error) { return nil, notImplemented("reading a MAC address") }
func (h *Host) do(func() error) error          { return notImplemented("entering a namespace") }

func (h *Host) run(context.Context, string, ...string) (string, error) {
	return "", notImplemented("running a command in a namespace")
}

func (h *Host) start(context.Context, io.Writer, string, ...string) (*Process, error) {
	return nil, notImplemented("starting a command in a namespace")
}

func (p *Process) stop() error { return notImplemented("stopping a process") }

func (p *Process) pid() int { return 0 }
