//go:build linux && amd64

package probes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/ringbuf"
)

// Tracer holds the attached programs and reads their events. Read and
// Close may be called from different goroutines; Read from one at a
// time.
type Tracer struct {
	opts    Options
	log     *slog.Logger
	spec    *ebpf.CollectionSpec
	maps    map[string]*ebpf.Map
	btf     *btf.Cache
	kernel  *btf.Spec   // vmlinux's types, for CO-RE
	modules []*btf.Spec // ip_vs's types, for CO-RE
	progs   []*ebpf.Program
	links   []heldLink
	reader  *ringbuf.Reader
	dec     decoder
	rec     ringbuf.Record
	// deadline is the reader's, as Read last set it (zero: never).
	deadline time.Time
	record   *recordWriter
	bootAt   time.Time // wall clock at CLOCK_MONOTONIC zero
	attach   []Attachment
	unseen   []string
	// kallsyms reads /proc/kallsyms the first time it is called and returns
	// it (nil if it could not be read).
	kallsyms func() *Symbols

	open, closing phases // where Open's and Close's time went, for the log

	// ringMu orders Buffered against Close: cilium's AvailableBytes
	// reads the ring without the reader's lock, and the ring is gone
	// once the reader is closed (a nil dereference for a Buffered
	// called by Collect's reader goroutine while lvsdiag closes).
	ringMu     sync.RWMutex
	ringClosed bool

	closeOnce sync.Once
	closeErr  error
}

// ringBytes is the ring buffer's size: 16 MiB, about 44,000 events
// (some 3,000 packets of a director's busiest path) of burst that the
// reader may fall behind by before events are lost and counted.
const ringBytes = 16 << 20

// sharedMaps are created once and shared by every program: the
// programs load in several collections, and .bss holds n_traced, which
// must count the one traced map for all of them.
var sharedMaps = []string{"events", "lost", "traced", "frames", ".bss"}

// bpfFMmapable is BPF_F_MMAPABLE (include/uapi/linux/bpf.h).
const bpfFMmapable = 1 << 10

// attachParallel is how many targets attach, or links detach in each
// of Close's two lanes, at once. One:
// side by side measured no faster in the VM (BenchmarkVMAttach,
// parallel=1 against parallel=8, on 6.12: kprobe attach 3.7 s against
// 7.6 s, fentry 9.0 s against 9.0 s), the kernel serializes the code
// patching.
var attachParallel = 1

// loadSpec reads the BPF object: the generated one, except in a
// benchmark comparing it with an earlier build of it.
var loadSpec = loadTrace

// targetSelected picks the targets Open attaches: all of them, except
// in benchmarks that measure what each group of targets costs.
var targetSelected = func(name string) bool { return true }

// pollInterval bounds how long Read waits before looking at its
// context again, and how late a trace's events may be read: the
// programs wake the reader only once 256 KiB of events have gathered
// (WAKEUP_BYTES in bpf/trace.c), and Read picks up smaller batches when
// its wait ends.
const pollInterval = 100 * time.Millisecond

