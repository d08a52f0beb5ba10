package main

import (
	"bytes"
	"strings"
	"testing"
)

// Bad flags: exit 2, nothing on stdout, and an error naming the flag.
func TestChecklistBadFlagsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no vip", []string{"--port", "80"}, "--vip is required"},
		{"bad vip", []string{"--vip", "300.1.1.1"}, `invalid value "300.1.1.1" for flag -vip: want an IP address`},
		{"bad port", []string{"--vip", "10.0.0.1", "--port", "http"}, `invalid value "http" for flag -port`},
		{"bad output", []string{"--vip", "10.0.0.1", "--output", "yaml"}, `--output: output format "yaml"`},
		{"bad fail-on", []string{"--vip", "10.0.0.1", "--fail-on", "fatal"}, `--fail-on: severity "fatal"`},
		{"bad timeout", []string{"--vip", "10.0.0.1", "--timeout", "0s"}, "--timeout 0s: must be positive"},
		{"bad probe", []string{"--vip", "10.0.0.1", "--probe", "ftp"}, `--probe "ftp"`},
		{"bad colour", []string{"--vip", "10.0.0.1", "--colour", "pink"}, `--colour "pink"`},
		{"unknown flag", []string{"--vip", "10.0.0.1", "--vips", "x"}, "flag provided but not defined: -vips"},
		{"stray argument", []string{"--vip", "10.0.0.1", "extra"}, "unexpected arguments"},
		{"bad lvsd", []string{"--vip", "10.0.0.1", "--lvsd", "nonsense"}, "--lvsd: lvsd address"},
		{"missing config", []string{"--vip", "10.0.0.1", "--config", "/nonexistent/lvsd.yaml"}, "--config /nonexistent/lvsd.yaml"},
		{"rs: no vip", []string{"rs"}, "lvsdiag rs: --vip is required"},
		{"rs: no lvsd flag", []string{"rs", "--vip", "10.0.0.1", "--lvsd", "x:1"}, "flag provided but not defined: -lvsd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != 2 {
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

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"rs", "--help"}, {"vrrp", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		if !strings.Contains(stdout.String()+stderr.String(), "--vip") && args[0] != "vrrp" {
			t.Errorf("%v: no usage:\n%s%s", args, stdout.String(), stderr.String())
		}
	}
}
