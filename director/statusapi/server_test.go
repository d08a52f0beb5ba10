package statusapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func fixtureStatus() Status {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return Status{
		Config: "/etc/lvsd/lvsd.yaml",
		Loaded: t0,
		Services: []ServiceStatus{
			{
				Key: "TCP 192.168.0.100:80", Name: "web", Source: "/etc/lvsd/lvsd.yaml:12", Scheduler: "wrr",
				InKernel: true, Quorum: "up", UpWeight: 2,
				RealServers: []RealServerStatus{
					{
						Address: "10.0.0.2:80", Forwarding: "Route", Weight: 2, KernelWeight: 2,
						Health: "up", Since: t0.Add(2 * time.Second), Check: "http GET /healthz on 10.0.0.2:80",
						LastResult: "HTTP 200 from 10.0.0.2:80", LastCheck: t0.Add(62 * time.Second),
					},
					{
						Address: "10.0.0.3:80", Forwarding: "Route", Weight: 1, KernelWeight: 0,
						Health: "down", Since: t0.Add(3 * time.Second), Check: "http GET /healthz on 10.0.0.3:80",
						LastResult: "HTTP 503 from 10.0.0.3:80", LastCheck: t0.Add(63 * time.Second),
						Why: "HTTP 503 from 10.0.0.3:80 at 12:00:03, 3 of 3 failures",
					},
				},
			},
			{
				Key: "FWM 1", Source: "/etc/lvsd/lvsd.yaml:30", Scheduler: "rr", InKernel: true,
				RealServers: []RealServerStatus{{Address: "10.0.0.4:0", Forwarding: "Masq", Weight: 1, KernelWeight: 1, Health: "up"}},
				UpWeight:    1,
			},
		},
		Unowned: []string{"UDP 192.168.0.200:53"},
		Events: []Event{
			{Time: t0, Kind: "config", Message: "loaded /etc/lvsd/lvsd.yaml: 2 services"},
			{Time: t0.Add(time.Second), Kind: "ipvs", Service: "TCP 192.168.0.100:80", Message: "added service"},
			{Time: t0.Add(3 * time.Second), Kind: "check", Service: "TCP 192.168.0.100:80", RealServer: "10.0.0.3:80", Message: "down: 3 of 3 failures: HTTP 503 from 10.0.0.3:80"},
		},
	}
}

func get(t *testing.T, h http.Handler, target string) (int, http.Header, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	return rec.Code, rec.Header(), rec.Body.Bytes()
}

func TestStatusGolden(t *testing.T) {
	h := NewStatusHandler(fixtureStatus)
	code, hdr, body := get(t, h, "/status")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	// The golden file is indented for review; the wire format is compact.
	var indented bytes.Buffer
	if err := json.Indent(&indented, body, "", "  "); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "status.golden.json", indented.Bytes())

	var back Status
	if err := json.Unmarshal(body, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fixtureStatus(), back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestStatusServices(t *testing.T) {
	code, _, body := get(t, NewStatusHandler(fixtureStatus), "/status/services")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var got Status
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Status{Services: fixtureStatus().Services}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestStatusEvents(t *testing.T) {
	h := NewStatusHandler(fixtureStatus)
	all := fixtureStatus().Events
	for _, c := range []struct {
		query string
		want  []Event
	}{
		{"", all},
		{"?since=2026-03-01T11:59:59Z", all},
		{"?since=2026-03-01T12:00:00Z", all[1:]}, // strictly after
		{"?since=2026-03-01T12:00:00.5Z", all[1:]},
		{"?since=2026-03-01T13:00:02%2B01:00", all[2:]},
		{"?since=2026-03-01T12:00:03Z", []Event{}},
	} {
		code, _, body := get(t, h, "/status/events"+c.query)
		if code != http.StatusOK {
			t.Errorf("%s: status %d: %s", c.query, code, body)
			continue
		}
		var got struct{ Events []Event }
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c.want, got.Events); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.query, diff)
		}
		if len(c.want) == 0 && !strings.Contains(string(body), `"events":[]`) {
			t.Errorf("%s: no events gives %s, want []", c.query, body)
		}
	}
	code, _, body := get(t, h, "/status/events?since=yesterday")
	if code != http.StatusBadRequest || !strings.Contains(string(body), `"error":`) || !strings.Contains(string(body), "RFC 3339") {
		t.Errorf("bad since: %d %s", code, body)
	}
}

func TestStatusEmpty(t *testing.T) {
	code, _, body := get(t, NewStatusHandler(func() Status { return Status{} }), "/status")
	if code != http.StatusOK || !strings.Contains(string(body), `"services":[]`) || !strings.Contains(string(body), `"events":[]`) {
		t.Errorf("%d %s", code, body)
	}
}

