package tui

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
)

// simApp runs an App on a simulation screen for a test.
type simApp struct {
	t      testing.TB
	app    *App
	screen tcell.SimulationScreen
	draws  chan struct{}
	done   chan error
	cancel context.CancelFunc

	mu   sync.Mutex
	last string // the screen after the last draw
}

func startSim(t testing.TB, src Source, w, h int, tick <-chan time.Time) *simApp {
	t.Helper()
	screen := tcell.NewSimulationScreen("UTF-8")
	if tick == nil {
		tick = make(chan time.Time) // no ticks: the test decides
	}
	s := &simApp{t: t, screen: screen, draws: make(chan struct{}, 1), done: make(chan error, 1)}
	s.app = NewApp(AppOptions{Source: src, Screen: screen, Tick: tick, SaveDir: t.TempDir(), Now: fixedClock(labTime)})
	screen.SetSize(w, h) // after SetScreen, which initialises it at 80x25
	s.app.drawn = func() {
		// On the UI goroutine, right after the draw: the simulation
		// screen's cells are not safe to read from another goroutine.
		txt := s.screenText()
		s.mu.Lock()
		s.last = txt
		s.mu.Unlock()
		select {
		case s.draws <- struct{}{}:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- s.app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			t.Error("the app did not stop")
		}
	})
	return s
}

// text is the screen as the last draw left it.
func (s *simApp) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// screenText reads what the draw just put on the screen (UI goroutine
// only; tview calls the after-draw hook before Show, so this reads the
// screen's back buffer).
func (s *simApp) screenText() string {
	w, h := s.screen.Size()
	var b strings.Builder
	for y := range h {
		var line strings.Builder
		for x := 0; x < w; {
			r, comb, _, width := s.screen.GetContent(x, y)
			if r == 0 {
				r = ' '
			}
			line.WriteRune(r)
			line.WriteString(string(comb))
			x += max(1, width)
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	return b.String()
}

// waitFor waits, draw by draw, until the screen satisfies ok.
func (s *simApp) waitFor(what string, ok func(screen string) bool) string {
	s.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		txt := s.text()
		if ok(txt) {
			return txt
		}
		select {
		case <-s.draws:
		case <-deadline:
			s.t.Fatalf("screen never showed %s; it shows:\n%s", what, txt)
		}
	}
}

func (s *simApp) waitText(want ...string) string {
	s.t.Helper()
	return s.waitFor(strings.Join(want, " and "), func(txt string) bool {
		for _, w := range want {
			if !strings.Contains(txt, w) {
				return false
			}
		}
		return true
	})
}

func (s *simApp) key(k tcell.Key) { s.screen.InjectKey(k, 0, tcell.ModNone) }
func (s *simApp) runes(text string) {
	for _, r := range text {
		s.screen.InjectKey(tcell.KeyRune, r, tcell.ModNone)
	}
}

// lineWith returns the first screen line containing sub.
func lineWith(screen, sub string) string {
	for l := range strings.Lines(screen) {
		if strings.Contains(l, sub) {
			return strings.TrimRight(l, "\n")
		}
	}
	return ""
}

// TestAppWalkthrough drives the UI as a person would, on the captured
// lab tree: services, drill-down, connections, filter, sort, help,
// pause, save, quit.
func TestAppWalkthrough(t *testing.T) {
	s := startSim(t, labSource(t), 160, 40, nil)
	scr := s.waitText("10.0.0.100:80", "conn table size 4,096", "? help")
	if l := lineWith(scr, "10.0.0.103:443"); !strings.Contains(l, "persist 300s /24") || !strings.Contains(l, "1/2") {
		t.Errorf("services row of 10.0.0.103:443: %q", l)
	}

	// Enter on the first service (TCP 10.0.0.100:80): its real servers.
	s.key(tcell.KeyEnter)
	scr = s.waitText("real servers of TCP 10.0.0.100:80", "REAL SERVER", "SYN_RCV")
	if l := lineWith(scr, "10.0.2.12:80"); !strings.Contains(l, "Masq") {
		t.Errorf("drill-down row of 10.0.2.12:80: %q", l)
	}
	// j then Enter: the connections of the second real server.
	s.runes("j")
	s.key(tcell.KeyEnter)
	scr = s.waitText("filter vip=10.0.0.100:80 rs=10.0.2.12:80", "CLIENT")
	for l := range strings.Lines(scr) {
		if strings.HasPrefix(l, "TCP ") && !strings.Contains(l, "10.0.2.12:80") {
			t.Errorf("filtered to rs 10.0.2.12:80 but shows %q", l)
		}
	}
	s.waitText("connections 1-4 of 4 matched (42 entries)")

	// Esc twice: back to the services.
	s.key(tcell.KeyEscape)
	s.waitText("real servers of TCP 10.0.0.100:80")
	s.key(tcell.KeyEscape)
	s.waitText("services (29)")

	// c: every connection; / filters by state.
	s.runes("c")
	s.waitText("connections 1-", "of 42")
	s.runes("/")
	s.runes("state=TIME_WAIT")
	s.key(tcell.KeyEnter)
	scr = s.waitText("filter state=TIME_WAIT", "of 7 matched")
	for l := range strings.Lines(scr) {
		if strings.HasPrefix(l, "TCP ") && !strings.Contains(l, "TIME_WAIT") {
			t.Errorf("filtered to TIME_WAIT but shows %q", l)
		}
	}
	// s sorts by the next column (PRO), again by STATE, then EXPIRES.
	s.runes("sss")
	s.waitText("sort EXPIRES ↑")

	// A bad filter says what is wrong and keeps the old one.
	s.runes("/")
	s.key(tcell.KeyCtrlU)
	s.runes("state=NOPE")
	s.key(tcell.KeyEnter)
	s.waitText("filter: state=NOPE: unknown state", "filter state=TIME_WAIT")

	// ? shows help; Esc closes it.
	s.runes("?")
	s.waitText("lvstop keys", "drill into a service")
	s.key(tcell.KeyEscape)
	s.waitFor("help closed", func(txt string) bool { return !strings.Contains(txt, "lvstop keys") })

	// p pauses.
	s.runes("p")
	s.waitText("PAUSED")
	s.runes("p")
	s.waitFor("PAUSED gone", func(txt string) bool { return !strings.Contains(txt, "PAUSED") })

	// w saves the snapshot as a tree lvstop --proc replays.
	s.runes("w")
	scr = s.waitText("saved, replay with: lvstop --proc ")
	entries, err := os.ReadDir(s.app.opts.SaveDir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("save dir: %v %v", entries, err)
	}
	saved := filepath.Join(s.app.opts.SaveDir, entries[0].Name())
	if !strings.Contains(scr, "saved, replay with: lvstop --proc "+saved) {
		t.Errorf("the footer does not say how to replay %s:\n%s", saved, lineWith(scr, "saved"))
	}
	replay, err := NewProcSource(saved)
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, replay, ConnQuery{}); got.ConnEntries != 42 || len(got.Services) != 29 {
		t.Errorf("replayed save: %d entries, %d services; want 42, 29", got.ConnEntries, len(got.Services))
	}

	// q quits.
	s.runes("q")
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatal(err)
		}
		s.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("q did not quit")
	}
}

