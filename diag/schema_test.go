package diag_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// validate checks a decoded JSON value against the subset of JSON Schema
// (2020-12) that report.schema.json uses: type, const, enum, required,
// properties, additionalProperties: false, items, minimum, maximum,
// pattern, format date-time, and $ref to #/$defs. A keyword it does not
// know fails the test, so the schema cannot outgrow the validator
// silently.
func validate(root, schema map[string]any, v any, path string) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	if ref, ok := schema["$ref"].(string); ok {
		name, ok := strings.CutPrefix(ref, "#/$defs/")
		def, _ := root["$defs"].(map[string]any)[name].(map[string]any)
		if !ok || def == nil {
			return []string{path + ": unresolvable $ref " + ref}
		}
		return validate(root, def, v, path)
	}
	for k, kv := range schema {
		switch k {
		case "$schema", "$id", "title", "description", "$defs":
		case "type":
			if !hasType(v, kv.(string)) {
				fail("want %s, got %T", kv, v)
			}
		case "const":
			if fmt.Sprint(kv) != fmt.Sprint(v) {
				fail("want %v, got %v", kv, v)
			}
		case "enum":
			if !slices.ContainsFunc(kv.([]any), func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
				fail("%v is not one of %v", v, kv)
			}
		case "required":
			obj, _ := v.(map[string]any)
			for _, r := range kv.([]any) {
				if _, ok := obj[r.(string)]; !ok {
					fail("missing %q", r)
				}
			}
		case "properties":
			obj, _ := v.(map[string]any)
			for name, sub := range kv.(map[string]any) {
				if pv, ok := obj[name]; ok {
					errs = append(errs, validate(root, sub.(map[string]any), pv, path+"."+name)...)
				}
			}
		case "additionalProperties":
			if kv != false {
				fail("validator supports only additionalProperties: false")
				continue
			}
			props, _ := schema["properties"].(map[string]any)
			obj, _ := v.(map[string]any)
			for name := range obj {
				if _, ok := props[name]; !ok {
					fail("unexpected property %q", name)
				}
			}
		case "items":
			arr, _ := v.([]any)
			for i, item := range arr {
				errs = append(errs, validate(root, kv.(map[string]any), item, fmt.Sprintf("%s[%d]", path, i))...)
			}
		case "minimum", "maximum":
			n, ok := v.(float64)
			if ok && ((k == "minimum" && n < kv.(float64)) || (k == "maximum" && n > kv.(float64))) {
				fail("%v is out of range (%s %v)", n, k, kv)
			}
		case "pattern":
			if s, ok := v.(string); ok && !regexp.MustCompile(kv.(string)).MatchString(s) {
				fail("%q does not match %s", s, kv)
			}
		case "format":
			if s, ok := v.(string); ok && kv == "date-time" {
				if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
					fail("not a date-time: %v", err)
				}
			}
		default:
			fail("schema keyword %q is not supported by the test's validator", k)
		}
	}
	return errs
}

func hasType(v any, t string) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		n, ok := v.(float64)
		return ok && n == math.Trunc(n)
	case "boolean":
		_, ok := v.(bool)
		return ok
	}
	return false
}

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("report.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatalf("report.schema.json: %v", err)
	}
	return schema
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
	if errs := validate(schema, schema, v, "$"); len(errs) > 0 {
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
	if errs := validate(schema, schema, v, "$"); len(errs) > 0 {
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
		if errs := validate(schema, schema, v, "$"); len(errs) == 0 {
			t.Errorf("%s: accepted", name)
		}
	}
}
