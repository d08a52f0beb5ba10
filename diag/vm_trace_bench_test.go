//go:build vmtest && linux && amd64

package diag

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkVMTraceThroughput: the cost of tracing to the traffic a
// director passes. The client opens short TCP connections to a
// direct-routing VIP (a bounded loop of connect + close), side by side
// in one VM run under five conditions: untraced; lvsdiag trace with a
// filter that matches nothing (another client); lvsdiag trace matching
// every packet (JSON to a file); and the baseline a user would reach
// for, a bpftrace script on the same IPVS functions and tracepoints
// printing a line per hit. Untraced runs first and last, to see drift.
// It prints connections per second and the ratio to untraced. Goals:
// >= 95% of untraced with the non-matching filter; a matching trace
// costing no more than bpftrace.
func BenchmarkVMTraceThroughput(b *testing.B) {
	if _, err := exec.LookPath("bpftrace"); err != nil {
		b.Skipf("needs Debian's bpftrace (scripts/install-deps.sh): %v", err)
	}
	x := newTraceLab(b)
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	const conns, rounds = 300, 3
	vip := netip.AddrPortFrom(netip.MustParseAddr(traceVIP), 80)

	measure := func(name string) float64 {
		var rates []float64
		for range rounds {
			start := time.Now()
			for i := range conns {
				c, err := x.client.DialContext(ctx, "tcp", vip.String())
				if err != nil {
					b.Fatalf("%s: connection %d: %v", name, i, err)
				}
				c.Close()
			}
			rates = append(rates, conns/time.Since(start).Seconds())
		}
		slices.Sort(rates)
		return rates[len(rates)/2]
	}
	type result struct {
		name string
		rate float64
		note string
	}
	var results []result
	add := func(name string, rate float64, note string) {
		results = append(results, result{name, rate, note})
		b.Logf("%-28s %8.1f conn/s %s", name, rate, note)
	}

	add("untraced", measure("untraced"), "")

	// lvsdiag trace, started in the director's namespace; measured once
	// it says it is tracing.
	lvsdiag := func(name string, args ...string) {
		p := x.director.Start(ctx, lvsdiagBinary(b), append([]string{"trace", "--vip", traceVIP, "--port", "80", "--output", "json"}, args...)...)
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
		_, err := p.WaitForOutput(wctx, "lvsdiag trace: tracing")
		wcancel()
		if err != nil {
			b.Fatalf("%s: %v\n%s", name, err, p.Output())
		}
		rate := measure(name)
		// SIGTERM ends the trace like Ctrl-C: it detaches (slow under
		// TCG, longer than Stop waits) and prints its summary.
		if err := syscall.Kill(p.Pid(), syscall.SIGTERM); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		select {
		case <-p.Done():
		case <-time.After(3 * time.Minute):
			b.Fatalf("%s: lvsdiag trace did not end after SIGTERM:\n%s", name, p.Output())
		}
		add(name, rate, traceSummary(p.Output()))
	}
	lvsdiag("lvsdiag trace, no match", "--client", "10.77.0.99")
	lvsdiag("lvsdiag trace, every packet")

	// bpftrace on the same functions, in the VM's root namespace (its
	// probes are global), printing a line per hit as a user's script
	// would; its output is counted, not kept.
	script := `BEGIN { printf("ready\n"); }
kprobe:ip_vs_in_hook, kprobe:ip_vs_out_hook, kprobe:ip_vs_conn_in_get, kprobe:ip_vs_conn_out_get,
kprobe:tcp_conn_schedule, kprobe:ip_vs_schedule, kprobe:ip_vs_conn_new, kprobe:ip_vs_dr_xmit, kprobe:ip_vs_nat_xmit,
kprobe:ip_vs_tunnel_xmit, kprobe:ip_local_deliver, kprobe:ip_output
{ printf("%s %llx %llu\n", probe, arg1, nsecs); }
tracepoint:net:netif_receive_skb, tracepoint:net:net_dev_queue, tracepoint:skb:kfree_skb
{ printf("%s %llx %llu\n", probe, args->skbaddr, nsecs); }`
	rate, lines := withBpftrace(ctx, b, script, func() float64 { return measure("bpftrace") })
	add("bpftrace, every packet", rate, fmt.Sprintf("(%d lines printed)", lines))

	add("untraced again", measure("untraced again"), "")

	base := (results[0].rate + results[len(results)-1].rate) / 2
	b.Logf("ratios to untraced (mean of first and last, %.1f conn/s):", base)
	for _, r := range results {
		b.Logf("  %-28s %5.1f%%", r.name, 100*r.rate/base)
		b.ReportMetric(r.rate, strings.NewReplacer(" ", "-", ",", "").Replace(r.name)+"-conn/s")
	}
	b.ReportMetric(100*results[1].rate/base, "nomatch-%-of-untraced")
	b.ReportMetric(100*results[2].rate/base, "match-%-of-untraced")
	b.ReportMetric(100*results[3].rate/base, "bpftrace-%-of-untraced")
}

// traceSummary picks the events lost and packets from lvsdiag trace's
// JSON summary line.
func traceSummary(out string) string {
	for line := range strings.Lines(out) {
		var s struct {
			Type    string
			Packets int
			Lost    uint64
		}
		if json.Unmarshal([]byte(line), &s) == nil && s.Type == "summary" {
			return fmt.Sprintf("(%d packets traced, %d events lost)", s.Packets, s.Lost)
		}
	}
	return "(no summary)"
}

// withBpftrace runs the script, waits until its probes are attached,
// runs fn, then stops bpftrace and returns fn's result and how many
// lines bpftrace printed.
func withBpftrace(ctx context.Context, b *testing.B, script string, fn func() float64) (float64, int) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bpftrace", "-e", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("bpftrace: %v", err)
	}
	attached := make(chan struct{})
	lines := 0
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(out)
		once := sync.OnceFunc(func() { close(attached) })
		for sc.Scan() {
			switch t := sc.Text(); {
			case strings.HasPrefix(t, "Attaching "):
				continue
			case t == "ready": // BEGIN runs once every probe is attached
				once()
				continue
			}
			lines++
		}
		once()
	})
	select {
	case <-attached:
	case <-time.After(3 * time.Minute):
		b.Fatalf("bpftrace did not attach: %s", stderr.String())
	}
	rate := fn()
	cancel()
	wg.Wait()
	cmd.Wait()
	if lines == 0 {
		b.Fatalf("bpftrace printed nothing: %s", stderr.String())
	}
	return rate, lines
}
