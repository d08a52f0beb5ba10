package probes

import "time"

// ProgramStats is what the kernel counts for one loaded BPF program, of
// any process, while its run-time statistics are on (EnableRunStats):
// how often the program ran and the time spent in it. Benchmarks read
// them before and after a run to put the programs' cost per connection
// beside the CPU a process uses, a figure that does not move with how
// fast the machine happens to run.
type ProgramStats struct {
	ID      uint32
	Name    string
	Runs    uint64
	RunTime time.Duration
}
