package main

import (
	"bytes"
	"testing"

	"github.com/lvskit/lvskit/internal/buildinfo"
)

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--version"}, &out, &errb); code != 0 || out.String() != buildinfo.String("lvsdiag")+"\n" {
		t.Errorf("--version: exit %d, stdout %q\n%s", code, out.String(), errb.String())
	}
}
