// Package contrib holds the Grafana dashboard and the Prometheus alerting
// rules that ship with lvskit (grafana/, prometheus/); its tests check
// them against what lvsd exports.
package contrib

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// catalogPath is every family lvsd exports with its labels, written by
// director's TestMetricsCatalogGolden.
const catalogPath = "../director/testdata/metrics_catalog.golden"

// targetLabels are added by Prometheus to every scraped series.
var targetLabels = []string{"instance", "job"}

// catalog maps each series name lvsd exports (a histogram's _bucket,
// _sum and _count too) to its label names.
func catalog(t *testing.T) map[string]map[string]bool {
	t.Helper()
	b, err := os.ReadFile(catalogPath)
	if err != nil {
		t.Fatalf("%v (go test ./director/ -run Catalog -update writes it)", err)
	}
	series := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)
	out := map[string]map[string]bool{}
	for i, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		m := series.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("%s:%d: not a series: %q", catalogPath, i+1, l)
		}
		if out[m[1]] == nil {
			out[m[1]] = map[string]bool{}
		}
		for _, lm := range label.FindAllStringSubmatch(m[2], -1) {
			out[m[1]][lm[1]] = true
		}
	}
	return out
}

// promqlWords are PromQL's keywords and functions, and Grafana's
// functions: identifiers that are not metric names.
var promqlWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`sum min max avg count stddev stdvar topk bottomk quantile count_values group
		by without on ignoring group_left group_right and or unless bool offset
		rate irate increase delta idelta deriv changes resets histogram_quantile vector time
		abs ceil floor round clamp_min clamp_max absent absent_over_time label_replace label_join
		sort sort_desc scalar timestamp min_over_time max_over_time avg_over_time sum_over_time count_over_time
		label_values query_result inf nan humanize`) {
		promqlWords[w] = true
	}
}

