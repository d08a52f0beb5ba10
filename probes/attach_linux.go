//go:build linux && amd64

// Attaching the loaded programs to their targets, backend by backend
// (loading them is load_linux.go).

package probes

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// attachFuncs tries the backends in order: each loads the programs of
// the targets still pending in one batch, and the targets it cannot
// attach go on to the next; those no backend attaches go to Unseen.
// loadsDone waits for Open's other loads: it is called before the first
// attach. ahead is kprobeAhead's answer for pending, multi multiFirst's:
// fentry's batch loads multi's kprobe-multi programs in place of their
// fentry ones, and attaches them beside its own links.
func (t *Tracer) attachFuncs(pending []target, ahead, multi map[string]bool, loadsDone func()) {
	order := t.backendOrder()
	why := map[string][]string{}
	// early holds the next backend's programs, loaded in the batch of
	// the one before for the targets that one is known to refuse.
	early := map[string]*loadedProgram{}
	for i, b := range order {
		if len(pending) == 0 {
			break
		}
		var next Backend
		if i+1 < len(order) {
			next = order[i+1]
		}
		var try, multiTry []target
		var names, alone, nextNames, multiNames []string
		refused := map[string]bool{}
		seen := map[string]bool{}
		for _, tg := range pending {
			if b == BackendFentry && multi[tg.name] {
				// Its kprobe-multi program loads in this batch instead,
				// and attaches to all of them at once (multiFirst).
				multiTry = append(multiTry, tg)
				multiNames = []string{multiProgram}
				continue
			}
			if kprobeFirst(b, ahead, tg) {
				// Its next backend's programs load in this batch
				// instead (kprobeAhead says why).
				refused[tg.name] = true
				if tg.args > 6 {
					why[tg.name] = append(why[tg.name], fentryArgsReason(tg))
				}
				for _, n := range programNames(tg, next) {
					if !seen[n] {
						nextNames = append(nextNames, n)
					}
					seen[n] = true
				}
				continue
			}
			try = append(try, tg)
			for _, n := range programNames(tg, b) {
				switch {
				case seen[n] || early[n] != nil:
				// fentry programs of functions with more than 6
				// arguments load one by one: a refusal inside a
				// collection makes all of its programs load again one
				// by one.
				case b == BackendFentry && tg.args > 6:
					alone = append(alone, n)
				default:
					names = append(names, n)
				}
				seen[n] = true
			}
		}
		start := time.Now()
		sets := []loadSet{{b, names}, {next, nextNames}}
		if len(multiNames) > 0 {
			sets = append(sets, loadSet{BackendKprobeMulti, multiNames})
		}
		loaded := t.loadBatch(sets, alone, b)
		for n, lp := range early {
			if loaded[n] == nil {
				loaded[n] = lp
			} else {
				lp.prog.Close()
			}
		}
		clear(early)
		t.open.since("load_wall/"+string(b), start)
		loadsDone()
		// kprobe-multi's links attach beside the others: the kernel
		// spends most of such a link looking its symbols up in every
		// symbol it has (some 60 ms a link in the VM, a module's
		// functions after all of vmlinux's), on one CPU, while the
		// trampolines' links keep the other.
		var grouped []link.Link
		var multiErr error
		var multiLane sync.WaitGroup
		if len(multiTry) > 0 {
			multiLane.Go(func() {
				start := time.Now()
				grouped, multiErr = attachMultiWith(multiTry, loaded, func(target) []string { return multiNames })
				t.open.since("attach/"+string(BackendKprobeMulti), start)
			})
		}
		start = time.Now()
		links, errs := t.attachTargets(try, b, loaded)
		t.open.since("attach/"+string(b), start)
		multiLane.Wait()
		attachedWith := map[string]Backend{}
		for i, tg := range try {
			if err := errs[i]; err != nil {
				t.log.Debug("attaching", "target", tg.name, "backend", b, "err", err)
				why[tg.name] = append(why[tg.name], backendReason(tg, b, err))
				refused[tg.name] = true
				continue
			}
			t.hold(tg, b, loaded, links[i])
			attachedWith[tg.name] = b
		}
		if len(multiTry) > 0 && multiErr == nil {
			lp := loaded[multiProgram]
			lp.used = true
			t.progs = append(t.progs, lp.prog)
			for _, tg := range multiTry {
				attachedWith[tg.name] = BackendKprobeMulti
			}
			for _, l := range grouped {
				t.links = append(t.links, heldLink{Link: l})
			}
		}
		if len(multiTry) > 0 && multiErr != nil {
			// A kernel without kprobe-multi (no fprobe): fentry takes
			// them after all, one program each, and the backends after
			// it those fentry refuses.
			t.log.Debug("attaching with kprobe-multi", "targets", len(multiTry), "err", multiErr)
			var fentryNames []string
			for _, tg := range multiTry {
				fentryNames = append(fentryNames, programNames(tg, b)...)
			}
			more := t.loadBatch([]loadSet{{b, fentryNames}}, nil, b)
			maps.Copy(loaded, more)
			links, errs := t.attachTargets(multiTry, b, more)
			for i, tg := range multiTry {
				if err := errs[i]; err != nil {
					why[tg.name] = append(why[tg.name], backendReason(tg, b, err))
					refused[tg.name] = true
					continue
				}
				t.hold(tg, b, more, links[i])
				attachedWith[tg.name] = b
			}
		}
		// In the targets' order, whichever backend took them.
		for _, tg := range pending {
			if b, ok := attachedWith[tg.name]; ok {
				t.attached(tg, string(b))
			}
		}
		for n, l := range loaded {
			switch {
			case l.prog == nil || l.used:
			case l.backend == next:
				early[n] = l
			default:
				l.prog.Close()
			}
		}
		pending = slices.DeleteFunc(pending, func(tg target) bool { return !refused[tg.name] })
	}
	for _, l := range early {
		l.prog.Close()
	}
	for _, tg := range pending {
		t.skip(tg, strings.Join(why[tg.name], "; "))
	}
}

