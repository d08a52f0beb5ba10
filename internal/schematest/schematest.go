// Package schematest validates JSON documents against the small subset
// of JSON Schema (2020-12) that lvskit's documented output formats use
// (diag/report.schema.json, probes/trace.schema.json), so each format's
// tests prove that what the program prints is what its schema says.
package schematest

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

// Validate checks a decoded JSON value (from encoding/json into any)
// against schema and returns one line per violation, each starting with
// its JSON path ("$.checks[0].id: ...").
func Validate(schema map[string]any, v any) []string {
	return validate(schema, schema, v, "$")
}

// Load reads and decodes a schema file.
func Load(t testing.TB, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return schema
}

// Check fails the test unless doc (one JSON document) is valid against
// the schema in the file at path.
func Check(t testing.TB, path string, doc []byte) {
	t.Helper()
	schema := Load(t, path)
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("decoding %s: %v", doc, err)
	}
	if errs := Validate(schema, v); len(errs) > 0 {
		t.Errorf("%s does not match %s:\n%s", doc, path, strings.Join(errs, "\n"))
	}
}

// validate checks a decoded JSON value against the subset of JSON Schema
// (2020-12) that lvskit's schemas use: type, const, enum, required,
// properties, additionalProperties: false, items, oneOf, minimum, maximum,
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
		case "required", "properties", "additionalProperties":
			errs = append(errs, validateObject(root, schema, k, kv, v, path)...)
		case "oneOf":
			n := 0
			for _, sub := range kv.([]any) {
				if len(validate(root, sub.(map[string]any), v, path)) == 0 {
					n++
				}
			}
			if n != 1 {
				fail("matches %d of the oneOf schemas, want exactly 1", n)
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

// validateObject checks an object's keywords: required, properties
// and additionalProperties.
func validateObject(root, schema map[string]any, k string, kv, v any, path string) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	obj, _ := v.(map[string]any)
	switch k {
	case "required":
		for _, r := range kv.([]any) {
			if _, ok := obj[r.(string)]; !ok {
				fail("missing %q", r)
			}
		}
	case "properties":
		for name, sub := range kv.(map[string]any) {
			if pv, ok := obj[name]; ok {
				errs = append(errs, validate(root, sub.(map[string]any), pv, path+"."+name)...)
			}
		}
	case "additionalProperties":
		if kv != false {
			fail("validator supports only additionalProperties: false")
			break
		}
		props, _ := schema["properties"].(map[string]any)
		for name := range obj {
			if _, ok := props[name]; !ok {
				fail("unexpected property %q", name)
			}
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
	case "null":
		return v == nil
	}
	return false
}
