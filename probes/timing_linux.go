//go:build linux && amd64

package probes

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
)

// phases sums where Open's or Close's time went, by phase, for the
// debug log: the part a slow attach is spent in. Phases that run side
// by side are summed per phase, so they may add up to more than the
// wall time.
type phases struct {
	mu    sync.Mutex
	order []string
	sum   map[string]time.Duration
}

func (p *phases) add(name string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sum == nil {
		p.sum = map[string]time.Duration{}
	}
	if _, ok := p.sum[name]; !ok {
		p.order = append(p.order, name)
	}
	p.sum[name] += d
}

// since adds the time from start to now to the phase, and returns now.
func (p *phases) since(name string, start time.Time) time.Time {
	now := time.Now()
	p.add(name, now.Sub(start))
	return now
}

// attrs are the phases as log attributes, in the order first seen.
func (p *phases) attrs() []any {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]any, 0, 2*len(p.order))
	for _, n := range p.order {
		out = append(out, n, p.sum[n].Round(time.Millisecond))
	}
	return out
}

func (t *Tracer) debug() bool { return t.log.Enabled(context.Background(), slog.LevelDebug) }

// verifierStats is what the kernel's verifier reported for a program
// loaded with ebpf.LogLevelStats: the instructions it processed and its
// own time.
func verifierStats(p *ebpf.Program) (insns int, took time.Duration) {
	for l := range strings.Lines(p.VerifierLog) {
		l = strings.TrimSpace(l)
		if rest, ok := strings.CutPrefix(l, "verification time "); ok {
			us, _, _ := strings.Cut(rest, " ")
			n, _ := strconv.Atoi(us)
			took = time.Duration(n) * time.Microsecond
		}
		if rest, ok := strings.CutPrefix(l, "processed "); ok {
			n, _, _ := strings.Cut(rest, " ")
			insns, _ = strconv.Atoi(n)
		}
	}
	return insns, took
}
