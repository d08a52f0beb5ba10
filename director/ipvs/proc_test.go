package ipvs

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadersOnMissingFiles(t *testing.T) {
	root := t.TempDir()
	checks := map[string]func() error{
		"ReadServiceTable": func() error { _, err := ReadServiceTable(root); return err },
		"ReadConnections":  func() error { _, err := ReadConnections(root); return err },
		"AggregateFile":    func() error { _, err := AggregateFile(root); return err },
		"ReadStats":        func() error { _, err := ReadStats(root); return err },
		"ReadStatsPerCPU":  func() error { _, err := ReadStatsPerCPU(root); return err },
		"ReadConnSync":     func() error { _, err := ReadConnectionsSync(root); return err },
	}
	for name, read := range checks {
		err := read()
		if !errors.Is(err, ErrIPVSUnavailable) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s on an empty root: %v; want ErrIPVSUnavailable and fs.ErrNotExist", name, err)
		}
		if !strings.Contains(err.Error(), root) {
			t.Errorf("%s: error %q does not name the path", name, err)
		}
	}
}

func TestReaderNamesThePathInParseErrors(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "proc/net")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := connTableHeader + "TCP 0A000101 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED     899\nTCP zzzz\n"
	if err := os.WriteFile(filepath.Join(dir, "ip_vs_conn"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, read := range map[string]func() error{
		"ReadConnections": func() error { _, err := ReadConnections(root); return err },
		"AggregateFile":   func() error { _, err := AggregateFile(root); return err },
	} {
		err := read()
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("%s: %v; want a *ParseError", name, err)
		}
		want := filepath.Join(root, ProcConn)
		if pe.File != want || pe.Line != 3 {
			t.Errorf("%s: error at %s:%d; want %s:3 (%v)", name, pe.File, pe.Line, want, err)
		}
	}
}

// kernelLine builds an ip_vs_conn line with the kernel's format string
// for IPv4 ("%-3s %08X %04X %08X %04X %s %04X %-11s %7lu%s").
func kernelLine(proto, c, cp, v, vp, d, dp, state string, expires string, pe string) string {
	return padRight(proto, 3) + " " + c + " " + cp + " " + v + " " + vp + " " + d + " " + dp + " " +
		padRight(state, 11) + " " + padLeft(expires, 7) + pe
}

func padRight(s string, n int) string { return s + strings.Repeat(" ", max(0, n-len(s))) }
func padLeft(s string, n int) string  { return strings.Repeat(" ", max(0, n-len(s))) + s }

func TestParseConnectionsFields(t *testing.T) {
	in := connTableHeader +
		kernelLine("TCP", "0A000101", "1F90", "0A000064", "0050", "0A00020B", "0050", "ESTABLISHED", "899", "") + "\n" +
		kernelLine("IP", "0A000100", "0000", "00000007", "0000", "0A00020B", "0000", "ASSURED", "60", "") + "\n" +
		kernelLine("UDP", "0A000101", "13C4", "0A00006E", "13C4", "0A00020B", "13C4", "UDP", "170", " sip abc@example.com") + "\n" +
		"TCP 2001:0db8:0000:0000:0000:0000:0000:0001 D431 fd00:0000:0000:0000:0000:0000:0000:0100 0050 " +
		"0A00020C 0050 SYN_RECV         59\n" +
		kernelLine("SCTP", "0A000101", "8000", "0A00006A", "0F1C", "0A00020B", "0F1C", "C-ECHOED", "18446744073709551", "") + "\n"
	got, err := ParseConnections(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Connection{{
		Protocol:   TCP,
		Client:     netip.MustParseAddrPort("10.0.1.1:8080"),
		Virtual:    netip.MustParseAddrPort("10.0.0.100:80"),
		RealServer: netip.MustParseAddrPort("10.0.2.11:80"),
		State:      StateEstablished,
		Expires:    899 * time.Second,
	}, {
		Protocol:   ProtoIP,
		Client:     netip.MustParseAddrPort("10.0.1.0:0"),
		Virtual:    netip.AddrPortFrom(netip.Addr{}, 0),
		FWMark:     7,
		RealServer: netip.MustParseAddrPort("10.0.2.11:0"),
		State:      StateAssured,
		Expires:    60 * time.Second,
		Template:   true,
	}, {
		Protocol:   UDP,
		Client:     netip.MustParseAddrPort("10.0.1.1:5060"),
		Virtual:    netip.MustParseAddrPort("10.0.0.110:5060"),
		RealServer: netip.MustParseAddrPort("10.0.2.11:5060"),
		State:      StateUDP,
		Expires:    170 * time.Second,
		PEName:     "sip",
		PEData:     "abc@example.com",
	}, {
		Protocol:   TCP,
		Client:     netip.MustParseAddrPort("[2001:db8::1]:54321"),
		Virtual:    netip.MustParseAddrPort("[fd00::100]:80"),
		RealServer: netip.MustParseAddrPort("10.0.2.12:80"),
		State:      StateSynRecv,
		Expires:    59 * time.Second,
	}, {
		Protocol:   SCTP,
		Client:     netip.MustParseAddrPort("10.0.1.1:32768"),
		Virtual:    netip.MustParseAddrPort("10.0.0.106:3868"),
		RealServer: netip.MustParseAddrPort("10.0.2.11:3868"),
		State:      StateSCTPCookieEchoed,
		Expires:    time.Duration(1<<63 - 1),
	}}
	if len(got) != len(want) {
		t.Fatalf("got %d connections, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n got %+v\nwant %+v", i+2, got[i], want[i])
		}
	}
}

