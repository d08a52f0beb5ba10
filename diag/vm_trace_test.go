//go:build vmtest && linux && amd64

package diag

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/lab"
	"github.com/lvskit/lvskit/internal/schematest"
)

// The trace in the VM: a director with a healthy direct-routing service
// on port 80 and one on port 8080 whose real servers are all quiesced,
// two real servers and a client sending real traffic while lvsdiag
// (bin/lvsdiag, from make build) runs in the director's namespace.

type traceLab struct {
	client, director *lab.Host
	rss              []netip.Addr
}

const traceVIP = "10.77.0.100"

func newTraceLab(t testing.TB) *traceLab {
	t.Helper()
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	x := &traceLab{client: l.AddHost("client", "10.77.0.2/24"), director: l.AddHost("director", "10.77.0.10/24")}
	x.director.AddAddr(lab.HostInterface, traceVIP+"/32")
	for _, k := range []string{"all", "default", lab.HostInterface} {
		x.director.SetSysctl("net.ipv4.conf."+k+".send_redirects", "0")
	}
	for i := range 2 {
		h := l.AddHost(fmt.Sprintf("rs%d", i+1), fmt.Sprintf("10.77.0.%d/24", 21+i))
		h.ConfigureDRRealServer(traceVIP)
		h.StartGoHTTP(lab.HTTPOptions{Body: "same\n"})
		x.rss = append(x.rss, h.Addr())
	}
	c, err := ipvs.New(ipvs.Options{NetNS: x.director.NetNSPath()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, s := range []struct {
		port   uint16
		weight int32
	}{{80, 1}, {8080, 0}} {
		key := ipvs.TCPKey(netip.AddrPortFrom(netip.MustParseAddr(traceVIP), s.port))
		if err := c.AddService(ipvs.Service{ServiceKey: key, Scheduler: "rr", NetmaskBits: 32}); err != nil {
			t.Fatal(err)
		}
		for _, a := range x.rss {
			if err := c.AddRealServer(key, ipvs.RealServer{Address: a, Port: s.port, Forwarding: ipvs.DirectRoute, Weight: s.weight}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return x
}

// traffic has the client connect to VIP:port again and again until the
// returned stop is called (and waits for it).
func (x *traceLab) traffic(ctx context.Context, port uint16) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		addr := netip.AddrPortFrom(netip.MustParseAddr(traceVIP), port).String()
		for ctx.Err() == nil {
			dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
			if port == 80 {
				x.client.HTTPGet(dctx, "http://"+addr+"/")
			} else if c, err := x.client.DialContext(dctx, "tcp", addr); err == nil {
				c.Close()
			}
			<-dctx.Done() // at most one attempt per 300ms
			dcancel()
		}
	})
	return func() { cancel(); wg.Wait() }
}

// runLVSDiag runs bin/lvsdiag in the director's namespace; it returns
// stdout, stderr and the exit status.
func runLVSDiag(ctx context.Context, t *testing.T, h *lab.Host, args ...string) (string, string, int) {
	t.Helper()
	out, err := h.Run(ctx, lvsdiagBinary(t), args...)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out, "", 0
	case errors.As(err, &exit):
		return out, err.Error(), exit.ExitCode()
	}
	t.Fatalf("lvsdiag %s: %v", strings.Join(args, " "), err)
	return "", "", 0
}

// TestVMTraceCheck: lvsdiag --trace on the director adds the Packet path
// check: clean for the healthy service, the "no destination" finding
// for the quiesced one.
func TestVMTraceCheck(t *testing.T) {
	x := newTraceLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	stop := x.traffic(ctx, 80)
	rep := vmLVSDiag(ctx, t, x.director, "--vip", traceVIP, "--port", "80", "--trace", "--listen", "3s", "--timeout", "60s")
	stop()
	status, notes, ids := rep.check("packet-path")
	if status != "ok" || len(ids) != 0 {
		t.Errorf("healthy service: packet path %s %q\n%s\n%s", status, ids, strings.Join(notes, "\n"), rep.evidence("packet-path"))
	}
	if !slices.ContainsFunc(notes, func(n string) bool {
		return strings.Contains(n, "=> forwarded: IPVS sent it to 10.77.0.2") && strings.Contains(n, "by direct route")
	}) {
		t.Errorf("healthy service: no forwarded path in the notes:\n%s", strings.Join(notes, "\n"))
	}

	stop = x.traffic(ctx, 8080)
	rep = vmLVSDiag(ctx, t, x.director, "--vip", traceVIP, "--port", "8080", "--trace", "--listen", "3s", "--timeout", "60s")
	text, _, _ := runLVSDiag(ctx, t, x.director, "--vip", traceVIP, "--port", "8080", "--trace", "--listen", "3s", "--timeout", "60s")
	stop()
	t.Logf("the text report:\n%s", text)
	if !strings.Contains(text, "9. Packet path (eBPF trace through IPVS): 1 finding") {
		t.Errorf("the text report lacks the packet path check's finding")
	}
	status, notes, ids = rep.check("packet-path")
	if status != "findings" || !slices.Equal(ids, []string{"trace-no-destination | IPVS service TCP 10.77.0.100:8080"}) {
		t.Fatalf("quiesced service: packet path %s %q\n%s\n%s", status, ids, strings.Join(notes, "\n"), rep.evidence("packet-path"))
	}
	for _, c := range rep.Checks {
		if c.ID == "packet-path" && !strings.Contains(strings.Join(c.Findings[0].Evidence, "\n"), "all real servers of TCP 10.77.0.100:8080 have weight 0") {
			t.Errorf("evidence %q, want the weights named", c.Findings[0].Evidence)
		}
	}
}

// TestVMTraceCommand: lvsdiag trace's text and JSON output for real
// traffic, and its refusals.
func TestVMTraceCommand(t *testing.T) {
	x := newTraceLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	stop := x.traffic(ctx, 80)
	out, stderr, code := runLVSDiag(ctx, t, x.director, "trace", "--vip", traceVIP, "--port", "80", "--count", "4", "--duration", "30s", "--output", "json")
	t.Logf("lvsdiag trace --output json:\n%s", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 4 paths and a summary", len(lines))
	}
	forwarded := 0
	for _, l := range lines {
		schematest.Check(t, "../probes/trace.schema.json", []byte(l))
		var p struct {
			Type, Outcome string
			Conn          *struct {
				RealServer string `json:"real_server"`
			}
			Hops []struct{ Func string }
		}
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Fatal(err)
		}
		if p.Type == "path" && p.Outcome == "forwarded" && p.Conn != nil {
			forwarded++
			if rs := netip.MustParseAddrPort(p.Conn.RealServer); !slices.Contains(x.rss, rs.Addr()) || rs.Port() != 80 {
				t.Errorf("forwarded to %s, not a real server of the service", rs)
			}
		}
	}
	if forwarded == 0 {
		t.Errorf("no forwarded path with its connection")
	}
	if !strings.Contains(lines[4], `"type":"summary","schema_version":1,"packets":4`) || !strings.Contains(lines[4], `"lost":0`) {
		t.Errorf("summary %s, want 4 packets and 0 lost", lines[4])
	}

	out, stderr, code = runLVSDiag(ctx, t, x.director, "trace", "--vip", traceVIP, "--port", "80", "--count", "2", "--duration", "30s")
	t.Logf("lvsdiag trace:\n%s", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{" TCP 10.77.0.2:", " -> 10.77.0.100:80 [", "ip_vs_in_hook", "=> forwarded: IPVS sent it to 10.77.0.2", "Summary: 2 packets traced", "events lost: 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q", want)
		}
	}

	stop()
	// The quiesced service: the SYN's path ends in IPVS's drop, with
	// the weights named.
	stop = x.traffic(ctx, 8080)
	out, stderr, code = runLVSDiag(ctx, t, x.director, "trace", "--vip", traceVIP, "--port", "8080", "--count", "1", "--duration", "30s")
	stop()
	t.Logf("lvsdiag trace --port 8080:\n%s", out)
	for _, want := range []string{"ip_vs_scheduler_err", "=> dropped: IPVS found no destination (all real servers of TCP 10.77.0.100:8080 have weight 0)",
		"Summary: 1 packet traced, 1 dropped"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("quiesced service: exit %d, output lacks %q: %s", code, want, stderr)
		}
	}
	// Every real server at its connection threshold (which only netlink
	// shows): one half-open connection each fills them, and the next
	// SYN's drop names the thresholds.
	c, err := ipvs.New(ipvs.Options{NetNS: x.director.NetNSPath()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fullVIP := netip.AddrPortFrom(netip.MustParseAddr(traceVIP), 9090)
	full := ipvs.TCPKey(fullVIP)
	if err := c.AddService(ipvs.Service{ServiceKey: full, Scheduler: "rr"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range x.rss {
		if err := c.AddRealServer(full, ipvs.RealServer{Address: a, Port: 9090, Forwarding: ipvs.DirectRoute, Weight: 1, UpperThreshold: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for range x.rss {
		// Nothing listens on 9090: the real server refuses straight to
		// the client, and IPVS keeps the connection in SYN_RECV.
		dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
		if conn, err := x.client.DialContext(dctx, "tcp", fullVIP.String()); err == nil {
			conn.Close()
		}
		dcancel()
	}
	stop = x.traffic(ctx, 9090)
	out, stderr, code = runLVSDiag(ctx, t, x.director, "trace", "--vip", traceVIP, "--port", "9090", "--count", "1", "--duration", "30s")
	stop()
	t.Logf("lvsdiag trace --port 9090:\n%s", out)
	if want := "=> dropped: IPVS found no destination (every real server of TCP 10.77.0.100:9090 with a weight is at its upper connection threshold)"; code != 0 || !strings.Contains(out, want) {
		t.Errorf("real servers at their threshold: exit %d, output lacks %q: %s", code, want, stderr)
	}

	// A port with no service, traced by the VIP alone: the local stack.
	stop = x.traffic(ctx, 81)
	out, stderr, code = runLVSDiag(ctx, t, x.director, "trace", "--vip", traceVIP, "--count", "1", "--duration", "30s")
	stop()
	t.Logf("lvsdiag trace, port 81:\n%s", out)
	if want := "=> local: it went to the local stack: no IPVS service took TCP 10.77.0.100:81"; code != 0 || !strings.Contains(out, want) {
		t.Errorf("no service on port 81: exit %d, output lacks %q: %s", code, want, stderr)
	}

	// A filter that matches nothing prints no packet.
	out, stderr, code = runLVSDiag(ctx, t, x.director, "trace", "--vip", traceVIP, "--port", "80", "--client", "10.77.0.99", "--duration", "2s")
	if code != 0 || strings.Contains(out, "=>") || !strings.Contains(out, "Summary: 0 packets traced") {
		t.Errorf("a client that sends nothing: exit %d\n%s%s", code, out, stderr)
	}
	// No service for the port: a clear message, exit 2.
	_, stderr, code = runLVSDiag(ctx, t, x.director, "trace", "--vip", traceVIP, "--port", "443", "--duration", "2s")
	if code != 2 || !strings.Contains(stderr, "no IPVS service matches --vip 10.77.0.100 --port 443") {
		t.Errorf("port 443: exit %d: %s", code, stderr)
	}
}
