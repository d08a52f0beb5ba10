package health_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/health/healthtest"
	"github.com/lvskit/lvskit/internal/lab"
)

// startTLSNginx runs Debian's nginx on host serving body over HTTPS on
// port 443 with the given certificate, everything (config, pid, temp
// directories) in a t.TempDir() and its logs on its output. (lab's
// StartNginx speaks plain HTTP only.)
func startTLSNginx(t *testing.T, host *lab.Host, certFile, keyFile, body string) *lab.Process {
	t.Helper()
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	if err := os.Mkdir(www, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "body.txt"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "daemon off;\nmaster_process off;\nworker_processes 1;\npid %s;\nerror_log stderr notice;\n", filepath.Join(dir, "nginx.pid"))
	conf.WriteString("events {\n\tworker_connections 64;\n}\nhttp {\n\taccess_log /dev/stderr;\n\tkeepalive_timeout 0;\n\tdefault_type text/plain;\n")
	for _, temp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&conf, "\t%s_temp_path %s;\n", temp, filepath.Join(dir, "tmp-"+temp))
	}
	fmt.Fprintf(&conf, "\tserver {\n\t\tlisten 443 ssl;\n\t\tssl_certificate %s;\n\t\tssl_certificate_key %s;\n\t\troot %s;\n", certFile, keyFile, www)
	conf.WriteString("\t\tlocation = /missing {\n\t\t\treturn 404;\n\t\t}\n\t\tlocation / {\n\t\t\ttry_files /body.txt =500;\n\t\t}\n\t}\n}\n")
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	p := host.Start(context.Background(), "nginx", "-p", dir+"/", "-c", confFile, "-e", "stderr")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := host.WaitTCP(ctx, "127.0.0.1:443"); err != nil {
		t.Fatalf("nginx with TLS on %s: %v; output:\n%s", host.Name, err, p.Output())
	}
	return p
}

