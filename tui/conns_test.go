package tui

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
)

func TestParseConnFilter(t *testing.T) {
	lab := collect(t, labSource(t), ConnQuery{Limit: 1000}).Conns.Rows
	for _, tc := range []struct {
		filter string
		want   int
	}{
		{"", 42},
		{"state=TIME_WAIT", 7},
		{"time_wait", 7},
		{"proto=udp", 7},
		{"udp tmpl=no", 6},
		{"tmpl=yes", 6},
		{"vip=10.0.0.100:80", 8},
		{"vip=10.0.0.100:80 rs=10.0.2.12", 4},
		{"client=10.0.9.0/24", 3},
		{"10.0.9.1", 2},
		{"rs=fd00:2::11 state=ESTABLISHED", 2},
		{"state=SYN_RECV state=FIN_WAIT", 2},
		{"proto=ip", 2},
	} {
		f, err := ParseConnFilter(tc.filter)
		if err != nil {
			t.Errorf("%q: %v", tc.filter, err)
			continue
		}
		n := 0
		for i := range lab {
			if f.Match(&lab[i]) {
				n++
			}
		}
		if n != tc.want {
			t.Errorf("%q matches %d entries of the lab, want %d", tc.filter, n, tc.want)
		}
	}
	for in, want := range map[string]string{
		"state=NOPE":  "state=NOPE: unknown state",
		"vip=x":       "vip=x: want an address",
		"port=80":     `unknown filter key "port"`,
		"tmpl=maybe":  "tmpl=maybe: want yes or no",
		"hello":       `"hello": not an address, state or protocol`,
		"proto=icmp6": "proto=icmp6: unknown protocol",
	} {
		if _, err := ParseConnFilter(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConnFilter(%q) = %v, want an error with %q", in, err, want)
		}
	}
}

// TestQueryConnsPages: a sorted page of a million-entry table holds the
// page, not the table, and pages agree with one another.
func TestQueryConnsPages(t *testing.T) {
	var table bytes.Buffer
	if err := ipvs.GenerateConnTable(&table, 200_000, 7); err != nil {
		t.Fatal(err)
	}
	data := table.Bytes()
	q := ConnQuery{Sort: ConnByExpires, Limit: 50}
	p1, err := QueryConns(bytes.NewReader(data), q)
	if err != nil {
		t.Fatal(err)
	}
	q.Offset = 50
	p2, err := QueryConns(bytes.NewReader(data), q)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Matched != 200_000 || len(p1.Rows) != 50 || len(p2.Rows) != 50 || p2.Offset != 50 {
		t.Fatalf("pages: %d+%d rows of %d", len(p1.Rows), len(p2.Rows), p1.Matched)
	}
	if p1.Rows[49].Expires > p2.Rows[0].Expires {
		t.Errorf("page 2 starts before page 1 ends: %v > %v", p1.Rows[49].Expires, p2.Rows[0].Expires)
	}
	q = ConnQuery{Sort: ConnByExpires, Desc: true, Limit: 1}
	last, err := QueryConns(bytes.NewReader(data), q)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range append(p1.Rows, p2.Rows...) {
		if r.Expires > last.Rows[0].Expires {
			t.Errorf("reversed order's first row expires %v, before %v", last.Rows[0].Expires, r.Expires)
		}
	}
	// kernel order, deep page: no sorting, only the page kept
	q = ConnQuery{Offset: 199_990, Limit: 50}
	tail, err := QueryConns(bytes.NewReader(data), q)
	if err != nil || len(tail.Rows) != 10 {
		t.Fatalf("last page: %d rows, %v", len(tail.Rows), err)
	}
}

// countingSource counts collections and can hold them.
type countingSource struct {
	Source
	calls   chan ConnQuery
	release chan struct{}
}

