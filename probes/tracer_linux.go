//go:build linux && amd64

package probes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
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
	links   []link.Link
	reader  *ringbuf.Reader
	dec     decoder
	rec     ringbuf.Record
	record  *recordWriter
	bootAt  time.Time // wall clock at CLOCK_MONOTONIC zero
	attach  []Attachment
	unseen  []string
	// waitSymbols reads kallsyms the first time it is called and returns
	// it (nil if it could not be read).
	waitSymbols func() *Symbols

	loadMu   sync.Mutex
	loadTime time.Duration // spent loading programs (summed over loaders), for the log

	closeOnce sync.Once
	closeErr  error
}

// ringBytes is the ring buffer's size: 16 MiB, about 44,000 events
// (some 3,000 packets of a director's busiest path) of burst that the
// reader may fall behind by before events are lost and counted.
const ringBytes = 16 << 20

// sharedMaps are created once and shared by every program.
var sharedMaps = []string{"events", "lost", "traced", "frames"}

// attachParallel is how many targets attach, or detach, at once. One:
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
// context again.
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
	// kallsyms (a few hundred thousand lines the kernel formats one by
	// one: a second or two of CPU under emulation) only names drop
	// locations and answers for functions BTF does not list: it is read
	// when first needed, so a trace that sees no drop never pays for it
	// (read in the background at start, it took a fifth of a traced
	// director's CPU in the first seconds).
	t.waitSymbols = sync.OnceValue(func() *Symbols {
		syms, err := t.readSymbols()
		if err != nil {
			t.log.Warn("drop locations are shown as addresses", "err", err)
		}
		return syms
	})
	t.dec.lazySymbols = t.waitSymbols
	if err := t.loadDropReasons(); err != nil {
		t.log.Warn("drop reasons are shown as numbers", "err", err)
	}
	t.bootAt = bootTime()
	spec, err := loadSpec()
	if err != nil {
		return nil, fmt.Errorf("opening the tracer: loading the BPF object: %w", err)
	}
	if err := setConstants(spec, consts); err != nil {
		return nil, fmt.Errorf("opening the tracer: %w", err)
	}
	t.spec = spec
	if err := t.loadTypes(ipvsLoaded); err != nil {
		return nil, err
	}
	prepared := time.Now()
	if err := t.createMaps(); err != nil {
		t.Close()
		return nil, err
	}
	var funcs, tracepoints []target
	for _, tg := range targets {
		switch {
		case !targetSelected(tg.name):
		case tg.stack && opts.Hops != HopsAll, tg.nat && opts.NoNAT:
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
	// The kernel verifies programs of separate loads side by side: the
	// tracepoints load while the functions do.
	tps := make(chan []tracepointResult, 1)
	go func() { tps <- t.loadTracepoints(tracepoints) }()
	t.attachFuncs(funcs)
	t.applyTracepoints(<-tps)
	if len(t.attach) == 0 {
		t.Close()
		return nil, fmt.Errorf("opening the tracer: nothing could be attached:\n%s", strings.Join(t.unseen, "\n"))
	}
	t.log.Info("tracer attached", "targets", len(t.attach), "unseen", len(t.unseen),
		"btf", prepared.Sub(began).Round(time.Millisecond), "load", t.loadTime.Round(time.Millisecond),
		"total", time.Since(began).Round(time.Millisecond))
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
	return t.waitSymbols().Has(tg.name)
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

func (t *Tracer) createMaps() error {
	for _, name := range sharedMaps {
		spec := t.spec.Maps[name]
		if name == "events" {
			// The spec itself (this Open's copy of the object): the
			// programs are loaded against it.
			spec.MaxEntries = ringBytes
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

// loadPrograms loads programs of the object in one collection,
// sharing the maps; adjust may change their specs first (the attach
// type for kprobe-multi).
func (t *Tracer) loadPrograms(names []string, adjust func(*ebpf.ProgramSpec)) (map[string]*ebpf.Program, error) {
	s := *t.spec
	s.Programs = make(map[string]*ebpf.ProgramSpec, len(names))
	for _, name := range names {
		ps, ok := t.spec.Programs[name]
		if !ok {
			return nil, fmt.Errorf("loading BPF program %s: not in the object", name)
		}
		ps = ps.Copy()
		if adjust != nil {
			adjust(ps)
		}
		s.Programs[name] = ps
	}
	start := time.Now()
	defer func() {
		t.loadMu.Lock()
		t.loadTime += time.Since(start)
		t.loadMu.Unlock()
	}()
	coll, err := ebpf.NewCollectionWithOptions(&s, ebpf.CollectionOptions{
		MapReplacements: t.maps,
		Cache:           t.btf,
		Programs:        ebpf.ProgramOptions{KernelTypes: t.kernel, ExtraRelocationTargets: t.modules, LogSizeStart: 1 << 20},
	})
	if err != nil {
		if len(names) == 1 {
			return nil, fmt.Errorf("loading BPF program %s: %w", names[0], err)
		}
		return nil, fmt.Errorf("loading %d BPF programs: %w", len(names), err)
	}
	defer coll.Close()
	progs := make(map[string]*ebpf.Program, len(names))
	for _, name := range names {
		progs[name] = coll.DetachProgram(name)
	}
	return progs, nil
}

// attachFuncs tries the backends in order: each loads the programs of
// the targets still pending in one batch, and the targets it cannot
// attach go on to the next; those no backend attaches go to Unseen.
func (t *Tracer) attachFuncs(pending []target) {
	order := []Backend{t.opts.Backend}
	if t.opts.Backend == BackendAuto {
		order = []Backend{BackendFentry, BackendKprobe, BackendKprobeMulti}
	}
	why := map[string][]string{}
	for _, b := range order {
		if len(pending) == 0 {
			break
		}
		var names []string
		for _, tg := range pending {
			names = append(names, programNames(tg, b)...)
		}
		loaded := t.loadBatch(names, b)
		// Attaching waits for the kernel to patch code and for RCU grace
		// periods: attachParallel targets attach side by side.
		errs := make([]error, len(pending))
		links := make([][]link.Link, len(pending))
		var wg sync.WaitGroup
		sem := make(chan struct{}, attachParallel)
		for i, tg := range pending {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				links[i], errs[i] = attachFunc(tg, b, loaded)
			}()
		}
		wg.Wait()
		var next []target
		for i, tg := range pending {
			if err := errs[i]; err != nil {
				t.log.Debug("attaching", "target", tg.name, "backend", b, "err", err)
				why[tg.name] = append(why[tg.name], backendReason(tg, b, err))
				next = append(next, tg)
				continue
			}
			for _, name := range programNames(tg, b) {
				loaded[name].used = true
				t.progs = append(t.progs, loaded[name].prog)
			}
			t.links = append(t.links, links[i]...)
			t.attached(tg, string(b))
		}
		for _, l := range loaded {
			if l.prog != nil && !l.used {
				l.prog.Close()
			}
		}
		pending = next
	}
	for _, tg := range pending {
		t.skip(tg, strings.Join(why[tg.name], "; "))
	}
}

// programNames are a function target's programs for a backend, the
// return probe first: an entry probe without its exit would push frames
// nobody pops.
func programNames(tg target, b Backend) []string {
	entry, exit := "kprobe_", "kretprobe_"
	if b == BackendFentry {
		entry, exit = "fentry_", "fexit_"
	}
	var names []string
	if tg.kind == kindExit || tg.kind == kindEntryExit {
		names = append(names, exit+tg.name)
	}
	if tg.kind == kindEntry || tg.kind == kindEntryExit {
		names = append(names, entry+tg.name)
	}
	return names
}

type loadedProgram struct {
	prog *ebpf.Program
	err  error
	used bool
}

// loadBatch loads the named programs in up to loadParallel collections
// side by side (the kernel verifies privileged loads in parallel); where
// the kernel refuses one program of a collection, that collection's
// programs load one by one so the others still load.
func (t *Tracer) loadBatch(names []string, b Backend) map[string]*loadedProgram {
	adjust := func(*ebpf.ProgramSpec) {}
	if b == BackendKprobeMulti {
		adjust = func(ps *ebpf.ProgramSpec) { ps.AttachType = ebpf.AttachTraceKprobeMulti }
	}
	n := max(1, min(loadParallel(), len(names)))
	parts := make([]map[string]*loadedProgram, n)
	var wg sync.WaitGroup
	for i := range n {
		chunk := names[i*len(names)/n : (i+1)*len(names)/n]
		wg.Go(func() { parts[i] = t.loadChunk(chunk, b, adjust) })
	}
	wg.Wait()
	out := make(map[string]*loadedProgram, len(names))
	for _, p := range parts {
		maps.Copy(out, p)
	}
	return out
}

// loadParallel is how many collections loadBatch loads at once: one per
// CPU, at most 4 (the programs of one backend are some 20).
func loadParallel() int { return min(runtime.NumCPU(), 4) }

func (t *Tracer) loadChunk(names []string, b Backend, adjust func(*ebpf.ProgramSpec)) map[string]*loadedProgram {
	out := make(map[string]*loadedProgram, len(names))
	progs, err := t.loadPrograms(names, adjust)
	if err == nil {
		for name, p := range progs {
			out[name] = &loadedProgram{prog: p}
		}
		return out
	}
	t.log.Debug("loading programs one by one", "backend", b, "err", err)
	for _, name := range names {
		ps, err := t.loadPrograms([]string{name}, adjust)
		out[name] = &loadedProgram{prog: ps[name], err: err}
	}
	return out
}

func (t *Tracer) attached(tg target, backend string) {
	t.attach = append(t.attach, Attachment{Target: tg.name, Backend: backend})
	t.log.Debug("attached", "target", tg.name, "backend", backend)
}

func (t *Tracer) skip(tg target, why string) {
	line := tg.name + ": " + why + ": " + tg.hides
	t.unseen = append(t.unseen, line)
	t.log.Warn("not traced", "target", tg.name, "why", why, "hides", tg.hides)
}

// backendReason says in a few words why a backend could not attach.
func backendReason(tg target, b Backend, err error) string {
	var ve *ebpf.VerifierError
	switch {
	case b == BackendFentry && tg.args > 6 &&
		(errors.Is(err, ebpf.ErrNotSupported) || errors.As(err, &ve) && logMentions(ve, "arguments")):
		// Linux before 6.6 (x86) builds no trampoline for them.
		return fmt.Sprintf("fentry on this kernel refuses functions with more than 6 arguments (it has %d)", tg.args)
	case b == BackendKprobe && !kprobePMU():
		return "kprobes are not available on this kernel"
	case errors.Is(err, ebpf.ErrNotSupported):
		return string(b) + " is not available on this kernel"
	case b == BackendFentry && errors.Is(err, syscall.EPERM):
		return "fentry is refused by this kernel (operation not permitted)"
	case errors.As(err, &ve):
		return string(b) + ": the verifier refused it (" + lastLine(ve) + ")"
	}
	return string(b) + ": " + err.Error()
}

// kprobePMU reports whether the kernel has the kprobe perf event source
// (CONFIG_KPROBES with perf events).
func kprobePMU() bool {
	_, err := os.Stat("/sys/bus/event_source/devices/kprobe/type")
	return err == nil
}

// reason says in a few words why a kernel refused an attachment.
func reason(err error) string {
	var ve *ebpf.VerifierError
	switch {
	case errors.Is(err, ErrPermission):
		return ErrPermission.Error()
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, os.ErrNotExist) && strings.Contains(err.Error(), "kprobe"):
		return "not supported by this kernel"
	case errors.As(err, &ve):
		return "the verifier refused it (" + lastLine(ve) + ")"
	}
	return err.Error()
}

func logMentions(ve *ebpf.VerifierError, word string) bool {
	for _, l := range ve.Log {
		if strings.Contains(l, word) {
			return true
		}
	}
	return false
}

// lastLine is the verifier's complaint: its last line before the
// statistics.
func lastLine(ve *ebpf.VerifierError) string {
	for i := len(ve.Log) - 1; i >= 0; i-- {
		l := strings.TrimSpace(ve.Log[i])
		if l == "" || strings.HasPrefix(l, "processed ") || strings.HasPrefix(l, "verification time") ||
			strings.HasPrefix(l, "stack depth") || strings.HasPrefix(l, "mark_precise") {
			continue
		}
		return l
	}
	return ve.Cause.Error()
}

// tracepointResult is one tracepoint's program and link, or why it
// could not be attached.
type tracepointResult struct {
	tg      target
	backend string
	prog    *ebpf.Program
	link    link.Link
	err     error
}

// loadTracepoints loads and attaches the tracepoint targets, and the
// consume_skb tracepoint that keeps traced from holding freed skbs. It
// changes nothing in t but the load time: applyTracepoints does, so it
// may run beside attachFuncs.
func (t *Tracer) loadTracepoints(tgs []target) []tracepointResult {
	if targetSelected(consumeTracepoint) {
		tgs = append(tgs, target{name: consumeTracepoint, kind: kindTracepoint})
	}
	out := make([]tracepointResult, len(tgs))
	for i, tg := range tgs {
		out[i] = t.attachTracepoint(tg)
	}
	return out
}

// applyTracepoints records loadTracepoints' results: the tracepoints'
// attachments come first in Attachments, as they are the first hops.
func (t *Tracer) applyTracepoints(results []tracepointResult) {
	var attach []Attachment
	for _, r := range results {
		switch {
		case r.err != nil && r.tg.name == consumeTracepoint:
			t.log.Warn("freed packets are not forgotten: a reused skb address may show a stray hop", "target", consumeTracepoint, "err", r.err)
		case r.err != nil:
			t.skip(r.tg, reason(r.err))
		default:
			t.keep(r.prog, r.link)
			if r.tg.name != consumeTracepoint {
				attach = append(attach, Attachment{Target: r.tg.name, Backend: r.backend})
				t.log.Debug("attached", "target", r.tg.name, "backend", r.backend)
			}
		}
	}
	t.attach = append(attach, t.attach...)
}

// attachTracepoint attaches tg's tp_btf program, or its raw_tp one.
func (t *Tracer) attachTracepoint(tg target) tracepointResult {
	name := tg.name
	r := tracepointResult{tg: tg, backend: "tp_btf"}
	r.prog, r.link, r.err = t.attachTracepointWith("tp_btf_"+name, func(p *ebpf.Program) (link.Link, error) {
		return link.AttachTracing(link.TracingOptions{Program: p})
	})
	if r.err == nil {
		return r
	}
	errBTF := r.err
	r.backend = "raw_tp"
	r.prog, r.link, r.err = t.attachTracepointWith("raw_tp_"+name, func(p *ebpf.Program) (link.Link, error) {
		return link.AttachRawTracepoint(link.RawTracepointOptions{Name: name, Program: p})
	})
	if r.err != nil {
		r.err = fmt.Errorf("tp_btf: %w; raw_tp: %w", errBTF, r.err)
	}
	return r
}

func (t *Tracer) attachTracepointWith(prog string, attach func(*ebpf.Program) (link.Link, error)) (*ebpf.Program, link.Link, error) {
	progs, err := t.loadPrograms([]string{prog}, nil)
	if err != nil {
		return nil, nil, err
	}
	l, err := attach(progs[prog])
	if err != nil {
		progs[prog].Close()
		return nil, nil, err
	}
	return progs[prog], l, nil
}

func (t *Tracer) keep(p *ebpf.Program, l link.Link) {
	t.progs = append(t.progs, p)
	t.links = append(t.links, l)
}

// attachFunc attaches a function target's loaded entry and/or exit
// programs with one backend: both or neither. It only reads loaded, so
// targets attach concurrently.
func attachFunc(tg target, b Backend, loaded map[string]*loadedProgram) ([]link.Link, error) {
	var links []link.Link
	undo := func() {
		for _, l := range links {
			l.Close()
		}
	}
	for _, name := range programNames(tg, b) {
		lp := loaded[name]
		if lp == nil || lp.err != nil {
			undo()
			if lp == nil {
				return nil, fmt.Errorf("loading BPF program %s: not loaded", name)
			}
			return nil, lp.err
		}
		exit := strings.HasPrefix(name, "kretprobe_") || strings.HasPrefix(name, "fexit_")
		var l link.Link
		var err error
		switch {
		case b == BackendFentry:
			l, err = link.AttachTracing(link.TracingOptions{Program: lp.prog})
		case b == BackendKprobe && !exit:
			l, err = link.Kprobe(tg.name, lp.prog, nil)
		case b == BackendKprobe && exit:
			l, err = link.Kretprobe(tg.name, lp.prog, nil)
		case b == BackendKprobeMulti && !exit:
			l, err = link.KprobeMulti(lp.prog, link.KprobeMultiOptions{Symbols: []string{tg.name}})
		case b == BackendKprobeMulti && exit:
			l, err = link.KretprobeMulti(lp.prog, link.KprobeMultiOptions{Symbols: []string{tg.name}})
		}
		if err != nil {
			undo()
			return nil, err
		}
		links = append(links, l)
	}
	return links, nil
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
		deadline := time.Now().Add(pollInterval)
		if ctx.Err() != nil {
			deadline = time.Now()
		}
		t.reader.SetDeadline(deadline)
		err := t.reader.ReadInto(&t.rec)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if err := ctx.Err(); err != nil {
				return Event{}, err
			}
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

// Close detaches every program and frees the maps. It unblocks Read.
// Calls after the first return nil.
func (t *Tracer) Close() error {
	t.closeOnce.Do(func() { t.closeErr = t.close() })
	return t.closeErr
}

func (t *Tracer) close() error {
	// Each detach waits for an RCU grace period: attachParallel of
	// them at a time.
	errs := make([]error, len(t.links), len(t.links)+len(t.progs)+len(t.maps)+1)
	var wg sync.WaitGroup
	sem := make(chan struct{}, attachParallel)
	for i, l := range t.links {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = l.Close()
		}()
	}
	wg.Wait()
	t.links = nil
	if t.reader != nil {
		errs = append(errs, t.reader.Close())
	}
	for _, p := range t.progs {
		errs = append(errs, p.Close())
	}
	t.progs = nil
	for _, m := range t.maps {
		errs = append(errs, m.Close())
	}
	t.maps = nil
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
