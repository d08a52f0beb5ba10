package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lvskit/lvskit/diag"
	"github.com/lvskit/lvskit/director/statusapi"
)

// drillOptions are the flags of `lvsdiag drill`.
type drillOptions struct {
	Drill  diag.DrillOptions
	Kind   string
	LVSD   []string
	Output diag.Format
}

const drillUsage = `Usage: lvsdiag drill --vip ADDR --lvsd SOCKET [--lvsd ADDR ...] [flags]

A failover drill on a live setup: hands the VIP over on purpose and
measures it from this host, which should be a client of the VIP (on its
link for VRRP, to see the gratuitous ARP with --interface; behind the
router for BGP).

VRRP: the director that is master of the VIP steps down (a priority-0
advert; it stays a backup at priority 1 so it does not preempt back, but
still takes the VIP if nobody else does). BGP: the first --lvsd
withdraws the VIP's route. After --observe the drill ends the step-down
or the withdraw, and the director comes back: VRRP per its preempt
settings, BGP announcing again if healthy. If lvsdiag dies, lvsd ends
the drill itself after --hold.

lvsd serves the actions only on its unix socket (status_listen:
unix:/run/lvsd/status.sock): whoever may open the socket may drill. Give
the acting director's socket (from a client host: ssh -L
/tmp/lvs1.sock:/run/lvsd/status.sock lvs1, then --lvsd /tmp/lvs1.sock);
the other directors' status may be read over TCP.

Measured: the director letting go, the peer becoming master, the first
gratuitous ARP, the first request answered through the new path, new
connections (one every --interval) that failed, long-lived connections
(--long, opened before) that broke, and the restore.

Exit status: 0 clean, 1 findings (requests failed, connections broke,
no takeover, not restored), 2 could not run (nothing was changed, or
the drill was ended).

Flags:
`

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// runDrill is `lvsdiag drill`; it returns the exit status.
func runDrill(args []string, stdout, stderr io.Writer) int {
	opts, err := parseDrillFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return diag.ExitClean
	}
	if err != nil {
		fmt.Fprintf(stderr, "lvsdiag drill: %v\n", err)
		return diag.ExitCouldNotRun
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := opts.Drill
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, target := range opts.LVSD {
		c, err := statusapi.NewClient(target)
		if err != nil {
			fmt.Fprintf(stderr, "lvsdiag drill: --lvsd: %v\n", err)
			return diag.ExitCouldNotRun
		}
		defer c.Close()
		o.Directors = append(o.Directors, namedClient{c, target})
	}
	if o.Kind, err = drillKind(ctx, opts.Kind, o); err != nil {
		fmt.Fprintf(stderr, "lvsdiag drill: %v\n", err)
		return diag.ExitCouldNotRun
	}
	if o.Interface != "" {
		o.ARP = diag.NewARPProber()
	}
	facts, err := diag.RunDrill(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "lvsdiag drill: %v\n", err)
		return diag.ExitCouldNotRun
	}
	findings := facts.Findings()
	if err := diag.WriteDrillReport(stdout, facts, findings, opts.Output); err != nil {
		fmt.Fprintf(stderr, "lvsdiag drill: %v\n", err)
		return diag.ExitCouldNotRun
	}
	return diag.ExitCode(findings)
}

// namedClient names a director by its --lvsd address as given.
type namedClient struct {
	*statusapi.Client
	name string
}

func (n namedClient) String() string { return n.name }

// drillKind resolves --kind auto: bgp when the first director announces
// the VIP over BGP, else vrrp.
func drillKind(ctx context.Context, kind string, o diag.DrillOptions) (diag.DrillKind, error) {
	if kind != "auto" {
		return diag.DrillKind(kind), nil
	}
	st, err := o.Directors[0].Status(ctx)
	if err != nil {
		return "", err
	}
	if st.BGP != nil {
		for _, v := range st.BGP.VIPs {
			if v.Address == o.VIP.String() {
				return diag.DrillBGP, nil
			}
		}
	}
	return diag.DrillVRRP, nil
}

