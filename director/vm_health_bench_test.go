//go:build vmtest

package director_test

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/internal/lab"
)

// The health-check benchmark's lab: the real servers are one process (this
// test binary) listening on many ports of a dummy address in their own
// namespace; each checker run gets a fresh director namespace routed to
// it, so neither checker finds the other's IPVS rules or TIME_WAIT
// sockets on its side.
const (
	hcServerAddr = "10.66.0.1"
	hcFirstPort  = 20000
	hcVIP        = "10.79.1.1"
)

// hcRun is one measured run of one checker.
type hcRun struct {
	tool          string
	cpuShare      float64 // of one core
	servedPerSec  float64
	cpuPerCheck   time.Duration
	cpu           time.Duration // over the window
	served        int64         // over the window
	accepted      int64         // connections, over the window
	syscallsCheck float64
	topSyscalls   string
	serverShare   float64 // the servers' CPU (this process), of one core
	userShare     float64 // of cpu, the part outside the kernel (utime)
	// vcswCheck and ivcswCheck are the checker's voluntary and
	// involuntary context switches (all its threads) per check served.
	vcswCheck, ivcswCheck float64
	// profiled: lvsd ran with --cpu-profile; publishShare is the share
	// of its CPU samples in what the daemon does with each result
	// (health.Scheduler.publish: the log, OnTransition, OnResult with
	// the metrics), schedulerShare in the scheduler's handling of the
	// event loop's results (publish included), loopShare in the event
	// loop.
	profiled                                bool
	publishShare, schedulerShare, loopShare float64
}

// hcWindows are the benchmark's phases, from LVSKIT_HC_WARMUP,
// LVSKIT_HC_WINDOW and LVSKIT_HC_SYSCALLS (seconds).
type hcWindows struct{ warmup, cpu, syscalls time.Duration }

func hcWindowsFromEnv() hcWindows {
	get := func(name string, def int) time.Duration {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
			def = v
		}
		return time.Duration(def) * time.Second
	}
	return hcWindows{warmup: get("LVSKIT_HC_WARMUP", 8), cpu: get("LVSKIT_HC_WINDOW", 10), syscalls: get("LVSKIT_HC_SYSCALLS", 4)}
}

// hcChecker is a running checker: lvsd or keepalived's checker process.
type hcChecker struct {
	tool    string
	n       int       // real servers
	started time.Time // when it was started
	pid     int
	srv     *hcServers // the real servers it checks
	done    <-chan struct{}
	finish  func(*hcRun) // stops it; fills in its profile, if any
}

