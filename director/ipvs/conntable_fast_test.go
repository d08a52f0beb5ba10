package ipvs

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const (
	v6Client = "2001:0db8:0000:0000:0000:0000:0000:0001"
	v6VIP    = "fd00:0000:0000:0000:0000:0000:0000:0100"
	v6Real   = "fd00:0000:0000:0002:0000:0000:0000:0010"
)

// fixedLines are entries of every shape fixedCache takes, each with a
// twin of the same group (another client), so that the second is
// counted from the cache.
var fixedLines = []string{
	kernelLine("TCP", "0A000101", "1F90", "0A000064", "0050", "0A00020B", "0050", "ESTABLISHED", "899", ""),
	kernelLine("TCP", "0a0001ff", "ffff", "0A000064", "0050", "0A00020B", "0050", "ESTABLISHED", "1", ""),
	kernelLine("SCTP", "0A000101", "8000", "0A00006A", "0F1C", "0A00020B", "0F1C", "C-ECHOED", "18", ""),
	kernelLine("SCTP", "0A000102", "8001", "0A00006A", "0F1C", "0A00020B", "0F1C", "C-ECHOED", "0", ""),
	kernelLine("IP", "0A000100", "0000", "00000007", "0000", "0A00020B", "0000", "ASSURED", "60", ""),
	kernelLine("IP", "0A000200", "0000", "00000007", "0000", "0A00020B", "0000", "ASSURED", "6", ""),
	kernelLine("TCP", "0A000100", "0000", "0A000064", "0050", "0A00020B", "0050", "NONE", "60", ""),
	kernelLine("TCP", "0A000101", "0001", "0A000064", "0050", "0A00020B", "0050", "NONE", "60", ""),
	// expiries of other widths, and a persistence engine's data
	kernelLine("UDP", "0A000101", "13C4", "0A00006E", "13C4", "0A00020B", "13C4", "UDP", "170", " sip abc@example.com"),
	kernelLine("UDP", "0A000102", "13C4", "0A00006E", "13C4", "0A00020B", "13C4", "UDP", "18446744073709551", ""),
	kernelLine("TCP", v6Client, "D431", v6VIP, "01BB", v6Real, "01BB", "ESTABLISHED", "899", ""),
	kernelLine("TCP", "2001:0DB8:0000:0000:0000:0000:0000:ABCD", "D432", v6VIP, "01BB", v6Real, "01BB", "ESTABLISHED", "9", ""),
	kernelLine("UDP", v6Client, "0000", v6VIP, "0035", v6Real, "0035", "UDP", "9", ""),
	kernelLine("UDP", v6Client, "0035", v6VIP, "0035", v6Real, "0035", "UDP", "12345678", ""),
	kernelLine("IP", v6Client, "0000", "0000:0003:0000:0000:0000:0000:0000:0000", "0000", v6Real, "0000", "ASSURED", "9", ""),
	kernelLine("IP", "2001:0db8:0000:0000:0000:0000:0000:0002", "0000", "0000:0003:0000:0000:0000:0000:0000:0000", "0000", v6Real, "0000", "ASSURED", "19", ""),
	kernelLine("TCP", v6Client, "D431", v6VIP, "0050", "0A00020C", "0050", "SYN_RECV", "59", ""),
	kernelLine("TCP", v6Client, "D433", v6VIP, "0050", "0A00020C", "0050", "SYN_RECV", "5", " sip x"),
}