// Open resolves every target against kallsyms and BTF, loads the
// programs with the filter compiled in, and attaches what the kernel
// allows. A target that cannot be attached is skipped and named in
// Unseen with the hop it hides; only a missing privilege, a missing
// ip_vs module (unless WithoutIPVS) or a bad Filter fail Open.
func Open(opts Options) (*Tracer, error) {
	if !opts.Backend.valid() {
		return nil, fmt.Errorf("opening the tracer: backend %q: want auto, fentry, kprobe or kprobe-multi", opts.Backend)
	}
	if opts.Backend == "" {
		opts.Backend = BackendAuto
	}
	if !opts.Hops.valid() {
		return nil, fmt.Errorf("opening the tracer: hops %q: want ipvs or all", opts.Hops)
	}
	if err := opts.validShape(); err != nil {
		return nil, fmt.Errorf("opening the tracer: %w", err)
	}
	consts, err := opts.Filter.compile()
	if err != nil {
		return nil, fmt.Errorf("opening the tracer: %w", err)
	}
	t := &Tracer{opts: opts, log: opts.Logger, maps: map[string]*ebpf.Map{}, btf: btf.NewCache()}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if opts.Record != nil {
		t.record = &recordWriter{w: opts.Record}
	}
	ipvsLoaded := moduleLoaded("ip_vs")
	if !ipvsLoaded && !opts.WithoutIPVS {
		return nil, fmt.Errorf("opening the tracer: %w", ErrIPVSNotLoaded)
	}
	began := time.Now()
	step := began
	// kallsyms (a few hundred thousand lines the kernel formats one by
	// one: a second or two of CPU under emulation) only names drop
	// locations and answers for functions BTF does not list: it is read
	// when first needed, so a trace that sees no drop never pays for it
	// (read in the background at start, it took a fifth of a traced
	// director's CPU in the first seconds).
	t.kallsyms = sync.OnceValue(func() *Symbols {
		syms, err := t.readSymbols()
		if err != nil {
			t.log.Warn("drop locations are shown as addresses", "err", err)
		}
		return syms
	})
	t.dec.lazySymbols = t.kallsyms
	t.bootAt = bootTime()
	// The kernel's BTF is read beside the object, and the maps are
	// created (the ring buffer's 16 MiB of pages) once the object is in.
	// With Go's collector on, the two side by side had taken longer in
	// the VM: object, maps, BTF and targets 1.22 times as long as in
	// turn on 6.1 (median of 8 pairs, host load 3.5-4), the object's
	// parse, which allocates heavily, 3-4 times as long beside the BTF's
	// read. With the collector held off during Open, as lvsdiag holds it
	// (internal/gcpause), the object's parse takes 1.6 times as long
	// beside the read, and the whole Open 0.96 (one DR service) and 0.91
	// (every IPVS hop) of in turn on 6.1, every one of 4 pairs below 1;
	// 1.00 and 0.93 on 6.12 (0.87-1.19), host load 0.3-2.
	btfDone := make(chan error, 1)
	go func() {
		start := time.Now()
		if err := t.loadDropReasons(); err != nil {
			t.log.Warn("drop reasons are shown as numbers", "err", err)
		}
		t.open.since("btf_kernel", start)
		btfDone <- t.loadTypes(ipvsLoaded)
	}()
	if err := t.loadObject(consts); err != nil {
		<-btfDone
		return nil, err
	}
	step = time.Now()
	mapsDone := make(chan error, 1)
	go func() {
		start := time.Now()
		err := t.createMaps()
		t.open.since("maps", start)
		mapsDone <- err
	}()
	err = <-btfDone
	step = t.open.since("btf_wait", step)
	if mapsErr := <-mapsDone; err == nil {
		err = mapsErr
	}
	step = t.open.since("maps_wait", step)
	if err != nil {
		t.Close()
		return nil, err
	}
	var funcs, tracepoints []target
	for _, tg := range targets {
		switch {
		case !targetSelected(tg.name):
		case tg.stack && opts.Hops != HopsAll, tg.nat && opts.NoNAT, !opts.mayPass(tg):
			// Not asked for, or no packet of the trace needs it:
			// nothing is hidden.
		case !tg.canMatch(consts):
			// e.g. IPv6 functions for an IPv4 VIP: no packet there
			// can match, so nothing is hidden.
		case tg.ipvs && !ipvsLoaded:
			t.skip(tg, "the ip_vs module is not loaded")
		case tg.kind == kindTracepoint:
			tracepoints = append(tracepoints, tg)
		case !t.hasFunction(tg):
			t.skip(tg, "not in /proc/kallsyms (inlined or not built into this kernel)")
		default:
			funcs = append(funcs, tg)
		}
	}
	step = t.open.since("targets", step)
	// Every program that may load below, its BTF lookups made here
	// first: the loads side by side must not inflate types (warmTypes).
	var mayLoad []string
	tpNames := []string{}
	for _, tg := range tracepoints {
		tpNames = append(tpNames, tg.name)
	}
	if targetSelected(consumeTracepoint) {
		tpNames = append(tpNames, consumeTracepoint)
	}
	for _, name := range tpNames {
		mayLoad = append(mayLoad, "tp_btf_"+name, "raw_tp_"+name)
	}
	// A target auto attaches with kprobes first loads no fentry program.
	ahead := t.kprobeAhead(funcs)
	multi := t.multiFirst(funcs)
	for _, b := range t.backendOrder() {
		for _, tg := range funcs {
			// multi's targets fall back to fentry where kprobe-multi
			// is refused: their fentry programs are warmed too.
			if kprobeFirst(b, ahead, tg) {
				continue
			}
			mayLoad = append(mayLoad, programNames(tg, b)...)
		}
	}
	if len(multi) > 0 {
		mayLoad = append(mayLoad, multiProgram)
	}
	t.warmTypes(mayLoad)
	step = t.open.since("btf_warm", step)
	// The kernel verifies programs of separate loads side by side: the
	// tracepoints load while the functions do. The functions attach
	// once the tracepoints are in (attachFuncs calls loadsDone). On 6.1
	// an Open's first fentry or fexit link waits for an RCU-tasks grace
	// period (the kernel replaces its empty table of direct calls and
	// frees the old one after synchronize_rcu_tasks, in
	// register_ftrace_direct_multi; asynchronous since 6.8), which a task
	// inside the verifier holds up until its load returns: in the VM that
	// link took 70-124 ms with the verifier idle and 176-375 ms with
	// another goroutine verifying, the later links 9-48 and 10-102 ms (5
	// rounds each). On 6.12 no link waits for one, but a function's first
	// link took some 3 times as long beside a load (medians of 5: 25
	// against 80 ms). Attaching the kprobes that auto takes on 6.1 during
	// that first wait, beside the fentry links, was no faster: Open took
	// 0.96 times as long for one DR service (0.41-1.15) and 0.91 for
	// every IPVS hop (0.62-1.16), 8 pairs in two runs, host load 6; in one
	// run the links took 436 against 333 ms (medians of 4) for one DR
	// service (likely the kprobes' attach holding up the grace period).
	tps := make(chan []tracepointResult, 1)
	go func() {
		start := time.Now()
		r := t.loadTracepoints(tracepoints)
		t.open.since("tracepoints_wall", start)
		tps <- r
	}()
	var tpResults []tracepointResult
	loadsDone := sync.OnceFunc(func() {
		start := time.Now()
		tpResults = <-tps
		t.open.since("tracepoints_wait", start)
	})
	t.attachFuncs(funcs, ahead, multi, loadsDone)
	loadsDone()
	t.open.since("funcs_wall", step)
	t.applyTracepoints(tpResults)
	if len(t.attach) == 0 {
		t.Close()
		return nil, fmt.Errorf("opening the tracer: nothing could be attached:\n%s", strings.Join(t.unseen, "\n"))
	}
	t.log.Info("tracer attached", append([]any{"targets", len(t.attach), "unseen", len(t.unseen),
		"total", time.Since(began).Round(time.Millisecond)}, t.open.attrs()...)...)
	rd, err := ringbuf.NewReader(t.maps["events"])
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("opening the tracer: reading the ring buffer: %w", err)
	}
	t.reader = rd
	return t, nil
}

