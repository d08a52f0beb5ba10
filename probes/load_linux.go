//go:build linux && amd64

// Loading the object's programs into the kernel: in collections that
// share the maps, side by side, one by one where the kernel refuses a
// collection.

package probes

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// loadPrograms loads programs of the object in one collection,
// sharing the maps; adjust may change their specs first (the attach
// type for kprobe-multi).
func (t *Tracer) loadPrograms(names []string, adjust func(*ebpf.ProgramSpec)) (map[string]*ebpf.Program, error) {
	start := time.Now()
	debug := t.debug()
	s := *t.spec
	s.Programs = make(map[string]*ebpf.ProgramSpec, len(names))
	for _, name := range names {
		ps, ok := t.spec.Programs[name]
		if !ok {
			return nil, fmt.Errorf("loading BPF program %s: not in the object", name)
		}
		ps = withoutLineInfo(ps)
		if adjust != nil {
			adjust(ps)
		}
		s.Programs[name] = ps
	}
	popts := ebpf.ProgramOptions{KernelTypes: t.kernel, ExtraRelocationTargets: t.modules, LogSizeStart: 1 << 20}
	if debug {
		// The verifier's own count and time, for the debug log.
		popts.LogLevel = ebpf.LogLevelStats
	}
	coll, err := ebpf.NewCollectionWithOptions(&s, ebpf.CollectionOptions{
		MapReplacements: t.maps,
		Cache:           t.btf,
		Programs:        popts,
	})
	t.open.since("load", start)
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
		if debug {
			insns, took := verifierStats(progs[name])
			t.open.add("verify", took)
			t.log.Debug("loaded", "program", name, "verified_insns", insns, "verify", took)
		}
	}
	return progs, nil
}

// withoutLineInfo copies a program's spec without its source lines.
// They are some 600 lines a program, which the loader writes into each
// program's BTF and the kernel then parses and checks: a fifth of a
// program's load under emulation, for lines that only a verifier's
// refusal would print beside its instructions. The function and CO-RE
// information stays, and so does each function's first line: the loader
// may add lines of its own (comments on rewritten instructions), and
// the kernel then wants one where each function begins.
func withoutLineInfo(ps *ebpf.ProgramSpec) *ebpf.ProgramSpec {
	cp := *ps
	cp.Instructions = make(asm.Instructions, len(ps.Instructions))
	for i, ins := range ps.Instructions {
		if btf.FuncMetadata(&ins) == nil {
			ins = ins.WithSource(nil)
		}
		cp.Instructions[i] = ins
	}
	return &cp
}

// warmTypes makes, from this one goroutine, every BTF lookup the
// library will make while loading the named programs side by side, so
// that there they find the types already inflated.
//
// cilium/ebpf v0.22.0 cannot take these lookups side by side: a module's
// BTF decoder (ip_vs's, or any module's the library searches for an
// attach target) inflates the kernel's types it refers to under its own
// lock, not the kernel decoder's, which every other lookup of the
// kernel's types holds. Two loads side by side, one relocating against
// ip_vs's structs or looking for an ip_vs function, the other against
// the kernel's, could write the kernel decoder's maps at once: a
// "concurrent map writes" that kills the process. A module's lookup of
// a type it has inflated before does not reach the kernel's decoder.
// The lookups are the CO-RE relocations against t.kernel and t.modules,
// and the attach targets of fentry, fexit and tp_btf programs, searched
// through t.btf as the library searches them (warmTargets).
func (t *Tracer) warmTypes(names []string) {
	if t.kernel == nil {
		return
	}
	var relos []*btf.CORERelocation
	targets := map[string]btf.Type{}
	seen := map[string]bool{}
	// Each relocation once: the programs share their subprograms'
	// instructions, and with them the same relocations (the object's 49
	// programs hold 4,307 relocations, 494 of them distinct). A
	// relocation makes the same lookups each time, so one of each warms
	// what all of them look up; the rest were CORERelocate's arithmetic
	// alone. Every IPVS hop, auto, no filter, on 6.1: 3,297 relocations
	// became 372, and warmTypes took 29 ms against 86 (medians of 10
	// pairs in the VM, host load 3-4).
	seenRelo := map[*btf.CORERelocation]bool{}
	for _, name := range names {
		ps := t.spec.Programs[name]
		if ps == nil || seen[name] {
			continue
		}
		seen[name] = true
		for i := range ps.Instructions {
			if relo := btf.CORERelocationMetadata(&ps.Instructions[i]); relo != nil && !seenRelo[relo] {
				seenRelo[relo] = true
				relos = append(relos, relo)
			}
		}
		switch {
		case ps.Type != ebpf.Tracing:
		case ps.AttachType == ebpf.AttachTraceFEntry, ps.AttachType == ebpf.AttachTraceFExit:
			targets[ps.AttachTo] = (*btf.Func)(nil)
		case ps.AttachType == ebpf.AttachTraceRawTp:
			targets["btf_trace_"+ps.AttachTo] = (*btf.Typedef)(nil)
		}
	}
	t.warmTargets(targets)
	// All relocations in one call: each local type is looked up once. A
	// failing one ends the call, maybe before others were looked up:
	// then each on its own. Their errors are the loads' too, and
	// reported there.
	specs := append([]*btf.Spec{t.kernel}, t.modules...)
	relocate := func(relos []*btf.CORERelocation) error {
		var b btf.Builder
		_, err := btf.CORERelocate(relos, specs, binary.LittleEndian, b.Add)
		return err
	}
	if len(relos) > 0 && relocate(relos) != nil {
		for _, relo := range relos {
			_ = relocate([]*btf.CORERelocation{relo})
		}
	}
}

