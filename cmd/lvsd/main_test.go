package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvskit/lvskit/director"
	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/internal/buildinfo"
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
		// The examples name scripts this host does not have.
		if code := run([]string{"check", "--skip-script-checks", "--config", ex}, &out, &errb); code != 0 {
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

// import-keepalived prints a config lvsd accepts on stdout, and what it
// could not import on stderr, behaviour changes first; a notify_down
// lvsd cannot run makes it exit 3; a keepalived.conf it cannot read
// exits 1 with the file and line; no file is a usage error.
func TestImportKeepalived(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"import-keepalived", "../../director/config/keepalived/testdata/director.conf"}, &out, &errb); code != 3 {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	imported := filepath.Join(t.TempDir(), "lvsd.yaml")
	os.WriteFile(imported, out.Bytes(), 0o600)
	var checkOut, checkErr bytes.Buffer
	if code := run([]string{"check", "--skip-script-checks", "--config", imported}, &checkOut, &checkErr); code != 0 || !strings.Contains(checkOut.String(), "ok: 2 virtual services, 4 real servers, 2 vrrp instances") {
		t.Errorf("lvsd check of the import: exit %d\n%s%s", code, checkOut.String(), checkErr.String())
	}
	if first, _, _ := strings.Cut(errb.String(), "\n"); !strings.Contains(first, "web.conf:56: notify_down") || !strings.Contains(first, "changes behaviour") {
		t.Errorf("the behaviour change is not listed first: %q", first)
	}
	for _, want := range []string{
		"director.conf:52: smtp_alert: not imported",
		"1 settings change behaviour (listed first), 5 cosmetic ones left out: exit 3",
		": notify master of vrrp instance VI_web: lvsd would refuse it on this host: /usr/local/bin/notify.sh: /usr/local/bin/notify.sh not found",
	} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}

	bad := filepath.Join(t.TempDir(), "keepalived.conf")
	os.WriteFile(bad, []byte("vrrp_instance VI_1 {\n  priority high\n}\n"), 0o600)
	errb.Reset()
	if code := run([]string{"import-keepalived", bad}, &out, &errb); code != 1 || !strings.Contains(errb.String(), bad+":2: priority") {
		t.Errorf("bad keepalived.conf: exit %d\n%s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"import-keepalived"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "name the keepalived config") {
		t.Errorf("no file: exit %d\n%s", code, errb.String())
	}
}

// The help of import-keepalived explains the exit statuses, on stdout,
// both ways of asking.
func TestImportKeepalivedHelp(t *testing.T) {
	for _, args := range [][]string{{"import-keepalived", "--help"}, {"help", "import-keepalived"}, {"import-keepalived", "-h"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 || !strings.Contains(out.String(), "3  imported, but behaviour changes") || errb.Len() != 0 {
			t.Errorf("%v: exit %d\nstdout %s\nstderr %s", args, code, out.String(), errb.String())
		}
	}
}

// keepalived's own samples: the fwmark one imports with the same
// behaviour, and so does a UDP_CHECK; BFD_CHECK exits 3 naming the
// checker's line; a check lvsd refuses names the keepalived line it
// came from.
func TestImportKeepalivedOutcomes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, conf string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(conf), 0o600)
		return p
	}
	fwmark := write("fwmark.conf", "virtual_server fwmark 1 {\n delay_loop 6\n lb_algo rr\n lb_kind DR\n persistence_timeout 900\n protocol TCP\n real_server 192.168.201.100 {\n  TCP_CHECK {\n   connect_port 80\n   connect_timeout 3\n  }\n }\n}\n")
	udp := write("udp.conf", "virtual_server 10.0.0.1 53 {\n protocol UDP\n real_server 10.0.1.1 53 {\n  UDP_CHECK {\n   connect_timeout 3\n  }\n }\n}\n")
	bfd := write("bfd.conf", "virtual_server 10.0.0.1 53 {\n protocol UDP\n real_server 10.0.1.1 53 {\n  BFD_CHECK {\n   name b1\n  }\n }\n}\n")
	refused := write("refused.conf", "virtual_server fwmark 7 {\n lb_kind DR\n real_server 10.0.1.1 {\n  TCP_CHECK {\n   connect_timeout 3\n  }\n }\n}\n")
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{fwmark, 0, "same behaviour as keepalived"},
		{udp, 0, "same behaviour as keepalived"},
		{bfd, 3, bfd + ":4: BFD_CHECK: not imported: lvsd has no BFD checker yet"},
		{refused, 1, refused + ":4 (lvsd config line"},
	} {
		var out, errb bytes.Buffer
		if code := run([]string{"import-keepalived", "--skip-script-checks", tc.path}, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%s: exit %d, want %d with %q:\n%s", filepath.Base(tc.path), code, tc.code, tc.want, errb.String())
		}
	}
}

// lvsd check on a config with nothing in it says so; it is valid (the
// packaged default config is like that), so the check passes.
func TestCheckEmptyConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lvsd.yaml")
	os.WriteFile(p, []byte("# nothing yet\n"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--skip-script-checks", "--config", p}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "warning: nothing to check") {
		t.Errorf("exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// --version and the version subcommand say the same, on stdout, exit 0;
// the status API carries the same version.
func TestVersion(t *testing.T) {
	want := buildinfo.String("lvsd") + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 || out.String() != want {
			t.Errorf("%q: exit %d, stdout %q, want %q\n%s", args, code, out.String(), want, errb.String())
		}
	}
	e, err := versioned(func() (statusapi.Encoded, error) {
		return statusapi.Encoded{Status: director.Status{Config: "x"}}, nil
	})()
	if st := e.Status; err != nil || st.Version != buildinfo.Version() || st.Config != "x" {
		t.Errorf("versioned status: %+v, %v", st, err)
	}
}

func TestCheckWarnsWhenABGPServiceBreaksFlowsOnFailover(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bgp.yaml")
	os.WriteFile(path, []byte(`ipvs: {sloppy_tcp: true}
bgp: {asn: 65001, router_id: 10.0.0.2, peers: [{address: 10.0.0.1, asn: 65000}]}
virtual_services:
  - {address: 192.168.0.100, port: 80, scheduler: rr, announce: bgp, real_servers: [{address: 10.0.1.2}]}
`), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--config", path}, &out, &errb); code != 0 {
		t.Fatalf("exit %d, want 0 (a warning does not fail the check); stderr:\n%s", code, errb.String())
	}
	if want := path + ":4:51: warning: scheduler: rr on TCP 192.168.0.100:80"; !strings.Contains(errb.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errb.String())
	}
	if !strings.Contains(errb.String(), "Write scheduler: mh, scheduler_flags: [mh-port]") {
		t.Errorf("the warning does not guide to mh:\n%s", errb.String())
	}
	if !strings.Contains(out.String(), "(1 warnings)") {
		t.Errorf("stdout %q does not count the warning", out.String())
	}
}
