// Takeover benchmarks of lvsd's VRRP against Debian's keepalived, as
// issue 4 asks: two lab hosts on one bridge, a master (priority 150) and
// a backup (priority 100), run in turn by a pair of lvsd binaries and a
// pair of keepalived processes with the same VRID, version, interval and
// priorities, and timed on the wire by the bridge tap (kernel receive
// timestamps).
//
// `make bench-vrrp` runs them (root, keepalived and bin/lvsd needed);
// LVSKIT_VRRP_TRIALS overrides the 20 trials of each side.

package director_test

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/vrrp"
	"github.com/lvskit/lvskit/internal/lab"
)

const (
	takeoverMasterPriority = 150
	takeoverBackupPriority = 100
	takeoverVRID           = 51
)

// takeoverHow is how a trial ends the master.
type takeoverHow int

const (
	// byKill: SIGKILL to the master's process group, no word on the
	// wire; the backup takes over after Master_Down_Interval. Measured
	// from the kill to the backup's first gratuitous ARP.
	byKill takeoverHow = iota + 1
	// byStop: SIGTERM; the master sends a priority-0 advert and the
	// backup takes over after Skew_Time. Measured from the priority-0
	// advert on the wire to the backup's first gratuitous ARP.
	byStop
)

// takeoverSeries is one row pair of the table.
type takeoverSeries struct {
	name string
	peer vrrpPeer
	how  takeoverHow
}

func takeoverSeriesList() []takeoverSeries {
	vip := netip.MustParseAddr(vrrpLabVIP)
	v2 := vrrpPeer{VRID: takeoverVRID, Version: vrrp.Version2, Interval: time.Second, Password: "lvskit", VIP: vip}
	v3 := vrrpPeer{VRID: takeoverVRID, Version: vrrp.Version3, Interval: 50 * time.Millisecond, VIP: vip}
	return []takeoverSeries{
		{"kill/v2-1s", v2, byKill},
		{"kill/v3-50ms", v3, byKill},
		{"stop/v2-1s", v2, byStop},
		{"stop/v3-50ms", v3, byStop},
	}
}

// takeoverImpl is one side of the comparison: how to run a master and a
// backup.
type takeoverImpl interface {
	name() string
	// start runs the master on ha and the backup on hb and returns once
	// the master advertises and the backup listens as backup.
	start(ctx context.Context, tb testing.TB, ha, hb *lab.Host, p vrrpPeer) (master, backup *lab.Process)
	// becameMaster is when the backup's log says it became master, if
	// its log says so precisely enough (lvsd: to the millisecond).
	becameMaster(ctx context.Context, backup *lab.Process) (time.Time, bool)
}

// lvsdImpl runs bin/lvsd.
type lvsdImpl struct{ bin string }

func (lvsdImpl) name() string { return "lvsd" }

func (i lvsdImpl) start(ctx context.Context, tb testing.TB, ha, hb *lab.Host, p vrrpPeer) (*lab.Process, *lab.Process) {
	tb.Helper()
	// lvsd always starts as backup: the master takes over after its own
	// Master_Down_Interval, then the backup is started and hears it.
	master := startLVSDPeer(ctx, tb, i.bin, ha, p, lvsdOptions{Priority: takeoverMasterPriority})
	if _, err := master.proc.WaitForOutput(ctx, "from=backup state=master"); err != nil {
		tb.Fatal(err)
	}
	backup := startLVSDPeer(ctx, tb, i.bin, hb, p, lvsdOptions{Priority: takeoverBackupPriority})
	if _, err := backup.proc.WaitForOutput(ctx, "from=initialize state=backup"); err != nil {
		tb.Fatal(err)
	}
	return master.proc, backup.proc
}

func (lvsdImpl) becameMaster(ctx context.Context, backup *lab.Process) (time.Time, bool) {
	// The line is written before the GARP is sent, but read from the
	// pipe a moment later.
	line, err := backup.WaitForOutput(ctx, "from=backup state=master")
	if err != nil {
		return time.Time{}, false
	}
	stamp, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
	at, err := time.Parse(time.RFC3339Nano, stamp)
	return at, err == nil
}

// keepalivedImpl runs Debian's keepalived.
type keepalivedImpl struct{}

func (keepalivedImpl) name() string { return "keepalived" }

// becameMaster: keepalived logs whole seconds.
func (keepalivedImpl) becameMaster(context.Context, *lab.Process) (time.Time, bool) {
	return time.Time{}, false
}

