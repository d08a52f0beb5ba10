package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/gcpause"
	"github.com/lvskit/lvskit/probes"
)

// openTrace checks what the trace needs (the capabilities, IPVS, a
// service the filter matches), resolves --netns and --interface, and
// starts the tracer.
func openTrace(ctx context.Context, opts *traceOptions, logger *slog.Logger) (*tracing, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("reading the process's capabilities: %w", err)
	}
	if err := checkCapabilities(string(status)); err != nil {
		return nil, err
	}
	nsPath, inode, err := resolveNetNS(opts.NetNS)
	if err != nil {
		return nil, err
	}
	opts.Filter.NetNS = inode
	var table ipvs.ServiceTable
	err = inNetNS(nsPath, func() error {
		f, err := os.Open("/proc/thread-self/net/ip_vs")
		if errors.Is(err, fs.ErrNotExist) {
			return errIPVSNotLoaded
		}
		if err != nil {
			return fmt.Errorf("reading IPVS's services: %w", err)
		}
		defer f.Close()
		if table, err = ipvs.ParseServiceTable(f); err != nil {
			return fmt.Errorf("reading IPVS's services: %w", err)
		}
		if opts.Interface != "" {
			ifi, err := net.InterfaceByName(opts.Interface)
			if err != nil {
				return fmt.Errorf("--interface %s: %w (ip -br link lists the namespace's interfaces)", opts.Interface, err)
			}
			opts.Filter.Interface = ifi.Index
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	matched, err := matchServices(table, opts.Filter)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range matched {
		names = append(names, s.ServiceKey.String())
	}
	opts.shape = shapeOf(matched)
	addThresholds(&table, matched, nsPath, logger)
	logger.Debug("tracing", "services", names, "netns", inode, "backend", opts.Backend)
	src, err := startTracer(ctx, *opts, logger)
	if err != nil {
		return nil, err
	}
	return &tracing{Source: src, Services: names,
		Grouper: probes.GrouperOptions{Boot: monotonicZero(), Since: src.since, Destinations: destinations(table)}}, nil
}

// startTracer loads and attaches the probes with the filter.
func startTracer(_ context.Context, opts traceOptions, logger *slog.Logger) (*tracerSource, error) {
	// The collector is off while Open loads (internal/gcpause). In
	// lvsdiag's fresh process the heap starts at a 4 MB goal, and Open's
	// 34-38 MB of allocation ran three collections whose workers took
	// the guest's 2 vCPUs from the kernel's verifier, which verifies the
	// loads side by side: 0.14-0.95 s of GC CPU in a process's first
	// Open (median 0.35 s on 6.1, 0.32 s on 6.12; 0.17 s in a process's
	// second Open), and four times the page faults. lvsdiag trace
	// attached in 0.75 of main's time on 6.1 and 0.69 on 6.12 (medians
	// of 12 alternating pairs of fresh processes in one VM, 11 of 12
	// below 1 on each, host load 4.7-5.9), no collection before the
	// probes were attached against three. The price: 12-45 MB more
	// resident at the peak (gcpause.Limit).
	var t *probes.Tracer
	var err error
	gcpause.Do(func() {
		t, err = probes.Open(probes.Options{Filter: opts.Filter, Backend: probes.Backend(opts.Backend), Hops: probes.Hops(opts.Hops), NoNAT: opts.shape.noNAT,
			Forwarding: opts.shape.forwarding, Protocols: opts.shape.protocols, Logger: logger})
	})
	if err != nil {
		return nil, err
	}
	for _, a := range t.Attachments() {
		logger.Debug("attached", "target", a.Target, "backend", a.Backend)
	}
	ctx, end := context.WithCancel(context.Background())
	return &tracerSource{t: t, logger: logger, since: monotonicNow(), ctx: ctx, end: end}, nil
}

// tracerSource is probes.Tracer as a probes.Source: a record that cannot
// be decoded is logged and skipped, not the end of the trace.
type tracerSource struct {
	t      *probes.Tracer
	logger *slog.Logger
	// since is when the last probe was attached: a packet with events
	// from before went through a partly attached tracer (the first
	// tracepoints see packets whose IPVS hops are not attached yet), and
	// the Grouper leaves its whole path out (GrouperOptions.Since).
	since time.Duration
	// ctx ends with End, and Read then hands over what the ring buffer
	// holds from before endAt (the kernel's clock at End).
	ctx   context.Context
	end   context.CancelFunc
	endAt atomic.Int64
}

// End implements probes.Ender: the trace's window is over, but what
// the probes saw within it is still read and decoded.
func (s *tracerSource) End() {
	s.endAt.Store(int64(monotonicNow()))
	s.end()
}

// maxBadRecords in a row end the trace: the ring buffer is not what
// the decoder expects.
const maxBadRecords = 100

func (s *tracerSource) Read() (probes.Event, error) {
	for bad := 0; ; bad++ {
		e, err := s.t.Read(s.ctx)
		if end := time.Duration(s.endAt.Load()); end != 0 && (err == nil && e.Hop.At > end || errors.Is(err, context.Canceled)) {
			return probes.Event{}, io.EOF
		}
		if err == nil || errors.Is(err, probes.ErrClosed) || bad >= maxBadRecords {
			return e, err
		}
		s.logger.Warn("skipping a trace record", "err", err)
	}
}

func (s *tracerSource) Lost() uint64 {
	n, err := s.t.Lost()
	if err != nil {
		s.logger.Warn("lost events unknown", "err", err)
	}
	return n
}

// Missed implements probes.MissCounter.
func (s *tracerSource) Missed() uint64 {
	n, err := s.t.Missed()
	if err != nil {
		s.logger.Warn("skipped probe runs unknown", "err", err)
	}
	return n
}

func (s *tracerSource) Unseen() []string { return s.t.Unseen() }
func (s *tracerSource) Buffered() bool   { return s.t.Buffered() }
func (s *tracerSource) Close() error     { return s.t.Close() }

// monotonicNow is the kernel's monotonic clock, the probes' clock.
func monotonicNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// monotonicZero is the wall-clock time of the monotonic clock's zero,
// the clock the probes stamp events with.
func monotonicZero() time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Time{}
	}
	return time.Now().Add(-time.Duration(ts.Nano()))
}