// hasFunction reports whether the kernel has tg as a function that can
// be probed: in its BTF (vmlinux's, or ip_vs's), or else in kallsyms.
func (t *Tracer) hasFunction(tg target) bool {
	specs := []*btf.Spec{t.kernel}
	if tg.ipvs {
		specs = t.modules
	}
	for _, spec := range specs {
		if spec == nil {
			continue
		}
		types, _ := spec.AnyTypesByName(tg.name)
		for _, typ := range types {
			if _, ok := typ.(*btf.Func); ok {
				return true
			}
		}
	}
	return t.kallsyms().Has(tg.name)
}

func moduleLoaded(name string) bool {
	_, err := os.Stat("/sys/module/" + name)
	return err == nil
}

// readSymbols reads /proc/kallsyms; nil with the error if it cannot.
func (t *Tracer) readSymbols() (*Symbols, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms, err := ParseKallsyms(f)
	if err != nil {
		return nil, fmt.Errorf("/proc/%w", err)
	}
	return syms, nil
}

// loadTypes reads the BTF the programs are relocated against once:
// vmlinux's, and the ip_vs module's for the IPVS structs (searching every
// module's BTF for each program made loading take seconds under
// emulation).
func (t *Tracer) loadTypes(ipvsLoaded bool) error {
	kernel, err := t.btf.Kernel()
	if err != nil {
		return fmt.Errorf("opening the tracer: reading the kernel's BTF (CONFIG_DEBUG_INFO_BTF): %w", err)
	}
	t.kernel = kernel
	if ipvsLoaded {
		mod, err := t.btf.Module("ip_vs")
		if err != nil {
			return fmt.Errorf("opening the tracer: reading the ip_vs module's BTF (CONFIG_DEBUG_INFO_BTF_MODULES): %w", err)
		}
		t.modules = []*btf.Spec{mod}
	}
	return nil
}