func TestStatusRoutes(t *testing.T) {
	h := NewStatusHandler(fixtureStatus)
	if code, _, _ := get(t, h, "/nothing"); code != http.StatusNotFound {
		t.Errorf("unknown path: %d", code)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/status", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

// serve runs Serve in the background; stop cancels it and returns its
// error.
func serve(t *testing.T, ln net.Listener, h http.Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h, nil) }()
	var stopped bool
	var err error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

func fetchStatus(t *testing.T, c *http.Client, url string) Status {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var s Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestListenTCP(t *testing.T) {
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(t, ln, NewStatusHandler(fixtureStatus))
	s := fetchStatus(t, http.DefaultClient, "http://"+ln.Addr().String()+"/status")
	if s.Config != "/etc/lvsd/lvsd.yaml" {
		t.Errorf("got %+v", s)
	}
	if err := stop(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Errorf("still accepting after shutdown")
	}
}

func TestListenOff(t *testing.T) {
	if _, err := Listen("", ""); err == nil {
		t.Error("no error for a listener that is off")
	}
	if _, err := Listen("unix", "relative.sock"); err == nil {
		t.Error("no error for a relative socket path")
	}
}

func TestListenUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.sock")
	ln, err := Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != SocketMode {
		t.Errorf("socket mode %v, want a socket with %v", fi.Mode(), SocketMode)
	}
	if ln.Addr().String() != path {
		t.Errorf("Addr %v, want %s", ln.Addr(), path)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %v, want the socket alone", entries)
	}
	stop := serve(t, ln, NewStatusHandler(fixtureStatus))
	s := fetchStatus(t, unixClient(path), "http://lvsd/status")
	if len(s.Services) != 2 {
		t.Errorf("got %+v", s)
	}

	// A second lvsd must not take over a live socket.
	if _, err := Listen("unix", path); !errors.Is(err, ErrSocketInUse) {
		t.Errorf("second Listen: %v, want ErrSocketInUse", err)
	}
	fetchStatus(t, unixClient(path), "http://lvsd/status")

	if err := stop(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after shutdown: %v", err)
	}
}

// A socket left by a process that died is replaced.
func TestListenStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	ln, err := Listen("unix", path)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	serve(t, ln, NewStatusHandler(fixtureStatus))
	fetchStatus(t, unixClient(path), "http://lvsd/status")
}

// Nothing but a socket is replaced, and a symlink is never followed.
func TestListenRefusesNonSockets(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	writeFile(t, target, []byte("keep me"))
	sockTarget := filepath.Join(dir, "other.sock")
	other, err := net.ListenUnix("unix", &net.UnixAddr{Name: sockTarget, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	other.SetUnlinkOnClose(false)
	other.Close() // a stale socket, which Listen would replace if it followed the link

	for name, create := range map[string]func(path string) error{
		"regular file":        func(p string) error { return os.WriteFile(p, []byte("data"), 0o600) },
		"symlink to a file":   func(p string) error { return os.Symlink(target, p) },
		"symlink to a socket": func(p string) error { return os.Symlink(sockTarget, p) },
		"dangling symlink":    func(p string) error { return os.Symlink(filepath.Join(dir, "nowhere"), p) },
		"directory":           func(p string) error { return os.Mkdir(p, 0o700) },
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "status.sock")
			if err := create(path); err != nil {
				t.Fatal(err)
			}
			before, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := Listen("unix", path)
			if err == nil {
				ln.Close()
				t.Fatal("Listen replaced it")
			}
			if !strings.Contains(err.Error(), "refusing to replace") || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not say what it refused", err)
			}
			after, err := os.Lstat(path)
			if err != nil || !os.SameFile(before, after) || before.Mode() != after.Mode() {
				t.Errorf("the %s was changed: %v", name, err)
			}
			if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
				t.Errorf("left behind: %v", entries)
			}
		})
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "keep me" {
		t.Errorf("symlink target changed: %q, %v", b, err)
	}
	if fi, err := os.Lstat(sockTarget); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("socket behind the symlink changed: %v", err)
	}
}

// Closing the listener leaves alone whatever replaced its socket.
func TestListenCloseKeepsReplacement(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.sock")
	ln, err := Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, []byte("not ours"))
	ln.Close()
	if b, err := os.ReadFile(path); err != nil || string(b) != "not ours" {
		t.Errorf("Close removed a file it did not create: %q, %v", b, err)
	}
}

// Shutdown waits for a request in flight and answers it.
func TestServeGraceful(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := NewStatusHandler(func() Status {
		close(entered)
		<-release
		return fixtureStatus()
	})
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(t, ln, h)
	type answer struct {
		code int
		body []byte
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/status")
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, b, err}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	close(release)
	a := <-answered
	if a.err != nil || a.code != http.StatusOK || !json.Valid(a.body) {
		t.Errorf("request in flight: %d %v %s", a.code, a.err, a.body)
	}
	if err := <-stopped; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, got)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