func parseDrillFlags(args []string, stderr io.Writer) (drillOptions, error) {
	var opts drillOptions
	o := &opts.Drill
	fs := flag.NewFlagSet("lvsdiag drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, drillUsage)
		fs.PrintDefaults()
	}
	var vip, port, output string
	fs.StringVar(&vip, "vip", "", "the virtual IP address to hand over (required)")
	fs.StringVar(&port, "port", "80", "the virtual port the client connects to (HTTP)")
	fs.StringVar(&opts.Kind, "kind", "auto", "vrrp, bgp, or auto (bgp when the first --lvsd announces the VIP over BGP)")
	fs.Var((*stringList)(&opts.LVSD), "lvsd", "a director's lvsd: its unix socket (the one acted on must be), or HOST:PORT to read its status; repeat for each director")
	fs.DurationVar(&o.Hold, "hold", statusapi.DefaultDrillHold, "lvsd ends the drill by itself after this, if lvsdiag does not")
	fs.DurationVar(&o.Observe, "observe", 5*time.Second, "how long to watch the handover before ending the drill")
	fs.DurationVar(&o.Restore, "restore", 20*time.Second, "how long the director may take to come back after the drill ends")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "probing before the handover")
	fs.DurationVar(&o.Interval, "interval", 50*time.Millisecond, "between new connections")
	fs.DurationVar(&o.Timeout, "timeout", time.Second, "for each connection and request")
	fs.IntVar(&o.Long, "long", 8, "long-lived connections opened before the handover")
	fs.StringVar(&o.Interface, "interface", "", "watch this link for the new master's gratuitous ARP (needs root)")
	fs.StringVar(&o.Path, "path", "/", "the HTTP path requested")
	fs.StringVar(&o.Host, "host", "", "the HTTP Host header (default the VIP)")
	fs.StringVar(&output, "output", "text", "report format: text, json or markdown")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	var err error
	switch {
	case fs.NArg() > 0:
		return opts, fmt.Errorf("unexpected arguments %q", fs.Args())
	case vip == "":
		return opts, errors.New("--vip is required")
	case len(opts.LVSD) == 0:
		return opts, errors.New("--lvsd is required: the unix socket of the director to act on (status_listen: unix:/run/lvsd/status.sock), and the other directors to read")
	case opts.Kind != "auto" && opts.Kind != string(diag.DrillVRRP) && opts.Kind != string(diag.DrillBGP):
		return opts, fmt.Errorf("--kind %q: want vrrp, bgp or auto", opts.Kind)
	case o.Hold < statusapi.MinDrillHold || o.Hold > statusapi.MaxDrillHold:
		return opts, fmt.Errorf("--hold %s: want between %s and %s", o.Hold, statusapi.MinDrillHold, statusapi.MaxDrillHold)
	case o.Observe <= 0 || o.Restore <= 0 || o.Warmup <= 0 || o.Interval <= 0 || o.Timeout <= 0:
		return opts, errors.New("--observe, --restore, --warmup, --interval and --timeout must be positive")
	case o.Hold < o.Observe+o.Warmup:
		return opts, fmt.Errorf("--hold %s is shorter than --warmup plus --observe (%s): lvsd would end the drill before it is measured", o.Hold, o.Warmup+o.Observe)
	case o.Long < 0 || o.Long > 1000:
		return opts, fmt.Errorf("--long %d: want 0 to 1000", o.Long)
	}
	if o.VIP, err = netip.ParseAddr(vip); err != nil {
		return opts, fmt.Errorf("--vip %q: want an IP address like 192.0.2.10", vip)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return opts, fmt.Errorf("--port %q: want 1 to 65535", port)
	}
	o.Port = uint16(p)
	if o.Long == 0 {
		o.Long = -1 // none (the options' zero means the default)
	}
	if opts.Output, err = diag.ParseFormat(output); err != nil {
		return opts, fmt.Errorf("--output: %w", err)
	}
	return opts, nil
}
