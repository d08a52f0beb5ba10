//go:build vmtest

package director_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// withdrawSteps are the milestones of one graceful stop, each as the time
// since the test sent SIGTERM; zero when the step left no trace.
type withdrawSteps struct {
	stopping time.Duration // lvsd: "bgp: stopping" (signal seen, shutdown begun)
	called   time.Duration // lvsd: about to call the speaker's Withdraw
	returned time.Duration // lvsd: Withdraw returned ("withdrawn")
	sent     time.Duration // GoBGP: "sent update" with the withdrawal (after its write)
	wire     time.Duration // tcpdump on the router's link: the UPDATE arrived
	birdBGP  time.Duration // BIRD: the BGP protocol took the withdrawal
	birdFIB  time.Duration // BIRD: the kernel protocol exported the new route
	fib      time.Duration // ip monitor on the router: the kernel's route changed
	flushed  time.Duration // lvsd: removed its IPVS services (after stop_drain)
	loop     time.Duration // lvsd: its loop reached the shutdown (it withdrew here before)
	length   int           // the UPDATE's BGP length (bytes)
}

// withdrawStepNames name list()'s steps, in the order they happen.
// GoBGP's "sent update" line is left out: it is written after the write
// returned, often after the router's capture saw the packet.
var withdrawStepNames = []string{"lvsd stopping", "lvsd calls Withdraw", "Withdraw returned", "UPDATE on router's link", "BIRD took withdraw", "BIRD wrote kernel", "router FIB changed"}

func (s withdrawSteps) list() []time.Duration {
	return []time.Duration{s.stopping, s.called, s.returned, s.wire, s.birdBGP, s.birdFIB, s.fib}
}