func TestExpiredTimerSaturates(t *testing.T) {
	// An entry whose timer already ran: (expires - jiffies) / HZ wraps.
	in := kernelLine("TCP", "0A000101", "1F90", "0A000064", "0050", "0A00020B", "0050", "CLOSE", "73786976294838206", "")
	got, err := ParseConnections(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Expires != time.Duration(1<<63-1) {
		t.Errorf("Expires = %v; want the largest Duration", got[0].Expires)
	}
}

func TestConnStateNames(t *testing.T) {
	// Every name the kernel prints for TCP, UDP, SCTP and templates.
	names := []string{"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT", "CLOSE",
		"CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK", "UDP", "INIT1", "INIT", "C-SENT", "C-REPLIED",
		"C-WAIT", "COOKIE", "C-ECHOED", "S-SENT", "S-RECEIVED", "S-ACK-SENT", "REJECTED", "CLOSED", "ASSURED"}
	seen := map[ConnState]bool{}
	for _, name := range names {
		s, ok := ParseConnState(name)
		if !ok || s == StateUnknown {
			t.Errorf("ParseConnState(%q) = %v, %v", name, s, ok)
		}
		if s.String() != name {
			t.Errorf("%q parses to %v, which prints %q", name, s, s.String())
		}
		if seen[s] {
			t.Errorf("%q maps to %v twice", name, s)
		}
		seen[s] = true
		line := kernelLine("TCP", "0A000101", "1F90", "0A000064", "0050", "0A00020B", "0050", name, "1", "")
		got, err := ParseConnections(strings.NewReader(line))
		if err != nil || got[0].State != s {
			t.Errorf("line with %s: %v, %v", name, got, err)
		}
	}
	for _, name := range []string{"ERR!", "BUG!", "?", "ESTABISHED"} {
		if s, ok := ParseConnState(name); ok || s != StateUnknown {
			t.Errorf("ParseConnState(%q) = %v, %v; want StateUnknown, false", name, s, ok)
		}
	}
}

func TestConnSyncFormat(t *testing.T) {
	in := "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires\n" +
		"TCP 0A000101 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED SYNC       899\n" +
		"UDP 0A000101 1F90 0A000068 0035 0A00020B 0035 UDP         LOCAL      299\n"
	var got []Connection
	err := ScanConnectionsSync(strings.NewReader(in), func(c *Connection) error {
		got = append(got, *c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Synced || got[1].Synced || got[0].Expires != 899*time.Second || got[1].State != StateUDP {
		t.Errorf("got %+v", got)
	}
}

func TestMalformedConnectionLines(t *testing.T) {
	good := kernelLine("TCP", "0A000101", "1F90", "0A000064", "0050", "0A00020B", "0050", "ESTABLISHED", "899", "")
	cases := []struct {
		line, want string
	}{
		{"XYZ 0A000101 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED 1", `unknown protocol "XYZ"`},
		{"TCP 0A00010 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED 1", "bad client address"},
		{"TCP 0A000101 1F9 0A000064 0050 0A00020B 0050 ESTABLISHED 1", "bad client port"},
		{"TCP 0A000101 1F90 0A00006G 0050 0A00020B 0050 ESTABLISHED 1", `bad virtual address "0A00006G"`},
		{"TCP 0A000101 1F90 0A000064 00500 0A00020B 0050 ESTABLISHED 1", "bad virtual port"},
		{"TCP 0A000101 1F90 0A000064 0050 0A00020 0050 ESTABLISHED 1", "bad real server address"},
		{"TCP 0A000101 1F90 0A000064 0050 0A00020B 005 ESTABLISHED 1", "bad real server port"},
		{"TCP 0A000101 1F90 0A000064 0050 0A00020B 0050", "missing state"},
		{"TCP 0A000101 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED", "missing expiry"},
		{"TCP 0A000101 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED -1", "bad expiry seconds"},
		{"TCP 0A000101 1F90 0A000064 0050 0A00020B 0050 ESTABLISHED 99999999999999999999", "bad expiry seconds"},
		{"TCP 0A000101 1F90 fd00:0000:0000:0000:0000:0000:0000:0100 0050 0A00020B 0050 NONE 1", "family differs"},
		{"TCP 2001:0db8:0000:0000:0000:0000:0000:00zz 1F90 0A000064 0050 0A00020B 0050 NONE 1", "bad client address"},
		{"TCP", "bad client address"},
	}
	for _, tc := range cases {
		in := connTableHeader + good + "\n" + tc.line + "\n"
		_, err := ParseConnections(strings.NewReader(in))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != 3 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v; want line 3 and %q", tc.line, err, tc.want)
		}
		// Aggregate does not read the expiry; otherwise it fails the same way.
		_, aggErr := Aggregate(strings.NewReader(in))
		if strings.Contains(tc.want, "expiry seconds") {
			if aggErr != nil {
				t.Errorf("%q: Aggregate: %v; want no error (it skips the expiry)", tc.line, aggErr)
			}
		} else if aggErr == nil || err == nil || aggErr.Error() != err.Error() {
			t.Errorf("%q: Aggregate error %v; ParseConnections said %v", tc.line, aggErr, err)
		}
	}
}

func TestTooLongLine(t *testing.T) {
	in := connTableHeader + strings.Repeat("A", maxProcLineLength+10) + "\n"
	_, err := ParseConnections(strings.NewReader(in))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 2 || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("error %v; want line 2 longer than the limit", err)
	}
}

func TestScanConnectionsReturnsCallbackError(t *testing.T) {
	stop := errors.New("stop here")
	in := connTableHeader + kernelLine("TCP", "0A000101", "1F90", "0A000064", "0050", "0A00020B", "0050", "ESTABLISHED", "899", "") + "\n"
	err := ScanConnections(strings.NewReader(in), func(*Connection) error { return stop })
	if err != stop {
		t.Errorf("ScanConnections returned %v; want the callback's error as is", err)
	}
}

func TestMalformedServiceTables(t *testing.T) {
	head := "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n"
	cases := []struct {
		in, want string
		line     int
	}{
		{"", "empty file", 1},
		{"IP Virtual Server version 1.2 (size=4096)\n", "want a version", 1},
		{"IP Virtual Server version 1.2.1 (size=x)\n", "bad connection table size", 1},
		{head + "  -> 0A00020B:0050      Masq    1      0          0\n", "real server before any service", 4},
		{head + "TCP  0A000064:0050 rr\n  -> 0A00020B:0050      Masq    x      0          0\n", "bad weight", 5},
		{head + "TCP  0A000064:0050 rr\n  -> 0A00020B:0050      Fast    1      0          0\n", "unknown forwarding", 5},
		{head + "TCP  0A000064:0050 rr\n  -> 0A00020B:0050      Masq    1      0\n", "want address:port", 5},
		{head + "ICMP  0A000064:0050 rr\n", "unknown service protocol", 4},
		{head + "TCP  0A000064:50 rr\n", "bad virtual address:port", 4},
		{head + "TCP  [fd00::1:0050 rr\n", "bad virtual address:port", 4},
		{head + "TCP  0A000064:0050 RR!\n", "bad scheduler name", 4},
		{head + "TCP  0A000064:0050 rr persistent 300\n", "want \"persistent TIMEOUT NETMASK\"", 4},
		{head + "TCP  0A000064:0050 rr persistent x FFFFFFFF\n", "bad persistence timeout", 4},
		{head + "TCP  0A000064:0050 rr persistent 300 FF00FF00\n", "not a prefix", 4},
		{head + "TCP  0A000064:0050 rr quick\n", "unexpected service flag", 4},
		{head + "FWM  00000000 rr\n", "bad firewall mark", 4},
		{head + "TCP  0A000064:0050\n", "want protocol, address and scheduler", 4},
	}
	for _, tc := range cases {
		_, err := ParseServiceTable(strings.NewReader(tc.in))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != tc.line || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v; want line %d and %q", tc.in, err, tc.line, tc.want)
		}
	}
}

func TestMalformedStats(t *testing.T) {
	head := "   Total Incoming Outgoing         Incoming         Outgoing\n" +
		"   Conns  Packets  Packets            Bytes            Bytes\n"
	rates := "\n Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n"
	cases := []struct {
		in, want string
		line     int
	}{
		{"", "no totals line", 1},
		{head + "       1        2        3                4\n", "want 5 hex counters", 3},
		{head + "       1        2        3                4                X\n", "bad hex counter", 3},
		{head + "       1        2        3                4                5\n", "no rates line", 4},
		{"       1        2        3                4                5\n", "counters before the column headers", 1},
		{head + "       1        2        3                4                5\n" + rates +
			"       0        0        0                0                0\n       0        0        0                0                0\n",
			"unexpected line after the rates", 7},
		{rates, "rates header before the totals", 2},
	}
	for _, tc := range cases {
		_, err := ParseStats(strings.NewReader(tc.in))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != tc.line || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v; want line %d and %q", tc.in, err, tc.line, tc.want)
		}
	}
	perCPU := "       Total Incoming Outgoing         Incoming         Outgoing\n" +
		"CPU    Conns  Packets  Packets            Bytes            Bytes\n" +
		"  Z        0        0        0                0                0\n"
	if _, err := ParseStatsPerCPU(strings.NewReader(perCPU)); err == nil || !strings.Contains(err.Error(), "ip_vs_stats_percpu:3: bad CPU number") {
		t.Errorf("per-CPU with a bad CPU: %v", err)
	}
}
