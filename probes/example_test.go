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
