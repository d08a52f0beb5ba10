//go:build !linux

package main

// traceWithoutSignalPreemption does nothing: lvsdiag trace runs on
// Linux only.
func traceWithoutSignalPreemption([]string) {}