// warmTargets looks up attach targets, each a name and the kind of type
// wanted (a nil *btf.Func or *btf.Typedef), as the library does (prog.go's
// findTargetInKernel): in vmlinux, else in each loaded module's BTF in
// the order of their BTF ids, until one has it. An error ends a target's
// search: the library's own search stops there too, and the load reports
// it. The kernel's BTF objects are listed once for all the targets, not
// once for each as the library does.
func (t *Tracer) warmTargets(targets map[string]btf.Type) {
	// found reports whether the library's search for name ends at spec.
	found := func(spec *btf.Spec, name string, kind btf.Type) bool {
		typ := kind
		return !errors.Is(spec.TypeByName(name, &typ), btf.ErrNotFound)
	}
	kernel, err := t.btf.Kernel()
	if err != nil {
		return
	}
	maps.DeleteFunc(targets, func(name string, kind btf.Type) bool { return found(kernel, name, kind) })
	if len(targets) == 0 {
		return
	}
	it := new(btf.HandleIterator)
	defer it.Handle.Close()
	for len(targets) > 0 && it.Next() {
		info, err := it.Handle.Info()
		if err != nil {
			return
		}
		if !info.IsModule() {
			continue
		}
		spec, err := t.btf.Module(info.Name)
		if err != nil {
			return
		}
		maps.DeleteFunc(targets, func(name string, kind btf.Type) bool { return found(spec, name, kind) })
	}
}

type loadedProgram struct {
	prog    *ebpf.Program
	err     error
	used    bool
	backend Backend
}

// loadSet is programs of one backend to load.
type loadSet struct {
	backend Backend
	names   []string
}

// loadBatch loads each set's programs in up to loadParallel
// collections side by side (the kernel verifies privileged loads in
// parallel), and those in alone (of backend b) each as its own; where
// the kernel refuses one program of a collection, that collection's
// programs load one by one so the others still load.
func (t *Tracer) loadBatch(sets []loadSet, alone []string, b Backend) map[string]*loadedProgram {
	var chunks []loadSet
	for _, set := range sets {
		n := max(1, min(loadParallel(), len(set.names)))
		for i := range n {
			if c := set.names[i*len(set.names)/n : (i+1)*len(set.names)/n]; len(c) > 0 {
				chunks = append(chunks, loadSet{set.backend, c})
			}
		}
	}
	for _, name := range alone {
		chunks = append(chunks, loadSet{b, []string{name}})
	}
	work := make(chan loadSet, len(chunks))
	for _, c := range chunks {
		work <- c
	}
	close(work)
	out := map[string]*loadedProgram{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range max(1, min(loadParallel(), len(chunks))) {
		wg.Go(func() {
			for c := range work {
				got := t.loadChunk(c.names, c.backend)
				mu.Lock()
				maps.Copy(out, got)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// loadParallel is how many collections loadBatch loads at once: one per
// CPU, at most 4 (the programs of one backend are some 20). Targets
// attach once all are loaded, not while others load (Open says what a
// link waits for beside a load; measured: loading and attaching side by
// side made Open 1.3-1.6 times as long in the VM).
func loadParallel() int { return min(runtime.NumCPU(), 4) }

// loadChunk loads programs of backend b in one collection, or one by
// one if the kernel refuses the collection.
func (t *Tracer) loadChunk(names []string, b Backend) map[string]*loadedProgram {
	var adjust func(*ebpf.ProgramSpec)
	if b == BackendKprobeMulti {
		adjust = func(ps *ebpf.ProgramSpec) { ps.AttachType = ebpf.AttachTraceKprobeMulti }
	}
	out := make(map[string]*loadedProgram, len(names))
	progs, err := t.loadPrograms(names, adjust)
	if err == nil {
		for name, p := range progs {
			out[name] = &loadedProgram{prog: p, backend: b}
		}
		return out
	}
	t.log.Debug("loading programs one by one", "backend", b, "err", err)
	for _, name := range names {
		ps, err := t.loadPrograms([]string{name}, adjust)
		out[name] = &loadedProgram{prog: ps[name], err: err, backend: b}
	}
	return out
}
