//go:build vmtest

// Kernel-VM tier for the Debian package: `make test-deb` (or `make
// test-vm`) builds the .deb on the host and names it in LVSKIT_DEB; the
// test installs it with dpkg in the VM (whose / is a throwaway overlay of
// the host's) and runs lvsd as the installed unit says.

package packaging_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
)

const unitPath = "/lib/systemd/system/lvsd.service"

// unit reads the [Service] section of a systemd unit: each key's values
// in order (a key may repeat).
func unit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			section = l
		case section == "[Service]":
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: %q is not key=value", path, l)
			}
			out[k] = append(out[k], v)
		}
	}
	return out
}

func one(t *testing.T, u map[string][]string, key string) string {
	t.Helper()
	if len(u[key]) != 1 {
		t.Fatalf("%s: want one %s=, have %q", unitPath, key, u[key])
	}
	return u[key][0]
}

// capMask turns "CAP_NET_ADMIN CAP_NET_RAW" into the kernel's bit mask,
// as /proc/PID/status prints it, and setpriv's "+net_admin,+net_raw".
func capMask(t *testing.T, caps string) (uint64, string) {
	t.Helper()
	bits := map[string]uint{"CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_MODULE": 16, "CAP_PERFMON": 38, "CAP_BPF": 39}
	var mask uint64
	var setpriv []string
	for _, c := range strings.Fields(caps) {
		b, ok := bits[c]
		if !ok {
			t.Fatalf("%s: capability %s: add its bit to this test", unitPath, c)
		}
		mask |= 1 << b
		setpriv = append(setpriv, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return mask, strings.Join(setpriv, ",")
}

// asTheUnit is the command line of one of the unit's Exec lines, run as
// systemd would run it: as root with the unit's bounding set and
// no_new_privs, through setpriv.
func asTheUnit(t *testing.T, u map[string][]string, exec string) []string {
	t.Helper()
	_, caps := capMask(t, one(t, u, "CapabilityBoundingSet"))
	argv := []string{"setpriv", "--bounding-set", "-all," + caps, "--inh-caps", "-all"}
	if one(t, u, "NoNewPrivileges") == "yes" {
		argv = append(argv, "--no-new-privs")
	}
	return append(append(argv, "--"), strings.Fields(exec)...)
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// procStatus reads a field of /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return ""
}

func kernelServices(t *testing.T) map[string]bool {
	t.Helper()
	c, err := ipvs.New(ipvs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	svcs, err := c.Services()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range svcs {
		out[s.ServiceKey.String()] = true
	}
	return out
}

// waitFor polls cond every 100 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const testConfig = `lvsd:
  state_dir: /var/lib/lvsd
  status_listen: 127.0.0.1:9120
  metrics_listen: 127.0.0.1:9121
virtual_services:
  - name: web
    address: 10.99.0.100
    port: 80
    scheduler: rr
    health_check: {type: none}
    real_servers:
      - address: 10.99.0.11
      # Up only while scripts run as the package's lvsd_script user.
      - address: 10.99.0.13
        health_check:
          type: script
          command: [/bin/sh, -c, 'test "$(id -un)" = lvsd_script']
          interval: 1s
          rise: 1
`

const reloadedService = `  - name: web2
    address: 10.99.0.101
    port: 80
    scheduler: wrr
    health_check: {type: none}
    real_servers:
      - address: 10.99.0.12
`

func TestVMDebInstallsAndLvsdServesAsTheUnitRunsIt(t *testing.T) {
	if os.Getenv("LVSKIT_IN_VM") != "1" {
		t.Skip("installs a package: runs only in the VM (go test -tags vmtest -exec scripts/vm/run)")
	}
	deb := os.Getenv("LVSKIT_DEB")
	if deb == "" {
		t.Fatal("LVSKIT_DEB is not set: build the package and name it: make test-deb")
	}
	version := strings.TrimSpace(sh(t, "dpkg-deb", "--field", deb, "Version"))

	// Install, as an operator would.
	start := time.Now()
	t.Log(sh(t, "dpkg", "--install", deb))
	t.Logf("dpkg --install took %v", time.Since(start).Round(time.Millisecond))
	if got := sh(t, "dpkg-query", "--show", "--showformat", "${Status} ${Version}", "lvskit"); got != "install ok installed "+version {
		t.Fatalf("dpkg-query: %q, want installed %s", got, version)
	}
	if conf := sh(t, "dpkg-query", "--show", "--showformat", "${Conffiles}", "lvskit"); !strings.Contains(conf, "/etc/lvsd/lvsd.yaml ") {
		t.Errorf("/etc/lvsd/lvsd.yaml is not a conffile: %q", conf)
	}
	// The postinst made the script user, a system account with no home
	// and no login, and a second configure (a reinstall, an upgrade)
	// keeps it as it is.
	user := scriptUser(t)
	t.Log(sh(t, "dpkg", "--install", deb))
	if again := scriptUser(t); again != user {
		t.Errorf("reinstalling changed lvsd_script: %q, then %q", user, again)
	}
	for _, prog := range []string{"lvsd", "lvstop", "lvsdiag"} {
		if got, want := sh(t, "/usr/sbin/"+prog, "--version"), prog+" (lvskit) "+version+", built with go"; !strings.HasPrefix(got, want) {
			t.Errorf("%s --version: %q, want %q...", prog, got, want)
		}
	}
	for _, page := range []string{"lvsd.8.gz", "lvstop.8.gz", "lvsdiag.8.gz"} {
		if _, err := os.Stat(filepath.Join("/usr/share/man/man8", page)); err != nil {
			t.Error(err)
		}
	}
	// systemd's own check of the installed unit: syntax, the
	// executables it names, its Documentation= man pages.
	if out, err := exec.Command("systemd-analyze", "verify", unitPath).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	}
	// The shipped config passes the unit's ExecStartPre as it is.
	u := unit(t, unitPath)
	pre := asTheUnit(t, u, one(t, u, "ExecStartPre"))
	if out, err := exec.Command(pre[0], pre[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("the unit's ExecStartPre %q on the shipped config: %v\n%s", pre, err, out)
	}

	// A real server must be routable for the kernel to take it.
	sh(t, "ip", "link", "add", "lvsdeb0", "type", "dummy")
	sh(t, "ip", "addr", "add", "10.99.0.1/24", "dev", "lvsdeb0")
	sh(t, "ip", "link", "set", "lvsdeb0", "up")
	sh(t, "ip", "link", "set", "lo", "up")
	if err := os.WriteFile("/etc/lvsd/lvsd.yaml", []byte(testConfig), 0o640); err != nil {
		t.Fatal(err)
	}
	// What systemd makes for StateDirectory= and RuntimeDirectory=.
	for _, d := range []struct{ key, dir string }{{"StateDirectory", "/var/lib/"}, {"RuntimeDirectory", "/run/"}} {
		mode, _ := strconv.ParseUint(one(t, u, d.key+"Mode"), 8, 32)
		if err := os.MkdirAll(d.dir+one(t, u, d.key), os.FileMode(mode)); err != nil {
			t.Fatal(err)
		}
	}

	// Type=notify: lvsd says READY=1 on $NOTIFY_SOCKET.
	if one(t, u, "Type") != "notify" {
		t.Fatalf("Type=%s, want notify", one(t, u, "Type"))
	}
	notifyPath := filepath.Join(t.TempDir(), "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	ready := make(chan string, 16)
	go func() {
		defer close(ready)
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				return
			}
			ready <- string(buf[:n])
		}
	}()

	if out, err := exec.Command(pre[0], pre[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecStartPre %q: %v\n%s", pre, err, out)
	}
	argv := asTheUnit(t, u, one(t, u, "ExecStart"))
	umask, _ := strconv.ParseUint(one(t, u, "UMask"), 8, 32)
	var logs strings.Builder
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	old := syscall.Umask(int(umask)) // UMask=: the child inherits it
	err = cmd.Start()
	syscall.Umask(old)
	if err != nil {
		t.Fatalf("starting %q: %v", argv, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("lvsd's log:\n%s", logs.String())
		}
	}()
	t.Logf("started %q", argv)

	waitReady := func(what string) {
		t.Helper()
		timeout := time.After(2 * time.Minute)
		for {
			select {
			case msg, ok := <-ready:
				if !ok {
					t.Fatalf("%s: the notify socket closed", what)
				}
				if strings.Contains(msg, "READY=1") {
					return
				}
			case err := <-exited:
				t.Fatalf("%s: lvsd exited: %v\n%s", what, err, logs.String())
			case <-timeout:
				t.Fatalf("%s: no READY=1 within 2m", what)
			}
		}
	}
	waitReady("start")

	// It runs with exactly the unit's capabilities and no_new_privs.
	pid := cmd.Process.Pid
	wantMask, _ := capMask(t, one(t, u, "CapabilityBoundingSet"))
	for _, field := range []string{"CapBnd", "CapEff", "CapPrm"} {
		got, err := strconv.ParseUint(procStatus(t, pid, field), 16, 64)
		if err != nil || got != wantMask {
			t.Errorf("lvsd's %s = %s, want %016x (%s)", field, procStatus(t, pid, field), wantMask, one(t, u, "CapabilityBoundingSet"))
		}
	}
	if got := procStatus(t, pid, "NoNewPrivs"); got != "1" {
		t.Errorf("NoNewPrivs = %s, want 1", got)
	}

	// It serves: the status API answers with the package's version, the
	// config's service is in the kernel, the metrics carry the build.
	st := status(t)
	if st.Version != version {
		t.Errorf("status API version %q, want the package's %q", st.Version, version)
	}
	if len(st.Services) != 1 || st.Services[0].Key != "TCP 10.99.0.100:80" || !st.Services[0].InKernel {
		t.Errorf("status API services: %+v, want TCP 10.99.0.100:80 in the kernel", st.Services)
	}
	if !kernelServices(t)["TCP 10.99.0.100:80"] {
		t.Errorf("the kernel has no TCP 10.99.0.100:80: %v", kernelServices(t))
	}
	// The packaged default runs scripts as lvsd_script: lvsd does not
	// warn about root scripts, and the check that passes only as that
	// user brings its real server up.
	if strings.Contains(logs.String(), "scripts run as root") {
		t.Errorf("lvsd warns about scripts running as root although the package made lvsd_script:\n%s", logs.String())
	}
	waitFor(t, time.Minute, "the script-checked real server 10.99.0.13:80 up", func() bool {
		for _, rs := range status(t).Services[0].RealServers {
			if rs.Address == "10.99.0.13:80" {
				return rs.Health == "up"
			}
		}
		return false
	})
	metrics := get(t, "http://127.0.0.1:9121/metrics")
	if !strings.Contains(metrics, `lvsd_build_info{goversion="go`) || !strings.Contains(metrics, `version="`+version+`"} 1`) {
		t.Errorf("/metrics lacks lvsd_build_info for %s", version)
	}
	// The state file is private (UMask=0077 and lvsd's own mode).
	states, _ := filepath.Glob("/var/lib/lvsd/*")
	if len(states) == 0 {
		t.Error("no state file under /var/lib/lvsd")
	}
	for _, s := range states {
		if fi, err := os.Stat(s); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: readable by others", s, fi.Mode().Perm())
		}
	}

	// ExecReload: SIGHUP with a service added.
	if r := one(t, u, "ExecReload"); r != "/bin/kill -HUP $MAINPID" {
		t.Fatalf("ExecReload=%s: this test sends SIGHUP", r)
	}
	if err := os.WriteFile("/etc/lvsd/lvsd.yaml", []byte(testConfig+reloadedService), 0o640); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitReady("reload")
	waitFor(t, time.Minute, "the reloaded service in the kernel", func() bool { return kernelServices(t)["TCP 10.99.0.101:80"] })

	// Stopping (KillSignal=SIGTERM) exits 0 and leaves the rules.
	if one(t, u, "KillSignal") != "SIGTERM" {
		t.Fatalf("KillSignal=%s, want SIGTERM", one(t, u, "KillSignal"))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("lvsd on SIGTERM: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("lvsd did not stop within a minute of SIGTERM")
	}
	if k := kernelServices(t); !k["TCP 10.99.0.100:80"] || !k["TCP 10.99.0.101:80"] {
		t.Errorf("after stop the kernel has %v: the rules should stay", k)
	}
}

// scriptUser is lvsd_script's passwd line; the test fails unless it is
// a system account (uid below 1000) with its own group, home
// /nonexistent and no login shell.
func scriptUser(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("getent", "passwd", "lvsd_script").Output()
	if err != nil {
		t.Fatalf("getent passwd lvsd_script: %v: the postinst did not create the user", err)
	}
	line := strings.TrimSpace(string(out))
	f := strings.Split(line, ":")
	if len(f) != 7 {
		t.Fatalf("getent passwd lvsd_script: %q", line)
	}
	uid, _ := strconv.Atoi(f[2])
	if uid == 0 || uid >= 1000 || f[5] != "/nonexistent" || !strings.HasSuffix(f[6], "nologin") && f[6] != "/bin/false" {
		t.Errorf("lvsd_script is %q: want a system uid (1-999), home /nonexistent, no login shell", line)
	}
	group, err := exec.Command("getent", "group", f[3]).Output()
	if err != nil || !strings.HasPrefix(string(group), "lvsd_script:") {
		t.Errorf("lvsd_script's group %s is %q (%v): want its own group lvsd_script", f[3], group, err)
	}
	if _, err := os.Stat("/nonexistent"); err == nil {
		t.Error("/nonexistent exists: the postinst made lvsd_script a home")
	}
	return line
}

func get(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

func status(t *testing.T) statusapi.Status {
	t.Helper()
	var st statusapi.Status
	if err := json.Unmarshal([]byte(get(t, "http://127.0.0.1:9120/status")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}
