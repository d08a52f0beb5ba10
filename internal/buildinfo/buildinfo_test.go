package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestStringNamesProgramVersionAndToolchain(t *testing.T) {
	got := String("lvsd")
	if !strings.HasPrefix(got, "lvsd (lvskit) "+Version()+", ") || !strings.HasSuffix(got, runtime.Version()) {
		t.Errorf("String(lvsd) = %q, want lvsd (lvskit) %s, built with %s", got, Version(), runtime.Version())
	}
}
