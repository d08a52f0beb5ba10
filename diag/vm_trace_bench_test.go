//go:build vmtest && linux && amd64

package diag

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/internal/lab"
	"github.com/lvskit/lvskit/probes"
)

// BenchmarkVMTraceThroughput: the cost of tracing to the traffic a
// director passes. The client opens short TCP connections to a
// direct-routing VIP (a bounded loop of connect + close, from four
// clients at once: LVSKIT_TRACE_BENCH_WORKERS), side by side
// in one VM run: lvsdiag trace with a filter that matches nothing
// (another client); lvsdiag trace matching every packet (JSON lines);
// and the baseline a user would reach for, a bpftrace script on the
// same IPVS functions and tracepoints printing a line per hit; and
// lvsdiag trace matching every packet in its default text output, what
// an on-call engineer reads. Each
// traced run is measured between two untraced runs and reported as a
// share of their mean, with the events lvsdiag lost; the untraced run
// after a tracer waits until its teardown is over (settle); the variants take
// turns three times (LVSKIT_TRACE_BENCH_CYCLES) and each reports its
// median, as a share of the rate and of the capacity (the guest's busy
// CPU per connection, untraced over traced). Goals:
// >= 95% of untraced with the non-matching filter; a matching trace
// costing no more than bpftrace.
//
// LVSKIT_TRACE_BASELINE_LVSDIAG=FILE adds a fourth variant: the
// matching trace with another lvsdiag binary (an earlier build, such as
// main's), taking its turn beside this one's in the same run, so that a
// change to lvsdiag's user space is judged side by side.
//
// LVSKIT_TRACE_BENCH_BACKEND=BACKEND (kprobe, fentry, kprobe-multi)
// adds another: the matching trace with --backend BACKEND, taking its
// turn beside auto's in each cycle (first every other turn), so that
// what auto attaches with is chosen by its cost per event as well as by
// its attach time (on 6.1 --backend kprobe attaches faster than auto).
//
// LVSKIT_TRACE_BENCH_PROFILES=DIR has lvsdiag write a CPU profile of
// each run into DIR (LVSKIT_CPUPROFILE); with the VM runner, DIR must
// also be in LVSKIT_VM_RW, so that the profiles outlive the VM.
//
// The rates swing widely under emulation, so each traced run also
// reports costs per connection that do not depend on how fast the guest
// happens to run: the time the kernel spent in the tracer's BPF
// programs (the kernel's BPF run-time statistics, on for the whole
// benchmark; the programs a variant created are told apart from the
// others by their IDs), how often they ran, and the CPU the tracer's
// process used. Their sum as a share of the guest's untraced CPU per
// connection judges the goals as costs, lvsdiag's beside bpftrace's.
func BenchmarkVMTraceThroughput(b *testing.B) {
	if _, err := exec.LookPath("bpftrace"); err != nil {
		b.Skipf("needs Debian's bpftrace (scripts/install-deps.sh): %v", err)
	}
	x := newTraceLab(b)
	ctx, cancel := context.WithTimeout(b.Context(), 30*time.Minute)
	defer cancel()
	// Several clients at once keep the guest's CPUs busy, so that the
	// rate measures what tracing costs the machine (a director forwarding
	// more than one connection at a time), not one client's round trips,
	// which the emulation's scheduling makes swing widely.
	workers := 4
	if n, err := strconv.Atoi(os.Getenv("LVSKIT_TRACE_BENCH_WORKERS")); err == nil && n > 0 {
		workers = n
	}
	const conns, rounds = 600, 3
	vip := netip.AddrPortFrom(netip.MustParseAddr(traceVIP), 80)
	// Thousands of connections a minute close first on the client: let
	// it reuse its TIME_WAIT ports, or connect slows down as the port
	// range fills and the untraced rate drifts through the run.
	x.client.SetSysctl("net.ipv4.tcp_tw_reuse", "1")
	x.client.SetSysctl("net.ipv4.ip_local_port_range", "1024 65000")
	stats, err := probes.EnableRunStats()
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()

	// measure returns the median rate of its rounds, and leaves the
	// guest's busy CPU per connection over all of them in lastCPU: with
	// the guest's CPUs busy, what a connection costs the machine is the
	// steadier figure (capacity is CPU over cost), where the rate also
	// moves with what the host gives the VM.
	var lastCPU time.Duration
	measure := func(name string) float64 {
		var rates []float64
		busy0 := cpuOf(b, 0)
		defer func() { lastCPU = (cpuOf(b, 0) - busy0) / (rounds * conns) }()
		for range rounds {
			r, err := x.client.ConnectMany(ctx, vip.String(), conns, workers)
			if err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			rates = append(rates, r)
		}
		slices.Sort(rates)
		return rates[len(rates)/2]
	}
	// Each traced run sits between two untraced runs, and its ratio is
	// to their mean: the VM shares the host's CPUs, whose load drifts
	// over minutes.
	type result struct {
		name                  string
		before, traced, after float64
		// CPU per connection, in the same three runs.
		cpuBefore, cpuTraced, cpuAfter time.Duration
		cost                           tracerCost
		note                           string
	}
	var results []result
	quiet := idleShare(b)
	b.Logf("the guest's CPUs are %.1f%% busy when idle", 100*quiet)
	run := func(name string, traced func() (float64, tracerCost, string)) {
		r := result{name: name, before: measure("untraced")}
		r.cpuBefore = lastCPU
		progs, kprobes := programIDs(b), kprobeCount(b)
		r.traced, r.cost, r.note = traced()
		r.cpuTraced = lastCPU
		r.note += fmt.Sprintf(" (settled after %v)", settle(ctx, b, progs, kprobes, quiet).Round(10*time.Millisecond))
		r.after = measure("untraced")
		r.cpuAfter = lastCPU
		results = append(results, r)
	}

	// lvsdiag trace, started in the director's namespace; measured once
	// it says it is tracing.
	lvsdiag := func(name, binary string, args ...string) func() (float64, tracerCost, string) {
		return func() (float64, tracerCost, string) {
			before := programIDs(b)
			profile := ""
			if dir := os.Getenv("LVSKIT_TRACE_BENCH_PROFILES"); dir != "" {
				profile = filepath.Join(dir, fmt.Sprintf("lvsdiag-%s-%d.pprof", strings.ReplaceAll(name, " ", "-"), time.Now().UnixNano()))
			}
			b.Setenv("LVSKIT_CPUPROFILE", profile)
			p := x.director.Start(ctx, binary, append([]string{"trace", "--vip", traceVIP, "--port", "80"}, args...)...)
			wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
			_, err := p.WaitForOutput(wctx, "lvsdiag trace: tracing")
			wcancel()
			if err != nil {
				b.Fatalf("%s: %v\n%s", name, err, p.Output())
			}
			cpu0, busy0 := cpuOf(b, p.Pid()), cpuOf(b, 0)
			var cost tracerCost
			rate := cost.measure(b, before, p.Pid(), rounds*conns, func() float64 { return measure(name) })
			cpu, busy := cpuOf(b, p.Pid())-cpu0, cpuOf(b, 0)-busy0
			// SIGTERM ends the trace like Ctrl-C: it detaches (slow under
			// TCG, longer than Stop waits) and prints its summary.
			if err := syscall.Kill(p.Pid(), syscall.SIGTERM); err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			select {
			case <-p.Done():
			case <-time.After(3 * time.Minute):
				b.Fatalf("%s: lvsdiag trace did not end after SIGTERM:\n%s", name, p.Output())
			}
			if profile != "" {
				if st, err := os.Stat(profile); err != nil || st.Size() == 0 {
					b.Fatalf("%s: no CPU profile at %s (%v):\n%s", name, profile, err, p.Output())
				}
				b.Logf("%s: lvsdiag's CPU profile: %s", name, profile)
			}
			// How much of the guest's CPU lvsdiag itself took (reading,
			// decoding, grouping, writing JSON): what is left is the
			// programs' and the traffic's.
			return rate, cost, fmt.Sprintf("%s (lvsdiag %.1f%% of the guest's busy CPU)", traceSummary(p.Output()), 100*cpu.Seconds()/busy.Seconds())
		}
	}
	// bpftrace on the same functions, in the VM's root namespace (its
	// probes are global), printing a line per hit as a user's script
	// would; its output is counted, not kept.
	script := `BEGIN { printf("ready\n"); }
kprobe:ip_vs_in_hook, kprobe:ip_vs_out_hook, kprobe:ip_vs_conn_in_get, kprobe:ip_vs_conn_out_get,
kprobe:tcp_conn_schedule, kprobe:ip_vs_schedule, kprobe:ip_vs_conn_new, kprobe:ip_vs_dr_xmit, kprobe:ip_vs_nat_xmit,
kprobe:ip_vs_tunnel_xmit, kprobe:ip_local_deliver, kprobe:ip_output
{ printf("%s %llx %llu\n", probe, arg1, nsecs); }
tracepoint:net:netif_receive_skb, tracepoint:net:net_dev_queue, tracepoint:skb:kfree_skb
{ printf("%s %llx %llu\n", probe, args->skbaddr, nsecs); }`
	bpftrace := func() (float64, tracerCost, string) {
		var cost tracerCost
		before := programIDs(b)
		rate, lines := withBpftrace(ctx, b, script, func(pid int) float64 {
			return cost.measure(b, before, pid, rounds*conns, func() float64 { return measure("bpftrace") })
		})
		return rate, cost, fmt.Sprintf("(%d lines printed)", lines)
	}
	// The variants take turns, cycles times: one traced run lands in a
	// loaded minute of the host, not all of a variant's runs.
	cycles := 3
	if n, err := strconv.Atoi(os.Getenv("LVSKIT_TRACE_BENCH_CYCLES")); err == nil && n > 0 {
		cycles = n
	}
	names := []string{"lvsdiag trace, no match", "lvsdiag trace, every packet", "bpftrace, every packet", "lvsdiag trace, text"}
	this := lvsdiagBinary(b)
	baseline := os.Getenv("LVSKIT_TRACE_BASELINE_LVSDIAG")
	if baseline != "" {
		abs, err := filepath.Abs(baseline)
		if err != nil {
			b.Fatalf("LVSKIT_TRACE_BASELINE_LVSDIAG: %v", err)
		}
		if _, err := os.Stat(abs); err != nil {
			b.Fatalf("LVSKIT_TRACE_BASELINE_LVSDIAG: %v (want an lvsdiag binary built from the baseline)", err)
		}
		baseline = abs
		names = append(names, "baseline lvsdiag, every packet")
	}
	backend := os.Getenv("LVSKIT_TRACE_BENCH_BACKEND")
	backendName := "lvsdiag trace, every packet, --backend " + backend
	if backend != "" {
		// lvsdiag refuses a backend it does not know, and the run stops
		// with its message.
		names = append(names, backendName)
	}
	byBackend := lvsdiag("every packet "+backend, this, "--output", "json", "--backend", backend)
	for i := range cycles {
		run(names[0], lvsdiag("no match", this, "--output", "json", "--client", "10.77.0.99"))
		// The baseline goes first every other turn: the host's load
		// drifts within a turn too.
		if baseline != "" && i%2 == 1 {
			run(names[4], lvsdiag("baseline every packet", baseline, "--output", "json"))
		}
		if backend != "" && i%2 == 1 {
			run(backendName, byBackend)
		}
		run(names[1], lvsdiag("every packet", this, "--output", "json"))
		if baseline != "" && i%2 == 0 {
			run(names[4], lvsdiag("baseline every packet", baseline, "--output", "json"))
		}
		if backend != "" && i%2 == 0 {
			run(backendName, byBackend)
		}
		run(names[2], bpftrace)
		// What an on-call engineer reads: the default output.
		run(names[3], lvsdiag("every packet text", this, "--output", "text", "--colour", "never"))
	}

	b.Logf("each traced run as a share of the untraced runs around it (median of %d); capacity: untraced CPU per connection over traced:", cycles)
	for _, name := range names {
		var shares []string
		var pcts, caps, progNs, runNs, runs, userNs, costPct, costBefore []float64
		for _, r := range results {
			if r.name == name {
				pct := 100 * r.traced / ((r.before + r.after) / 2)
				untraced := (r.cpuBefore + r.cpuAfter) / 2
				capacity := 100 * untraced.Seconds() / r.cpuTraced.Seconds()
				pcts, caps = append(pcts, pct), append(caps, capacity)
				c := r.cost
				share := 100 * float64(c.progPerConn+c.userPerConn) / float64(untraced)
				// The same against the untraced run before it alone: the
				// one after follows the tracer's teardown, which settle
				// waits out, but a teardown that left the guest slower
				// without using its CPU would still show as a dearer run
				// after.
				costBefore = append(costBefore, 100*float64(c.progPerConn+c.userPerConn)/float64(r.cpuBefore))
				progNs, runNs, runs = append(progNs, float64(c.progPerConn)), append(runNs, c.nsPerRun), append(runs, c.runsPerConn)
				userNs, costPct = append(userNs, float64(c.userPerConn)), append(costPct, share)
				shares = append(shares, fmt.Sprintf("%.1f%% (%.0f conn/s, untraced %.0f/%.0f), capacity %.1f%% (%v a connection, untraced %v/%v); per connection: programs %v (%d programs, %.1f runs of %.0f ns), user space %v: %.1f%% of the untraced CPU %s",
					pct, r.traced, r.before, r.after, capacity, r.cpuTraced.Round(time.Microsecond), r.cpuBefore.Round(time.Microsecond), r.cpuAfter.Round(time.Microsecond),
					c.progPerConn.Round(time.Nanosecond), c.programs, c.runsPerConn, c.nsPerRun, c.userPerConn.Round(time.Microsecond), share, r.note))
			}
		}
		med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
		b.Logf("  %-28s %5.1f%%, capacity %5.1f%%, cost %4.1f%% of the untraced CPU a connection (%4.1f%% of the run before's alone; programs %.0f ns: %.1f runs of %.0f ns; user space %.0f ns); runs: %s",
			name, med(pcts), med(caps), med(costPct), med(costBefore), med(progNs), med(runs), med(runNs), med(userNs), strings.Join(shares, "; "))
		metric := strings.NewReplacer(" ", "-", ",", "").Replace(name)
		b.ReportMetric(med(pcts), metric+"-%-of-untraced")
		b.ReportMetric(med(caps), metric+"-capacity-%")
		b.ReportMetric(med(costPct), metric+"-cost-%-of-untraced-cpu")
		b.ReportMetric(med(costBefore), metric+"-cost-%-of-untraced-cpu-before")
		b.ReportMetric(med(progNs), metric+"-prog-ns/conn")
		b.ReportMetric(med(runNs), metric+"-prog-ns/run")
		b.ReportMetric(med(userNs), metric+"-user-ns/conn")
	}
}

