package probes_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"

	"github.com/lvskit/lvskit/probes"
)

// Trace the packets of one virtual service until Ctrl-C: each Event is
// one hop of one packet (join them into paths by SKB), then say what the
// kernel would not let the tracer see and how many events were lost.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	tr, err := probes.Open(probes.Options{
		Filter: probes.Filter{VIP: netip.MustParseAddr("192.168.0.100"), Port: 80, Protocol: "tcp"},
		Logger: slog.Default(),
	})
	switch {
	case errors.Is(err, probes.ErrIPVSNotLoaded), errors.Is(err, probes.ErrPermission):
		fmt.Fprintln(os.Stderr, err)
		return
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer tr.Close()
	for {
		ev, err := tr.Read(ctx)
		if err != nil {
			break // ctx done, or the tracer closed
		}
		fmt.Printf("%x %-20s %-10s %v -> %v %s %s\n", ev.SKB, ev.Hop.Func, ev.Hop.Hook, ev.Tuple.Src, ev.Tuple.Dst, ev.TCPFlags, ev.Hop.Note)
	}
	for _, line := range tr.Unseen() {
		fmt.Println("not seen:", line)
	}
	if lost, err := tr.Lost(); err == nil {
		fmt.Println("events lost:", lost)
	}
}

// Write paths as lvsdiag trace --output json does: one JSONWriter for
// the whole run, a line per path, the summary last.
func ExampleJSONWriter() {
	conn := &probes.Conn{Protocol: "TCP", Client: netip.MustParseAddrPort("10.77.0.2:40000"),
		Virtual: netip.MustParseAddrPort("10.77.0.100:80"), RealServer: netip.MustParseAddrPort("10.77.0.21:80"),
		Forwarding: probes.DirectRoute, State: "ESTABLISHED", Flags: 3}
	path := probes.Path{NetNS: 4026531840, Device: "eth0", Outcome: probes.OutcomeForwarded,
		Why: "IPVS sent it to 10.77.0.21:80 by direct route", Conn: conn,
		Hops: []probes.Hop{{Func: probes.FuncDRXmit, At: 1000, Conn: conn}}}
	jw := probes.NewJSONWriter(os.Stdout)
	if err := jw.WritePath(path); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	var sum probes.Summary
	sum.Add(path)
	if err := jw.WriteSummary(sum); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	// Output:
	// {"type":"path","schema_version":1,"netns":4026531840,"device":"eth0","outcome":"forwarded","why":"IPVS sent it to 10.77.0.21:80 by direct route","conn":{"protocol":"TCP","client":"10.77.0.2:40000","virtual":"10.77.0.100:80","real_server":"10.77.0.21:80","forwarding":"Route","state":"ESTABLISHED","flags":3},"hops":[{"func":"ip_vs_dr_xmit","at_ns":1000,"since_first_ns":0,"conn":{"protocol":"TCP","client":"10.77.0.2:40000","virtual":"10.77.0.100:80","real_server":"10.77.0.21:80","forwarding":"Route","state":"ESTABLISHED","flags":3},"text":"TCP 10.77.0.2:40000 -> 10.77.0.100:80 via 10.77.0.21:80 (direct route) ESTABLISHED"}]}
	// {"type":"summary","schema_version":1,"packets":1,"by_outcome":{"forwarded":1,"reply":0,"local":0,"dropped":0,"unknown":0},"by_real_server":[{"address":"10.77.0.21:80","packets":1}],"drops":[],"lost":0,"missed":0,"unseen":[]}
}