func (c *countingSource) Collect(ctx context.Context, q ConnQuery) (*Snapshot, error) {
	c.calls <- q
	select {
	case <-c.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.Source.Collect(ctx, q)
}

// TestCollectorSkipsOverlappingTicks: ticks during a collection are
// skipped, not queued; a Refresh during one runs once after it.
func TestCollectorSkipsOverlappingTicks(t *testing.T) {
	src := &countingSource{Source: labSource(t), calls: make(chan ConnQuery, 10), release: make(chan struct{})}
	tick := make(chan time.Time)
	frames := make(chan *Frame, 10)
	c := NewCollector(CollectorOptions{Source: src, Tick: tick, Publish: func(f *Frame, err error) {
		if err != nil {
			t.Error(err)
		}
		frames <- f
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()

	<-src.calls // the first collection runs and holds
	for range 3 {
		tick <- time.Now() // Run takes each tick: all skipped
	}
	// Run has taken the third tick; wait until it has also counted it
	// (the send returns as Run receives, before it looks at busy).
	for deadline := time.Now().Add(5 * time.Second); c.Skipped() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("skipped %d ticks after 5s, want 3", c.Skipped())
		}
	}
	c.SetQuery(ConnQuery{Limit: 5}) // refreshes: once, after the running one
	src.release <- struct{}{}
	<-frames
	// exactly one more, with the new query
	if q := <-src.calls; q.Limit != 5 {
		t.Errorf("the collection after Refresh used %+v, want the new query", q)
	}
	src.release <- struct{}{}
	f := <-frames
	if f.Seq != 2 || f.Snap.Conns == nil || len(f.Snap.Conns.Rows) != 5 {
		t.Errorf("second frame: seq %d, conns %+v", f.Seq, f.Snap.Conns)
	}
	if got := c.Skipped(); got != 3 {
		t.Errorf("skipped %d ticks, want 3", got)
	}
	select {
	case q := <-src.calls:
		t.Errorf("a queued collection ran: %+v", q)
	default:
	}
	cancel()
	<-done
	if got := c.Collected(); got != 2 {
		t.Errorf("%d collections, want 2", got)
	}
}

// TestSaveRefusesToFollowOrReuse: a saved tree is new, private, and
// never written through a symlink.
func TestSaveRefusesToFollowOrReuse(t *testing.T) {
	var m Model
	f := m.Update(collect(t, labSource(t), ConnQuery{}))
	dir := t.TempDir()
	path, err := Save(f, strings.NewReader(connHeader), SaveOptions{Dir: dir, Name: "snap"})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"", "proc", "proc/net"} {
		if st, _ := os.Stat(filepath.Join(path, rel)); st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", rel, st.Mode().Perm())
		}
	}
	for _, rel := range []string{"proc/net/ip_vs", "proc/net/ip_vs_conn", "proc/net/ip_vs_stats", "lvstop.json"} {
		if st, err := os.Stat(filepath.Join(path, rel)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", rel, st, err)
		}
	}
	if _, err := Save(f, nil, SaveOptions{Dir: dir, Name: "snap"}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("saving over an existing tree: %v, want it refused", err)
	}
	// A symlink where the tree would go, pointing elsewhere.
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := Save(f, nil, SaveOptions{Dir: dir, Name: "link"}); err == nil {
		t.Error("saved through a symlink")
	}
	if _, err := Save(f, nil, SaveOptions{Dir: dir, Name: "../escape"}); err == nil {
		t.Error("saved outside the directory")
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("files appeared behind the symlink: %v", ents)
	}

	// The saved services table is the kernel's format: it parses back.
	replay, err := NewProcSource(path)
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, replay, ConnQuery{})
	if len(got.Services) != len(f.Snap.Services) {
		t.Fatalf("replay has %d services, want %d", len(got.Services), len(f.Snap.Services))
	}
	for i, s := range got.Services {
		w := f.Snap.Services[i]
		if s.ServiceKey != w.ServiceKey || s.Scheduler != w.Scheduler || s.Flags&^ipvs.FlagHashed != w.Flags&^ipvs.FlagHashed ||
			s.Timeout != w.Timeout || s.NetmaskBits != w.NetmaskBits || len(s.RealServers) != len(w.RealServers) {
			t.Errorf("replayed %v %s %v %d/%d, want %v %s %v %d/%d", s.ServiceKey, s.Scheduler, s.Flags, s.Timeout, s.NetmaskBits,
				w.ServiceKey, w.Scheduler, w.Flags, w.Timeout, w.NetmaskBits)
		}
	}
	if got.Totals != f.Snap.Totals {
		t.Errorf("replayed totals %+v, want %+v", got.Totals, f.Snap.Totals)
	}
}

