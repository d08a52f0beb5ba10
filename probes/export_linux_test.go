//go:build linux && amd64

package probes

import (
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
