package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lvskit/lvskit/director/statusapi"

	"go.uber.org/goleak"
)

// TestMain fails lvstop's tests if a run (--once, a bad flag, --help)
// leaves a goroutine behind: run returns only when what it started has
// ended. The interactive UI's own goroutines are checked the same way in
// tui's tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestOnceFromLVSDLeavesNothing: lvstop --lvsd URL --once reads lvsd's
// status, prints it and returns with no connection (nor its goroutines)
// left open.
func TestOnceFromLVSDLeavesNothing(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(statusapi.Status{Config: "/etc/lvsd/lvsd.yaml", Services: []statusapi.ServiceStatus{{Key: "TCP 10.0.0.100:80", Scheduler: "wlc", InKernel: true}}})
	}))
	defer srv.Close()
	ignore := goleak.IgnoreCurrent()
	code, out, stderr := runMain("--lvsd", srv.URL, "--once")
	if code != 0 || !strings.Contains(out, "10.0.0.100:80") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr: %s", code, out, stderr)
	}
	goleak.VerifyNone(t, ignore)
}
