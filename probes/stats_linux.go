//go:build linux && amd64

package probes

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// EnableRunStats turns on the kernel's BPF run-time statistics (for
// every program on the machine, as kernel.bpf_stats_enabled does) until
// the returned closer is closed. They cost every program run two clock
// reads; the caller owns the closer.
func EnableRunStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("enabling BPF run-time statistics: %w", err)
	}
	return c, nil
}

// AllProgramStats reads the statistics of every BPF program loaded in
// the kernel, by ID. A program unloaded while they are read is left out.
func AllProgramStats() (map[uint32]ProgramStats, error) {
	all := map[uint32]ProgramStats{}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return all, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing BPF programs after ID %d: %w", id, err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("opening BPF program %d: %w", id, err)
		}
		st, err := p.Stats()
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("reading statistics of BPF program %d: %w", id, err)
		}
		s := ProgramStats{ID: uint32(id), Runs: st.RunCount, RunTime: st.Runtime}
		if info, err := p.Info(); err == nil {
			s.Name = info.Name
		}
		p.Close()
		all[s.ID] = s
	}
}
