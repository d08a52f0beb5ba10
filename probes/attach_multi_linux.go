//go:build linux && amd64

// kprobe-multi: which targets auto gives one grouped link, and attaching
// targets with such links (attach_linux.go attaches the rest).

package probes

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/link"
)

// multiFirst names the targets auto attaches with kprobe-multi without
// trying fentry first, on a kernel whose fentry takes every IPVS
// function (Linux 6.6 and later, where kprobe-multi is also expected):
// the transmitters and the protocols' scheduling entries, when at least
// multiShare of them are pending (a trace over every forwarding
// method). Their fentry programs are one per function, each verified
// and linked on its own (some 25 ms of load and 10 ms of link each in
// the VM, beside the others), and each link's trampoline is removed on
// Close after RCU-tasks grace periods (some 130 ms each, one at a
// time); kprobe-multi verifies one program for them all (multiProgram)
// and attaches it with one link, in one ftrace update. One service's
// transmitter and scheduling entry stay on fentry. Where kprobe-multi
// is refused, attachFuncs gives them to fentry after all.
// 6.12, every IPVS hop, auto: 13 function programs instead of 24 (12
// fentry and fexit, one kprobe-multi) and 17 links instead of 28.
// BenchmarkVMAttach against 2458a44, 6 pairs a run: with a program and a
// link per shape (cd30c15), host load 0.7-1.9, attach 0.73 and 0.75 of
// the time in two runs (0.66-0.86, every pair below 1; 0.61 against
// 0.83 s), detach 0.50 (1.50-1.55 against 3.06-3.10 s); with one
// (multiProgram), host load 3-4, attach 0.65 (0.41-1.51), detach 0.47.
// One DR TCP service, which this leaves alone: attach 1.00, 0.96 and
// 0.99, detach 0.98, 0.99 and 0.93. Attaching the kprobe-multi links
// after the trampolines' instead of beside them took 0.96 (136-143 ms
// for two links).
func (t *Tracer) multiFirst(pending []target) map[string]bool {
	if t.opts.Backend != BackendAuto || !fentryManyArgs() {
		return nil
	}
	// Not the stack's functions (--hops all): every packet the machine
	// sends or receives passes them, and an fprobe's call costs more
	// than a trampoline's.
	multi := map[string]bool{}
	for _, tg := range pending {
		if tg.ipvs && tg.kind == kindEntry && (tg.kprobe == "xmit" || tg.kprobe == "current") {
			multi[tg.name] = true
		}
	}
	if len(multi) < multiShare {
		return nil
	}
	return multi
}

// multiProgram is the program of multiFirst's targets: the transmitters'
// and the scheduling entries' kprobe programs in one, told apart by the
// link's cookie, so that one link attaches them all (the kernel looks a
// kprobe-multi link's symbols up through all of its own, some 60-90 ms
// a link in the VM).
const multiProgram = "kprobe_ipvs_entry"

// multiShare is how many of those targets must be pending for auto to
// attach them with kprobe-multi (multiFirst): measured at 12 (every
// IPVS hop) against 2 (one DR TCP service, left on fentry).
const multiShare = 6

// attachMulti attaches every pending target with kprobe-multi links,
// one per program, each symbol's cookie its fn: all or none.
func attachMulti(pending []target, loaded map[string]*loadedProgram) ([]link.Link, error) {
	return attachMultiWith(pending, loaded, func(tg target) []string { return programNames(tg, BackendKprobeMulti) })
}

// attachMultiWith is attachMulti with the programs each target takes
// named by progs.
func attachMultiWith(pending []target, loaded map[string]*loadedProgram, progs func(target) []string) ([]link.Link, error) {
	type group struct {
		exit    bool
		symbols []string
		cookies []uint64
	}
	groups := map[string]*group{}
	var order []string
	for _, tg := range pending {
		for _, name := range progs(tg) {
			lp := loaded[name]
			if lp == nil || lp.err != nil {
				return nil, fmt.Errorf("loading BPF program %s: not loaded", name)
			}
			g := groups[name]
			if g == nil {
				g = &group{exit: strings.HasPrefix(name, "kretprobe_")}
				groups[name] = g
				// Return probes first, as attachFunc does.
				if g.exit {
					order = append([]string{name}, order...)
				} else {
					order = append(order, name)
				}
			}
			g.symbols = append(g.symbols, tg.name)
			g.cookies = append(g.cookies, uint64(tg.fn))
		}
	}
	var links []link.Link
	for _, name := range order {
		g := groups[name]
		opts := link.KprobeMultiOptions{Symbols: g.symbols, Cookies: g.cookies}
		var l link.Link
		var err error
		if g.exit {
			l, err = link.KretprobeMulti(loaded[name].prog, opts)
		} else {
			l, err = link.KprobeMulti(loaded[name].prog, opts)
		}
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			return nil, fmt.Errorf("attaching %s to %s: %w", name, strings.Join(g.symbols, ", "), err)
		}
		links = append(links, l)
	}
	return links, nil
}
