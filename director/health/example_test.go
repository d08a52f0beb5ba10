package health_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"time"

	"github.com/lvskit/lvskit/director/health"
)

// A Machine turns results into states: here an up server falls after 3
// failures and rises after 2 passes.
func ExampleMachine() {
	m := health.NewMachine(health.Policy{Initial: health.StateUp, Rise: 2, Fall: 3})
	for _, up := range []bool{false, false, false, true, true} {
		r := health.Result{Up: up, Reason: "HTTP 200 from 10.0.0.2:80"}
		if !up {
			r.Reason = "HTTP 503 from 10.0.0.2:80"
		}
		if t := m.Observe(r).Transition; t != nil {
			fmt.Printf("%s -> %s: %s\n", t.From, t.To, t.Reason)
		}
	}
	// Output:
	// up -> down: 3 of 3 failures: HTTP 503 from 10.0.0.2:80
	// down -> up: 2 of 2 successes: HTTP 200 from 10.0.0.2:80
}

// An HTTP check with a body digest, as keepalived's genhash prints it
// (`genhash -s 10.0.0.2 -p 80 -u /health`).
func ExampleHTTPChecker() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello")
	}))
	defer srv.Close()

	c, err := health.NewHTTPChecker(health.HTTPCheck{
		Address: netip.MustParseAddrPort(srv.Listener.Addr().String()),
		Path:    "/health",
		Digest:  "5d41402abc4b2a76b9719d911017c592", // MD5 of "hello"
		Timeout: 2 * time.Second,
	}, health.Env{})
	if err != nil {
		fmt.Println(err)
		return
	}
	r := c.Check(context.Background())
	fmt.Println(r.Up)
	// Output: true
}

// The director keeps one Scheduler, gives it the whole target set on
// every reload, and acts on transitions.
func ExampleScheduler() {
	s := health.NewScheduler(health.SchedulerOptions{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		OnTransition: func(t health.Transition) {
			// Quiesce or restore the real server t.Target here.
			fmt.Printf("%s is %s: %s\n", t.Target, t.To, t.Reason)
		},
	})
	err := s.Update([]health.Target{{
		ID: "TCP 192.168.0.100:80 10.0.0.2:80",
		Check: health.HTTPCheck{
			Address:     netip.MustParseAddrPort("10.0.0.2:80"),
			Path:        "/health",
			Host:        "www.example.com",
			StatusCodes: []health.StatusRange{{Min: 200, Max: 299}},
			Timeout:     time.Second,
		},
		Policy: health.Policy{Interval: 2 * time.Second, Rise: 2, Fall: 3, Retry: 1, Initial: health.StateUp},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Run(ctx) // until ctx is done; then every check has ended
}
