//go:build vmtest && linux && amd64

package probes_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/gcpause"
	"github.com/lvskit/lvskit/internal/lab"
	"github.com/lvskit/lvskit/probes"
	"golang.org/x/sys/unix"
)

// BenchmarkVMAttach measures Open (resolve, load, attach every target)
// and Close (detach) per backend, on the VM's kernel, for two sets:
// every IPVS hop (set=ipvs, no filter), and what lvsdiag trace --vip V
// --port P attaches for one direct-routing TCP service (set=dr-tcp: no
// NAT reply side, no other transmitters, no UDP or SCTP scheduling).
// Backends the kernel lacks are skipped. Goal: attach <= 1 s.
// LVSKIT_TRACE_BASELINE_OBJ: see BenchmarkVMProbeCost.
//
// Each sample is what a user of lvsdiag trace gets: the first Open of a
// fresh process (the benchmark runs its test binary again for each,
// attachSample), with the collector paused during Open as lvsdiag
// pauses it. Measured in one process, the case that ran first had been
// the slow one: a process's first Open took 1.27 times as long as its
// second (median of 8 processes on 6.1, 0.64-2.31, host load 5-7), its
// garbage collector starting from a small heap took twice the CPU
// (median 0.35 against 0.17 s) and the process nine times the page
// faults. With the collector paused a first Open still took 1.07 times
// its process's second (0.59-1.90, 12 processes, host load 6-7), its
// read of the kernel's BTF into a fresh heap 0.25 against 0.20 s.
// Before the first sample since the VM booted, one Open runs untimed
// (attachWarmOnce): the first process of a boot took 1.02-2.06 times
// the next two's mean on 6.1 and 0.88-1.20 on 6.12 (4 boots each, host
// load 6-7), too few to name the cost, but a director that has been up
// has paid whatever it is (Debian's systemd loads BPF programs at
// boot).
func BenchmarkVMAttach(b *testing.B) {
	sets := []struct {
		name string
		opts probes.Options
	}{
		{"ipvs", probes.Options{}},
		{"dr-tcp", probes.Options{Filter: probes.Filter{VIP: netip.MustParseAddr("10.77.0.200"), Port: 80}, NoNAT: true,
			Forwarding: []probes.Forwarding{probes.DirectRoute}, Protocols: []string{"tcp"}}},
	}
	// With LVSKIT_TRACE_BASELINE_OBJ set to an earlier build of the BPF
	// object, each case also runs with it, just before this build.
	objs := []struct{ name, path string }{{"this", ""}}
	if obj := os.Getenv("LVSKIT_TRACE_BASELINE_OBJ"); obj != "" {
		objs = append([]struct{ name, path string }{{"baseline", obj}}, objs...)
	}
	for _, set := range sets {
		for _, parallel := range []int{1, 8} {
			for _, obj := range objs {
				name := fmt.Sprintf("set=%s/parallel=%d", set.name, parallel)
				if len(objs) > 1 {
					name += "/obj=" + obj.name
				}
				old := probes.SetAttachParallel(parallel)
				probes.SetObject(obj.path)
				b.Run(name, func(b *testing.B) { benchmarkAttach(b, set.opts) })
				probes.SetObject("")
				probes.SetAttachParallel(old)
			}
		}
	}
}

