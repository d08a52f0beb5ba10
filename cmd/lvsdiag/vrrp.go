package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lvskit/lvskit/diag"
	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/vrrp"
)

// vrrpOptions are the flags of `lvsdiag vrrp`.
type vrrpOptions struct {
	Interface string
	Duration  time.Duration
	Output    string
	Config    string
}

const vrrpUsage = `Usage: lvsdiag vrrp --interface IF [--duration 5s] [--config lvsd.yaml] [--output text|json|markdown]

Listens on IF without sending anything and prints every VRRP virtual
router heard (VRID, version, source, priority, interval, addresses,
authentication, TTL, first and last seen, who is master), then findings:
VRID clashes, split brains, TTL not 255, version, interval and
authentication mismatches, invalid packets. With lvsd's config
(--config), a router using one of its instances' VRIDs with other
addresses is foreign and reported with its source and VIPs. Ctrl-C ends
the listen early.

Exit status: 0 nothing found, 1 findings, 2 could not listen.

Flags:
`

// runVRRP is `lvsdiag vrrp`; it returns the exit status.
func runVRRP(args []string, stdout, stderr io.Writer) int {
	opts, err := parseVRRPFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return diag.ExitClean
	}
	if err != nil {
		fmt.Fprintf(stderr, "lvsdiag vrrp: %v\n", err)
		return diag.ExitCouldNotRun
	}
	format, _ := diag.ParseFormat(opts.Output)
	var cfg *config.Config
	if opts.Config != "" {
		if cfg, err = config.Load(opts.Config, config.LoadOptions{}); err != nil {
			fmt.Fprintf(stderr, "lvsdiag vrrp: --config %s: %v\n", opts.Config, err)
			return diag.ExitCouldNotRun
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, err := vrrp.Snoop(opts.Interface)
	if err != nil {
		fmt.Fprintf(stderr, "lvsdiag vrrp: %v\n", err)
		return diag.ExitCouldNotRun
	}
	census, err := diag.ListenVRRP(ctx, conn, diag.VRRPListenOptions{Interface: opts.Interface, Duration: opts.Duration})
	if err != nil {
		fmt.Fprintf(stderr, "lvsdiag vrrp: %v\n", err)
		return diag.ExitCouldNotRun
	}
	findings := census.Findings()
	if cfg != nil {
		findings = append(findings, census.ForeignRouterFindings(cfg.VRRP.Instances)...)
		diag.SortFindings(findings)
	}
	if err := diag.WriteVRRPReport(stdout, census, findings, format); err != nil {
		fmt.Fprintf(stderr, "lvsdiag vrrp: %v\n", err)
		return diag.ExitCouldNotRun
	}
	return diag.ExitCode(findings)
}

func parseVRRPFlags(args []string, stderr io.Writer) (vrrpOptions, error) {
	var opts vrrpOptions
	fs := flag.NewFlagSet("lvsdiag vrrp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, vrrpUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&opts.Interface, "interface", "", "interface to listen on (required)")
	fs.DurationVar(&opts.Duration, "duration", 5*time.Second, "how long to listen")
	fs.StringVar(&opts.Output, "output", "text", "report format: text, json or markdown")
	fs.StringVar(&opts.Config, "config", "", "lvsd's config: report routers using its VRIDs with other addresses")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	switch {
	case fs.NArg() > 0:
		return opts, fmt.Errorf("unexpected arguments %q", fs.Args())
	case opts.Interface == "":
		return opts, fmt.Errorf("--interface is required")
	case opts.Duration <= 0:
		return opts, fmt.Errorf("--duration %s: must be positive", opts.Duration)
	}
	if _, err := diag.ParseFormat(opts.Output); err != nil {
		return opts, fmt.Errorf("--output: %w", err)
	}
	return opts, nil
}
