package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVRRPCouldNotListenExitsTwo(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no interface", []string{"--duration", "1s"}, "--interface is required"},
		{"bad output", []string{"--interface", "eth0", "--output", "yaml"}, `output format "yaml"`},
		{"bad duration", []string{"--interface", "eth0", "--duration", "0s"}, "must be positive"},
		{"stray argument", []string{"--interface", "eth0", "extra"}, "unexpected arguments"},
		{"no such interface", []string{"--interface", "lvskit-nonexistent0", "--duration", "10ms"}, "lvskit-nonexistent0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runVRRP(tc.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2; stderr %q", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q", stdout.String())
			}
		})
	}
}
