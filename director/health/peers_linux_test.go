package health_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/internal/lab"
)

// TestPingUDPSMTPAgainstPeersInNamespaces runs the Scheduler's event
// loop in a director namespace (a fresh one: its ping_group_range lets
// no group have an ICMP socket, so pings go out on a raw socket) against
// real peers in a real server namespace: a host that answers pings and
// an address nobody holds, a UDP echo responder and a closed UDP port
// (the kernel's ICMP port unreachable), and a Go SMTP server.
func TestPingUDPSMTPAgainstPeersInNamespaces(t *testing.T) {
	l := lab.New(t, lab.Options{}) // skips without root
	director := l.AddHost("director", "10.77.0.10/24")
	rs := l.AddHost("rs1", "10.77.0.11/24")
	pc, err := rs.ListenPacket("udp4", "10.77.0.11:5353")
	if err != nil {
		t.Fatal(err)
	}
	go func() { // ends when the lab closes pc
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	ln, err := rs.Listen("tcp4", "10.77.0.11:25")
	if err != nil {
		t.Fatal(err)
	}
	go func() { // ends when the lab closes ln
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				smtpPeer("220 rs1 ESMTP\r\n", "250 rs1\r\n", nil)(c, nil)
			}()
		}
	}()

	// The new links may take a moment to pass traffic.
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := director.WaitTCP(wctx, "10.77.0.11:25"); err != nil {
		t.Fatal(err)
	}

	const timeout = time.Second
	targets := []health.Target{
		{ID: "ping answers", Check: health.PingCheck{Address: netip.MustParseAddr("10.77.0.11"), Timeout: timeout}},
		{ID: "ping nobody", Check: health.PingCheck{Address: netip.MustParseAddr("10.77.0.99"), Timeout: timeout}},
		{ID: "udp echo", Check: health.UDPCheck{Address: netip.MustParseAddrPort("10.77.0.11:5353"), Payload: []byte("hello"), Reply: []byte("hello"), Timeout: timeout}},
		{ID: "udp closed", Check: health.UDPCheck{Address: netip.MustParseAddrPort("10.77.0.11:5354"), Timeout: 5 * time.Second}},
		{ID: "smtp", Check: health.SMTPCheck{Address: netip.MustParseAddrPort("10.77.0.11:25"), Timeout: timeout}},
	}
	want := map[string]struct {
		up     bool
		reason string
	}{
		"ping answers": {true, "echo reply from 10.77.0.11"},
		"ping nobody":  {false, "timeout after 1s waiting for an echo reply from 10.77.0.99"},
		"udp echo":     {true, "UDP reply of 5 bytes from 10.77.0.11:5353"},
		"udp closed":   {false, "udp check of 10.77.0.11:5354: port unreachable (ICMP)"},
		"smtp":         {true, "SMTP greeting, HELO and QUIT answered by 10.77.0.11:25"},
	}
	results := make(chan idResult, 100)
	s := health.NewScheduler(health.SchedulerOptions{
		NetNS:    director.NetNSPath(),
		Jitter:   -1,
		OnResult: func(id string, r health.Result) { results <- idResult{id, r} },
	})
	for i := range targets {
		targets[i].Policy = health.Policy{Interval: 10 * time.Second, Initial: health.StateUp}
	}
	if err := s.Update(targets); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	got := map[string]bool{}
	deadline := time.After(15 * time.Second)
	for len(got) < len(targets) {
		select {
		case r := <-results:
			if got[r.id] {
				continue
			}
			got[r.id] = true
			w := want[r.id]
			if r.r.Up != w.up || r.r.Reason != w.reason {
				t.Errorf("%s: up=%v %q, want up=%v %q", r.id, r.r.Up, r.r.Reason, w.up, w.reason)
			}
			if r.id == "udp closed" && r.r.Duration > 2*time.Second {
				t.Errorf("udp closed took %v: the ICMP error should end it at once", r.r.Duration)
			}
			if r.id == "ping nobody" && (r.r.Duration < timeout-50*time.Millisecond || r.r.Duration > timeout+time.Second) {
				t.Errorf("ping nobody took %v, want it to end at its timeout of %v", r.r.Duration, timeout)
			}
		case <-deadline:
			t.Fatalf("results of %d of %d targets within 15s: %v", len(got), len(targets), got)
		}
	}
}