func (t *Tracer) loadDropReasons() error {
	spec, err := t.btf.Kernel()
	if err != nil {
		return fmt.Errorf("reading the kernel's BTF: %w", err)
	}
	names, err := DropReasons(spec)
	if err != nil {
		return err
	}
	t.dec.dropReasons = names
	return nil
}

// bootTime is the wall clock at CLOCK_MONOTONIC zero, the clock of
// bpf_ktime_get_ns.
func bootTime() time.Time {
	var ts syscall.Timespec
	now := time.Now()
	const clockMonotonic = 1
	if _, _, e := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return time.Time{}
	}
	return now.Add(-time.Duration(ts.Nano()))
}

func setConstants(spec *ebpf.CollectionSpec, c constants) error {
	for name, v := range map[string]any{
		"f_all": c.All, "f_vip_af": c.VIPAF, "f_vip": c.VIP, "f_port": c.Port,
		"f_client_af": c.ClientAF, "f_client_net": c.ClientNet, "f_client_mask": c.ClientMask,
		"f_rs_af": c.RSAF, "f_rs": c.RS, "f_proto": c.Proto, "f_netns": c.NetNS, "f_ifindex": c.Ifindex,
	} {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("setting filter constant %s: not in the BPF object", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("setting filter constant %s: %w", name, err)
		}
	}
	return nil
}

// loadObject reads the BPF object with the filter's constants set.
func (t *Tracer) loadObject(consts constants) error {
	start := time.Now()
	spec, err := loadSpec()
	if err != nil {
		return fmt.Errorf("opening the tracer: loading the BPF object: %w", err)
	}
	if err := setConstants(spec, consts); err != nil {
		return fmt.Errorf("opening the tracer: %w", err)
	}
	t.spec = spec
	t.open.since("object", start)
	return nil
}

// createMaps creates the maps the programs share; each one made is in
// t.maps, for Close.
func (t *Tracer) createMaps() error {
	for _, name := range sharedMaps {
		spec := t.spec.Maps[name]
		if name == "events" {
			// The spec itself (this Open's copy of the object): the
			// programs are loaded against it.
			spec.MaxEntries = ringBytes
		}
		if name == ".bss" {
			// ebpf.NewMap makes a data section mmapable; the spec the
			// collections are loaded with must say so too, or they
			// refuse this map as a replacement.
			spec.Flags |= bpfFMmapable
		}
		m, err := ebpf.NewMap(spec)
		if err != nil {
			if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("opening the tracer: creating BPF map %s: %w", name, ErrPermission)
			}
			return fmt.Errorf("opening the tracer: creating BPF map %s: %w", name, err)
		}
		t.maps[name] = m
	}
	return nil
}

// Attachments lists what the tracer attached to, and how.
func (t *Tracer) Attachments() []Attachment { return append([]Attachment(nil), t.attach...) }

// Unseen lists, one line each, the targets this kernel did not let the
// tracer attach to, why, and what a trace cannot show without them.
func (t *Tracer) Unseen() []string { return append([]string(nil), t.unseen...) }

// Read returns the next event. It blocks until one arrives, ctx is done
// (ctx's error) or the Tracer is closed (ErrClosed). With ctx already
// done it still returns the events already buffered, then ctx's error:
// the probes write synchronously as packets pass, so after traffic has
// completed this drains everything it produced. A record that cannot be
// decoded is returned as an error; Read may be called again.
func (t *Tracer) Read(ctx context.Context) (Event, error) {
	for {
		// A new deadline only once the last one has passed: reading the
		// clock for every event was a tenth of lvsdiag's CPU in the 6.1
		// guest. While events are buffered ReadInto does not wait; once
		// they are read, a deadline already past ends it at once and the
		// next one is set here, so that it waits at most pollInterval,
		// as before.
		switch {
		case ctx.Err() != nil:
			t.setDeadline(time.Now())
		case t.deadline.IsZero():
			t.setDeadline(time.Now().Add(pollInterval))
		}
		err := t.reader.ReadInto(&t.rec)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if err := ctx.Err(); err != nil {
				return Event{}, err
			}
			t.deadline = time.Time{}
			continue
		case errors.Is(err, ringbuf.ErrClosed):
			return Event{}, ErrClosed
		case err != nil:
			return Event{}, fmt.Errorf("reading trace events: %w", err)
		}
		if t.record != nil {
			if err := t.record.write(t.rec.RawSample); err != nil {
				return Event{}, err
			}
		}
		ev, err := t.dec.decode(t.rec.RawSample)
		if err != nil {
			return Event{}, err
		}
		if !t.bootAt.IsZero() {
			ev.Time = t.bootAt.Add(ev.Hop.At)
		}
		return ev, nil
	}
}