// attachLogLevel is the tracer's log level in BenchmarkVMAttach: Info
// (one line per Open, with where its time went), or Debug with
// LVSKIT_TRACE_DEBUG=1 (each program's verifier time and instructions,
// and where Close's time went).
func attachLogLevel() slog.Level {
	if os.Getenv("LVSKIT_TRACE_DEBUG") == "1" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// attachChildEnv, set in the environment, makes BenchmarkVMAttach's
// case the one sample of a child process (attachSample): one Open and
// Close, reported on stdout as an attachResultPrefix line.
const (
	attachChildEnv     = "LVSKIT_ATTACH_CHILD"
	attachResultPrefix = "attach-sample "
	// LVSKIT_ATTACH_LIST=1 lists the cases a -test.bench pattern
	// selects (a "attach-case NAME" line each) without measuring:
	// bench/trace-attach.sh runs each in a process of its own.
	attachListEnv = "LVSKIT_ATTACH_LIST"
)

type attachResult struct {
	open, close time.Duration
	attached    int // targets attached with the backend asked for (any, for auto)
}

func benchmarkAttach(b *testing.B, base probes.Options) {
	for _, backend := range []probes.Backend{probes.BackendAuto, probes.BackendFentry, probes.BackendKprobe, probes.BackendKprobeMulti} {
		b.Run(string(backend), func(b *testing.B) {
			opts := base
			opts.Backend = backend
			switch {
			case os.Getenv(attachListEnv) == "1":
				fmt.Println("attach-case", b.Name())
				return
			case os.Getenv(attachChildEnv) == "1":
				r := attachOnce(b, opts)
				fmt.Printf("%sopen=%d close=%d attached=%d\n", attachResultPrefix, r.open, r.close, r.attached)
				return
			}
			attachWarmOnce(b)
			b.ResetTimer()
			var open, close time.Duration
			attached := 0
			for range b.N {
				r := attachSample(b)
				open += r.open
				close += r.close
				attached = r.attached
			}
			if attached < 3 {
				b.Skipf("%s: only %d targets attach on this kernel", backend, attached)
			}
			b.ReportMetric(open.Seconds()/float64(b.N), "attach-s")
			b.ReportMetric(close.Seconds()/float64(b.N), "detach-s")
			b.ReportMetric(float64(attached), "targets")
		})
	}
}

// attachOnce opens and closes the tracer once, in this process, the
// collector paused during Open as lvsdiag trace pauses it.
func attachOnce(b *testing.B, opts probes.Options) attachResult {
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: attachLogLevel()}))
	var tr *probes.Tracer
	var err error
	start := time.Now()
	gcpause.Do(func() { tr, err = probes.Open(opts) })
	if err != nil {
		b.Fatal(err)
	}
	r := attachResult{open: time.Since(start)}
	for _, a := range tr.Attachments() {
		if a.Backend == string(opts.Backend) || opts.Backend == probes.BackendAuto {
			r.attached++
		}
	}
	start = time.Now()
	if err := tr.Close(); err != nil {
		b.Fatal(err)
	}
	r.close = time.Since(start)
	return r
}

// attachSample runs b's case once in a fresh process of this test
// binary and returns what it measured; the child's log goes to stderr.
func attachSample(b *testing.B) attachResult {
	b.Helper()
	out := runAttachChild(b, os.Stderr)
	for l := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(l), attachResultPrefix)
		if !ok {
			continue
		}
		var r attachResult
		if _, err := fmt.Sscanf(rest, "open=%d close=%d attached=%d", &r.open, &r.close, &r.attached); err != nil {
			b.Fatalf("reading the attach sample %q: %v", rest, err)
		}
		return r
	}
	b.Fatalf("the attach sample printed no result:\n%s", out)
	return attachResult{}
}

// runAttachChild runs b's case, alone, in a child process (one Open
// and Close), its stderr to stderr, and returns its stdout.
func runAttachChild(b *testing.B, stderr io.Writer) string {
	b.Helper()
	var levels []string
	for _, l := range strings.Split(b.Name(), "/") {
		levels = append(levels, "^"+regexp.QuoteMeta(l)+"$")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^$", "-test.bench", strings.Join(levels, "/"), "-test.benchtime", "1x", "-test.count", "1")
	cmd.Env = append(os.Environ(), attachChildEnv+"=1")
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("running the attach sample %s in a child process: %v\n%s", b.Name(), err, stdout.String())
	}
	return stdout.String()
}

// attachWarmMarker is in /run, which the VM makes afresh each boot.
const attachWarmMarker = "/run/lvskit-attach-warm"

// attachWarmOnce runs b's case once, untimed and unlogged, in a child
// process, unless an Open has run so since the VM booted. Outside the
// project's VM (LVSKIT_IN_VM, set by scripts/vm/run) it does nothing: a
// machine that has been up has paid the boot's costs, and its /run is
// not the benchmark's to write.
func attachWarmOnce(b *testing.B) {
	if os.Getenv("LVSKIT_IN_VM") != "1" {
		return
	}
	if _, err := os.Stat(attachWarmMarker); err == nil {
		return
	}
	runAttachChild(b, io.Discard)
	if err := os.WriteFile(attachWarmMarker, nil, 0o644); err != nil {
		b.Fatalf("marking the boot's attach warm-up done: %v", err)
	}
}

