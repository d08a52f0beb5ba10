package ipvs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// addFixtureSeeds adds every captured file of that name as a seed, on
// top of the corpus in testdata/fuzz/<FuzzName>.
func addFixtureSeeds(f *testing.F, name string) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "proc", "*", name))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkParseError insists that an error from a parser is a *ParseError
// with a line number, or a plain read error (never from bytes.Reader).
func checkParseError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line < 1 || pe.Msg == "" {
		t.Fatalf("error %v (%T) is not a *ParseError with a line", err, err)
	}
}

func FuzzParseConnections(f *testing.F) {
	addFixtureSeeds(f, "ip_vs_conn")
	f.Fuzz(func(t *testing.T, in []byte) {
		var scanned []Connection
		err := ScanConnections(bytes.NewReader(in), func(c *Connection) error {
			scanned = append(scanned, *c)
			return nil
		})
		checkParseError(t, err)

		// Aggregate must agree with counting what ScanConnections gives;
		// it skips the expiry, so it may accept lines Scan rejects.
		agg, aggErr := Aggregate(bytes.NewReader(in))
		checkParseError(t, aggErr)
		if err == nil {
			if aggErr != nil {
				t.Fatalf("Scan accepted the input, Aggregate said %v", aggErr)
			}
			want := NewConnSummary()
			for i := range scanned {
				want.Add(&scanned[i])
			}
			if agg.Entries != want.Entries || agg.Templates != want.Templates || len(agg.Groups) != len(want.Groups) {
				t.Fatalf("Aggregate %d entries %d groups, Scan %d entries %d groups",
					agg.Entries, len(agg.Groups), want.Entries, len(want.Groups))
			}
			for g, n := range want.Groups {
				if agg.Groups[g] != n {
					t.Fatalf("group %+v: Aggregate %d, Scan %d", g, agg.Groups[g], n)
				}
			}
			for k, n := range want.ByState {
				if agg.ByState[k] != n {
					t.Fatalf("state %+v: Aggregate %d, Scan %d", k, agg.ByState[k], n)
				}
			}
		}
		for _, c := range scanned {
			if !c.Client.Addr().IsValid() || !c.RealServer.Addr().IsValid() {
				t.Fatalf("parsed an invalid address: %+v", c)
			}
			if c.FWMark == 0 && !c.Virtual.Addr().IsValid() {
				t.Fatalf("no virtual address and no mark: %+v", c)
			}
		}
	})
}

func FuzzParseConnectionsSync(f *testing.F) {
	addFixtureSeeds(f, "ip_vs_conn_sync")
	f.Fuzz(func(t *testing.T, in []byte) {
		err := ScanConnectionsSync(bytes.NewReader(in), func(*Connection) error { return nil })
		checkParseError(t, err)
	})
}

func FuzzParseServiceTable(f *testing.F) {
	addFixtureSeeds(f, "ip_vs")
	f.Fuzz(func(t *testing.T, in []byte) {
		tab, err := ParseServiceTable(bytes.NewReader(in))
		checkParseError(t, err)
		if err != nil {
			return
		}
		for _, s := range tab.Services {
			if s.IsFWMark() == s.Address.IsValid() {
				t.Fatalf("service %+v has both or neither of a mark and an address", s.Service)
			}
			if s.Scheduler == "" {
				t.Fatalf("service %v without a scheduler", s.ServiceKey)
			}
		}
	})
}

func FuzzParseStats(f *testing.F) {
	addFixtureSeeds(f, "ip_vs_stats")
	f.Fuzz(func(t *testing.T, in []byte) {
		_, err := ParseStats(bytes.NewReader(in))
		checkParseError(t, err)
	})
}

func FuzzParseStatsPerCPU(f *testing.F) {
	addFixtureSeeds(f, "ip_vs_stats_percpu")
	f.Fuzz(func(t *testing.T, in []byte) {
		_, err := ParseStatsPerCPU(bytes.NewReader(in))
		checkParseError(t, err)
	})
}