// measureTogether measures checkers that run at the same time, each on
// its own real servers (or one checker, when they take turns). It waits for
// checks to flow, warms up, measures each one's CPU against what its
// servers served over one window, then counts each one's syscalls in a
// window of its own (strace slows the process: not during the first).
func measureTogether(b *testing.B, kind string, w hcWindows, cs ...*hcChecker) []hcRun {
	// Starting with 5,000 real servers (IPVS writes, config parsing)
	// takes a starved VM minutes: each checker is waited for until its
	// servers have served it in steadySeconds consecutive seconds, then
	// for the warm-up.
	started := time.Now()
	deadline := started.Add(4 * time.Minute)
	for _, c := range cs {
		first, steady := waitSteady(b, c, kind, deadline)
		fmt.Printf("%s %d %s: first check served %.1fs after start, served in each of %d seconds in a row %.1fs after start\n",
			kind, c.n, c.tool, first.Sub(c.started).Seconds(), steadySeconds, steady.Sub(c.started).Seconds())
	}
	wait := func(d time.Duration) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-cs[0].done:
			b.Fatalf("%s exited during the measurement", cs[0].tool)
		}
		for _, c := range cs {
			select {
			case <-c.done:
				b.Fatalf("%s exited during the measurement", c.tool)
			default:
			}
		}
	}
	wait(w.warmup)

	ticks0 := make([]int64, len(cs))
	user0 := make([]int64, len(cs))
	vcsw0 := make([]int64, len(cs))
	ivcsw0 := make([]int64, len(cs))
	served0 := make([]int64, len(cs))
	accepts0 := make([]int64, len(cs))
	for i, c := range cs {
		var err error
		if ticks0[i], err = cpuTicks(c.pid); err != nil {
			b.Fatal(err)
		}
		if user0[i], err = userTicks(c.pid); err != nil {
			b.Fatal(err)
		}
		if vcsw0[i], ivcsw0[i], err = contextSwitches(c.pid); err != nil {
			b.Fatal(err)
		}
		served0[i], accepts0[i] = c.srv.served(kind), c.srv.accepts.Load()
	}
	t0, self0 := time.Now(), selfCPU()
	wait(w.cpu)
	wall, selfUsed := time.Since(t0), selfCPU()-self0
	runs := make([]hcRun, len(cs))
	for i, c := range cs {
		ticks1, err := cpuTicks(c.pid)
		if err != nil {
			b.Fatal(err)
		}
		user1, err := userTicks(c.pid)
		if err != nil {
			b.Fatal(err)
		}
		vcsw1, ivcsw1, err := contextSwitches(c.pid)
		if err != nil {
			b.Fatal(err)
		}
		served, accepted := c.srv.served(kind)-served0[i], c.srv.accepts.Load()-accepts0[i]
		cpu := time.Duration(ticks1-ticks0[i]) * time.Second / clockTicks
		perServed := func(n int64) float64 { return float64(n) / float64(max(served, 1)) }
		runs[i] = hcRun{
			tool:         c.tool,
			serverShare:  selfUsed.Seconds() / wall.Seconds(),
			cpuShare:     cpu.Seconds() / wall.Seconds(),
			servedPerSec: float64(served) / wall.Seconds(),
			cpuPerCheck:  cpu / time.Duration(max(served, 1)),
			cpu:          cpu,
			served:       served,
			accepted:     accepted,
			userShare:    float64(user1-user0[i]) / float64(max(ticks1-ticks0[i], 1)),
			vcswCheck:    perServed(vcsw1 - vcsw0[i]),
			ivcswCheck:   perServed(ivcsw1 - ivcsw0[i]),
		}
	}
	for i, c := range cs {
		calls, connects, checks, top := syscallCount(b, c.pid, w.syscalls, func() int64 { return c.srv.served(kind) })
		// Every TCP or HTTP check makes one connect: syscalls per
		// connect is syscalls per check begun. (strace stops the
		// process's threads at every syscall, so a slowed checker may
		// have had few checks served in the window, or none: under
		// 20 connects, the window's count is the process's other
		// work, not its checks', and is left out.)
		runs[i].syscallsCheck = math.NaN()
		if connects >= 20 {
			runs[i].syscallsCheck = float64(calls) / float64(connects)
		}
		runs[i].topSyscalls = fmt.Sprintf("%.0f connections accepted/s; %d syscalls, %d connect calls, %d checks served under strace; %s",
			float64(runs[i].accepted)/wall.Seconds(), calls, connects, checks, top)
	}
	for i, c := range cs {
		c.finish(&runs[i])
	}
	return runs
}

// steadySeconds is how many seconds in a row a checker's servers must
// have served it before its warm-up starts.
const steadySeconds = 3

// waitSteady waits until c's servers have served it at least once in
// each of steadySeconds consecutive seconds, polling their counter, and
// returns when they served it first and when it became steady.
func waitSteady(b *testing.B, c *hcChecker, kind string, deadline time.Time) (first, steady time.Time) {
	start := c.srv.served(kind)
	last, lastAt, inRow := start, time.Now(), 0
	for {
		select {
		case <-c.done:
			b.Fatalf("%s exited before checking steadily", c.tool)
		default:
		}
		now := time.Now()
		if now.After(deadline) {
			b.Fatalf("%s was not served in %d seconds in a row within 4 minutes (served %d checks)", c.tool, steadySeconds, c.srv.served(kind)-start)
		}
		got := c.srv.served(kind)
		if first.IsZero() && got != start {
			first = now
		}
		if now.Sub(lastAt) >= time.Second {
			if got > last {
				inRow++
			} else {
				inRow = 0
			}
			last, lastAt = got, now
			if inRow >= steadySeconds {
				return first, now
			}
		}
		time.Sleep(50 * time.Millisecond) // polling the servers' counter, with a deadline
	}
}