var (
	// A label matcher: name="value", name=~"regex", ...
	matcher = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"`)
	// A label list: by (a, b), without (c), on(d), group_left(e).
	labelList  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	labelValue = regexp.MustCompile(`label_values\(\s*(?:[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?\s*,\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
	rangeSel   = regexp.MustCompile(`\[[^\]]*\]`)
	variable   = regexp.MustCompile(`\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?`)
	ident      = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	number     = regexp.MustCompile(`\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b`)
)

// usage is what one expression asks of the metrics.
type usage struct {
	metrics, labels []string
}

// parseUses finds the metric names and label names a PromQL expression
// (or a Grafana label_values query) uses.
func parseUses(expr string) usage {
	var u usage
	e := expr
	for _, m := range matcher.FindAllStringSubmatch(e, -1) {
		u.labels = append(u.labels, m[1])
	}
	e = matcher.ReplaceAllString(e, "")
	for _, m := range labelList.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				u.labels = append(u.labels, l)
			}
		}
	}
	e = labelList.ReplaceAllString(e, " ")
	for _, m := range labelValue.FindAllStringSubmatch(e, -1) {
		u.labels = append(u.labels, m[1])
	}
	e = labelValue.ReplaceAllStringFunc(e, func(s string) string {
		// keep the metric inside label_values(metric, label)
		inner := strings.TrimSuffix(strings.TrimPrefix(s, "label_values("), ")")
		if i := strings.LastIndex(inner, ","); i >= 0 {
			return " " + inner[:i] + " "
		}
		return " "
	})
	e = rangeSel.ReplaceAllString(e, " ")
	e = variable.ReplaceAllString(e, " ")
	e = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAllString(e, " ")
	e = number.ReplaceAllString(e, " ")
	for _, loc := range ident.FindAllStringIndex(e, -1) {
		w := e[loc[0]:loc[1]]
		rest := strings.TrimLeft(e[loc[1]:], " ")
		if promqlWords[w] || strings.HasPrefix(rest, "(") {
			continue
		}
		u.metrics = append(u.metrics, w)
	}
	return u
}

// checkUse reports the metric and label names of one use that lvsd does
// not export. extraLabels are the label names an expression's template
// (a legend, an annotation) refers to.
func checkUse(cat map[string]map[string]bool, where, expr string, extraLabels []string) []string {
	var errs []string
	u := parseUses(expr)
	if len(u.metrics) == 0 {
		errs = append(errs, fmt.Sprintf("%s: %q reads no lvsd metric", where, expr))
	}
	have := map[string]bool{}
	for _, l := range targetLabels {
		have[l] = true
	}
	for _, m := range u.metrics {
		labels, ok := cat[m]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: metric %s is not one lvsd exports (%s)", where, m, catalogPath))
			continue
		}
		for l := range labels {
			// A target label wins: lvsd's own label of that name
			// arrives as exported_<name>.
			if slices.Contains(targetLabels, l) {
				l = "exported_" + l
			}
			have[l] = true
		}
	}
	for _, l := range append(u.labels, extraLabels...) {
		if l != "le" && !have[l] && l != "__name__" {
			errs = append(errs, fmt.Sprintf("%s: label %s is not a label of %s", where, l, strings.Join(u.metrics, ", ")))
		}
	}
	return errs
}

var (
	legendLabel     = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
	annotationLabel = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
)

func submatches(re *regexp.Regexp, s string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// The checker itself: a misspelt metric or a label a metric does not
// have is caught, and the target's labels and exported_instance are not
// mistaken for mistakes.
func TestCheckerCatchesUnknownMetricsAndLabels(t *testing.T) {
	cat := catalog(t)
	for expr, wantErr := range map[string]string{
		`rate(lvsd_check_total{result="down"}[5m])`:                                            "",
		`count by (vrid, exported_instance) (lvsd_vrrp_state == 2) > 1`:                        "",
		`sum by (instance, job) (rate(lvsd_check_timeouts_total[$__rate_interval]))`:           "",
		`histogram_quantile(0.99, sum by (le) (rate(lvsd_check_duration_seconds_bucket[5m])))`: "",
		`label_values(lvsd_real_server_health{instance=~"$instance"}, service)`:                "",
		`rate(lvsd_checks_total[5m])`:                                                          "metric lvsd_checks_total",
		`lvsd_real_server_health{state="down"}`:                                                "label state",
		`count by (vrid, instance_name) (lvsd_vrrp_state == 2)`:                                "label instance_name",
		`sum by (service) (node_ipvs_backend_weight)`:                                          "label service",
		`1 + 2`: "reads no lvsd metric",
	} {
		errs := checkUse(cat, "test", expr, nil)
		switch {
		case wantErr == "" && len(errs) > 0:
			t.Errorf("%s: unexpected %q", expr, errs)
		case wantErr != "" && !strings.Contains(strings.Join(errs, "\n"), wantErr):
			t.Errorf("%s: errors %q, want one about %s", expr, errs, wantErr)
		}
	}
	if errs := checkUse(cat, "test", `lvsd_vrrp_state`, []string{"exported_instance", "vrid", "nosuch"}); len(errs) != 1 || !strings.Contains(errs[0], "nosuch") {
		t.Errorf("legend labels: %q, want one error about nosuch", errs)
	}
}

// dashboardQueries walks the dashboard JSON for every query: panel
// targets with their legends, template variables and annotations.
func dashboardQueries(v any, path string, visit func(where, expr string, legend []string)) {
	switch x := v.(type) {
	case map[string]any:
		if expr, ok := x["expr"].(string); ok {
			legend, _ := x["legendFormat"].(string)
			legend += " " + fmt.Sprint(x["titleFormat"]) + " " + fmt.Sprint(x["textFormat"])
			visit(path, expr, submatches(legendLabel, legend))
		}
		if def, ok := x["definition"].(string); ok {
			visit(path, def, nil)
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := path + "." + k
			if title, ok := x["title"].(string); ok {
				p = path + "[" + title + "]." + k
			}
			dashboardQueries(x[k], p, visit)
		}
	case []any:
		for i, e := range x {
			dashboardQueries(e, fmt.Sprintf("%s[%d]", path, i), visit)
		}
	}
}

func TestDashboardUsesOnlyWhatLvsdExports(t *testing.T) {
	cat := catalog(t)
	b, err := os.ReadFile("grafana/lvsd.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/lvsd.json: %v", err)
	}
	n := 0
	used := map[string]bool{}
	dashboardQueries(dash, "lvsd.json", func(where, expr string, legend []string) {
		n++
		for _, e := range checkUse(cat, where, expr, legend) {
			t.Error(e)
		}
		for _, m := range parseUses(expr).metrics {
			used[strings.TrimSuffix(m, "_bucket")] = true
		}
	})
	if n < 20 {
		t.Errorf("found %d queries in the dashboard: the walk is broken", n)
	}
	// The panels the issue asks for read these.
	for _, m := range []string{"lvsd_real_server_health", "lvsd_check_timeouts_total", "node_ipvs_backend_weight",
		"node_ipvs_connections_total", "lvsd_vrrp_state", "lvsd_vrrp_became_master_total", "lvsd_reconcile_ops_failed_total",
		"lvsd_drift_repairs_total", "lvsd_config_last_reload_successful", "lvsd_check_duration_seconds"} {
		if !used[m] {
			t.Errorf("no panel reads %s", m)
		}
	}
	// Every panel queries the dashboard's datasource variable, and ids
	// are unique (Grafana keys panel state by id).
	ids := map[float64]bool{}
	for _, p := range dash["panels"].([]any) {
		p := p.(map[string]any)
		id := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel id %v twice", id)
		}
		ids[id] = true
		if p["type"] == "row" {
			continue
		}
		if ds, _ := p["datasource"].(map[string]any); ds == nil || ds["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want ${datasource}", p["title"], p["datasource"])
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string
		Rules []struct {
			Alert       string
			Expr        string
			Labels      map[string]string
			Annotations map[string]string
		}
	}
}

func TestAlertRulesUseOnlyWhatLvsdExports(t *testing.T) {
	cat := catalog(t)
	b, err := os.ReadFile("prometheus/lvsd-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			var refs []string
			for _, a := range r.Annotations {
				refs = append(refs, submatches(annotationLabel, a)...)
			}
			for _, e := range checkUse(cat, "lvsd-alerts.yml: "+r.Alert, r.Expr, refs) {
				t.Error(e)
			}
			if r.Labels["severity"] == "" {
				t.Errorf("%s has no severity label", r.Alert)
			}
		}
	}
	for _, want := range []string{"LVSDVRRPSplitBrain", "LVSDRealServerDown", "LVSDServiceAllRealServersDown", "LVSDServiceNoWeight",
		"LVSDReloadRejected", "LVSDDriftRepairedRepeatedly", "LVSDChecksTimingOut"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
}

// promtool checks the rules' syntax and runs lvsd-alerts.test.yml, whose
// cases fire and stay quiet.
func TestPromtoolChecksAndTestsTheRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: apt-get install prometheus (scripts/install-deps.sh does)")
	}
	for _, args := range [][]string{
		{"check", "rules", "prometheus/lvsd-alerts.yml"},
		{"test", "rules", "prometheus/lvsd-alerts.test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
