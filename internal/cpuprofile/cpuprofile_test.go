package cpuprofile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lvskit/lvskit/internal/cpuprofile"
)

// A profile is written to a new file of mode 0600; an existing file or a
// symlink at the path is refused and left as it was.
func TestStartWritesANewOwnerOnlyFileAndRefusesAnExistingOne(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cpu.prof")
	stop, err := cpuprofile.Start(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
		t.Fatalf("profile %v (%v): want a non-empty file of mode 0600", fi, err)
	}
	if _, err := cpuprofile.Start(path); err == nil {
		t.Error("a second profile over the first was accepted")
	}
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.prof")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := cpuprofile.Start(link); err == nil {
		t.Error("a profile through a symlink was accepted")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the symlink's target was changed to %q", b)
	}
}
