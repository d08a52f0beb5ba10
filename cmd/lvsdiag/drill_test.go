package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDrillBadFlagsExitTwoAndSayWhy(t *testing.T) {
	sock := []string{"--vip", "10.90.0.100", "--lvsd", "/run/lvsd/status.sock"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no vip", []string{"--lvsd", "/run/lvsd/status.sock"}, "--vip is required"},
		{"no lvsd", []string{"--vip", "10.90.0.100"}, "--lvsd is required"},
		{"bad vip", []string{"--vip", "lvs", "--lvsd", "/s"}, `--vip "lvs"`},
		{"bad kind", append(sock, "--kind", "ospf"), `--kind "ospf"`},
		{"hold too long", append(sock, "--hold", "2h"), "--hold 2h0m0s"},
		{"hold shorter than the drill", append(sock, "--hold", "3s"), "shorter than --warmup plus --observe"},
		{"bad port", append(sock, "--port", "0"), `--port "0"`},
		{"bad output", append(sock, "--output", "yaml"), `output format "yaml"`},
		{"bad lvsd", []string{"--vip", "10.90.0.100", "--lvsd", "lvs1"}, "want http://HOST:PORT"},
		{"nothing listening", []string{"--vip", "10.90.0.100", "--lvsd", "/nonexistent/lvsd.sock", "--kind", "vrrp"}, "/nonexistent/lvsd.sock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runDrill(tc.args, &stdout, &stderr); code != 2 {
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
