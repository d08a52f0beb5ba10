//go:build linux && amd64

package probes

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
)

// SetAttachParallel sets how many targets attach or detach at once, for
// benchmarks comparing it; it returns the previous value.
func SetAttachParallel(n int) int {
	old := attachParallel
	attachParallel = n
	return old
}

// SetTargets limits the targets Open attaches to those selected (by
// kernel function or tracepoint name), for benchmarks measuring what
// each group costs; nil restores all. It returns nothing: callers reset
// it with SetTargets(nil).
func SetTargets(selected func(name string) bool) {
	if selected == nil {
		selected = func(string) bool { return true }
	}
	targetSelected = selected
}

// ProgramRuns is how often each of the tracer's programs ran and for how
// long, by program name (the kernel's, cut to 15 bytes), while the
// kernel's BPF statistics were on (ebpf.EnableStats).
func ProgramRuns(tr *Tracer) (map[string]ProgramStats, error) {
	runs := map[string]ProgramStats{}
	for _, p := range tr.progs {
		st, err := p.Stats()
		if err != nil {
			return nil, err
		}
		info, err := p.Info()
		if err != nil {
			return nil, err
		}
		s := runs[info.Name]
		s.Name = info.Name
		s.Runs += st.RunCount
		s.RunTime += st.Runtime
		runs[info.Name] = s
	}
	return runs, nil
}

// SetObject makes Open load the BPF object at path instead of the
// generated one ("" restores it), for benchmarks that compare an earlier
// build of the programs with this one in the same VM run. The object
// must have the same programs, maps and constants.
func SetObject(path string) {
	if path == "" {
		loadSpec = loadTrace
		return
	}
	loadSpec = func() (*ebpf.CollectionSpec, error) { return ebpf.LoadCollectionSpec(path) }
}

// RaceDetector: this test binary was built with -race.
const RaceDetector = raceDetector

// SeedStaleFrames fills every CPU's frames (trace.c's struct cpu_frames)
// with MAX_DEPTH frames of ip_vs_in_hook visits whose exits never ran,
// on skbs at 0xdead0000 and up: what a kernel that skipped the exit
// programs would leave. It returns those skb addresses.
func SeedStaleFrames(tr *Tracer) ([]uint64, error) {
	const (
		maxDepth  = 8
		frameSize = 40 // skb, fn, hook, replaced, traced, elsewhere, pending, pad, netns, (4), entered, prev_skb
	)
	m := tr.maps["frames"]
	if want := maxDepth*frameSize + 8; int(m.ValueSize()) != want {
		return nil, fmt.Errorf("struct cpu_frames is %d bytes, the test's layout %d: update SeedStaleFrames", m.ValueSize(), want)
	}
	v := make([]byte, m.ValueSize())
	var skbs []uint64
	for i := range maxDepth {
		f := v[i*frameSize:]
		skb := uint64(0xdead0000 + i*0x100)
		skbs = append(skbs, skb)
		binary.LittleEndian.PutUint64(f[0:], skb)
		binary.LittleEndian.PutUint16(f[8:], uint16(traceFnIdFN_IP_VS_IN_HOOK))
		f[10] = 1 // NF_INET_LOCAL_IN
		f[14] = 1 // pending: the first exit that takes it reports it
		binary.LittleEndian.PutUint64(f[24:], 1)
	}
	binary.LittleEndian.PutUint32(v[maxDepth*frameSize:], maxDepth)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	perCPU := make([][]byte, cpus)
	for i := range perCPU {
		perCPU[i] = v
	}
	return skbs, m.Update(uint32(0), perCPU, ebpf.UpdateExist)
}
