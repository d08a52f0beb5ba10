// Command lvstop is a live terminal view of IPVS: virtual services, real
// servers, rates and the connection table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/internal/buildinfo"
	"github.com/lvskit/lvskit/tui"
)

const usage = `lvstop: a live view of IPVS (htop for a director)

Usage:
  lvstop                              watch the local kernel (needs root)
  lvstop --lvsd URL                   add a running lvsd's health and VRRP state
  lvstop --proc DIR                   replay a saved /proc tree
  lvstop --once --output text|json    print one snapshot and exit

Flags:
`

// options are lvstop's flags.
type options struct {
	lvsd     string
	proc     string
	once     bool
	output   string
	interval time.Duration
	saveDir  string
	logFile  string
	version  bool
}

// usageError is a bad command line: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("lvstop", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.lvsd, "lvsd", "", "lvsd status API: http://HOST:PORT, HOST:PORT or unix:/path/to/status.sock")
	fs.StringVar(&o.proc, "proc", "", "replay a saved /proc tree: a `DIR` holding proc/net/ip_vs (or net/ip_vs, or the ip_vs* files themselves)")
	fs.BoolVar(&o.once, "once", false, "print one snapshot and exit (like top -b)")
	fs.StringVar(&o.output, "output", "text", "with --once: text or json")
	fs.DurationVar(&o.interval, "interval", 2*time.Second, "time between snapshots")
	fs.StringVar(&o.saveDir, "save-dir", ".", "where the w key saves snapshot trees")
	fs.StringVar(&o.logFile, "log", "", "write a debug log to this `FILE`")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	printUsage := func() {
		fmt.Fprint(stderr, usage)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage()
			return o, flag.ErrHelp
		}
		// flag's messages name the flag: "invalid value "x" for flag -interval: ..."
		return o, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return o, usageError{fmt.Sprintf("unexpected argument %q: lvstop takes only flags (see lvstop --help)", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case o.output != "text" && o.output != "json":
		return o, usageError{fmt.Sprintf("--output %q: use text or json", o.output)}
	case set["output"] && !o.once:
		return o, usageError{"--output applies to --once: add --once, or drop --output"}
	case o.interval < 100*time.Millisecond:
		return o, usageError{fmt.Sprintf("--interval %v: use 100ms or more", o.interval)}
	case o.proc != "" && o.lvsd != "":
		return o, usageError{"--proc and --lvsd: choose one (a saved tree keeps lvsd's health in its lvstop.json)"}
	}
	return o, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "lvstop: %v\n", err)
		return 2
	}
	if o.version {
		fmt.Fprintln(stdout, buildinfo.String("lvstop"))
		return 0
	}
	logger := slog.New(slog.DiscardHandler)
	if o.logFile != "" {
		f, err := os.OpenFile(o.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "lvstop: --log: %v\n", err)
			return 2
		}
		defer f.Close()
		logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	src, closeSrc, err := openSource(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "lvstop: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	defer closeSrc()

	if o.once {
		return once(ctx, src, o.output, stdout, stderr)
	}
	app := tui.NewApp(tui.AppOptions{Source: src, Interval: o.interval, SaveDir: o.saveDir, Logger: logger})
	if err := app.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "lvstop: %v\n", err)
		return 1
	}
	return 0
}

func once(ctx context.Context, src tui.Source, output string, stdout, stderr io.Writer) int {
	s, err := src.Collect(ctx, tui.ConnQuery{})
	if err != nil {
		fmt.Fprintf(stderr, "lvstop: %v\n", explain(err))
		return 1
	}
	var m tui.Model
	f := m.Update(s)
	if output == "json" {
		err = tui.WriteJSON(stdout, f)
	} else {
		err = tui.WriteText(stdout, f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "lvstop: writing the snapshot: %v\n", err)
		return 1
	}
	return 0
}

// openSource builds the source the flags ask for and checks that it can
// be read, so that a missing module or privilege is said once, clearly,
// before any screen is drawn.
func openSource(ctx context.Context, o options) (tui.Source, func(), error) {
	nothing := func() {}
	if o.proc != "" {
		p, err := tui.NewProcSource(o.proc)
		if err != nil {
			return nil, nothing, usageError{err.Error()}
		}
		return p, nothing, nil
	}
	if o.lvsd != "" {
		c, err := statusapi.NewClient(o.lvsd)
		if err != nil {
			return nil, nothing, usageError{"--lvsd: " + err.Error()}
		}
		l := &tui.LVSDSource{Status: c}
		closeKernel := nothing
		if statusapi.IsLocal(o.lvsd) {
			// lvsd on this machine: its health on top of the kernel's
			// counters and connection table, when the kernel can be read.
			if k, closeK, err := openKernel(); err == nil {
				l.Base, closeKernel = k, closeK
			}
		}
		// The client's idle keep-alive connection is closed with the
		// source: run returns with nothing of it left.
		closeFn := func() { c.Close(); closeKernel() }
		if _, err := c.Status(ctx); err != nil {
			closeFn()
			return nil, nothing, fmt.Errorf("%w\n  is lvsd running, and is %s its status_listen address?", err, o.lvsd)
		}
		return l, closeFn, nil
	}
	return openKernel()
}

func openKernel() (tui.Source, func(), error) {
	c, err := ipvs.New(ipvs.Options{})
	if err != nil {
		return nil, func() {}, explain(err)
	}
	if _, err := c.Info(); err != nil {
		c.Close()
		return nil, func() {}, explain(err)
	}
	host, _ := os.Hostname()
	k := &tui.KernelSource{Client: c, Proc: tui.ProcFiles{Dir: "/"}, Director: host, Clock: time.Now}
	return k, func() { c.Close() }, nil
}

// explain adds what to do to the errors a person meets first.
func explain(err error) error {
	switch {
	case errors.Is(err, ipvs.ErrIPVSUnavailable):
		return fmt.Errorf("%w\n  to look at a saved tree instead: lvstop --proc DIR", err)
	case errors.Is(err, ipvs.ErrPermission):
		return fmt.Errorf("%w (sudo lvstop)\n  without root: lvstop --lvsd URL reads lvsd's status API, lvstop --proc DIR a saved tree", err)
	case errors.Is(err, ipvs.ErrNotImplemented):
		return fmt.Errorf("%w: on this system use lvstop --proc DIR (a tree saved on the director) or --lvsd URL", err)
	}
	return err
}