// keepalivedCheckConfig checks n real servers with keepalived's TCP_CHECK or
// HTTP_GET every second, with a 1s connect timeout.
func keepalivedCheckConfig(kind string, n, first int) string {
	var b strings.Builder
	b.WriteString("global_defs {\n  router_id lvskit-bench\n}\n")
	fmt.Fprintf(&b, "virtual_server %s 80 {\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n", hcVIP)
	for i := range n {
		fmt.Fprintf(&b, "  real_server %s %d {\n    weight 1\n", hcServerAddr, first+i)
		if kind == "http" {
			b.WriteString("    HTTP_GET {\n      url {\n        path /health\n        status_code 200\n      }\n      connect_timeout 1\n    }\n")
		} else {
			b.WriteString("    TCP_CHECK {\n      connect_timeout 1\n    }\n")
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// lvsdHealthConfig is the same service for lvsd: interval 1s, timeout
// 1s, retries as keepalived's defaults, and the status API and metrics
// on, as a director runs it.
func lvsdHealthConfig(dir, kind string, n, first int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "lvsd:\n  state_dir: %s\n  status_listen: unix:%s/status.sock\n  metrics_listen: unix:%s/metrics.sock\n  resync_interval: 60s\n", dir, dir, dir)
	fmt.Fprintf(&b, "virtual_services:\n  - name: bench\n    protocol: tcp\n    address: %s\n    port: 80\n    scheduler: rr\n    forwarding: masquerade\n", hcVIP)
	b.WriteString("    health_check:\n      type: " + kind + "\n")
	if kind == "http" {
		b.WriteString("      path: /health\n")
	}
	// keepalived's defaults for the checks it runs (retry 1, after
	// delay_before_retry 1s for TCP_CHECK, 3s for HTTP_GET), as
	// lvsd import-keepalived writes them: a check that fails is
	// retried once before the real server goes down on both sides.
	retryDelay := "1s"
	if kind == "http" {
		retryDelay = "3s"
	}
	b.WriteString("      interval: 1s\n      timeout: 1s\n      rise: 1\n      fall: 1\n      retry: 1\n      retry_delay: " + retryDelay + "\n    real_servers:\n")
	for i := range n {
		fmt.Fprintf(&b, "      - {address: %s, port: %d}\n", hcServerAddr, first+i)
	}
	return b.String()
}

// BenchmarkVMHealthChecksVsKeepalived measures lvsd and keepalived
// --check in one VM on the same real servers (one process serving
// /health on 1,000 or 5,000 ports per block): TCP and HTTP checks every
// second with a 1s timeout. By default the checkers take turns, one at a
// time, as the issue measured them: each turn starts a fresh checker in
// a fresh director namespace, and each round's turns run in the reverse
// order of the last's (lvsd, keepalived, then keepalived, lvsd), two
// rounds. Running both at once in the 2-vCPU guest starved them both
// (the checkers and their servers wanted more than the guest's two
// CPUs: keepalived was served 44-61% of its rate, at nearly twice its
// CPU per check served in full).
//
// For each turn it prints the checker's CPU (utime+stime of all its
// threads over the window, as a share of one core), the checks its
// servers served per second and as a share of the configured rate, CPU
// per check, and syscalls per check (strace -c -f over every thread, in
// a window of its own, over the connect calls in it: one per check). A
// turn served below 98% of the rate is marked starved: its CPU per check
// measures the starvation. The ratio lvsd/keepalived of CPU per check
// pools the turns that were not starved, says how many were left out,
// and is not judged when one side has none; the ratio over every turn
// follows it. An extra turn runs lvsd with a CPU profile ("lvsd+prof"),
// printed with where its CPU went but not pooled (profiling under TCG
// inflates CPU). Each turn's window starts once its servers have served
// it in 3 seconds in a row (the time that took is printed) and the
// warm-up has passed. It runs once, whatever b.N is.
//
// LVSKIT_HC_ROUNDS sets the rounds (2).
// LVSKIT_HC_PLACEMENT=together runs lvsd and keepalived at the same
// time instead, each on its own block of real servers, swapped each
// round: a shared host's bursts then hit both alike, but the guest is
// oversubscribed.
// LVSKIT_HC_PROFILE=0 leaves out the profiled turn.
// LVSKIT_HC_BASELINE_LVSD names another lvsd binary (an older build):
// it then takes its turns too, as "lvsd-base", for a before/after
// figure in the same run.
// LVSKIT_HC_PROFILE_DIR keeps the profiled lvsd's CPU profile there
// (pass the directory in LVSKIT_VM_RW too).
// LVSKIT_HC_STATUS_EVERY (a duration, e.g. 1s) has a client fetch each
// lvsd's GET /status that often, as lvstop attached to the director
// does, so that what the status costs with results flowing counts in
// lvsd's CPU per check (the client's own CPU counts as the servers').
func BenchmarkVMHealthChecksVsKeepalived(b *testing.B) {
	lvsd := lvsdBinary(b)
	if _, err := exec.LookPath("keepalived"); err != nil {
		b.Skipf("keepalived is not installed (scripts/install-deps.sh): %v", err)
	}
	w := hcWindowsFromEnv()
	baseline := os.Getenv("LVSKIT_HC_BASELINE_LVSD")
	sizes := []int{1000, 5000}
	if s := os.Getenv("LVSKIT_HC_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n <= 0 || n > 20000 {
				b.Fatalf("LVSKIT_HC_SIZES=%q: want a comma-separated list of counts up to 20000", s)
			}
			sizes = append(sizes, n)
		}
	}
	// LVSKIT_HC_PROFILE=0 leaves out the profiled round.
	profile := os.Getenv("LVSKIT_HC_PROFILE") != "0"
	var statusEvery time.Duration
	if s := os.Getenv("LVSKIT_HC_STATUS_EVERY"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			b.Fatalf("LVSKIT_HC_STATUS_EVERY=%q: want a positive duration, like 1s", s)
		}
		statusEvery = d
	}
	rounds := 2
	if s := os.Getenv("LVSKIT_HC_ROUNDS"); s != "" {
		r, err := strconv.Atoi(s)
		if err != nil || r < 1 || r > 20 {
			b.Fatalf("LVSKIT_HC_ROUNDS=%q: want a count of rounds from 1 to 20", s)
		}
		rounds = r
	}
	var together bool
	switch p := os.Getenv("LVSKIT_HC_PLACEMENT"); p {
	case "", "alternate":
	case "together":
		together = true
	default:
		b.Fatalf("LVSKIT_HC_PLACEMENT=%q: want alternate (one checker at a time, the default) or together (lvsd and keepalived at once)", p)
	}
	kinds := []string{"tcp", "http"}
	if s := os.Getenv("LVSKIT_HC_KINDS"); s != "" {
		kinds = strings.Split(s, ",")
	}

	// 5,000 listeners and their connections, and the checkers (which
	// inherit the limit) with as many sockets.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 65536, Max: 65536}); err != nil {
		b.Fatalf("raising the open files limit to 65536: %v", err)
	}
	// LVSKIT_HC_PIN=1 pins the servers' thread to the last CPU and
	// the checkers to the others, so that they do not take each
	// other's CPU.
	pin := os.Getenv("LVSKIT_HC_PIN") == "1"
	serverCPU, checkerCPUs := -1, ""
	if pin {
		if runtime.NumCPU() < 2 {
			b.Fatalf("LVSKIT_HC_PIN=1 needs 2 CPUs, the guest has %d (LVSKIT_VM_CPUS)", runtime.NumCPU())
		}
		serverCPU = runtime.NumCPU() - 1
		checkerCPUs = fmt.Sprintf("0-%d", serverCPU-1)
	}
	l := lab.New(b, lab.Options{Subnet: mustPrefix("10.78.0.0/24")})
	rs := l.AddHost("servers", "10.78.0.2/24")
	rs.AddDummy("hc0", hcServerAddr+"/32")
	// Two blocks of real servers: lvsd checks one while keepalived
	// checks the other, swapping each round. One loop serves both.
	loop := startHCServerLoop(b, serverCPU)
	addr := netip.MustParseAddr(hcServerAddr).As4()
	blocks := [2]*hcServers{
		loop.listen(b, rs, addr, slices.Max(sizes), hcFirstPort),
		loop.listen(b, rs, addr, slices.Max(sizes), hcFirstPort+10000),
	}

	runs := 0
	newDirector := func() *lab.Host {
		runs++
		h := l.AddHost(fmt.Sprintf("d%d", runs))
		h.AddDummy("vip0", hcVIP+"/32")
		h.AddRoute(hcServerAddr+"/32", "10.78.0.2")
		return h
	}

	// The checkers to measure, in the order of a round's turns.
	type checker struct {
		tool string
		bin  string // empty for keepalived
	}
	checkers := []checker{{tool: "lvsd", bin: lvsd}, {tool: "keepalived"}}
	if baseline != "" {
		checkers = append(checkers, checker{tool: "lvsd-base", bin: baseline})
	}
	start := func(c checker, kind string, n int, srv *hcServers, profile bool) *hcChecker {
		if c.bin == "" {
			return startKeepalived(b, newDirector(), hcStart{kind: kind, n: n, srv: srv, cpus: checkerCPUs})
		}
		return startLvsd(b, newDirector(), hcStart{bin: c.bin, tool: c.tool, kind: kind, n: n, srv: srv, cpus: checkerCPUs, profile: profile, statusEvery: statusEvery})
	}

	b.ResetTimer()
	var summary strings.Builder
	fmt.Fprintf(&summary, "%-5s %5s %-10s %5s %8s %10s %7s %12s %14s %8s\n", "check", "rs", "checker", "round", "cpu", "served/s", "of rate", "cpu/check", "syscalls/check", "servers")
	lastLen := 0
	for _, n := range sizes {
		for _, kind := range kinds {
			runsOf := map[string][]hcRun{}
			row := func(r hcRun, round int) {
				perCheck := "-" // nothing served: no CPU per check
				if r.served > 0 {
					perCheck = r.cpuPerCheck.Round(time.Microsecond).String()
				}
				mark := ""
				if r.starved(n) {
					mark = " starved"
				}
				fmt.Fprintf(&summary, "%-5s %5d %-10s %5d %7.1f%% %10.0f %6.1f%% %12s %14.1f %7.1f%%%s\n", kind, n, r.tool, round+1, 100*r.cpuShare, r.servedPerSec, 100*r.servedPerSec/float64(n), perCheck, r.syscallsCheck, 100*r.serverShare, mark)
				fmt.Printf("%s %d %s round %d: servers' cpu %.0f%%; %.0f%% of its cpu in user space; context switches per check served: %.2f voluntary, %.2f involuntary; %s\n",
					kind, n, r.tool, round+1, 100*r.serverShare, 100*r.userShare, r.vcswCheck, r.ivcswCheck, r.topSyscalls)
				if r.profiled {
					fmt.Printf("%s %d lvsd+prof round %d profile: %.1f%% of lvsd's CPU in the daemon's handling of results (status, metrics, log), %.1f%% in the scheduler's handling of results (that included), %.1f%% in the event loop\n",
						kind, n, round+1, 100*r.publishShare, 100*r.schedulerShare, 100*r.loopShare)
					b.ReportMetric(100*r.publishShare, fmt.Sprintf("%s%d-daemon-per-result-%%", kind, n))
				}
				fmt.Print(summary.String()[lastLen:])
				lastLen = summary.Len()
			}
			turn := 0
			for round := range rounds {
				if together {
					// lvsd (and lvsd-base) beside keepalived, each
					// pair at once, on the two blocks, swapped
					// each round.
					mine, other := blocks[round%2], blocks[1-round%2]
					for _, c := range checkers {
						if c.bin == "" {
							continue
						}
						rs := measureTogether(b, kind, w, start(c, kind, n, mine, false), start(checkers[1], kind, n, other, false))
						for _, r := range rs {
							runsOf[r.tool+"|"+c.tool] = append(runsOf[r.tool+"|"+c.tool], r)
							row(r, round)
						}
					}
					continue
				}
				// One checker at a time, the order reversed every
				// other round (lvsd, keepalived, lvsd-base, then
				// lvsd-base, keepalived, lvsd), so that a load that
				// drifts over the run favours none of them.
				order := slices.Clone(checkers)
				if round%2 == 1 {
					slices.Reverse(order)
				}
				for _, c := range order {
					rs := measureTogether(b, kind, w, start(c, kind, n, blocks[turn%2], false))
					turn++
					runsOf[c.tool] = append(runsOf[c.tool], rs[0])
					row(rs[0], round)
				}
			}
			if profile {
				// An extra turn of lvsd, not pooled into the ratio:
				// profiling under TCG inflates lvsd's CPU (the
				// lead's quiet run: 2.1 ms per HTTP check profiled,
				// 1.1 ms not). Where lvsd's CPU goes, and its
				// daemon's share.
				prof := checker{tool: "lvsd+prof", bin: lvsd}
				cs := []*hcChecker{start(prof, kind, n, blocks[0], true)}
				if together {
					cs = append(cs, start(checkers[1], kind, n, blocks[1], false))
				}
				for _, r := range measureTogether(b, kind, w, cs...) {
					row(r, rounds)
				}
			}
			for _, c := range checkers {
				if c.bin == "" {
					continue
				}
				ours, theirs := runsOf[c.tool], runsOf["keepalived"]
				if together {
					ours, theirs = runsOf[c.tool+"|"+c.tool], runsOf["keepalived|"+c.tool]
				}
				ratio, line := judgeRatio(n, ours, theirs)
				fmt.Fprintf(&summary, "%-5s %5d ratio %s/keepalived: %s\n", kind, n, c.tool, line)
				if c.tool != "lvsd" {
					continue
				}
				if !math.IsNaN(ratio) {
					b.ReportMetric(ratio, fmt.Sprintf("%s%d-cpu-ratio", kind, n))
				}
				b.ReportMetric(meanServed(ours), fmt.Sprintf("%s%d-lvsd-served/s", kind, n))
				b.ReportMetric(meanServed(theirs), fmt.Sprintf("%s%d-keepalived-served/s", kind, n))
			}
		}
	}
	placement := fmt.Sprintf("one checker at a time, %d rounds, each round's turns in the reverse order of the last's", rounds)
	if together {
		placement = fmt.Sprintf("lvsd and keepalived at once, each on its own block of real servers, %d rounds", rounds)
	}
	if pin {
		placement += fmt.Sprintf("; servers pinned to CPU %d, checkers to CPUs %s", serverCPU, checkerCPUs)
	} else {
		placement += "; not pinned: the checkers and the servers share the guest's CPUs"
	}
	if statusEvery > 0 {
		placement += fmt.Sprintf("; each lvsd's GET /status fetched every %v", statusEvery)
	}
	fmt.Printf("health checks every 1s, timeout 1s; windows: warm-up %v (after 3 steady seconds), cpu %v, syscalls %v; %s; \"of rate\" is served/s over the configured rate (one check per real server a second), \"starved\" a round served below %.0f%% of it, \"servers\" the servers' CPU (one thread) as a share of one CPU; ratios pool the rounds that were not starved (\"lvsd+prof\", profiled, is left out); cpu/check \"-\": nothing served in the window; the guest's load average at the end: %s (the host's is the reader's to note: TCG shares it)\n%s",
		w.warmup, w.cpu, w.syscalls, placement, 100*unstarvedShare, loadAverage(), summary.String())
	os.Stdout.Sync()
}

