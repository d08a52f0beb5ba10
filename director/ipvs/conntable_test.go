package ipvs

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// scanSummary is the reference Aggregate must match: ScanConnections,
// one Add per entry.
func scanSummary(t *testing.T, in []byte) *ConnSummary {
	t.Helper()
	s := NewConnSummary()
	if err := ScanConnections(bytes.NewReader(in), func(c *Connection) error { s.Add(c); return nil }); err != nil {
		t.Fatal(err)
	}
	return s
}

func sameSummary(t *testing.T, got, want *ConnSummary) {
	t.Helper()
	if got.Entries != want.Entries || got.Templates != want.Templates ||
		len(got.Groups) != len(want.Groups) || len(got.ByState) != len(want.ByState) {
		t.Fatalf("got %d entries, %d templates, %d groups, %d states; want %d, %d, %d, %d",
			got.Entries, got.Templates, len(got.Groups), len(got.ByState),
			want.Entries, want.Templates, len(want.Groups), len(want.ByState))
	}
	for g, n := range want.Groups {
		if got.Groups[g] != n {
			t.Errorf("group %+v: %d, want %d", g, got.Groups[g], n)
		}
	}
	for k, n := range want.ByState {
		if got.ByState[k] != n {
			t.Errorf("%+v: %d, want %d", k, got.ByState[k], n)
		}
	}
}

// TestAggregateAcrossChunks feeds a table of several 1 MiB chunks, so the
// workers' counts are merged and lines are split across chunk edges.
func TestAggregateAcrossChunks(t *testing.T) {
	var b bytes.Buffer
	if err := GenerateConnTable(&b, 60_000, 7); err != nil {
		t.Fatal(err)
	}
	if b.Len() < 3*aggChunkSize {
		t.Fatalf("table of %d bytes is too small to span chunks", b.Len())
	}
	got, err := Aggregate(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	sameSummary(t, got, scanSummary(t, b.Bytes()))
	if got.Entries != 60_000 {
		t.Errorf("Entries = %d, want 60000", got.Entries)
	}
	// Every kind of entry the generator writes is there.
	for _, k := range []ProtocolState{
		{TCP, StateEstablished, false}, {TCP, StateTimeWait, false}, {UDP, StateUDP, false},
		{SCTP, StateSCTPCookieEchoed, false}, {TCP, StateAssured, true}, {ProtoIP, StateAssured, true},
	} {
		if got.ByState[k] == 0 {
			t.Errorf("no %v %v (template %v) counted", k.Protocol, k.State, k.Template)
		}
	}
}

func TestAggregateErrorLineAcrossChunks(t *testing.T) {
	var b bytes.Buffer
	if err := GenerateConnTable(&b, 50_000, 3); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(b.String(), "\n")
	lines[40_000-1] = "TCP 0A000101 1F90 0A000064 0050 0A00020B 0050\n" // line 40000: no state
	lines[45_000-1] = "bogus\n"
	_, err := Aggregate(strings.NewReader(strings.Join(lines, "")))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 40_000 || pe.Msg != "missing state" {
		t.Fatalf("error %v; want ip_vs_conn:40000: missing state", err)
	}
}

func TestSortedGroups(t *testing.T) {
	in := connTableHeader +
		kernelLine("TCP", "0A000102", "1F91", "0A000065", "0050", "0A00020B", "0050", "ESTABLISHED", "1", "") + "\n" +
		kernelLine("TCP", "0A000101", "1F90", "0A000064", "0050", "0A00020C", "0050", "ESTABLISHED", "1", "") + "\n" +
		kernelLine("TCP", "0A000101", "1F92", "0A000064", "0050", "0A00020B", "0050", "TIME_WAIT", "1", "") + "\n" +
		kernelLine("TCP", "0A000100", "0000", "0A000064", "0050", "0A00020B", "0050", "ASSURED", "1", "") + "\n" +
		kernelLine("TCP", "0A000101", "1F93", "0A000064", "0050", "0A00020B", "0050", "ESTABLISHED", "1", "") + "\n" +
		kernelLine("TCP", "0A000101", "1F94", "0A000064", "0050", "0A00020B", "0050", "ESTABLISHED", "1", "") + "\n"
	s, err := Aggregate(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range s.SortedGroups() {
		got = append(got, g.Service.String()+" "+g.RealServer.String()+" "+g.State.String()+
			map[bool]string{true: " template", false: ""}[g.Template]+" "+uitoa(uint64(g.Count)))
	}
	want := []string{
		"TCP 10.0.0.100:80 10.0.2.11:80 ESTABLISHED 2",
		"TCP 10.0.0.100:80 10.0.2.11:80 TIME_WAIT 1",
		"TCP 10.0.0.100:80 10.0.2.11:80 ASSURED template 1",
		"TCP 10.0.0.100:80 10.0.2.12:80 ESTABLISHED 1",
		"TCP 10.0.0.101:80 10.0.2.11:80 ESTABLISHED 1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("SortedGroups:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s.Entries != 6 || s.Templates != 1 {
		t.Errorf("Entries %d Templates %d; want 6 and 1", s.Entries, s.Templates)
	}
}
