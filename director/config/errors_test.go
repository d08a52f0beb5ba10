package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// loadErrors loads lvsd.yaml from files and returns its problems, one
// string each.
func loadErrors(t *testing.T, files map[string]string, opts LoadOptions) []string {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, text := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(text)}
	}
	opts.FS = fsys
	cfg, err := Load("lvsd.yaml", opts)
	if err == nil {
		if cfg == nil {
			t.Fatal("Load returned neither a config nor an error")
		}
		return nil
	}
	if cfg != nil {
		t.Errorf("Load returned a config with its errors")
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Load error is %T, not an ErrorList: %v", err, err)
	}
	if len(list) == 0 {
		t.Fatal("Load returned an empty ErrorList")
	}
	if got, want := err.Error(), strings.Join(errorStrings(list), "\n"); got != want {
		t.Errorf("ErrorList.Error() is not one problem per line:\n%s", got)
	}
	return errorStrings(list)
}

func errorStrings(list ErrorList) []string {
	out := make([]string, len(list))
	for i, e := range list {
		out[i] = e.Error()
	}
	return out
}

func checkErrors(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// errorCase is one file with one class of mistake, and every problem
// Load must report for it, in order. The cases are by topic:
// errors_yaml_test.go (the file's shape: YAML, unknown keys, wrong
// kinds), errors_service_test.go (virtual services, real servers and the
// globals), errors_check_test.go (health checks).
type errorCase struct {
	name string
	file string
	want []string
}

// errorCases are all of them, for TestLoadErrors and the fuzz corpus.
var errorCases = slices.Concat(yamlErrorCases, serviceErrorCases, checkErrorCases)

func TestLoadErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			got := loadErrors(t, map[string]string{"lvsd.yaml": tc.file}, LoadOptions{})
			checkErrors(t, got, tc.want)
		})
	}
}

// TestWrongKindLeavesNoFollowUps checks that a value of the wrong kind is
// reported once, without the checks then complaining that it is missing.
func TestWrongKindLeavesNoFollowUps(t *testing.T) {
	checkErrors(t, loadErrors(t, map[string]string{"lvsd.yaml": `virtual_services:
  - [address, 10.0.0.1]
  - address: 192.168.0.100
    port: 80
    health_check: tcp
    sorry_server: 10.0.0.9
    real_servers:
      - 10.0.0.2
      - {address: 10.0.0.3, weight: heavy, upper_threshold: 10, lower_threshold: x}
`}, LoadOptions{}), []string{
		`lvsd.yaml:2:5: virtual_services: expected a mapping of name, protocol, address, port, fwmark, family, group, scheduler, scheduler_flags, persistence, one_packet, forwarding, tunnel, health_check, on_failure, sorry_server, quorum, announce or real_servers, got a list`,
		`lvsd.yaml:5:19: health_check: expected a mapping of type, interval, timeout, rise, fall, retry, retry_delay, connect_ip, connect_port, path, status_codes, digest, host, sni, verify_tls, command, shell, script_user, query_name, query_type, payload, require_reply, reply, min_reply_bytes, max_reply_bytes, helo_name or starttls, got "tcp"`,
		`lvsd.yaml:6:19: sorry_server: expected a mapping of address, port, forwarding or tunnel, got "10.0.0.9"`,
		`lvsd.yaml:8:9: real_servers: expected a mapping of address, port, weight, upper_threshold, lower_threshold, forwarding, tunnel or health_check, got "10.0.0.2"`,
		`lvsd.yaml:9:37: weight: expected a whole number, got "heavy"`,
		`lvsd.yaml:9:82: lower_threshold: expected a whole number, got "x"`,
	})
}
