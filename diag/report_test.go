package diag_test

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/lvskit/lvskit/diag"
	"github.com/lvskit/lvskit/diag/diagtest"
)

// goldenReports are the reports rendered to testdata/report/NAME.*.
func goldenReports(t *testing.T) map[string]*diag.Report {
	clean := newWorld().run(t)

	w := newWorld()
	w.arp.Hosts[vip] = append(w.arp.Hosts[vip], macOf(rips[0]))
	w.probes[rsPort(rips[2])] = diagtest.OK("0badbeef00")
	delete(w.probes, rsPort(rips[1]))
	faults := w.run(t)

	w = newWorld()
	w.onRealServer()
	w.sysctls(map[string]string{"all/arp_ignore": "0", "eth0/arp_ignore": "0", "lo/arp_ignore": "1"})
	w.links[0].Prefixes[1] = netip.PrefixFrom(vip, 24)
	rs := w.run(t)

	// On the director with --trace: every real server quiesced, the
	// traced packet dropped for want of a destination.
	w = newWorld()
	w.onDirector(t)
	w.opts.Trace = true
	w.tracer = &diagtest.Tracer{Paths: w.quiesceAll(t)}
	trace := w.run(t)

	reps := map[string]*diag.Report{"clean": clean, "faults": faults, "rs": rs, "trace": trace}
	// Durations are the only thing that varies between runs.
	for _, r := range reps {
		r.Duration = 2600 * time.Millisecond
		for i := range r.Checks {
			r.Checks[i].Duration = 0
		}
	}
	return reps
}

// TestReportGolden renders each report as text (plain and coloured),
// markdown and JSON and compares with testdata/report/; -update
// rewrites them. The JSON is also validated against the schema.
func TestReportGolden(t *testing.T) {
	for name, rep := range goldenReports(t) {
		for _, f := range []struct {
			ext  string
			opts diag.ReportOptions
		}{
			{"txt", diag.ReportOptions{Format: diag.Text, FailOn: diag.Warning}},
			{"colour.txt", diag.ReportOptions{Format: diag.Text, Colour: true, FailOn: diag.Warning}},
			{"md", diag.ReportOptions{Format: diag.Markdown, FailOn: diag.Warning}},
			{"json", diag.ReportOptions{Format: diag.JSON, FailOn: diag.Warning}},
		} {
			t.Run(name+"."+f.ext, func(t *testing.T) {
				var b bytes.Buffer
				if err := diag.WriteReport(&b, rep, f.opts); err != nil {
					t.Fatal(err)
				}
				if f.opts.Format == diag.JSON {
					validateReport(t, b.Bytes())
				}
				diag.Golden(t, filepath.Join("testdata", "report", name+"."+f.ext), b.Bytes())
			})
		}
	}
}
