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
	symbols *Symbols

	loadTime time.Duration // spent loading programs, for the log
}

// sharedMaps are created once and shared by every program.
var sharedMaps = []string{"events", "lost", "traced", "frames"}

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
	if err := t.loadSymbols(); err != nil {
		return nil, err
	}
	if err := t.loadDropReasons(); err != nil {
		t.log.Warn("drop reasons are shown as numbers", "err", err)
	}
	t.bootAt = bootTime()
	prepared := time.Now()

	spec, err := loadTrace()
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
	if err := t.createMaps(); err != nil {
		t.Close()
		return nil, err
	}
	for _, tg := range targets {
		if tg.ipvs && !ipvsLoaded {
			t.skip(tg, "the ip_vs module is not loaded")
			continue
		}
		t.attachTarget(tg)
	}
	if _, err := t.attachTracepoint(consumeTracepoint); err != nil {
		t.log.Warn("freed packets are not forgotten: a reused skb address may show a stray hop", "target", consumeTracepoint, "err", err)
	}
	if len(t.attach) == 0 {
		t.Close()
		return nil, fmt.Errorf("opening the tracer: nothing could be attached:\n%s", strings.Join(t.unseen, "\n"))
	}
	t.log.Info("tracer attached", "targets", len(t.attach), "unseen", len(t.unseen),
		"symbols_and_btf", prepared.Sub(began).Round(time.Millisecond), "load", t.loadTime.Round(time.Millisecond),
		"total", time.Since(began).Round(time.Millisecond))
	rd, err := ringbuf.NewReader(t.maps["events"])
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("opening the tracer: reading the ring buffer: %w", err)
	}
	t.reader = rd
	return t, nil
}

func moduleLoaded(name string) bool {
	_, err := os.Stat("/sys/module/" + name)
	return err == nil
}

func (t *Tracer) loadSymbols() error {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return fmt.Errorf("opening the tracer: %w", err)
	}
	defer f.Close()
	syms, err := ParseKallsyms(f)
	if err != nil {
		return fmt.Errorf("opening the tracer: /proc/%w", err)
	}
	t.symbols, t.dec.symbols = syms, syms
	return nil
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
		m, err := ebpf.NewMap(t.spec.Maps[name])
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

// loadProgram loads one program of the object, sharing the maps; adjust
// may change its spec first (the attach type for kprobe-multi).
func (t *Tracer) loadProgram(name string, adjust func(*ebpf.ProgramSpec)) (*ebpf.Program, error) {
	ps, ok := t.spec.Programs[name]
	if !ok {
		return nil, fmt.Errorf("loading BPF program %s: not in the object", name)
	}
	s := *t.spec
	ps = ps.Copy()
	if adjust != nil {
		adjust(ps)
	}
	s.Programs = map[string]*ebpf.ProgramSpec{name: ps}
	start := time.Now()
	defer func() { t.loadTime += time.Since(start) }()
	coll, err := ebpf.NewCollectionWithOptions(&s, ebpf.CollectionOptions{
		MapReplacements: t.maps,
		Cache:           t.btf,
		Programs:        ebpf.ProgramOptions{KernelTypes: t.kernel, ExtraRelocationTargets: t.modules, LogSizeStart: 1 << 20},
	})
	if err != nil {
		return nil, fmt.Errorf("loading BPF program %s: %w", name, err)
	}
	defer coll.Close()
	return coll.DetachProgram(name), nil
}