// BenchmarkVMEventRate sends UDP datagrams from a client through a DR
// service at rising paced rates, with one tracer reading every hop, and
// reports the highest event rate read with 0 events lost (and the rate
// and losses of the client's unpaced burst).
func BenchmarkVMEventRate(b *testing.B) {
	v := newVMLabTB(b)
	vip := netip.MustParseAddrPort("10.77.0.200:5000")
	key := ipvs.UDPKey(vip)
	if err := v.ipvs.AddService(ipvs.Service{ServiceKey: key, Scheduler: "rr"}); err != nil {
		b.Fatal(err)
	}
	if err := v.ipvs.AddRealServer(key, ipvs.RealServer{Address: v.realServers["dr1"], Port: 5000, Forwarding: ipvs.DirectRoute, Weight: 1}); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		tr, err := probes.Open(probes.Options{Filter: probes.Filter{VIP: vip.Addr(), Port: vip.Port(), NetNS: v.netns}})
		if err != nil {
			b.Fatal(err)
		}
		best := 0.0
		var burstRate, burstLost float64
		// 0: unpaced, as fast as the client can send.
		for _, pps := range []int{250, 500, 1000, 2000, 4000, 0} {
			events, lost, elapsed := eventRun(b, v, tr, vip, 1000, pps)
			rate := float64(events) / elapsed.Seconds()
			b.Logf("%d packets/s: %d events in %v (%.0f events/s), %d lost", pps, events, elapsed.Round(time.Millisecond), rate, lost)
			if pps == 0 {
				burstRate, burstLost = rate, float64(lost)
			}
			if lost == 0 && rate > best {
				best = rate
			}
		}
		tr.Close()
		b.ReportMetric(best, "events/s-0-lost")
		b.ReportMetric(burstRate, "burst-events/s")
		b.ReportMetric(burstLost, "burst-lost")
	}
}