// TestSaveKeepsCountersAndHealth: what /proc cannot hold comes back from
// lvstop.json.
func TestSaveKeepsCountersAndHealth(t *testing.T) {
	k := newIncidentKernel(t)
	s := collect(t, k.src, ConnQuery{})
	s.Services[0].RealServers[1].Health = "down"
	s.Services[0].RealServers[1].Why = "3 of 3 failures: connect 10.0.0.12:80: connection refused"
	s.HaveHealth = true
	var m Model
	f := m.Update(s)
	conns, err := k.src.OpenConnTable()
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Close()
	path, err := Save(f, conns, SaveOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(path, "lvstop-lb1-20260102T030405Z") {
		t.Errorf("saved as %s", path)
	}
	replay, err := NewProcSource(path)
	if err != nil {
		t.Fatal(err)
	}
	var m2 Model
	f2 := m2.Update(collect(t, replay, ConnQuery{}))
	want := FormatTable(RealServerRows(f, &f.Snap.Services[0]), "")
	if got := FormatTable(RealServerRows(f2, &f2.Snap.Services[0]), ""); got != want {
		t.Errorf("replayed drill-down differs:\n%s\nwant:\n%s", got, want)
	}
}

// A capture copied flat (cp /proc/net/ip_vs* DIR) replays like a tree:
// the same services and connections as the proc/net layout.
func TestProcSourceReadsAFlatCopy(t *testing.T) {
	flat, err := NewProcSource("../director/ipvs/testdata/proc/lab")
	if err != nil {
		t.Fatal(err)
	}
	tree := labSource(t)
	flat.Clock = tree.Clock
	q := ConnQuery{Limit: 100}
	a, err := flat.Collect(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tree.Collect(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Services) == 0 || len(a.Services) != len(b.Services) || a.Totals != b.Totals || len(a.Conns.Rows) != len(b.Conns.Rows) {
		t.Errorf("flat copy: %d services, %d conns; tree: %d services, %d conns", len(a.Services), len(a.Conns.Rows), len(b.Services), len(b.Conns.Rows))
	}
}

// TestSavedServiceTableIsTheKernels: a saved tree's ip_vs has the lines
// the kernel printed (the lab's 6.12 capture, replayed and saved, gives
// the same service lines, each with the same real server lines; lvstop
// orders services its own way), so other tools that read
// /proc/net/ip_vs read it too.
func TestSavedServiceTableIsTheKernels(t *testing.T) {
	var m Model
	f := m.Update(collect(t, labSource(t), ConnQuery{}))
	path, err := Save(f, nil, SaveOptions{Dir: t.TempDir(), Name: "snap"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(path, "proc", "net", "ip_vs"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("..", "director", "ipvs", "testdata", "proc", "lab", "ip_vs"))
	if err != nil {
		t.Fatal(err)
	}
	if g, w := serviceBlocks(string(got)), serviceBlocks(string(want)); !slices.Equal(g, w) {
		t.Errorf("saved ip_vs:\n%s\nthe kernel's:\n%s", got, want)
	}
}

// serviceBlocks cuts a /proc/net/ip_vs into its header and one block per
// service (its line, then its real servers' lines sorted), sorted.
func serviceBlocks(s string) []string {
	var blocks [][]string
	for _, l := range strings.SplitAfter(s, "\n") {
		if strings.HasPrefix(l, "  -> ") && len(blocks) > 0 {
			blocks[len(blocks)-1] = append(blocks[len(blocks)-1], l)
			continue
		}
		blocks = append(blocks, []string{l})
	}
	var out []string
	for _, b := range blocks {
		slices.Sort(b[1:])
		out = append(out, strings.Join(b, ""))
	}
	slices.Sort(out)
	return out
}