// hold keeps tg's programs of backend b (each once) and its links.
func (t *Tracer) hold(tg target, b Backend, loaded map[string]*loadedProgram, links []link.Link) {
	for _, name := range programNames(tg, b) {
		if lp := loaded[name]; !lp.used {
			lp.used = true
			t.progs = append(t.progs, lp.prog)
		}
	}
	for _, l := range links {
		t.links = append(t.links, heldLink{Link: l, trampoline: b == BackendFentry})
	}
}

// backendOrder is the backends attachFuncs tries, in order.
func (t *Tracer) backendOrder() []Backend {
	if t.opts.Backend == BackendAuto {
		return []Backend{BackendFentry, BackendKprobe, BackendKprobeMulti}
	}
	return []Backend{t.opts.Backend}
}

// kprobeAhead names the targets auto attaches with kprobes without
// trying fentry first, on a kernel whose fentry refuses functions with
// more than 6 arguments (Linux before 6.6): those functions, whose
// trampolines it would refuse at attach, after their programs'
// verification; and the functions that share a kprobe program with one
// of them (ip_vs_conn_in_get and ip_vs_schedule share kretprobe_conn
// with ip_vs_conn_new). That program is verified for every function of
// its shape anyway (on 6.1 with a DR filter, 18,634 instructions), and
// their own fexit programs would be verified on top of it (10,451 each).
// Only where the kernel has kprobes: otherwise fentry is tried first.
// And only with a filter that matches packets by address, port or
// protocol: without one the fexit programs verify in a fraction of
// that, and each kprobe attached costs more than the verification it
// saves (6.1, every IPVS hop, no filter: attach 1.29 s with them moved,
// 1.09 s without, medians of 3 pairs; the kprobe attach phase
// 114-159 ms against 60-78 ms).
// Not every IPVS function (trace17's choice, measured and reverted):
// with all of them on kprobes, Open on 6.1 took 0.84 times as long for
// one DR service and 0.79 for every IPVS hop (4 pairs, quiet host), and
// a trace matching every packet cost the same, but a trace matching
// nothing cost the director's traffic more: 61-124% of the untraced
// rate in six turns of two runs (median about 70%), against 79-103%
// (median 99%) for this choice in one run, as a kprobe and a kretprobe
// then trap on ip_vs_in_hook for every packet, whatever the filter
// (BenchmarkVMTraceThroughput, 6.1, host load 1.4-1.9).
// kprobeFirst reports whether fentry's batch loads tg's kprobe programs
// in place of its fentry programs: Open warms only what this says loads,
// so the two must agree. ahead is non-nil only for auto, whose backend
// after fentry is kprobe.
func kprobeFirst(b Backend, ahead map[string]bool, tg target) bool {
	return b == BackendFentry && ahead[tg.name]
}