// eventRun sends packets datagrams at pps (0: unpaced) while reading
// events, then drains what is buffered; it returns the events read, the
// events lost meanwhile, and the time from first send to drained.
func eventRun(b *testing.B, v *vmLab, tr *probes.Tracer, vip netip.AddrPort, packets, pps int) (int, uint64, time.Duration) {
	lostBefore, _ := tr.Lost()
	ctx, cancel := context.WithCancel(context.Background())
	events := 0
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := tr.Read(ctx); err != nil {
				done <- err
				return
			}
			events++
		}
	}()
	start := time.Now()
	err := v.client.Do(func() error {
		// Unconnected: the real server's ICMP port unreachable does not
		// stop the loop.
		c, err := net.ListenPacket("udp", v.client.Addr().String()+":0")
		if err != nil {
			return err
		}
		defer c.Close()
		to := net.UDPAddrFromAddrPort(vip)
		var tick <-chan time.Time
		if pps > 0 {
			t := time.NewTicker(time.Second / time.Duration(pps))
			defer t.Stop()
			tick = t.C
		}
		for range packets {
			if tick != nil {
				<-tick // pacing the load, not waiting for a result
			}
			if _, err := c.WriteTo([]byte("lvskit"), to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	cancel() // the reader drains what is buffered, then stops
	if err := <-done; err != context.Canceled {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	lostAfter, _ := tr.Lost()
	return events, lostAfter - lostBefore, elapsed
}

// BenchmarkVMProbeCost measures what each group of targets costs a
// director's traffic with a filter that matches nothing (a client
// address no packet has): new TCP connections per second from the
// client to a DR service, traced with one group, as a share of the
// untraced rate measured just before and after; the exact number of
// program runs per connection and the time spent in the programs per
// connection (the kernel's BPF statistics), against the guest's busy CPU
// time per connection (/proc/stat) untraced. The groups: what lvsdiag
// attaches for this DR service (default hops, NoNAT); the default hops;
// every hop (HopsAll), with fentry and with kprobes; IPVS's hooks; the
// tracepoints. With LVSKIT_TRACE_BASELINE_OBJ set to an earlier build of
// the BPF object (git show REV:probes/trace_x86_bpfel.o), the first two
// groups also run with it, alternating with this build. Under TCG on a
// shared host the rates swing by half from one second to the next: the
// runs and the programs' time per connection are the figures to compare.
// LVSKIT_TRACE_COST_GROUPS (names, comma-separated) runs only those
// groups.
func BenchmarkVMProbeCost(b *testing.B) {
	v := newVMLabTB(b)
	// Eight clients at once keep the VM's CPUs busy: the rate is bound by
	// the work per connection, not by wake-up latency, which under TCG
	// swings from one second to the next.
	const conns, clients, rounds = 400, 8, 3
	// rate returns the median connections per second of three rounds,
	// and the guest's busy CPU time per connection over all of them.
	rate := func() (float64, time.Duration) {
		var rates []float64
		busy0 := busyCPU(b)
		for range rounds {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			r, err := v.client.ConnectMany(ctx, v.drVIP.String(), conns, clients)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			rates = append(rates, r)
		}
		slices.Sort(rates)
		return rates[len(rates)/2], (busyCPU(b) - busy0) / (rounds * conns)
	}
	// The untraced rate twice in a row says how much of a difference is
	// noise.
	r1, c1 := rate()
	r2, c2 := rate()
	b.Logf("untraced, twice: %.1f, %.1f conn/s; guest CPU %.0f, %.0f µs per connection", r1, r2, us(c1), us(c2))
	tracepoints := map[string]bool{"netif_receive_skb": true, "net_dev_queue": true, "kfree_skb": true, "consume_skb": true}
	type group struct {
		name    string
		backend probes.Backend
		hops    probes.Hops
		noNAT   bool
		sel     func(string) bool
		obj     string
	}
	groups := []group{
		{name: "lvsdiag-dr", backend: probes.BackendAuto, hops: probes.HopsIPVS, noNAT: true},
		{name: "default", backend: probes.BackendAuto, hops: probes.HopsIPVS},
		// What auto's kprobe-multi link for the transmitters and the
		// scheduling entries (6.6 and later) costs against fentry.
		{name: "default-fentry", backend: probes.BackendFentry, hops: probes.HopsIPVS},
		{name: "hops-all", backend: probes.BackendAuto, hops: probes.HopsAll},
		{name: "hops-all-kprobe", backend: probes.BackendKprobe, hops: probes.HopsAll},
		{name: "hooks", backend: probes.BackendAuto, hops: probes.HopsIPVS, sel: func(n string) bool { return strings.HasSuffix(n, "_hook") }},
		{name: "tracepoints", backend: probes.BackendAuto, hops: probes.HopsIPVS, sel: func(n string) bool { return tracepoints[n] }},
	}
	if obj := os.Getenv("LVSKIT_TRACE_BASELINE_OBJ"); obj != "" {
		base := groups[:2]
		var with []group
		for _, g := range base {
			old := g
			old.name += "-baseline"
			old.obj = obj
			with = append(with, old, g)
		}
		groups = append(with, groups[2:]...)
	}
	if only := os.Getenv("LVSKIT_TRACE_COST_GROUPS"); only != "" {
		groups = slices.DeleteFunc(groups, func(g group) bool {
			return !slices.Contains(strings.Split(only, ","), strings.TrimSuffix(g.name, "-baseline"))
		})
	}
	for range b.N {
		for _, g := range groups {
			before, _ := rate()
			probes.SetTargets(g.sel)
			probes.SetObject(g.obj)
			tr, err := probes.Open(probes.Options{Backend: g.backend, Hops: g.hops, NoNAT: g.noNAT, Filter: probes.Filter{
				VIP: v.drVIP.Addr(), Port: v.drVIP.Port(), Client: netip.MustParsePrefix("10.77.0.99/32"), NetNS: v.netns}})
			probes.SetTargets(nil)
			probes.SetObject("")
			if err != nil {
				b.Fatalf("%s: %v", g.name, err)
			}
			stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
			if err != nil {
				b.Fatal(err)
			}
			traced, cpu := rate()
			runs, err := probes.ProgramRuns(tr)
			stats.Close()
			if err != nil {
				b.Fatal(err)
			}
			n := len(tr.Attachments())
			byBackend := map[string]int{}
			for _, a := range tr.Attachments() {
				byBackend[a.Backend]++
			}
			tr.Close()
			after, _ := rate()
			share := 100 * traced / ((before + after) / 2)
			var total uint64
			var runtime time.Duration
			names := slices.Collect(maps.Keys(runs))
			slices.SortFunc(names, func(a, b string) int { return cmp.Compare(runs[b].RunTime, runs[a].RunTime) })
			var top []string
			for _, name := range names {
				s := runs[name]
				total += s.Runs
				runtime += s.RunTime
				if s.Runs > 0 {
					top = append(top, fmt.Sprintf("%s %.1f runs of %.0f ns", name, float64(s.Runs)/(rounds*conns), float64(s.RunTime)/float64(s.Runs)))
				}
			}
			perConn := float64(total) / (rounds * conns)
			inProgs := runtime / (rounds * conns)
			b.Logf("%-16s %2d targets %v: %6.1f conn/s traced, %6.1f / %6.1f untraced before / after: %5.1f%%; %.1f program runs per connection, %.1f µs in programs per connection (%.2f µs a run) of %.0f µs guest CPU (%.1f%%)\n    %s",
				g.name, n, byBackend, traced, before, after, share, perConn, us(inProgs), us(inProgs)/perConn, us(cpu), 100*us(inProgs)/us(cpu), strings.Join(top, ", "))
			b.ReportMetric(share, g.name+"-%")
			b.ReportMetric(perConn, g.name+"-runs/conn")
			b.ReportMetric(us(inProgs), g.name+"-prog-µs/conn")
			b.ReportMetric(100*us(inProgs)/us(cpu), g.name+"-prog-%-of-cpu")
		}
	}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func busyCPU(b *testing.B) time.Duration {
	d, err := lab.BusyCPU()
	if err != nil {
		b.Fatal(err)
	}
	return d
}
