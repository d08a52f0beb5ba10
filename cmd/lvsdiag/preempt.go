package main

import "strings"

// withoutSignalPreemption returns env with asyncpreemptoff=1 added to
// GODEBUG, keeping its other settings; false when GODEBUG already sets
// asyncpreemptoff, either way.
func withoutSignalPreemption(env []string) ([]string, bool) {
	godebug := ""
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug = v
			continue
		}
		out = append(out, kv)
	}
	for _, setting := range strings.Split(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(setting), "asyncpreemptoff=") {
			return env, false
		}
	}
	if godebug != "" {
		godebug += ","
	}
	return append(out, "GODEBUG="+godebug+"asyncpreemptoff=1"), true
}