// TestVMBGPGracefulStopWithdrawLatency is the graceful-stop figure
// with where the time goes: 21 stops of one director after another
// (SIGTERM), each timed step by step from lvsd's log, GoBGP's log, a
// capture on the router's link, BIRD's log and the router's route
// events, then the director started again. Every stop must move the
// router's route before lvsd flushes its IPVS services.
func TestVMBGPGracefulStopWithdrawLatency(t *testing.T) {
	const stops = 21
	bl := newBGPLab(t, bgpLabOptions{Timeout: 15 * time.Minute, CaptureBGP: true})
	addrs := []string{"10.83.0.11", "10.83.0.12", "10.83.0.13"}
	bl.waitHops(t, 90*time.Second, addrs...)

	var all []withdrawSteps
	for i := range stops {
		k := i % 3
		// Let the session settle: a stop right after the route came back
		// would time GoBGP's first UPDATEs, not a withdraw.
		time.Sleep(500 * time.Millisecond) // pacing, not waiting for a condition
		t0 := time.Now()
		if err := syscall.Kill(bl.lvsd[k].Pid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(bl.ctx, 1500*time.Millisecond)
		_, err := bl.lvsd[k].WaitForOutput(ctx, "bgp: stopping")
		cancel()
		if err != nil {
			// Where is it? SIGQUIT makes the Go runtime print every
			// goroutine's stack (and exit).
			syscall.Kill(bl.lvsd[k].Pid(), syscall.SIGQUIT)
			<-bl.lvsd[k].Done()
			t.Fatalf("stop %d: d%d's lvsd did not begin stopping 1.5s after SIGTERM; its output:\n%s", i, k+1, bl.lvsd[k].Output())
		}
		fib := bl.fibChangeAfter(t, t0)
		select {
		case <-bl.lvsd[k].Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("d%d's lvsd did not exit 30s after SIGTERM", k+1)
		}
		s := bl.withdrawSteps(t, k, t0)
		s.fib = fib.Sub(t0)
		if s.flushed == 0 || s.fib > s.flushed {
			t.Errorf("stop %d (d%d): the router's route changed %v after SIGTERM, lvsd flushed IPVS %v after it: the route must go first", i, k+1, s.fib, s.flushed)
		}
		all = append(all, s)
		if i == 0 {
			b := readFileString(t, bl.birdLog)
			t.Logf("BIRD's log on the VIP:\n%s\nits end:\n%s", grepLines(b, bgpVIP), b[max(0, len(b)-3000):])
		}
		if slices.Max(s.list()[:4]) > 50*time.Millisecond {
			t.Logf("stop %d: lvsd's log from a second before SIGTERM:\n%s", i, logSince(bl.lvsd[k].Output(), t0.Add(-time.Second), t0.Add(s.fib)))
		}
		t.Logf("stop %2d d%d: stopping %v, calls %v, returned %v, GoBGP wrote %v, on the link %v (%d bytes), BIRD took %v, BIRD wrote %v, FIB %v; loop at shutdown %v, IPVS flushed %v",
			i, k+1, msOrDash(s.stopping), msOrDash(s.called), msOrDash(s.returned), msOrDash(s.sent), msOrDash(s.wire), s.length, msOrDash(s.birdBGP), msOrDash(s.birdFIB), msOrDash(s.fib), msOrDash(s.loop), msOrDash(s.flushed))
		bl.restart(t, k)
		bl.waitHops(t, 90*time.Second, addrs...)
	}

	// Each step's time since SIGTERM, and each step's own share (since
	// the step before it), as median and p90 over the stops.
	var b strings.Builder
	fmt.Fprintf(&b, "%-26s %20s %20s\n", "step (over "+strconv.Itoa(len(all))+" stops)", "since SIGTERM p50/p90", "step alone p50/p90")
	for j, name := range withdrawStepNames {
		var since, alone []time.Duration
		for _, s := range all {
			l := s.list()
			if l[j] == 0 {
				continue
			}
			since = append(since, l[j])
			prev := time.Duration(0)
			for p := j - 1; p >= 0; p-- {
				if l[p] != 0 {
					prev = l[p]
					break
				}
			}
			alone = append(alone, l[j]-prev)
		}
		fmt.Fprintf(&b, "%-26s %9s/%-10s %9s/%-10s (%d)\n", name, msOrDash(quantile(since, 0.5)), msOrDash(quantile(since, 0.9)), msZero(quantile(alone, 0.5)), msZero(quantile(alone, 0.9)), len(since))
	}
	t.Logf("withdraw on SIGTERM, step by step:\n%s", b.String())
	var fibs []time.Duration
	for _, s := range all {
		fibs = append(fibs, s.fib)
	}
	t.Logf("FIGURE graceful stop: router FIB changed after SIGTERM: median %v, p90 %v, min %v, max %v over %d stops",
		msOrDash(quantile(fibs, 0.5)), msOrDash(quantile(fibs, 0.9)), msOrDash(slices.Min(fibs)), msOrDash(slices.Max(fibs)), len(fibs))
}

func msOrDash(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// msZero prints a step's own time, which may be 0 (same log tick).
func msZero(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// quantile is the nearest-rank q-quantile of d (0 when d is empty).
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// withdrawSteps reads director k's stop since t0 from the logs and the
// capture.
func (bl *bgpLab) withdrawSteps(t *testing.T, k int, t0 time.Time) withdrawSteps {
	t.Helper()
	var s withdrawSteps
	out := bl.lvsd[k].Output()
	first := func(ts []time.Time) time.Duration {
		for _, x := range ts {
			if !x.Before(t0) {
				return x.Sub(t0)
			}
		}
		return 0
	}
	s.stopping = first(logTimes(out, "bgp: stopping"))
	s.called = first(logTimes(out, "announce=false"))
	s.returned = first(logTimes(out, "bgp: "+bgpVIP+"/32 withdrawn"))
	s.flushed = first(logTimes(out, "removed the services lvsd owns"))
	s.loop = first(logTimes(out, "loop reached its shutdown"))
	var sent []time.Time
	for _, line := range strings.Split(out, "\n") {
		w := strings.Index(line, "withdrawals=")
		if strings.Contains(line, `msg="sent update"`) && w >= 0 && strings.Contains(line[w:], bgpVIP) {
			sent = append(sent, logTimes(line, "sent update")...)
		}
	}
	s.sent = first(sent)
	if bl.bgpCap != nil {
		s.wire, s.length = bgpUpdateOnWire(bl.bgpCap.Lines(), bl.directors[k].Addr().String(), t0)
	}
	birdLines := readFileString(t, bl.birdLog)
	s.birdBGP = first(birdTimes(birdLines, fmt.Sprintf("d%d.ipv4 > ", k+1), bgpVIP))
	if s.birdBGP != 0 {
		s.birdFIB = first(birdTimes(birdLines, "kernel1.ipv4 < ", bgpVIP))
	}
	return s
}

var tcpdumpLength = regexp.MustCompile(`length (\d+)`)

// bgpUpdateOnWire finds the first BGP message from director addr to the
// router after t0 that is longer than a KEEPALIVE (19 bytes), in tcpdump's
// lines ("21:10:00.123456 ... 10.83.0.12.41234 > 10.83.0.1.179: Flags
// [P.], ..., length 28: BGP"), and returns when it arrived and its length.
func bgpUpdateOnWire(lines []string, addr string, t0 time.Time) (time.Duration, int) {
	y, mo, d := t0.In(time.Local).Date()
	day := time.Date(y, mo, d, 0, 0, 0, 0, time.Local)
	for _, line := range lines {
		if !strings.Contains(line, " "+addr+".") || !strings.Contains(line, " > "+bgpRouter+".179:") {
			continue
		}
		m := tcpdumpLength.FindAllStringSubmatch(line, -1)
		if len(m) == 0 {
			continue
		}
		n, _ := strconv.Atoi(m[len(m)-1][1])
		if n <= 19 {
			continue
		}
		f := strings.Fields(line)
		clock, err := time.Parse("15:04:05.000000", f[0])
		if err != nil {
			continue
		}
		ts := day.Add(clock.Sub(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)))
		if ts.Before(t0.Add(-12 * time.Hour)) {
			ts = ts.Add(24 * time.Hour)
		}
		if !ts.Before(t0) {
			return ts.Sub(t0), n
		}
	}
	return 0, 0
}

// birdTimes are the times of BIRD's log lines ("2026-12-06 02:16:46.475448
// <TRACE> d2 > removed [sole] 10.83.100.1/32 ...") holding every substr.
func birdTimes(log string, substrs ...string) []time.Time {
	var out []time.Time
	for _, line := range strings.Split(log, "\n") {
		ok := len(line) > 26
		for _, s := range substrs {
			ok = ok && strings.Contains(line, s)
		}
		if !ok {
			continue
		}
		if ts, err := time.ParseInLocation("2006-01-02 15:04:05.000000", line[:26], time.Local); err == nil {
			out = append(out, ts)
		}
	}
	return out
}

// requestsParallel opens n new connections from the client with workers
// at a time and returns how many got an answer.
func (bl *bgpLab) requestsParallel(t *testing.T, n, workers int) int {
	t.Helper()
	var (
		mu    sync.Mutex
		ok    int
		first error
		wg    sync.WaitGroup
	)
	jobs := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				err := bl.request()
				mu.Lock()
				if err == nil {
					ok++
				} else if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	if first != nil {
		t.Logf("first failed request: %v", first)
	}
	return ok
}

func readFileString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return string(b)
}

func grepLines(text, substr string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// logSince returns an lvsd log's lines stamped from..to.
func logSince(log string, from, to time.Time) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		ts := logTimes(line, "")
		if len(ts) == 1 && !ts[0].Before(from) && !ts[0].After(to) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