// notFixed are lines that look like fixedLines' but that fixedCache must
// leave to the general path, after their twins taught it the group.
var notFixed = []string{
	"TCP 0A000101 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED     899 ",                         // a trailing space
	"TCP 0A000101 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED     899\r",                        // a carriage return
	"TCP 0A000101 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED        ",                          // no expiry
	"TCP 0A000101 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED  \n  899",                         // a newline in the expiry
	"TCP 0A000101 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED \n",                               // a newline right after the state
	"TCP 0A00010G 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED     899",                          // a bad client
	"TCP 0A000101 1F9G 0A000064 0050 0A00020B 0050 ESTABLISHED     899",                          // a bad client port
	"TCP 0A000101 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED",                                  // cut short
	"TCP  0A000101 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED     899",                         // two spaces
	"TCP " + v6Client[:38] + "G D431 " + v6VIP + " 01BB " + v6Real + " 01BB ESTABLISHED     899", // bad client
	"TCP " + v6Client[:4] + "-" + v6Client[5:] + " D431 " + v6VIP + " 01BB " + v6Real + " 01BB ESTABLISHED     899",
	"TCP " + v6Client + " D43  " + v6VIP + " 01BB " + v6Real + " 01BB ESTABLISHED     899",
	"TCP " + v6Client + " D431 " + v6VIP + " 01BB " + v6Real + " 01BB ESTABLISHED      \n9",
	"TCP " + v6Client + " D431 " + v6VIP + " 0050 0A00020C 0050 SYN_RECV          \n59",
	"TCP 0A000101 1F90 " + v6VIP + " 0050 0A00020C 0050 SYN_RECV         59", // families differ
}

func TestFixedCacheTakes(t *testing.T) {
	f := newFixedCache()
	var rc rawConn
	for _, line := range fixedLines {
		for range 2 { // first sight, then from the cache
			data := []byte(line + "\n" + fixedLines[0] + "\n")
			if n := f.count(data, &rc); n != len(line)+1 {
				t.Errorf("count(%q) = %d, want %d", line, n, len(line)+1)
			}
		}
	}
	for _, line := range notFixed {
		data := []byte(line + "\n" + fixedLines[0] + "\n")
		if n := f.count(data, &rc); n != 0 {
			t.Errorf("count(%q) = %d, want 0: the general path's", line, n)
		}
	}
}

// TestAggregateFixedLines: Aggregate counts fixed-width lines as
// ScanConnections does, whatever the order, and a malformed line after
// its group is cached fails the way ParseConnections does.
func TestAggregateFixedLines(t *testing.T) {
	for _, rev := range []bool{false, true} {
		lines := append([]string(nil), fixedLines...)
		if rev {
			for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
				lines[i], lines[j] = lines[j], lines[i]
			}
		}
		in := connTableHeader + strings.Join(lines, "\n") + "\n" + strings.Join(lines, "\n")
		got, err := Aggregate(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		sameSummary(t, got, scanSummary(t, []byte(in)))
	}
	// A table that starts with an entry, not the header.
	in := strings.Join(fixedLines, "\n") + "\n"
	got, err := Aggregate(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	sameSummary(t, got, scanSummary(t, []byte(in)))

	for _, bad := range notFixed {
		in := connTableHeader + strings.Join(fixedLines, "\n") + "\n" + bad + "\n" + fixedLines[0] + "\n"
		_, scanErr := ParseConnections(strings.NewReader(in))
		got, err := Aggregate(strings.NewReader(in))
		if scanErr == nil {
			if err != nil {
				t.Errorf("%q: Aggregate: %v, ParseConnections accepted it", bad, err)
				continue
			}
			sameSummary(t, got, scanSummary(t, []byte(in)))
			continue
		}
		var pe *ParseError
		if !errors.As(scanErr, &pe) {
			t.Fatalf("%q: %v", bad, scanErr)
		}
		if err == nil || err.Error() != scanErr.Error() {
			t.Errorf("%q: Aggregate error %v; ParseConnections said %v", bad, err, scanErr)
		}
	}
}

// TestAggregateFixedAcrossChunks: fixed-width lines cut by a chunk's end
// are counted once, with their line numbers right.
func TestAggregateFixedAcrossChunks(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(connTableHeader)
	for b.Len() < 3*aggChunkSize {
		for _, l := range fixedLines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	got, err := Aggregate(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	sameSummary(t, got, scanSummary(t, b.Bytes()))
	n := strings.Count(b.String(), "\n")
	b.WriteString(notFixed[5] + "\n")
	_, err = Aggregate(bytes.NewReader(b.Bytes()))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != n+1 || !strings.HasPrefix(pe.Msg, "bad client address") {
		t.Errorf("error %v; want line %d: bad client address", err, n+1)
	}
}