// traceSummary picks the events lost and packets from lvsdiag trace's
// summary: its JSON line, or the text output's "Summary: N packets
// traced" and "events lost: N" lines.
func traceSummary(out string) string {
	packets, lost := -1, -1
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(line, "Summary: "); ok {
			fmt.Sscanf(rest, "%d", &packets)
		}
		if rest, ok := strings.CutPrefix(line, "events lost: "); ok {
			fmt.Sscanf(rest, "%d", &lost)
		}
		var s struct {
			Type    string
			Packets int
			Lost    uint64
		}
		if json.Unmarshal([]byte(line), &s) == nil && s.Type == "summary" {
			return fmt.Sprintf("(%d packets traced, %d events lost)", s.Packets, s.Lost)
		}
	}
	if packets >= 0 && lost >= 0 {
		return fmt.Sprintf("(%d packets traced, %d events lost)", packets, lost)
	}
	return "(no summary)"
}

// withBpftrace runs the script, waits until its probes are attached,
// runs fn, then stops bpftrace and returns fn's result and how many
// lines bpftrace printed.
func withBpftrace(ctx context.Context, b *testing.B, script string, fn func(pid int) float64) (float64, int) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bpftrace", "-e", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("bpftrace: %v", err)
	}
	attached := make(chan struct{})
	lines := 0
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(out)
		once := sync.OnceFunc(func() { close(attached) })
		for sc.Scan() {
			switch t := sc.Text(); {
			case strings.HasPrefix(t, "Attaching "):
				continue
			case t == "ready": // BEGIN runs once every probe is attached
				once()
				continue
			}
			lines++
		}
		once()
	})
	select {
	case <-attached:
	case <-time.After(3 * time.Minute):
		b.Fatalf("bpftrace did not attach: %s", stderr.String())
	}
	rate := fn(cmd.Process.Pid)
	cancel()
	wg.Wait()
	cmd.Wait()
	if lines == 0 {
		b.Fatalf("bpftrace printed nothing: %s", stderr.String())
	}
	return rate, lines
}