func (keepalivedImpl) start(ctx context.Context, tb testing.TB, ha, hb *lab.Host, p vrrpPeer) (*lab.Process, *lab.Process) {
	tb.Helper()
	master := startKeepalivedPeer(ctx, tb, ha, keepalivedConfig(ha, p, takeoverMasterPriority, true))
	if _, err := master.WaitForOutput(ctx, "Entering MASTER STATE"); err != nil {
		tb.Fatal(err)
	}
	backup := startKeepalivedPeer(ctx, tb, hb, keepalivedConfig(hb, p, takeoverBackupPriority, false))
	if _, err := backup.WaitForOutput(ctx, "Entering BACKUP STATE"); err != nil {
		tb.Fatal(err)
	}
	return master, backup
}

// takeoverTrial is what one trial measured.
type takeoverTrial struct {
	// Took is the figure of the issue: kill -> first GARP (byKill), or
	// priority-0 advert -> first GARP (byStop).
	Took time.Duration
	// Late is how much later than the protocol's own wait the GARP came:
	// for byKill, (master's last advert -> GARP) - Master_Down_Interval;
	// for byStop, Took - Skew_Time. It is the implementation's reaction
	// time, free of the kill's phase against the advert timer.
	Late time.Duration
	// Decided is when the backup's log says it became master, after the
	// same start as Late (to the millisecond; lvsd only):
	// Late - Decided is the time its actions (advert, addresses, GARP)
	// took, Decided how late its timer fired.
	Decided    time.Duration
	HasDecided bool
}

// runTakeoverTrial runs one trial with fresh processes on the lab's hosts
// a and b. A trial whose setup went wrong before the master was stopped
// (the backup took over early: the master missed adverts while the
// shared machine was busy) measures nothing: redo says why, and the
// caller runs it again.
func runTakeoverTrial(ctx context.Context, tb testing.TB, tap *wireTap, ha, hb *lab.Host, impl takeoverImpl, s takeoverSeries) (trial takeoverTrial, redo string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second+2*s.peer.masterDown(takeoverMasterPriority))
	defer cancel()
	p := s.peer
	removeVIP(ctx, tb, ha, p.VIP)
	removeVIP(ctx, tb, hb, p.VIP)
	from := tap.mark()
	master, backup := impl.start(ctx, tb, ha, hb, p)
	listening := time.Now().Round(0)
	defer func() {
		// The backup is master now (or the trial failed): end both.
		for _, proc := range []*lab.Process{master, backup} {
			select {
			case <-proc.Done(): // reaped: its group ID may be reused
			default:
				syscall.Kill(-proc.Pid(), syscall.SIGKILL)
				<-proc.Done()
			}
		}
	}()
	fail := func(format string, args ...any) {
		tb.Helper()
		tb.Fatalf("%s %s: %s\nframes on the bridge:\n%s\nmaster %s:\n%s\nbackup %s:\n%s", impl.name(), s.name,
			fmt.Sprintf(format, args...), tap.dump(from), master, master.Output(), backup, backup.Output())
	}
	// The next advert of the master: sent after the backup said it was
	// backup, so the backup, listening, heard it. The kill follows it
	// at once, so every trial is at the same phase of the advert timer:
	// the worst one, a full Master_Down_Interval.
	masterAdverts := advertFrom(ha.Addr(), p.VRID)
	_, i, err := tap.wait(ctx, from, func(f wireFrame) bool { return masterAdverts(f) && f.At.After(listening) })
	if err != nil {
		fail("waiting for the master's adverts: %v", err)
	}
	backupGARP := garpFor(hb.MAC(), p.VIP)
	if _, ok := tap.last(from, tap.mark(), advertFrom(hb.Addr(), p.VRID)); ok {
		return takeoverTrial{}, fmt.Sprintf("%s %s: the backup advertised as master before the master was stopped:\n%s", impl.name(), s.name, tap.dump(from))
	} else if f, ok := tap.last(from, tap.mark(), backupGARP); ok {
		fail("the backup announced the VIP (%s) but never advertised", f)
	}

	switch s.how {
	case byKill:
		mark := tap.mark()
		killed := killGroupNow(tb, master)
		garp, g, err := tap.wait(ctx, mark, backupGARP)
		if err != nil {
			fail("waiting for the backup's gratuitous ARP: %v", err)
		}
		// The last advert the backup heard: the master's last one on
		// the wire, wherever the tap recorded it around the kill.
		last, _ := tap.last(i, g, masterAdverts)
		trial := takeoverTrial{
			Took: garp.At.Sub(killed),
			Late: garp.At.Sub(last.At) - p.masterDown(takeoverBackupPriority),
		}
		if at, ok := impl.becameMaster(ctx, backup); ok {
			trial.Decided, trial.HasDecided = at.Sub(last.At)-p.masterDown(takeoverBackupPriority), true
		}
		return trial, ""
	case byStop:
		mark := tap.mark()
		if err := syscall.Kill(-master.Pid(), syscall.SIGTERM); err != nil {
			fail("stopping the master: %v", err)
		}
		zero, _, err := tap.wait(ctx, mark, priorityZeroFrom(ha.Addr(), p.VRID))
		if err != nil {
			fail("waiting for the master's priority-0 advert: %v", err)
		}
		garp, _, err := tap.wait(ctx, mark, backupGARP)
		if err != nil {
			fail("waiting for the backup's gratuitous ARP: %v", err)
		}
		<-master.Done()
		took := garp.At.Sub(zero.At)
		trial := takeoverTrial{Took: took, Late: took - p.skew(takeoverBackupPriority)}
		if at, ok := impl.becameMaster(ctx, backup); ok {
			trial.Decided, trial.HasDecided = at.Sub(zero.At)-p.skew(takeoverBackupPriority), true
		}
		return trial, ""
	}
	panic("unknown takeover")
}

