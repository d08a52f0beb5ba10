// Package gcpause holds the Go garbage collector off for a short burst of
// allocation, such as lvsdiag trace's Open. The settings are the
// process's: for the commands (cmd/*) and for benchmarks that measure
// what a command does, never for library code.
package gcpause

import "runtime/debug"

// Limit bounds the heap while the collector is off: past it the runtime
// collects anyway (debug.SetMemoryLimit). lvsdiag trace's Open for one
// DR service allocates 34-38 MB in all, and the process peaked at 86-94
// MB resident with the collector off during Open against 40-47 MB with
// it on (6.1), 89 against 73-79 MB (6.12).
const Limit = 256 << 20

// Do runs f with the collector off (a lower memory limit already set,
// by GOMEMLIMIT or otherwise, stays), then puts back the process's
// settings: the next collection comes once f's garbage outgrows the
// heap goal of before.
func Do(f func()) {
	limit := debug.SetMemoryLimit(-1) // -1 reads it
	if limit > Limit {
		debug.SetMemoryLimit(Limit)
	}
	percent := debug.SetGCPercent(-1)
	defer func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	}()
	f()
}
