package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSplitNUL(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\x00", []string{""}},
		{"sh\x00-c\x00echo 'a b'\n\"c\"\x00", []string{"sh", "-c", "echo 'a b'\n\"c\""}},
		{"no-final-nul", []string{"no-final-nul"}},
		{"a\x00\x00b\x00", []string{"a", "", "b"}},
	}
	for _, tt := range tests {
		if got := splitNUL([]byte(tt.in)); !slices.Equal(got, tt.want) {
			t.Errorf("splitNUL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLookupEnv(t *testing.T) {
	env := []string{"PATH=/bin", "EMPTY=", "X=a=b", "PATH=/usr/bin"}
	for _, tt := range []struct {
		key, want string
		ok        bool
	}{{"PATH", "/usr/bin", true}, {"EMPTY", "", true}, {"X", "a=b", true}, {"NOPE", "", false}} {
		if got, ok := lookupEnv(env, tt.key); got != tt.want || ok != tt.ok {
			t.Errorf("lookupEnv(%q) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.ok)
		}
	}
}

func TestReadSpec(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		specArgv:    "/bin/sh\x00-c\x00exit 3\x00",
		specEnv:     "A=1\x00MULTI=x\ny\x00",
		specDir:     "/work/dir with space\x00",
		specModules: "/work/.vm/6.12/root/lib/modules/6.12.0\x00",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := readSpec(dir)
	if err != nil {
		t.Fatalf("readSpec: %v", err)
	}
	want := spec{
		Argv:    []string{"/bin/sh", "-c", "exit 3"},
		Env:     []string{"A=1", "MULTI=x\ny"},
		Dir:     "/work/dir with space",
		Modules: "/work/.vm/6.12/root/lib/modules/6.12.0",
	}
	if !slices.Equal(s.Argv, want.Argv) || !slices.Equal(s.Env, want.Env) || s.Dir != want.Dir ||
		s.Modules != want.Modules || s.RW != nil || s.Merge {
		t.Errorf("readSpec = %+v, want %+v", s, want)
	}

	if err := os.WriteFile(filepath.Join(dir, specRW), []byte("/work/cover\x00/tmp/golden\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err = readSpec(dir); err != nil || !slices.Equal(s.RW, []string{"/work/cover", "/tmp/golden"}) {
		t.Errorf("readSpec with rw = %q, %v; want the two directories", s.RW, err)
	}
	if err := os.WriteFile(filepath.Join(dir, specMerge), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err = readSpec(dir); err != nil || !s.Merge {
		t.Errorf("readSpec with merge: Merge = %v, %v; want true", s.Merge, err)
	}

	if err := os.WriteFile(filepath.Join(dir, specArgv), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readSpec(dir); err == nil {
		t.Error("readSpec with an empty command line: no error")
	}
}