func (t *Tracer) kprobeAhead(pending []target) map[string]bool {
	if t.opts.Backend != BackendAuto || fentryManyArgs() {
		return nil
	}
	shapes := map[string]bool{}
	for _, tg := range pending {
		if tg.args > 6 {
			shapes[tg.kprobe] = true
		}
	}
	ahead := map[string]bool{}
	for _, tg := range pending {
		switch {
		case tg.args > 6:
			ahead[tg.name] = true
		case shapes[tg.kprobe] && !t.opts.Filter.matchesAll() && kprobePMU():
			ahead[tg.name] = true
		}
	}
	return ahead
}

// fentryManyArgs reports whether this kernel builds trampolines for
// functions with more than 6 arguments: x86-64 does since Linux 6.6.
// Before, such an fentry program loads (its verification is some ten
// thousand instructions with a filter, on 6.1) and only its attach is
// refused.
var fentryManyArgs = sync.OnceValue(func() bool {
	major, minor, ok := kernelRelease()
	return !ok || major > 6 || major == 6 && minor >= 6
})

// kernelRelease is the running kernel's version, from uname's release
// ("6.1.0-41-amd64").
func kernelRelease() (major, minor int, ok bool) {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return 0, 0, false
	}
	var b []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return parseRelease(string(b))
}

// fentryArgsReason says why fentry cannot attach to tg on this kernel.
func fentryArgsReason(tg target) string {
	// Linux before 6.6 (x86) builds no trampoline for them.
	return fmt.Sprintf("fentry on this kernel refuses functions with more than 6 arguments (it has %d)", tg.args)
}

// attachTargets attaches each pending target with backend b, returning
// per target its links or why not. kprobe-multi first tries one link
// per program for all the targets that share it (one ftrace update for
// them all, where a link per target costs one each, on attach and on
// detach); if any of those links is refused, it closes them and goes
// target by target, to find which.
func (t *Tracer) attachTargets(pending []target, b Backend, loaded map[string]*loadedProgram) ([][]link.Link, []error) {
	errs := make([]error, len(pending))
	links := make([][]link.Link, len(pending))
	if b == BackendKprobeMulti {
		grouped, err := attachMulti(pending, loaded)
		if err == nil {
			// Each target holds the group's links once: Close closes each
			// link once, whichever target holds it.
			links[0] = grouped
			return links, errs
		}
		t.log.Debug("attaching kprobe-multi target by target", "err", err)
	}
	// Attaching waits for the kernel to patch code and for RCU grace
	// periods: attachParallel targets attach side by side.
	var wg sync.WaitGroup
	sem := make(chan struct{}, attachParallel)
	for i, tg := range pending {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			links[i], errs[i] = t.attachFunc(tg, b, loaded)
		}()
	}
	wg.Wait()
	return links, errs
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
		return fentryArgsReason(tg)
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
	// The tp_btf programs load as one collection (one BTF, one set of
	// data sections, not one per tracepoint); a tracepoint whose program
	// the kernel refuses in the batch, or will not attach, goes its own
	// way, ending with raw_tp.
	names := make([]string, len(tgs))
	for i, tg := range tgs {
		names[i] = "tp_btf_" + tg.name
	}
	progs, err := t.loadPrograms(names, nil)
	for i, tg := range tgs {
		if err == nil {
			p := progs[names[i]]
			start := time.Now()
			l, aerr := link.AttachTracing(link.TracingOptions{Program: p})
			t.linked(tg.name, names[i], start)
			if aerr == nil {
				out[i] = tracepointResult{tg: tg, backend: "tp_btf", prog: p, link: l}
				continue
			}
			p.Close()
		}
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
	t.links = append(t.links, heldLink{Link: l})
}

