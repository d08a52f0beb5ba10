//go:build linux && amd64

package probes

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// TestLoadsSideBySideNeverInflateModuleTypes: Open's loads side by side,
// one relocating against a module's structs (ip_vs's, here a module
// made for the test on a small kernel BTF so that any host has it), the
// other against the kernel's. cilium/ebpf v0.22.0's module decoder
// writes the kernel decoder's maps without the kernel decoder's lock
// when it inflates a type the first time; warmTypes, run alone first,
// leaves it nothing to inflate. Without warmTypes the race detector
// reports the two loads here. The loads' own results do not matter
// (the small BTF leaves most relocations poisoned): only what they
// touch on the way.
func TestLoadsSideBySideNeverInflateModuleTypes(t *testing.T) {
	if !raceDetector {
		t.Skip("proves nothing without the race detector: run it with go test -race")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF) to create the maps and load programs")
	}
	consts, err := Filter{}.compile()
	if err != nil {
		t.Fatal(err)
	}
	tr := &Tracer{opts: Options{Backend: BackendKprobe}, log: slog.New(slog.DiscardHandler), maps: map[string]*ebpf.Map{}, btf: btf.NewCache()}
	defer tr.Close()
	if err := tr.loadObject(consts); err != nil {
		t.Fatal(err)
	}
	if err := tr.createMaps(); err != nil {
		t.Fatal(err)
	}
	var funcs, tps []string
	for name := range tr.spec.Programs {
		switch {
		case strings.HasPrefix(name, "kprobe_ip_vs_"), strings.HasPrefix(name, "kretprobe_ip_vs_"):
			funcs = append(funcs, name)
		case strings.HasPrefix(name, "tp_btf_"):
			tps = append(tps, name)
		}
	}
	slices.Sort(funcs)
	slices.Sort(tps)
	if len(funcs) == 0 || len(tps) == 0 {
		t.Fatalf("the object has %d kprobe programs for ip_vs functions and %d tp_btf programs, want some of each", len(funcs), len(tps))
	}
	// Each round on a fresh kernel spec and module, none of their types
	// inflated: the race is there only while the two loads overlap.
	for range 8 {
		tr.btf = btf.NewCache()
		tr.kernel, err = tr.btf.Kernel()
		if err != nil {
			t.Skipf("needs the kernel's BTF: %v", err)
		}
		tr.modules = []*btf.Spec{moduleOnKernel(t, tr.kernel)}
		tr.warmTypes(append(slices.Clone(funcs), tps...))

		// As Open: the tracepoints' collection beside the functions' batch.
		var wg sync.WaitGroup
		var tpProgs map[string]*ebpf.Program
		wg.Go(func() { tpProgs, _ = tr.loadPrograms(tps, nil) })
		loaded := tr.loadBatch([]loadSet{{BackendKprobe, funcs}}, nil, BackendKprobe)
		wg.Wait()
		for _, p := range tpProgs {
			p.Close()
		}
		for _, lp := range loaded {
			if lp.prog != nil {
				lp.prog.Close()
			}
		}
	}
}

// moduleOnKernel returns a module's split BTF on the running kernel's
// (spec, read from /sys/kernel/btf/vmlinux) whose struct ip_vs_conn
// points at the kernel's struct sk_buff, as ip_vs's structs point at
// vmlinux's: inflating the module's struct inflates the kernel's
// sk_buff and all it refers to. Nothing of the kernel's spec is
// inflated here.
func moduleOnKernel(t *testing.T, kernel *btf.Spec) *btf.Spec {
	t.Helper()
	raw, err := os.ReadFile("/sys/kernel/btf/vmlinux")
	if err != nil {
		t.Skipf("needs the kernel's BTF: %v", err)
	}
	le := binary.LittleEndian
	hdr := le.Uint32(raw[4:8])
	typeOff, typeLen := hdr+le.Uint32(raw[8:12]), le.Uint32(raw[12:16])
	strOff, strLen := hdr+le.Uint32(raw[16:20]), le.Uint32(raw[20:24])
	strs := raw[strOff : strOff+strLen]
	name := func(off uint32) string { return string(strs[off : off+uint32(bytes.IndexByte(strs[off:], 0))]) }
	// Walk the kernel's types for their count and sk_buff's id; each is
	// 12 bytes and what its kind adds (include/uapi/linux/btf.h).
	const kindStruct, kindPtr = 4, 2
	id, skbID := uint32(1), uint32(0)
	for off := typeOff; off < typeOff+typeLen; id++ {
		nameOff, info := le.Uint32(raw[off:]), le.Uint32(raw[off+4:])
		kind, vlen := info>>24&0x1f, info&0xffff
		if kind == kindStruct && skbID == 0 && name(nameOff) == "sk_buff" {
			skbID = id
		}
		off += 12
		switch kind {
		case 1, 14, 17: // int, var, decl tag
			off += 4
		case 3: // array
			off += 12
		case 4, 5, 15, 19: // struct, union, datasec, enum64
			off += 12 * vlen
		case 6, 13: // enum, func proto
			off += 8 * vlen
		}
	}
	if skbID == 0 {
		t.Fatal("no struct sk_buff in the kernel's BTF")
	}
	first := id // the module's first type id
	modStrs := []byte("ip_vs_conn\x00skb\x00")
	var types []byte
	u32 := func(vs ...uint32) {
		for _, v := range vs {
			types = le.AppendUint32(types, v)
		}
	}
	u32(0, kindPtr<<24, skbID)                          // first: struct sk_buff *
	u32(strLen, kindStruct<<24|1, 8)                    // first+1: struct ip_vs_conn, one member:
	u32(strLen+uint32(len("ip_vs_conn\x00")), first, 0) // skb, at bit 0
	var split []byte
	split = le.AppendUint16(split, 0xeb9f)
	split = append(split, 1, 0)
	for _, v := range []uint32{24, 0, uint32(len(types)), uint32(len(types)), uint32(len(modStrs))} {
		split = le.AppendUint32(split, v)
	}
	split = append(append(split, types...), modStrs...)
	mod, err := btf.LoadSplitSpecFromReader(bytes.NewReader(split), kernel)
	if err != nil {
		t.Fatal(err)
	}
	return mod
}
