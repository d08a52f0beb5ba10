//go:build unix

package health_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
)

// benchServerEnv, when set to a number, makes TestHelperBenchServer serve
// that many loopback HTTP listeners for BenchmarkHTTPChecks5000.
const benchServerEnv = "LVSKIT_HEALTH_BENCH_SERVER"

// TestHelperBenchServer is not a test: BenchmarkHTTPChecks5000 runs the
// test binary again with only this function and benchServerEnv set, so
// the servers' CPU time is not counted as the checker's. It prints the
// address of each listener, then "ready", and serves until stdin closes.
func TestHelperBenchServer(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv(benchServerEnv))
	if err != nil {
		t.Skip("helper process for BenchmarkHTTPChecks5000")
	}
	const response = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
	serve := func(ln net.Listener) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 1024)
				var req []byte
				for !strings.Contains(string(req), "\r\n\r\n") {
					m, err := c.Read(buf)
					if err != nil {
						return
					}
					req = append(req, buf[:m]...)
				}
				io.WriteString(c, response)
			}()
		}
	}
	// 100 loopback addresses share each port: binding thousands of
	// listeners to port 0 is slow (each bind searches the port space).
	out := bufio.NewWriter(os.Stdout)
	var port int
	for i := 0; i < n; i++ {
		host := i%100 + 1
		addr := fmt.Sprintf("127.0.0.%d:%d", host, port)
		if host == 1 {
			addr = "127.0.0.1:0"
		}
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "listening on %s: %v\n", addr, err)
			os.Exit(1)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		fmt.Fprintln(out, ln.Addr())
		go serve(ln)
	}
	fmt.Fprintln(out, "ready")
	out.Flush()
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// BenchmarkHTTPChecks5000 checks 5,000 HTTP targets (loopback listeners
// served by a child process) every second with the Scheduler's defaults
// and reports the checker process's CPU time as a share of one core
// ("cpu-%", the goal is at most 50; "sys-%" is the kernel's part of it),
// the checks per second, and the CPU time per check. On loopback the
// kernel runs much of the servers' side of each connection (their
// SYN-ACK, child socket, request and FIN handling) in the checker's
// context, so the figure is higher than a director checking real
// servers across a network would see. It runs once, for LVSKIT_BENCH_SECONDS (default
// 10) after a 2s warm-up, whatever b.N is.
func BenchmarkHTTPChecks5000(b *testing.B) { benchmarkChecks(b, "http", 5000) }

// BenchmarkChecksScaling is BenchmarkHTTPChecks5000's measurement at
// 1,000, 5,000 and 20,000 targets, TCP and HTTP: the CPU per check
// ("cpu-ns/check") must not grow with the number of targets (nothing in
// the scheduler or the event loop may cost O(targets) per check). The
// sizes side by side in one run are the figure; a loaded host moves
// them all. LVSKIT_BENCH_SIZES (e.g. "1000,20000") picks sizes.
func BenchmarkChecksScaling(b *testing.B) {
	sizes := []int{1000, 5000, 20000}
	if s := os.Getenv("LVSKIT_BENCH_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n <= 0 {
				b.Fatalf("LVSKIT_BENCH_SIZES=%q: want a comma-separated list of counts", s)
			}
			sizes = append(sizes, n)
		}
	}
	for _, kind := range []string{"tcp", "http"} {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("%s-%d", kind, n), func(b *testing.B) { benchmarkChecks(b, kind, n) })
		}
	}
}

