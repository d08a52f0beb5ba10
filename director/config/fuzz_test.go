package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// FuzzParse feeds arbitrary bytes to the decoder and the checks: they
// must never panic, and must return either a config or an ErrorList whose
// every entry names the file.
func FuzzParse(f *testing.F) {
	for _, tc := range errorCases {
		f.Add([]byte(tc.file))
	}
	examples, _ := filepath.Glob("../../examples/*.yaml")
	for _, name := range examples {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	fsys := fstest.MapFS{
		"conf.d/a.yaml": {Data: []byte("virtual_services: [{address: 10.0.0.1, port: 80}]\n")},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data, LoadOptions{FS: fsys, Kernel: &Capabilities{Schedulers: []string{"rr", "wlc"}}})
		if err != nil {
			if cfg != nil {
				t.Fatal("Parse returned a config and an error")
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("Parse error is not a non-empty ErrorList: %T %v", err, err)
			}
			for _, e := range list {
				if e.File == "" || e.Message == "" {
					t.Fatalf("problem without file or message: %+v", e)
				}
			}
			return
		}
		// A valid config expands without trouble.
		for _, d := range cfg.Desired() {
			if d.Service.Scheduler == "" {
				t.Fatalf("service %s without a scheduler", d.Service.ServiceKey)
			}
		}
	})
}
