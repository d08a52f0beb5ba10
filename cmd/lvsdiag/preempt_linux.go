package main

import (
	"os"
	"syscall"
)

// traceWithoutSignalPreemption runs lvsdiag trace again, in this
// process (exec, same pid), with the Go runtime's asynchronous
// preemption off (GODEBUG=asyncpreemptoff=1): goroutines are then
// preempted at their next function call, which trace's loops make all
// the time, instead of by a signal. A trace printing every packet keeps
// a goroutine running for long stretches, and the runtime preempts one
// that runs 10ms with a signal; under emulation (the test VM, whose
// vCPUs the host also deschedules) a signal's delivery and return were
// 11-17% of lvsdiag's CPU profile. (A //go:debug line cannot set it:
// the go command refuses that setting.) It returns, having done
// nothing, for other subcommands, when GODEBUG already sets
// asyncpreemptoff (this is the second run, or the user chose), or when
// the exec fails: the trace then runs as it is.
func traceWithoutSignalPreemption(args []string) {
	if len(args) == 0 || args[0] != "trace" {
		return
	}
	if env, ok := withoutSignalPreemption(os.Environ()); ok {
		// /proc/self/exe is this binary even if its path has changed.
		syscall.Exec("/proc/self/exe", os.Args, env)
	}
}