// heldLink is an attached link, and whether it is on a BPF trampoline
// (fentry, fexit): Close detaches those and the others in two lanes side
// by side, as their detaches wait for different things.
//
// Detaching a function's last fentry or fexit link removes its
// trampoline: the kernel unregisters the trampoline's ftrace_ops, which
// waits for an RCU-tasks-rude and an RCU-tasks grace period
// (ftrace_shutdown, 6.1 and 6.12) with the ftrace locks held, so the
// removals go one at a time, some 130-300 ms each in the VM: RCU-tasks
// takes any task runnable as its grace period begins for a holdout and
// then sleeps HZ/10 (100 ms) before it looks again, and its thread
// sleeps as long again between grace periods. A kprobe's detach waits
// for normal RCU grace periods instead (its perf event's tracepoint, the
// kprobe's unregistration), a tracepoint's for none: they go meanwhile,
// though a kprobe's detach also takes the ftrace lock, and beside the
// removals the four of one DR service took 0.8-3.5 s against 0.4-1.1 s.
// On 6.1 (auto: kprobes for the IPVS functions of more than 6 arguments
// and their shape) Close took 0.80 times as long as one link at a time
// for one DR service (0.42-1.50) and 0.88 for every IPVS hop
// (0.56-1.07), medians of 16 pairs in four runs against f23ad54, host
// load 4-8 (BenchmarkVMAttach); on 6.12, where auto attaches no kprobe,
// 1.14 (0.65-1.71) and 0.94 (0.83-1.07), 4 pairs: within its noise.
type heldLink struct {
	link.Link
	trampoline bool
}

// attachFunc attaches a function target's loaded entry and/or exit
// programs with one backend: both or neither. It only reads loaded, so
// targets attach concurrently.
func (t *Tracer) attachFunc(tg target, b Backend, loaded map[string]*loadedProgram) ([]link.Link, error) {
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
		start := time.Now()
		switch {
		case b == BackendFentry:
			l, err = link.AttachTracing(link.TracingOptions{Program: lp.prog})
		// The cookie tells a shared kprobe program which function fired.
		case b == BackendKprobe && !exit:
			l, err = link.Kprobe(tg.name, lp.prog, &link.KprobeOptions{Cookie: uint64(tg.fn)})
		case b == BackendKprobe && exit:
			l, err = link.Kretprobe(tg.name, lp.prog, &link.KprobeOptions{Cookie: uint64(tg.fn)})
		case b == BackendKprobeMulti && !exit:
			l, err = link.KprobeMulti(lp.prog, link.KprobeMultiOptions{Symbols: []string{tg.name}, Cookies: []uint64{uint64(tg.fn)}})
		case b == BackendKprobeMulti && exit:
			l, err = link.KretprobeMulti(lp.prog, link.KprobeMultiOptions{Symbols: []string{tg.name}, Cookies: []uint64{uint64(tg.fn)}})
		}
		t.linked(tg.name, name, start)
		if err != nil {
			undo()
			return nil, err
		}
		links = append(links, l)
	}
	return links, nil
}

// linked adds one link's attach, from start, to Open's phases by kind
// of program (link/fentry, link/fexit, link/kprobe, link/kretprobe,
// link/tp), and logs it at debug level: what each link waits for
// differs by kind and by kernel.
func (t *Tracer) linked(target, prog string, start time.Time) {
	took := time.Since(start)
	kind, _, _ := strings.Cut(prog, "_")
	t.open.add("link/"+kind, took)
	t.log.Debug("linked", "target", target, "program", prog, "took", took)
}