func (t *Tracer) setDeadline(d time.Time) {
	t.deadline = d
	t.reader.SetDeadline(d)
}

// Buffered reports whether the ring buffer holds events that Read
// returns without waiting (probes.BufferedSource).
func (t *Tracer) Buffered() bool {
	t.ringMu.RLock()
	defer t.ringMu.RUnlock()
	return !t.ringClosed && t.reader.AvailableBytes() > 0
}

// Lost is how many events the ring buffer had no room for so far.
func (t *Tracer) Lost() (uint64, error) {
	var perCPU []uint64
	if err := t.maps["lost"].Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("reading the lost events counter: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}

// Missed is how many times the kernel skipped one of the tracer's
// programs so far because it was already running on that CPU (a
// packet's softirq interrupting the program that handles a process's
// own packet): each is a hop no event reports. Needs Linux 5.12.
func (t *Tracer) Missed() (uint64, error) {
	var n uint64
	for _, p := range t.progs {
		st, err := p.Stats()
		if err != nil {
			return n, fmt.Errorf("reading the programs' missed runs: %w", err)
		}
		n += st.RecursionMisses
	}
	return n, nil
}

// Close detaches every program and frees the maps. It unblocks Read.
// Calls after the first return nil.
func (t *Tracer) Close() error {
	t.closeOnce.Do(func() { t.closeErr = t.close() })
	return t.closeErr
}

func (t *Tracer) close() error {
	began := time.Now()
	step := began
	// The links on trampolines and the others detach in two lanes side
	// by side (heldLink says why), attachParallel at a time in each.
	errs := make([]error, len(t.links), len(t.links)+len(t.progs)+len(t.maps)+1)
	var wg sync.WaitGroup
	for _, trampoline := range []bool{true, false} {
		wg.Go(func() {
			var lane sync.WaitGroup
			sem := make(chan struct{}, attachParallel)
			for i, l := range t.links {
				if l.trampoline != trampoline {
					continue
				}
				sem <- struct{}{}
				lane.Go(func() {
					defer func() { <-sem }()
					start := time.Now()
					errs[i] = l.Close()
					// Per kind of link (fentry/fexit, kprobe,
					// kprobe-multi, tracepoint), for the debug log.
					t.closing.since(fmt.Sprintf("close%T", l.Link), start)
				})
			}
			lane.Wait()
		})
	}
	wg.Wait()
	nlinks := len(t.links)
	t.links = nil
	step = t.closing.since("links", step)
	// A syscall a program: only for the debug log (Collect reads it
	// for the summary before Close).
	if t.log.Enabled(context.Background(), slog.LevelDebug) {
		if missed, err := t.Missed(); err == nil {
			t.log.Debug("programs skipped while already running", "missed", missed)
		}
	}
	if t.reader != nil {
		t.ringMu.Lock()
		t.ringClosed = true
		t.ringMu.Unlock()
		errs = append(errs, t.reader.Close())
	}
	for _, p := range t.progs {
		errs = append(errs, p.Close())
	}
	t.progs = nil
	step = t.closing.since("progs", step)
	for _, m := range t.maps {
		errs = append(errs, m.Close())
	}
	t.maps = nil
	t.closing.since("maps", step)
	t.log.Debug("tracer detached", append([]any{"links", nlinks, "total", time.Since(began).Round(time.Millisecond)}, t.closing.attrs()...)...)
	return errors.Join(errs...)
}

var _ io.Closer = (*Tracer)(nil)

// NetNSInode is the inode number of a network namespace, as Filter.NetNS
// wants it: name is a name under /run/netns ("blue", as ip netns names
// it) or a path (/proc/PID/ns/net).
func NetNSInode(name string) (uint32, error) {
	path := name
	if !strings.Contains(name, "/") {
		path = "/run/netns/" + name
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("finding network namespace %s: %w", name, err)
	}
	return uint32(st.Ino), nil
}