// tracerCost is what one traced run cost per connection: the time the
// kernel spent in the tracer's BPF programs and how often they ran, and
// the CPU its process used.
type tracerCost struct {
	programs    int
	progPerConn time.Duration
	runsPerConn float64
	nsPerRun    float64
	userPerConn time.Duration
}

// measure runs fn, a measurement over conns connections, and reads the
// costs of the tracer's process pid and of the BPF programs it created:
// those loaded now whose IDs are not in before.
func (c *tracerCost) measure(b *testing.B, before map[uint32]bool, pid, conns int, fn func() float64) float64 {
	start := ownStats(b, before)
	cpu0 := cpuOf(b, pid)
	rate := fn()
	cpu := cpuOf(b, pid) - cpu0
	end := ownStats(b, before)
	var runs uint64
	var inProgs time.Duration
	for id, s := range end {
		// A program created during fn counts from zero.
		runs += s.Runs - start[id].Runs
		inProgs += s.RunTime - start[id].RunTime
	}
	if len(end) == 0 || runs == 0 {
		b.Fatalf("the tracer's BPF programs did not run (%d programs)", len(end))
	}
	c.programs = len(end)
	c.progPerConn = inProgs / time.Duration(conns)
	c.runsPerConn = float64(runs) / float64(conns)
	c.nsPerRun = float64(inProgs) / float64(runs)
	c.userPerConn = cpu / time.Duration(conns)
	return rate
}