// unstarvedShare is the share of the configured rate a checker must be
// served in a round for the round to count in the ratio: a checker that
// falls behind is starved of CPU (by the emulated guest, the host, or
// itself), and its CPU per check then measures the starvation (a
// keepalived served 44-61% of the rate cost 900-1,085 us a check where
// served in full it cost 530-606 us).
const unstarvedShare = 0.98

// starved says whether the round's checker was served below
// unstarvedShare of the rate of n real servers checked every second.
func (r hcRun) starved(n int) bool { return r.servedPerSec < unstarvedShare*float64(n) }

// judgeRatio pools the CPU per check of the rounds that were not
// starved, ours over theirs, and says what was left out; the ratio is
// NaN, and the line says it is not judged, when either side has no such
// round. The ratio over every round follows, for what it is worth.
func judgeRatio(n int, ours, theirs []hcRun) (ratio float64, line string) {
	fed := func(rs []hcRun) (kept []hcRun) {
		for _, r := range rs {
			if r.served > 0 && !r.starved(n) {
				kept = append(kept, r)
			}
		}
		return kept
	}
	fedOurs, fedTheirs := fed(ours), fed(theirs)
	all := meanCPUPerCheck(ours).Seconds() / meanCPUPerCheck(theirs).Seconds()
	allSys := meanSyscalls(ours) / meanSyscalls(theirs)
	left := fmt.Sprintf("%d of %d rounds of %s and %d of %d of keepalived starved", len(ours)-len(fedOurs), len(ours), ours[0].tool, len(theirs)-len(fedTheirs), len(theirs))
	if len(fedOurs) == 0 || len(fedTheirs) == 0 {
		return math.NaN(), fmt.Sprintf("cpu/check not judged (%s); over every round, starved too: cpu/check %.2f, syscalls/check %.2f", left, all, allSys)
	}
	ratio = meanCPUPerCheck(fedOurs).Seconds() / meanCPUPerCheck(fedTheirs).Seconds()
	return ratio, fmt.Sprintf("cpu/check %.2f, syscalls/check %.2f over the rounds not starved (%s left out); over every round: cpu/check %.2f",
		ratio, meanSyscalls(fedOurs)/meanSyscalls(fedTheirs), left, all)
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// meanCPUPerCheck is the rounds' CPU over the checks they served,
// pooled: a round starved of CPU by the host serves few checks and
// would weigh too much in a mean of ratios.
func meanCPUPerCheck(rs []hcRun) time.Duration {
	var cpu time.Duration
	var served int64
	for _, r := range rs {
		cpu += r.cpu
		served += r.served
	}
	return cpu / time.Duration(max(served, 1))
}

// meanSyscalls is the mean of the rounds' syscalls per check, over the
// rounds that have one.
func meanSyscalls(rs []hcRun) float64 {
	var sum float64
	var n int
	for _, r := range rs {
		if !math.IsNaN(r.syscallsCheck) {
			sum += r.syscallsCheck
			n++
		}
	}
	return sum / float64(n)
}

func meanServed(rs []hcRun) float64 {
	var sum float64
	for _, r := range rs {
		sum += r.servedPerSec
	}
	return sum / float64(len(rs))
}

// hcStart says which checker to start on what.
type hcStart struct {
	bin, tool string // lvsd's binary and its name in the output
	kind      string // tcp or http
	n         int    // real servers
	srv       *hcServers
	profile   bool   // lvsd writes a CPU profile
	cpus      string // taskset's CPU list to run on; empty for any
	// statusEvery, if set, is how often a client fetches lvsd's
	// GET /status while it runs (LVSKIT_HC_STATUS_EVERY).
	statusEvery time.Duration
}

// command is name with args, run under taskset when the checker is
// pinned.
func (o hcStart) command(name string, args ...string) (string, []string) {
	if o.cpus == "" {
		return name, args
	}
	return "taskset", append([]string{"-c", o.cpus, name}, args...)
}

func startLvsd(b *testing.B, h *lab.Host, o hcStart) *hcChecker {
	bin, tool, kind, n, srv, profile := o.bin, o.tool, o.kind, o.n, o.srv, o.profile
	dir := b.TempDir()
	cfg := filepath.Join(dir, "lvsd.yaml")
	if err := os.WriteFile(cfg, []byte(lvsdHealthConfig(dir, kind, n, srv.first)), 0o600); err != nil {
		b.Fatal(err)
	}
	args := []string{"--config", cfg}
	prof := filepath.Join(dir, "cpu.pprof")
	if keep := os.Getenv("LVSKIT_HC_PROFILE_DIR"); keep != "" {
		// A directory the guest may write (LVSKIT_VM_RW): the profile
		// outlives the VM, for pprof.
		prof = filepath.Join(keep, fmt.Sprintf("%s-%s-%d-%d.pprof", tool, kind, n, time.Now().UnixNano()))
	}
	if profile {
		args = append(args, "--cpu-profile", prof)
	}
	name, args := o.command(bin, args...)
	started := time.Now()
	p := h.Start(context.Background(), name, args...)
	stopPolling := pollStatus(filepath.Join(dir, "status.sock"), o.statusEvery)
	finish := func(r *hcRun) {
		if polls, failed := stopPolling(); polls+failed > 0 {
			fmt.Printf("%s %d %s: GET /status every %v: %d answered, %d failed\n", kind, n, tool, o.statusEvery, polls, failed)
		}
		if err := p.Stop(); err != nil {
			fmt.Printf("%s %d %s: stopping: %v\n", kind, n, tool, err)
		}
		if r.served == 0 {
			printTail(fmt.Sprintf("%s %d %s served nothing in the window", kind, n, tool), p.Output())
		}
		if !profile {
			return
		}
		shares, err := profileShares(prof, "health.(*Scheduler).publish", "health.(*Scheduler).deliver", "health.(*netLoop)")
		if err != nil {
			// lvsd did not stop within the lab's 5s on a starved VM,
			// and was killed before writing its profile.
			fmt.Printf("%s %d %s: no profile: %v\n", kind, n, tool, err)
			return
		}
		r.profiled = true
		r.publishShare, r.schedulerShare, r.loopShare = shares[0], shares[1], shares[2]
	}
	return &hcChecker{tool: tool, n: n, started: started, pid: p.Pid(), srv: srv, done: p.Done(), finish: finish}
}

func startKeepalived(b *testing.B, h *lab.Host, o hcStart) *hcChecker {
	kind, n, srv := o.kind, o.n, o.srv
	dir := b.TempDir()
	cfg := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(cfg, []byte(keepalivedCheckConfig(kind, n, srv.first)), 0o600); err != nil {
		b.Fatal(err)
	}
	checkersPid := filepath.Join(dir, "checkers.pid")
	// --no-syslog: the guest has no syslog daemon, and keepalived's
	// syslog then writes every line to /dev/console, the guest's
	// emulated serial port, where each character costs the writer (1,885
	// lines in a run's first minute: a line per real server at start,
	// "thread timer expired" when starved). Its --log-console lines go
	// to a pipe, as lvsd's log does.
	name, args := o.command("keepalived", "--check", "--dont-fork", "--log-console", "--no-syslog", "--use-file", cfg,
		"--pid", filepath.Join(dir, "keepalived.pid"), "--checkers_pid", checkersPid)
	started := time.Now()
	p := h.Start(context.Background(), name, args...)
	// The parent only watches its children: the checker process is
	// the one to measure.
	var pid int
	deadline := time.Now().Add(60 * time.Second)
	for pid == 0 {
		if s, err := os.ReadFile(checkersPid); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(s)))
		}
		select {
		case <-p.Done():
			b.Fatalf("keepalived exited: %v\n%s", p.Err(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("keepalived wrote no checker pid within 60s:\n%s", p.Output())
		}
		time.Sleep(50 * time.Millisecond) // polling for the pid file, with a deadline
	}
	return &hcChecker{tool: "keepalived", n: n, started: started, pid: pid, srv: srv, done: p.Done(), finish: func(r *hcRun) {
		_ = p.Stop()
		if r.served == 0 {
			printTail(fmt.Sprintf("%s %d keepalived served nothing in the window", kind, n), p.Output())
		}
	}}
}

// printTail prints what a checker wrote last, under why.
func printTail(why, output string) {
	lines := strings.Split(strings.TrimRight(output, "\n"), "\n")
	fmt.Printf("%s; its last %d lines of output:\n%s\n", why, min(20, len(lines)), strings.Join(lines[max(0, len(lines)-20):], "\n"))
}

// pollStatus fetches GET /status from the lvsd listening on socket every
// interval (none when interval is zero), as lvstop does, until the
// function it returns is called; that returns how many fetches lvsd
// answered and how many failed (before it listened, or while it was
// starved past the fetch's timeout).
func pollStatus(socket string, every time.Duration) (stop func() (answered, failed int)) {
	if every <= 0 {
		return func() (int, int) { return 0, 0 }
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var answered, failed int
	go func() {
		defer close(done)
		c, err := statusapi.NewClient("unix:" + socket)
		if err != nil {
			failed++
			return
		}
		defer c.Close()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			fetch, cancelFetch := context.WithTimeout(ctx, every)
			_, err := c.Status(fetch)
			cancelFetch()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				failed++
			default:
				answered++
			}
		}
	}()
	return func() (int, int) {
		cancel()
		<-done
		return answered, failed
	}
}