// resolveNetNS turns --netns (a name under /run/netns, an inode, or
// empty for this process's namespace) into a path to the namespace and
// its inode.
func resolveNetNS(arg string) (string, uint32, error) {
	var path string
	switch {
	case arg == "":
		path = "/proc/self/ns/net"
	default:
		if n, err := strconv.ParseUint(arg, 10, 32); err == nil {
			p, err := findNetNSInode(n)
			if err != nil {
				return "", 0, fmt.Errorf("--netns %s: %w", arg, err)
			}
			path = p
		} else {
			path = filepath.Join("/run/netns", arg)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", 0, fmt.Errorf("--netns %s: %s: %w (ip netns list names them)", arg, path, err)
	}
	return path, uint32(st.Ino), nil
}

// findNetNSInode finds a process in the namespace with inode n, or a
// name under /run/netns for it.
func findNetNSInode(n uint64) (string, error) {
	var candidates []string
	if names, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range names {
			candidates = append(candidates, filepath.Join("/run/netns", e.Name()))
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			candidates = append(candidates, filepath.Join("/proc", e.Name(), "ns", "net"))
		}
	}
	for _, p := range candidates {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && st.Ino == n {
			return p, nil
		}
	}
	return "", fmt.Errorf("no network namespace with inode %d (ls -i /run/netns/NAME, or readlink /proc/PID/ns/net)", n)
}

// inNetNS runs fn on a thread in the namespace at path, and puts the
// thread back (or retires it when that fails).
func inNetNS(path string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening this thread's network namespace: %w", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening the network namespace %s: %w", path, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering the network namespace %s: %w", path, err)
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and dies with this goroutine.
		return errors.Join(ferr, fmt.Errorf("leaving the network namespace %s: %w", path, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// addThresholds reads the matched services' real servers over netlink
// for what /proc/net/ip_vs does not show, their connection thresholds,
// so that "no destination" can say every real server is at its
// threshold. Without netlink the trace goes on with /proc's view (no
// thresholds), and says so in the debug log.
func addThresholds(table *ipvs.ServiceTable, matched []ipvs.ServiceEntry, nsPath string, logger *slog.Logger) {
	c, err := ipvs.New(ipvs.Options{NetNS: nsPath})
	if err != nil {
		logger.Debug("real servers' thresholds unknown", "err", err)
		return
	}
	defer c.Close()
	for _, m := range matched {
		rss, err := c.RealServers(m.ServiceKey)
		if err != nil {
			logger.Debug("real servers' thresholds unknown", "service", m.ServiceKey.String(), "err", err)
			continue
		}
		for i := range table.Services {
			s := &table.Services[i]
			if s.ServiceKey != m.ServiceKey {
				continue
			}
			for j := range s.RealServers {
				for _, rs := range rss {
					if rs.Address == s.RealServers[j].Address && rs.Port == s.RealServers[j].Port {
						s.RealServers[j].UpperThreshold = rs.UpperThreshold
					}
				}
			}
		}
	}
}
