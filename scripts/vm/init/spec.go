package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The run share holds these files. The host writes the spec; the guest
// writes "started" just before it runs the command (the host reads its
// mtime as the boot-to-command time) and "exit" when the command is done.
// Lists are NUL-terminated, so no argument or variable needs quoting.
const (
	specArgv    = "argv"    // the command line
	specEnv     = "env"     // the host's environment, as from env -0
	specDir     = "cwd"     // one entry: the host's working directory
	specModules = "modules" // one entry: the host path of the kit's /lib/modules/<kver>
	specRW      = "rw"      // optional: host directories shared writable, at the same path
	specMerge   = "merge"   // present when the host's stdout and stderr are one file
	fileStarted = "started"
	fileExit    = "exit"
)

// spec is what the host asks the guest to run.
type spec struct {
	Argv    []string
	Env     []string
	Dir     string
	Modules string
	RW      []string // mounted from the 9p tags rwTag(0), rwTag(1), ...
	// Merge sends stderr into stdout's stream, keeping their order, as go
	// test does by giving a test binary one pipe for both.
	Merge bool
}

// rwTag is the 9p mount tag of the i-th writable directory.
func rwTag(i int) string {
	return fmt.Sprintf("lvskit.rw%d", i)
}

// readSpec reads the spec files from dir.
func readSpec(dir string) (spec, error) {
	var s spec
	lists := []struct {
		name string
		dst  *[]string
	}{{specArgv, &s.Argv}, {specEnv, &s.Env}}
	for _, l := range lists {
		b, err := os.ReadFile(filepath.Join(dir, l.name))
		if err != nil {
			return spec{}, fmt.Errorf("reading run spec: %w", err)
		}
		*l.dst = splitNUL(b)
	}
	switch b, err := os.ReadFile(filepath.Join(dir, specRW)); {
	case err == nil:
		s.RW = splitNUL(b)
	case !errors.Is(err, os.ErrNotExist):
		return spec{}, fmt.Errorf("reading run spec: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, specMerge)); err == nil {
		s.Merge = true
	}
	if len(s.Argv) == 0 {
		return spec{}, fmt.Errorf("reading run spec: empty command line")
	}
	single := []struct {
		name string
		dst  *string
	}{{specDir, &s.Dir}, {specModules, &s.Modules}}
	for _, f := range single {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return spec{}, fmt.Errorf("reading run spec: %w", err)
		}
		v := splitNUL(b)
		if len(v) != 1 {
			return spec{}, fmt.Errorf("reading run spec %s: want one entry, got %d", f.name, len(v))
		}
		*f.dst = v[0]
	}
	return s, nil
}

// splitNUL splits NUL-terminated strings; a missing final NUL is tolerated.
func splitNUL(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00")
}

// lookupEnv returns the value of key in env (KEY=VALUE entries); the last
// entry wins, as in os/exec.
func lookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