// programIDs are the BPF programs loaded now.
func programIDs(b *testing.B) map[uint32]bool {
	all, err := probes.AllProgramStats()
	if err != nil {
		b.Fatal(err)
	}
	ids := map[uint32]bool{}
	for id := range all {
		ids[id] = true
	}
	return ids
}

// ownStats are the statistics of the programs loaded now that are not
// in before.
func ownStats(b *testing.B, before map[uint32]bool) map[uint32]probes.ProgramStats {
	all, err := probes.AllProgramStats()
	if err != nil {
		b.Fatal(err)
	}
	for id := range all {
		if before[id] {
			delete(all, id)
		}
	}
	return all
}

// cpuOf is the CPU time process pid has used, or with pid 0 the time
// the VM's CPUs have been busy.
func cpuOf(b *testing.B, pid int) time.Duration {
	var d time.Duration
	var err error
	if pid == 0 {
		d, err = lab.BusyCPU()
	} else {
		d, err = lab.ProcessCPU(pid)
	}
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// idleShare is how busy the guest's CPUs are with nothing to do (the
// lab's daemons, the emulated timer): the least of a few short windows,
// as a share of all its CPUs.
func idleShare(b *testing.B) float64 {
	least := 1.0
	for range 4 {
		least = min(least, busyShare(b, 250*time.Millisecond))
	}
	return least
}

// busyShare is the share of the guest's CPUs busy over the next window.
func busyShare(b *testing.B, window time.Duration) float64 {
	busy0, t0 := cpuOf(b, 0), time.Now()
	time.Sleep(window) // a measurement's window, not a wait for a condition
	return float64(cpuOf(b, 0)-busy0) / float64(time.Since(t0)) / float64(runtime.NumCPU())
}

// kprobeCount is how many kprobes the kernel has registered (the lines
// of debugfs's kprobes/list).
func kprobeCount(b *testing.B) int {
	data, err := os.ReadFile("/sys/kernel/debug/kprobes/list")
	if err != nil {
		b.Fatalf("counting the kernel's kprobes: %v", err)
	}
	return strings.Count(string(data), "\n")
}

// settle waits until a traced run's teardown is over, and returns how
// long that took: the programs the tracer loaded are gone (none loaded
// now that is not in before), its kprobes unregistered (no more than
// kprobes), and the guest's CPUs back to idle (busy no more than 3
// points above idle over a quarter of a second). Tearing down a
// tracer's probes goes on in the kernel after its process ended (BPF
// programs are freed after an RCU grace period, optimized kprobes are
// unoptimized by a worker that patches kernel text), slowly under
// emulation: the untraced run after a tracer must not pay for it.
func settle(ctx context.Context, b *testing.B, before map[uint32]bool, kprobes int, idle float64) time.Duration {
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		left := 0
		for id := range programIDs(b) {
			if !before[id] {
				left++
			}
		}
		k := kprobeCount(b)
		if left == 0 && k <= kprobes && busyShare(b, 250*time.Millisecond) <= idle+0.03 {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			b.Logf("the guest did not settle within 2m (%d of the tracer's programs loaded, %d kprobes against %d before): measuring anyway", left, k, kprobes)
			return time.Since(start)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		}
	}
}