// TestAppPagesConnections pages through a table larger than the screen:
// only one page is held, and moving past the last row fetches the next.
func TestAppPagesConnections(t *testing.T) {
	k := newIncidentKernel(t)
	s := startSim(t, k.src, 120, 12, nil) // about 5 rows of connections
	s.waitText("192.168.0.100:80")
	s.runes("c")
	scr := s.waitText("connections 1-")
	first := lineWith(scr, "connections 1-")
	if !strings.Contains(first, "of 21") {
		t.Fatalf("footer: %q", first)
	}
	page := s.app.query.Limit
	if page <= 0 || page >= 21 {
		t.Fatalf("page of %d rows on a 12-line screen", page)
	}
	s.key(tcell.KeyPgDn)
	s.waitText("connections " + itoa(page+1) + "-")
	s.runes("G")
	s.waitText("-21 of 21")
	s.runes("g")
	s.waitText("connections 1-" + itoa(page) + " of 21")
	// Down from the last row of the page goes to the next page.
	for range page {
		s.runes("j")
	}
	s.waitText("connections " + itoa(page+1) + "-")
}

func itoa(n int) string { return groupDigits(uint64(n)) }

// slowSource blocks every Collect until released.
type slowSource struct {
	Source
	mu      sync.Mutex
	started chan struct{}
	release chan struct{}
}

func (s *slowSource) Collect(ctx context.Context, q ConnQuery) (*Snapshot, error) {
	s.started <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Source.Collect(ctx, q)
}

// TestAppAnswersKeysDuringSlowRefresh: while a collection is stuck, keys
// are still answered (the UI never waits for the source), and ticks that
// come meanwhile are skipped. How fast they are answered is
// BenchmarkKeyDuringSlowRefresh's figure, not an assertion here.
func TestAppAnswersKeysDuringSlowRefresh(t *testing.T) {
	src := &slowSource{Source: labSource(t), started: make(chan struct{}, 16), release: make(chan struct{})}
	tick := make(chan time.Time)
	s := startSim(t, src, 120, 30, tick)
	src.release <- struct{}{} // the first collection completes
	<-src.started
	s.waitText("10.0.0.100:80")
	s.runes("r") // a refresh that now hangs
	<-src.started
	for _, k := range []string{"?", "?", "p", "p", "s"} {
		before := s.text()
		s.runes(k)
		s.waitFor("the answer to "+k, func(txt string) bool { return txt != before })
	}
	tick <- time.Now() // skipped: the refresh is still running
	tick <- time.Now()
	if got := s.app.coll.Skipped(); got < 1 {
		t.Errorf("ticks during a running refresh: %d skipped, want them skipped", got)
	}
	close(src.release)
}

// BenchmarkKeyDuringSlowRefresh measures how long a key takes to reach
// the screen while a refresh hangs (ns/op is one key: the help toggled).
func BenchmarkKeyDuringSlowRefresh(b *testing.B) {
	src := &slowSource{Source: labSource(b), started: make(chan struct{}, 16), release: make(chan struct{})}
	tick := make(chan time.Time)
	s := startSim(b, src, 120, 30, tick)
	src.release <- struct{}{}
	<-src.started
	s.waitText("10.0.0.100:80")
	s.runes("r")
	<-src.started
	b.ResetTimer()
	for b.Loop() {
		before := s.text()
		s.runes("?")
		s.waitFor("the help toggled", func(txt string) bool { return txt != before })
	}
	b.StopTimer()
	close(src.release)
}

var _ = io.Discard
