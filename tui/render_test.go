package tui

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
)

func collect(t *testing.T, src Source, q ConnQuery) *Snapshot {
	t.Helper()
	s, err := src.Collect(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGoldenLabOnce is lvstop --once on the tree captured from a 6.12
// kernel: text and JSON.
func TestGoldenLabOnce(t *testing.T) {
	var m Model
	f := m.Update(collect(t, labSource(t), ConnQuery{}))
	var txt, js bytes.Buffer
	if err := WriteText(&txt, f); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, f); err != nil {
		t.Fatal(err)
	}
	// the temporary directory differs per run
	clean := func(s string) string { return strings.ReplaceAll(s, f.Snap.Source, "LAB (saved /proc tree)") }
	golden(t, "lab-once.txt", clean(txt.String()))
	golden(t, "lab-once.json", clean(js.String()))

	// What a person checks against ipvsadm -Ln: the captured listing.
	for _, want := range []string{
		"TCP   10.0.0.100:80          rr                       2/2       3      5",
		"TCP   10.0.0.103:443         wrr    persist 300s /24  1/2       3      1",
		"FWM   1                      rr     persist 60s       1/1       1      1",
	} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text output lacks %q", want)
		}
	}
}

// TestGoldenIncident renders the services view and the drill-down of a
// service where one real server piles up SYN_RECV and another has
// weight 0 and connections, after two snapshots (with deltas).
func TestGoldenIncident(t *testing.T) {
	k := newIncidentKernel(t)
	var m Model
	m.Update(collect(t, k.src, ConnQuery{}))
	k.set(t, 1)
	k.now = k.now.Add(2 * time.Second)
	f := m.Update(collect(t, k.src, ConnQuery{}))

	svcs := ServiceRows(f, SortedServices(f, ServiceByKey, false))
	golden(t, "incident-services.txt", FormatTable(svcs, "")+"\n"+levels(svcs))
	rs := RealServerRows(f, f.Snap.FindService(ipvs.TCPKey(webVIP)))
	golden(t, "incident-servers.txt", FormatTable(rs, "")+"\n"+levels(rs))
	header := strings.Join(HeaderLines(f), "\n") + "\n"
	golden(t, "incident-header.txt", header)

	// What must stand out, whatever the golden file says.
	lv := levels(rs)
	for _, want := range []string{`row 2 SYN_RCV="16": ALERT`, `row 3 WEIGHT="0": warn`, `row 2 NOTE="SYN_RECV pile-up (16)": ALERT`, `row 3 NOTE="weight 0, 4 conns": warn`} {
		if !strings.Contains(lv, want) {
			t.Errorf("drill-down: want %s, got levels:\n%s", want, lv)
		}
	}
	if !strings.Contains(FormatTable(svcs, ""), "+5") {
		t.Errorf("services view shows no delta of ActiveConn (+5):\n%s", FormatTable(svcs, ""))
	}
}

// TestGoldenConnRows renders a sorted page of the connection table, with
// expiry counting down from the snapshot.
func TestGoldenConnRows(t *testing.T) {
	k := newIncidentKernel(t)
	f, err := ParseConnFilter("vip=192.168.0.100:80")
	if err != nil {
		t.Fatal(err)
	}
	s := collect(t, k.src, ConnQuery{Filter: f, Sort: ConnByExpires, Offset: 0, Limit: 8})
	rows := ConnRows(s.Conns, s.Taken, s.Taken.Add(3*time.Second+500*time.Millisecond))
	golden(t, "incident-conns.txt", FormatTable(rows, "")+"\n"+levels(rows))
	if got := rows.Rows[0][2].Text; got != "00:52" {
		t.Errorf("first row expires in %s, want 00:52 (55 s, 3 s later)", got)
	}
	if s.Conns.Matched != 20 || len(s.Conns.Rows) != 8 {
		t.Errorf("page: %d rows of %d matched, want 8 of 20", len(s.Conns.Rows), s.Conns.Matched)
	}
}

func TestHuman(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1.0K", 1234: "1.2K", 12345: "12K", 999_499: "999K", 999_500: "1.0M", 5_000_000_000: "5.0G"} {
		if got := Human(n); got != want {
			t.Errorf("Human(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSparkline(t *testing.T) {
	if got := Sparkline([]uint64{0, 1, 2, 4, 8}, 4); got != "▁▁▂▄█"[3:] && got != "▁▂▄█" {
		t.Errorf("Sparkline = %q", got)
	}
	if got := Sparkline([]uint64{5}, 10); got != "" {
		t.Errorf("one point: %q, want nothing", got)
	}
}