// maxTakeoverRedos bounds the setups of one trial.
const maxTakeoverRedos = 5

// takeoverTrials is LVSKIT_VRRP_TRIALS, default 20.
func takeoverTrials(tb testing.TB) int {
	s := os.Getenv("LVSKIT_VRRP_TRIALS")
	if s == "" {
		return 20
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("LVSKIT_VRRP_TRIALS=%q: want a positive number", s)
	}
	return n
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// durationStats are the order statistics of a series (nearest rank: with
// 20 trials p99 is the maximum).
type durationStats struct {
	N                            int
	Median, P90, P99, Min, Max   time.Duration
	MedianLate, MaxLate, MinLate time.Duration
}

func statsOf(trials []takeoverTrial) durationStats {
	took := make([]time.Duration, len(trials))
	late := make([]time.Duration, len(trials))
	for i, t := range trials {
		took[i], late[i] = t.Took, t.Late
	}
	slices.Sort(took)
	slices.Sort(late)
	rank := func(d []time.Duration, q float64) time.Duration {
		return d[max(int(math.Ceil(q*float64(len(d))))-1, 0)]
	}
	median := func(d []time.Duration) time.Duration {
		n := len(d)
		if n%2 == 1 {
			return d[n/2]
		}
		return (d[n/2-1] + d[n/2]) / 2
	}
	return durationStats{
		N: len(took), Median: median(took), P90: rank(took, 0.9), P99: rank(took, 0.99),
		Min: took[0], Max: took[len(took)-1],
		MedianLate: median(late), MinLate: late[0], MaxLate: late[len(late)-1],
	}
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
}

// takeoverResult is one series' outcome, for the table.
type takeoverResult struct {
	series           takeoverSeries
	lvsd, keepalived durationStats
	rawLVSD, rawKA   []takeoverTrial
	load             [2]string // before, after
	// redone counts the trials of each side run again because their
	// setup went wrong; redos says why.
	redone map[string]int
	redos  []string
}

// medianTie is how far apart two medians may be and still count as
// equal: on a quiet machine the medians of one side move by about half a
// millisecond from run to run (both sides' timers fire within about a
// millisecond of the protocol's deadline), so a smaller difference says
// nothing about which is faster.
const medianTie = 500 * time.Microsecond

// goal says whether the series meets issue 4's goals.
func (r takeoverResult) goal() string {
	var notes []string
	verdict := "met"
	diff := r.lvsd.Median - r.keepalived.Median
	switch {
	case diff > medianTie:
		verdict = "MISSED"
		notes = append(notes, fmt.Sprintf("lvsd median %+.2fms over keepalived's", float64(diff)/1e6))
	case diff > 0:
		verdict = "met (tie)"
		notes = append(notes, fmt.Sprintf("lvsd median %+.2fms over keepalived's, within the %s run-to-run noise", float64(diff)/1e6, medianTie))
	}
	p := r.series.peer
	if r.series.how == byKill && p.Version == vrrp.Version3 && p.Interval == 50*time.Millisecond && r.lvsd.P99 > 200*time.Millisecond {
		verdict = "MISSED"
		notes = append(notes, "lvsd p99 > 200ms")
	}
	if r.series.how == byStop {
		limit := p.skew(takeoverBackupPriority) + 10*time.Millisecond
		if r.lvsd.Max > limit {
			verdict = "MISSED"
			notes = append(notes, fmt.Sprintf("lvsd max > skew+10ms (%sms)", ms(limit)))
		}
	}
	if len(notes) == 0 {
		return verdict
	}
	return verdict + ": " + strings.Join(notes, "; ")
}

// BenchmarkLabTakeover measures VRRP takeover on the wire, lvsd against
// keepalived, trial by trial in turn (so load on the machine hits both
// alike), 20 trials of each side per series. It ignores b.N: run it with
// -benchtime 1x. The figures are reported as metrics of each series and
// as one table at the end.
func BenchmarkLabTakeover(b *testing.B) {
	requireRoot(b)
	requireKeepalived(b)
	bin := lvsdBinary(b)
	n := takeoverTrials(b)
	var results []takeoverResult
	for _, s := range takeoverSeriesList() {
		b.Run(s.name, func(b *testing.B) {
			r := runTakeoverSeries(b, bin, s, n)
			results = append(results, r)
			b.ReportMetric(float64(r.lvsd.Median)/1e6, "lvsd-median-ms")
			b.ReportMetric(float64(r.lvsd.P99)/1e6, "lvsd-p99-ms")
			b.ReportMetric(float64(r.keepalived.Median)/1e6, "keepalived-median-ms")
			b.ReportMetric(float64(r.keepalived.P99)/1e6, "keepalived-p99-ms")
			b.ReportMetric(float64(r.lvsd.Median)/float64(r.keepalived.Median), "median-ratio")
			b.ReportMetric(0, "ns/op")
		})
	}
	if len(results) > 0 {
		// Straight to the output: a parent benchmark's log is shown
		// only with -v.
		fmt.Print(takeoverTable(results))
	}
}

// runTakeoverSeries runs n trials of each side of s, in one lab.
func runTakeoverSeries(tb testing.TB, bin string, s takeoverSeries, n int) takeoverResult {
	tb.Helper()
	l := lab.New(tb, lab.Options{Subnet: netip.MustParsePrefix("10.78.0.0/24")})
	ha := l.AddHost("a", "10.78.0.11/24")
	hb := l.AddHost("b", "10.78.0.12/24")
	tap := startWireTap(tb, l)
	ctx := tb.Context()
	r := takeoverResult{series: s, load: [2]string{loadAverage()}, redone: map[string]int{}}
	impls := []takeoverImpl{lvsdImpl{bin}, keepalivedImpl{}}
	for i := range n {
		// Alternate which goes first, so a trend in the machine's load
		// does not favour one side.
		order := impls
		if i%2 == 1 {
			order = []takeoverImpl{impls[1], impls[0]}
		}
		for _, impl := range order {
			t, redo := runTakeoverTrial(ctx, tb, tap, ha, hb, impl, s)
			for attempt := 1; redo != ""; attempt++ {
				r.redone[impl.name()]++
				r.redos = append(r.redos, redo)
				if attempt == maxTakeoverRedos {
					tb.Fatalf("%d setups in a row went wrong; the last:\n%s", attempt, redo)
				}
				t, redo = runTakeoverTrial(ctx, tb, tap, ha, hb, impl, s)
			}
			if impl.name() == "lvsd" {
				r.rawLVSD = append(r.rawLVSD, t)
			} else {
				r.rawKA = append(r.rawKA, t)
			}
		}
	}
	r.load[1] = loadAverage()
	r.lvsd, r.keepalived = statsOf(r.rawLVSD), statsOf(r.rawKA)
	tb.Logf("%s: raw (took/late[/decided] ms)\n  lvsd:       %s\n  keepalived: %s\n  load average %s -> %s",
		s.name, rawSeries(r.rawLVSD), rawSeries(r.rawKA), r.load[0], r.load[1])
	for _, redo := range r.redos {
		tb.Logf("setup redone: %s", redo)
	}
	return r
}

func rawSeries(ts []takeoverTrial) string {
	var parts []string
	for _, t := range ts {
		p := ms(t.Took) + "/" + ms(t.Late)
		if t.HasDecided {
			p += "/" + ms(t.Decided)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

// takeoverTable is the report: one line per side and series.
func takeoverTable(results []takeoverResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "VRRP takeover on the lab bridge (ms; kill: kill -9 -> first GARP of the backup; stop: priority-0 advert -> first GARP)\n")
	fmt.Fprintf(&b, "%-14s %-10s %3s %8s %8s %8s %8s %8s %9s %9s %6s  %-10s %s\n",
		"series", "side", "n", "median", "p90", "p99", "min", "max", "late-med", "late-max", "redone", "wait", "load avg")
	for _, r := range results {
		p := r.series.peer
		wait := "MDI " + ms(p.masterDown(takeoverBackupPriority))
		if r.series.how == byStop {
			wait = "skew " + ms(p.skew(takeoverBackupPriority))
		}
		for _, side := range []struct {
			name string
			st   durationStats
		}{{"lvsd", r.lvsd}, {"keepalived", r.keepalived}} {
			st := side.st
			fmt.Fprintf(&b, "%-14s %-10s %3d %8s %8s %8s %8s %8s %9s %9s %6d  %-10s %s -> %s\n",
				r.series.name, side.name, st.N, ms(st.Median), ms(st.P90), ms(st.P99), ms(st.Min), ms(st.Max),
				ms(st.MedianLate), ms(st.MaxLate), r.redone[side.name], wait, r.load[0], r.load[1])
		}
		fmt.Fprintf(&b, "%-14s lvsd/keepalived median %.3f; goal %s\n", r.series.name,
			float64(r.lvsd.Median)/float64(r.keepalived.Median), r.goal())
	}
	b.WriteString("late: the GARP's delay beyond the protocol's own wait (kill: Master_Down_Interval after the master's last advert; stop: Skew_Time after the priority-0 advert)\n")
	b.WriteString("redone: trials run again because the backup took over before the master was stopped (the master missed adverts)\n")
	return b.String()
}

// TestLabVRRPTakeoverGoals is the short form of BenchmarkLabTakeover that
// asserts issue 4's goals where a loaded 2-CPU machine cannot blur them:
// version 3 at 50 ms adverts, 7 trials of each side, medians only (a p99
// of 7 trials is one slow trial). Medians within 5 ms count as equal:
// both sides wait the same protocol timers, and the difference is
// scheduling noise. BenchmarkLabTakeover reports p90/p99.
func TestLabVRRPTakeoverGoals(t *testing.T) {
	requireRoot(t)
	requireKeepalived(t)
	bin := lvsdBinary(t)
	const noise = 5 * time.Millisecond
	for _, s := range takeoverSeriesList() {
		if s.peer.Version != vrrp.Version3 {
			continue // 1 s adverts: 5 s a trial
		}
		t.Run(s.name, func(t *testing.T) {
			r := runTakeoverSeries(t, bin, s, 7)
			t.Logf("lvsd median %sms, keepalived median %sms", ms(r.lvsd.Median), ms(r.keepalived.Median))
			if r.lvsd.Median > r.keepalived.Median+noise {
				t.Errorf("lvsd's median takeover %sms is longer than keepalived's %sms", ms(r.lvsd.Median), ms(r.keepalived.Median))
			}
			switch s.how {
			case byKill:
				if r.lvsd.Median > 200*time.Millisecond {
					t.Errorf("lvsd's median takeover after a kill %sms, want at most 200ms", ms(r.lvsd.Median))
				}
			case byStop:
				if limit := s.peer.skew(takeoverBackupPriority) + 10*time.Millisecond; r.lvsd.Median > limit {
					t.Errorf("lvsd's median handover after priority 0 %sms, want at most Skew_Time + 10ms = %sms", ms(r.lvsd.Median), ms(limit))
				}
			}
		})
	}
}

func TestTakeoverGoalVerdict(t *testing.T) {
	v3 := takeoverSeriesList()[1] // kill/v3-50ms
	stop := takeoverSeriesList()[3]
	millis := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	for _, tc := range []struct {
		series       takeoverSeries
		lvsd, ka     durationStats
		wantPrefix   string
		wantContains string
	}{
		{v3, durationStats{Median: millis(181), P99: millis(183)}, durationStats{Median: millis(182)}, "met", ""},
		{v3, durationStats{Median: millis(181.3), P99: millis(183)}, durationStats{Median: millis(181)}, "met (tie)", "+0.30ms"},
		{v3, durationStats{Median: millis(183), P99: millis(185)}, durationStats{Median: millis(182)}, "MISSED", "+1.00ms"},
		{v3, durationStats{Median: millis(181), P99: millis(201)}, durationStats{Median: millis(182)}, "MISSED", "p99 > 200ms"},
		{stop, durationStats{Median: millis(32), Max: millis(41)}, durationStats{Median: millis(35)}, "MISSED", "skew+10ms"},
		{stop, durationStats{Median: millis(32), Max: millis(40)}, durationStats{Median: millis(35)}, "met", ""},
	} {
		got := takeoverResult{series: tc.series, lvsd: tc.lvsd, keepalived: tc.ka}.goal()
		if !strings.HasPrefix(got, tc.wantPrefix) || !strings.Contains(got, tc.wantContains) || (tc.wantPrefix == "met" && got != "met") {
			t.Errorf("%s lvsd %+v keepalived %+v: goal %q, want %q ... %q", tc.series.name, tc.lvsd, tc.ka, got, tc.wantPrefix, tc.wantContains)
		}
	}
}