// benchmarkChecks measures the Scheduler checking n loopback targets
// with kind's check every second.
func benchmarkChecks(b *testing.B, kind string, targets int) {
	seconds := 10
	if s, err := strconv.Atoi(os.Getenv("LVSKIT_BENCH_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	// Past 5,000 targets, several check each listener: the open-files
	// limit (20,000 on the machine this was written on) holds the
	// listeners and their connections, and what is measured is the
	// scheduler and the event loop at that many targets.
	listeners := min(targets, 5000)
	addrs, stopServer := startBenchServer(b, listeners)
	defer stopServer()

	var checks, failures, busyNanos atomic.Int64
	var firstFailure sync.Once
	s := health.NewScheduler(health.SchedulerOptions{
		OnResult: func(id string, r health.Result) {
			checks.Add(1)
			busyNanos.Add(int64(r.Duration))
			if !r.Up {
				failures.Add(1)
				firstFailure.Do(func() { b.Logf("first failure: %s: %s", id, r.Reason) })
			}
		},
	})
	var ts []health.Target
	for i := range targets {
		addr := addrs[i%len(addrs)]
		var check health.Spec = health.TCPCheck{Address: addr, Timeout: time.Second}
		if kind == "http" {
			check = health.HTTPCheck{Address: addr, Path: "/health", Timeout: time.Second}
		}
		ts = append(ts, health.Target{
			ID:     fmt.Sprintf("rs%05d", i),
			Check:  check,
			Policy: health.Policy{Interval: time.Second, Initial: health.StateUp},
		})
	}
	if err := s.Update(ts); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	go func() { done <- s.Run(ctx) }()
	warmup := time.NewTimer(2 * time.Second)
	<-warmup.C
	stopCounting := countPreemptions()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	startAllocs := mem.Mallocs
	startUser, startSys := cpuTime(b)
	startVol, startInvol := contextSwitches(b)
	startWall := time.Now()
	startChecks, startFailures := checks.Load(), failures.Load()
	window := time.NewTimer(time.Duration(seconds) * time.Second)
	<-window.C
	user, sys := cpuTime(b)
	vol, invol := contextSwitches(b)
	runtime.ReadMemStats(&mem)
	allocs := mem.Mallocs - startAllocs
	user, sys = user-startUser, sys-startSys
	cpu, wall := user+sys, time.Since(startWall)
	n, failed := checks.Load()-startChecks, failures.Load()-startFailures
	preemptions := stopCounting()
	cancel()
	<-done
	b.StopTimer()

	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu-%")
	b.ReportMetric(100*sys.Seconds()/wall.Seconds(), "sys-%")
	b.ReportMetric(float64(n)/wall.Seconds(), "checks/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(max(n, 1)), "cpu-ns/check")
	b.ReportMetric(float64(allocs)/float64(max(n, 1)), "allocs/check")
	b.ReportMetric(float64(failed), "failed")
	// A thread that blocks (a futex of a goroutine hand-off, a
	// nanosleep, an epoll_wait with nothing ready) switches context
	// voluntarily; one preempted by the kernel, involuntarily.
	b.ReportMetric(float64(vol-startVol)/float64(max(n, 1)), "vcsw/check")
	b.ReportMetric(float64(invol-startInvol)/float64(max(n, 1)), "ivcsw/check")
	// Go's runtime interrupts a goroutine that ran 10ms without passing
	// through its scheduler with SIGURG (sysmon), and does so to scan
	// stacks for the GC: each a signal delivered and returned from.
	b.ReportMetric(float64(preemptions)/float64(max(n, 1)), "sigurg/check")
	b.Logf("mean check duration %v", time.Duration(busyNanos.Load()/max(checks.Load(), 1)))
	if failed > 0 {
		b.Logf("%d of %d checks failed (a loaded machine makes checks miss their 1s timeout)", failed, n)
	}
}

// countPreemptions counts the SIGURG signals the process receives (Go's
// runtime preempts goroutines with them, and hands them to signal.Notify
// too) until the function it returns is called, which returns the
// count. Signals that come while the last is not yet taken are counted
// as one: the count is a lower bound.
func countPreemptions() (stop func() int64) {
	ch := make(chan os.Signal, 1024)
	signal.Notify(ch, syscall.SIGURG)
	var n int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range ch {
			n++
		}
	}()
	return func() int64 {
		signal.Stop(ch)
		close(ch)
		<-done
		return n
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// contextSwitches is the process's voluntary and involuntary context
// switches so far, over all its threads.
func contextSwitches(b *testing.B) (voluntary, involuntary int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return int64(ru.Nvcsw), int64(ru.Nivcsw)
}

// startBenchServer starts the helper server process with n listeners
// and returns their addresses.
func startBenchServer(b *testing.B, n int) ([]netip.AddrPort, func()) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestHelperBenchServer$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", benchServerEnv, n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := func() {
		stdin.Close()
		cmd.Wait()
		if ps := cmd.ProcessState; ps != nil {
			b.Logf("server process CPU: %v user, %v system", ps.UserTime(), ps.SystemTime())
		}
	}
	var addrs []netip.AddrPort
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
		a, err := netip.ParseAddrPort(sc.Text())
		if err != nil {
			stop()
			b.Fatalf("server said %q", sc.Text())
		}
		addrs = append(addrs, a)
	}
	if len(addrs) != n {
		stop()
		b.Fatalf("server opened %d listeners, want %d", len(addrs), n)
	}
	go io.Copy(io.Discard, stdout)
	return addrs, stop
}
