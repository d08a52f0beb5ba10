package diag_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lvskit/lvskit/internal/schematest"
)

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	return schematest.Load(t, "report.schema.json")
}

// validateReport fails the test unless out is a report the schema
// accepts.
func validateReport(t *testing.T, out []byte) {
	t.Helper()
	schema := loadSchema(t)
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("decoding the report: %v\n%s", err, out)
	}
	if errs := schematest.Validate(schema, v); len(errs) > 0 {
		t.Errorf("the report does not match report.schema.json:\n%s", strings.Join(errs, "\n"))
	}
}

// The validator must reject what the schema forbids, or the tests that
// use it prove nothing.
func TestSchemaValidatorRejects(t *testing.T) {
	schema := loadSchema(t)
	good := `{"schema_version":1,"mode":"full","vip":"10.0.0.1","port":80,"host":"h","interface":"eth0",
		"start":"2026-01-02T03:04:05Z","duration_seconds":1.5,"fail_on":"warning","exit_code":1,
		"summary":{"findings":1,"critical":1,"warning":0,"info":0,"could_not_run":0},
		"checks":[{"number":1,"id":"reachability","title":"t","status":"findings","duration_seconds":0,"notes":[],
		"findings":[{"id":"reach-loss","severity":"critical","subject":"s","evidence":["e"],"fix":"f"}]}]}`
	var v any
	json.Unmarshal([]byte(good), &v)
	if errs := schematest.Validate(schema, v); len(errs) > 0 {
		t.Fatalf("a valid report is rejected: %v", errs)
	}
	for name, edit := range map[string][2]string{
		"bad severity":      {`"severity":"critical"`, `"severity":"fatal"`},
		"missing fix":       {`,"fix":"f"`, ``},
		"extra field":       {`"port":80`, `"port":80,"colour":true`},
		"bad status":        {`"status":"findings"`, `"status":"maybe"`},
		"bad finding id":    {`"id":"reach-loss"`, `"id":"Reach Loss"`},
		"port out of range": {`"port":80`, `"port":70000`},
		"bad start":         {`"2026-01-02T03:04:05Z"`, `"yesterday"`},
		"schema version 2":  {`"schema_version":1`, `"schema_version":2`},
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