// attachTarget tries the backends for one target in order and keeps the
// first that attaches; if none does, the target goes to Unseen.
func (t *Tracer) attachTarget(tg target) {
	if tg.kind == kindTracepoint {
		backend, err := t.attachTracepoint(tg.name)
		if err != nil {
			t.skip(tg, reason(err))
			return
		}
		t.attached(tg, backend)
		return
	}
	if !t.symbols.Has(tg.name) {
		t.skip(tg, "not in /proc/kallsyms (inlined or not built into this kernel)")
		return
	}
	var order []Backend
	switch t.opts.Backend {
	case BackendAuto:
		order = []Backend{BackendFentry, BackendKprobe, BackendKprobeMulti}
	default:
		order = []Backend{t.opts.Backend}
	}
	var why []string
	for _, b := range order {
		err := t.attachFunc(tg, b)
		if err == nil {
			t.attached(tg, string(b))
			return
		}
		t.log.Debug("attaching", "target", tg.name, "backend", b, "err", err)
		why = append(why, backendReason(b, err))
	}
	t.skip(tg, strings.Join(why, "; "))
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
func backendReason(b Backend, err error) string {
	var ve *ebpf.VerifierError
	switch {
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

// attachTracepoint attaches NAME's tp_btf program, or its raw_tp one.
func (t *Tracer) attachTracepoint(name string) (string, error) {
	prog, err := t.loadProgram("tp_btf_"+name, nil)
	if err == nil {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err == nil {
			t.keep(prog, l)
			return "tp_btf", nil
		}
		prog.Close()
	}
	errBTF := err
	prog, err = t.loadProgram("raw_tp_"+name, nil)
	if err != nil {
		return "", fmt.Errorf("tp_btf: %w; raw_tp: %w", errBTF, err)
	}
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: name, Program: prog})
	if err != nil {
		prog.Close()
		return "", fmt.Errorf("tp_btf: %w; raw_tp: %w", errBTF, err)
	}
	t.keep(prog, l)
	return "raw_tp", nil
}

func (t *Tracer) keep(p *ebpf.Program, l link.Link) {
	t.progs = append(t.progs, p)
	t.links = append(t.links, l)
}

// attachFunc attaches a function target's entry and/or exit programs
// with one backend, both or neither.
func (t *Tracer) attachFunc(tg target, b Backend) error {
	type half struct {
		prog string
		exit bool
	}
	var halves []half
	prefixEntry, prefixExit := "kprobe_", "kretprobe_"
	if b == BackendFentry {
		prefixEntry, prefixExit = "fentry_", "fexit_"
	}
	if tg.kind == kindEntry || tg.kind == kindEntryExit {
		halves = append(halves, half{prefixEntry + tg.name, false})
	}
	if tg.kind == kindExit || tg.kind == kindEntryExit {
		halves = append(halves, half{prefixExit + tg.name, true})
	}
	// The exit half first: an entry probe without its exit would push
	// frames nobody pops.
	if len(halves) == 2 {
		halves[0], halves[1] = halves[1], halves[0]
	}
	var progs []*ebpf.Program
	var links []link.Link
	undo := func() {
		for _, l := range links {
			l.Close()
		}
		for _, p := range progs {
			p.Close()
		}
	}
	for _, h := range halves {
		var adjust func(*ebpf.ProgramSpec)
		if b == BackendKprobeMulti {
			adjust = func(ps *ebpf.ProgramSpec) { ps.AttachType = ebpf.AttachTraceKprobeMulti }
		}
		prog, err := t.loadProgram(h.prog, adjust)
		if err != nil {
			undo()
			return err
		}
		progs = append(progs, prog)
		var l link.Link
		switch {
		case b == BackendFentry:
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		case b == BackendKprobe && !h.exit:
			l, err = link.Kprobe(tg.name, prog, nil)
		case b == BackendKprobe && h.exit:
			l, err = link.Kretprobe(tg.name, prog, nil)
		case b == BackendKprobeMulti && !h.exit:
			l, err = link.KprobeMulti(prog, link.KprobeMultiOptions{Symbols: []string{tg.name}})
		case b == BackendKprobeMulti && h.exit:
			l, err = link.KretprobeMulti(prog, link.KprobeMultiOptions{Symbols: []string{tg.name}})
		}
		if err != nil {
			undo()
			return err
		}
		links = append(links, l)
	}
	t.progs = append(t.progs, progs...)
	t.links = append(t.links, links...)
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
func (t *Tracer) Close() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
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
	return errors.Join(errs...)
}

var _ io.Closer = (*Tracer)(nil)