// TestNginx checks Debian's nginx on a real server namespace from a
// director namespace over HTTP and HTTPS, with digests, then stops it
// and watches the scheduler take the targets down after fall failures
// and bring them back after rise passes.
func TestNginx(t *testing.T) {
	l := lab.New(t, lab.Options{}) // skips without root
	director := l.AddHost("director", "10.77.0.10/24")
	rs := l.AddHost("rs1", "10.77.0.11/24")
	const body = "hello from rs1\n"
	_, certFile, keyFile := selfSigned(t, t.TempDir(), "rs1.lab.test")
	plain := rs.StartNginx(lab.HTTPOptions{Body: body})
	secure := startTLSNginx(t, rs, certFile, keyFile, body)

	env := health.Env{Dialer: director}
	httpAddr := netip.MustParseAddrPort("10.77.0.11:80")
	httpsAddr := netip.MustParseAddrPort("10.77.0.11:443")
	tlsVerified := &health.TLSSettings{ServerName: "rs1.lab.test", Verify: true, CAFile: certFile}
	checks := []struct {
		name string
		spec health.HTTPCheck
		up   bool
		want string
	}{
		{"http digest", health.HTTPCheck{Address: httpAddr, Path: "/index.html", Digest: md5hex(body)}, true,
			"HTTP 200 from 10.77.0.11:80, digest matches"},
		{"http wrong digest", health.HTTPCheck{Address: httpAddr, Digest: md5hex("other")}, false,
			fmt.Sprintf("HTTP 200 from 10.77.0.11:80 with body digest %s, want %s", md5hex(body), md5hex("other"))},
		{"https verified with digest", health.HTTPCheck{Address: httpsAddr, Digest: md5hex(body), TLS: tlsVerified}, true,
			"HTTP 200 from 10.77.0.11:443, digest matches"},
		{"https unverified", health.HTTPCheck{Address: httpsAddr, TLS: &health.TLSSettings{}}, true,
			"HTTP 200 from 10.77.0.11:443"},
		{"https status", health.HTTPCheck{Address: httpsAddr, Path: "/missing", TLS: tlsVerified}, false,
			"HTTP 404 from 10.77.0.11:443"},
		{"https wrong name", health.HTTPCheck{Address: httpsAddr, TLS: &health.TLSSettings{ServerName: "rs2.lab.test", Verify: true, CAFile: certFile}}, false,
			"TLS handshake with 10.77.0.11:443: tls: failed to verify certificate: x509: certificate is valid for rs1.lab.test, not rs2.lab.test"},
	}
	for _, c := range checks {
		c.spec.Timeout = 5 * time.Second
		checker, err := health.NewHTTPChecker(c.spec, env)
		if err != nil {
			t.Fatal(err)
		}
		if r := checker.Check(context.Background()); r.Up != c.up || r.Reason != c.want {
			t.Errorf("%s: up=%v %q, want up=%v %q", c.name, r.Up, r.Reason, c.up, c.want)
		}
	}

	// The scheduler, on a fake clock, with real checks.
	clock := healthtest.NewClock(time.Now())
	results := make(chan idResult, 100)
	transitions := make(chan health.Transition, 100)
	s := health.NewScheduler(health.SchedulerOptions{
		Clock:        clock,
		Dialer:       director,
		Jitter:       -1,
		OnResult:     func(id string, r health.Result) { results <- idResult{id, r} },
		OnTransition: func(tr health.Transition) { transitions <- tr },
	})
	policy := health.Policy{Interval: time.Second, Rise: 2, Fall: 3, Initial: health.StateUp}
	err := s.Update([]health.Target{
		{ID: "http", Check: health.HTTPCheck{Address: httpAddr, Digest: md5hex(body), Timeout: 2 * time.Second}, Policy: policy},
		{ID: "https", Check: health.HTTPCheck{Address: httpsAddr, Digest: md5hex(body), TLS: tlsVerified, Timeout: 2 * time.Second}, Policy: policy},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// round waits for the results of one round of checks, by target.
	// The first round runs at once; advance starts the next one.
	round := func() map[string]health.Result {
		t.Helper()
		got := map[string]health.Result{}
		for len(got) < 2 {
			select {
			case r := <-results:
				got[r.id] = r.r
			case <-time.After(10 * time.Second):
				t.Fatalf("round incomplete after 10s: %v", got)
			}
		}
		return got
	}
	transition := func() health.Transition {
		t.Helper()
		select {
		case tr := <-transitions:
			return tr
		case <-time.After(10 * time.Second):
			t.Fatal("no transition within 10s")
		}
		return health.Transition{}
	}
	advance := func() map[string]health.Result {
		t.Helper()
		clock.Advance(time.Second)
		return round()
	}
	for id, r := range round() {
		if !r.Up {
			t.Errorf("%s down while nginx runs: %s", id, r.Reason)
		}
	}

	if err := plain.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := secure.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		for id, r := range advance() {
			if r.Up {
				t.Errorf("failure %d: %s up with nginx stopped: %s", i+1, id, r.Reason)
			}
		}
		if i < 2 && len(transitions) > 0 {
			t.Fatalf("transition after %d failures: %+v", i+1, <-transitions)
		}
	}
	for range 2 {
		tr := transition()
		addr := map[string]string{"http": "10.77.0.11:80", "https": "10.77.0.11:443"}[tr.Target]
		if want := "3 of 3 failures: connect " + addr + ": connection refused"; tr.To != health.StateDown || tr.Reason != want {
			t.Errorf("transition %s -> %s of %s: %q, want down with %q", tr.From, tr.To, tr.Target, tr.Reason, want)
		}
	}

	rs.StartNginx(lab.HTTPOptions{Body: body})
	startTLSNginx(t, rs, certFile, keyFile, body)
	advance()
	if len(transitions) > 0 {
		t.Fatalf("up after one pass, want rise 2: %+v", <-transitions)
	}
	advance()
	for range 2 {
		if tr := transition(); tr.To != health.StateUp || !strings.HasPrefix(tr.Reason, "2 of 2 successes: HTTP 200 from 10.77.0.11:") {
			t.Errorf("transition of %s: %s %q, want up after 2 of 2 successes", tr.Target, tr.To, tr.Reason)
		}
	}
}

// TestNginxOnEventLoopInNamespace runs the Scheduler's event loop in
// a director namespace (SchedulerOptions.NetNS) against Debian's nginx
// in a real server namespace, which only the lab's namespaces can
// reach: TCP and HTTP checks with a digest pass, and a stopped nginx is
// refused.
func TestNginxOnEventLoopInNamespace(t *testing.T) {
	l := lab.New(t, lab.Options{}) // skips without root
	director := l.AddHost("director", "10.77.0.10/24")
	rs := l.AddHost("rs1", "10.77.0.11/24")
	const body = "hello from rs1\n"
	nginx := rs.StartNginx(lab.HTTPOptions{Body: body})
	httpAddr := netip.MustParseAddrPort("10.77.0.11:80")

	results := make(chan idResult, 100)
	s := health.NewScheduler(health.SchedulerOptions{
		NetNS:    director.NetNSPath(),
		Jitter:   -1,
		OnResult: func(id string, r health.Result) { results <- idResult{id, r} },
	})
	policy := health.Policy{Interval: 100 * time.Millisecond, Initial: health.StateUp}
	err := s.Update([]health.Target{
		{ID: "tcp", Check: health.TCPCheck{Address: httpAddr, Timeout: 2 * time.Second}, Policy: policy},
		{ID: "http", Check: health.HTTPCheck{Address: httpAddr, Path: "/index.html", Digest: md5hex(body), Timeout: 2 * time.Second}, Policy: policy},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// next waits for a result of each target that satisfies ok.
	next := func(what string, ok func(id string, r health.Result) bool) {
		t.Helper()
		got := map[string]bool{}
		deadline := time.After(10 * time.Second)
		for len(got) < 2 {
			select {
			case r := <-results:
				if ok(r.id, r.r) {
					got[r.id] = true
				}
			case <-deadline:
				t.Fatalf("no %s result of each target within 10s (got %v)", what, got)
			}
		}
	}
	want := map[string]string{"tcp": "connected to 10.77.0.11:80", "http": "HTTP 200 from 10.77.0.11:80, digest matches"}
	next("passing", func(id string, r health.Result) bool {
		if !r.Up || r.Reason != want[id] {
			t.Errorf("%s: up=%v %q, want up %q", id, r.Up, r.Reason, want[id])
		}
		return true
	})
	if err := nginx.Stop(); err != nil {
		t.Fatal(err)
	}
	next("refused", func(_ string, r health.Result) bool {
		return !r.Up && r.Reason == "connect 10.77.0.11:80: connection refused"
	})

	if err := health.NewScheduler(health.SchedulerOptions{NetNS: "/nonexistent/netns"}).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "/nonexistent/netns") {
		t.Errorf("Run with a missing namespace: %v, want an error naming it", err)
	}
}
