package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckReportsEveryErrorAndExits1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("virtual_services:\n  - protocol: tcp\n    address: 192.168.0.100\n    port: 80\n    schedular: rr\n    real_servers:\n      - address: 10.0.0.1\n      - address: 10.0.0.1\n"), 0o600)
	var out, errb bytes.Buffer
	code := run([]string{"check", "--config", path, "--modules-dir", t.TempDir()}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errb.String())
	}
	for _, want := range []string{path + `:5:5: unknown key "schedular"`, "did you mean \"scheduler\"", path + ":8:9: real server 10.0.0.1:80 is listed twice"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
}

func TestCheckAcceptsTheExamples(t *testing.T) {
	examples, _ := filepath.Glob("../../examples/*.yaml")
	if len(examples) == 0 {
		t.Fatal("no examples found")
	}
	for _, ex := range examples {
		var out, errb bytes.Buffer
		if code := run([]string{"check", "--config", ex}, &out, &errb); code != 0 {
			t.Errorf("%s: exit %d\n%s", ex, code, errb.String())
		}
		if !strings.Contains(out.String(), ": ok: ") {
			t.Errorf("%s: output %q", ex, out.String())
		}
	}
}

func TestBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{{"--nope"}, {"frobnicate"}, {"--log-level", "loud", "check"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
