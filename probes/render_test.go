package probes

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/internal/schematest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// renderAll prints every scenario's paths and the run's summary as lvsdiag
// trace does.
func renderAll(t *testing.T, format string, colour bool) []byte {
	var b bytes.Buffer
	var sum Summary
	for _, s := range scenarios() {
		paths, ss := runScenario(s)
		for _, p := range paths {
			var err error
			if format == "json" {
				err = WriteJSON(&b, p)
			} else {
				err = WriteText(&b, p, TextOptions{Colour: colour, Location: time.UTC})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		sum = mergeSummary(sum, ss)
	}
	sum.Lost = 3
	sum.Unseen = []string{"ip_vs_conn_new: fentry cannot attach to a function with 7 arguments on this kernel and kprobes are not built in: the new connection's real server is not shown"}
	var err error
	if format == "json" {
		err = WriteSummaryJSON(&b, sum)
	} else {
		err = WriteSummaryText(&b, sum, TextOptions{Colour: colour})
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func mergeSummary(a, b Summary) Summary {
	if a.ByOutcome == nil {
		a = Summary{ByOutcome: map[Outcome]int{}, ByRealServer: map[netip.AddrPort]int{}, Drops: map[string]int{}}
	}
	a.Packets += b.Packets
	for k, v := range b.ByOutcome {
		a.ByOutcome[k] += v
	}
	for k, v := range b.ByRealServer {
		a.ByRealServer[k] += v
	}
	for k, v := range b.Drops {
		a.Drops[k] += v
	}
	return a
}

// TestRenderGolden prints the scenarios as text (plain and coloured) and
// JSON lines and compares with testdata/render/; -update rewrites them.
// Every JSON line is validated against trace.schema.json.
func TestRenderGolden(t *testing.T) {
	golden(t, "testdata/render/scenarios.txt", renderAll(t, "text", false))
	golden(t, "testdata/render/scenarios.colour.txt", renderAll(t, "text", true))
	out := renderAll(t, "json", false)
	golden(t, "testdata/render/scenarios.jsonl", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, line := range lines {
		schematest.Check(t, "trace.schema.json", []byte(line))
		var v struct{ Type string }
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: "summary", false: "path"}[i == len(lines)-1]; v.Type != want {
			t.Errorf("line %d is a %q, want a %q", i+1, v.Type, want)
		}
	}
}

// The schema must reject what it forbids, or validating against it
// proves nothing.
func TestTraceSchemaRejects(t *testing.T) {
	schema := schematest.Load(t, "trace.schema.json")
	good := `{"type":"path","schema_version":1,"netns":1,"device":"eth0","outcome":"dropped","why":"w",` +
		`"tuple":{"protocol":"TCP","src":"10.0.0.1:1","dst":"10.0.0.2:80"},"tcp_flags":"SYN|ACK",` +
		`"hops":[{"func":"kfree_skb","at_ns":5,"since_first_ns":0,"verdict":"DROP","text":"t"}]}`
	var v any
	if err := json.Unmarshal([]byte(good), &v); err != nil {
		t.Fatal(err)
	}
	if errs := schematest.Validate(schema, v); len(errs) > 0 {
		t.Fatalf("a valid path is rejected: %v", errs)
	}
	for name, edit := range map[string][2]string{
		"bad outcome":      {`"outcome":"dropped"`, `"outcome":"lost"`},
		"missing why":      {`"why":"w",`, ``},
		"extra field":      {`"device":"eth0"`, `"device":"eth0","colour":true`},
		"bad verdict":      {`"verdict":"DROP"`, `"verdict":"MAYBE"`},
		"hop without text": {`,"text":"t"`, ``},
		"bad flags":        {`"SYN|ACK"`, `"syn ack"`},
		"summary fields":   {`"type":"path"`, `"type":"summary"`},
		"schema version":   {`"schema_version":1`, `"schema_version":2`},
	} {
		var v any
		if err := json.Unmarshal([]byte(strings.Replace(good, edit[0], edit[1], 1)), &v); err != nil {
			t.Fatal(err)
		}
		if errs := schematest.Validate(schema, v); len(errs) == 0 {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestNoColourWithoutColour(t *testing.T) {
	if bytes.Contains(renderAll(t, "text", false), []byte("\x1b[")) {
		t.Error("plain text has ANSI escapes")
	}
	if !bytes.Contains(renderAll(t, "text", true), []byte("\x1b[")) {
		t.Error("coloured text has no ANSI escapes")
	}
}
