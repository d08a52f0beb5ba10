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
	"syscall"

	"github.com/lvskit/lvskit/diag"
)

// checklistOptions are the flags of `lvsdiag` and `lvsdiag rs`.
type checklistOptions struct {
	Diag    diag.Options
	LVSD    string
	Config  string
	Format  diag.Format
	FailOn  diag.Severity
	Colour  string
	Verbose bool
}

const runUsage = `Usage: lvsdiag --vip ADDR [flags]

Runs the on-call checklist for a VIP, every check at once under one
deadline: 1 reachability (ICMP), 2 the director (IPVS, lvsd's health
view, sysctls, firewall), 3 each real server as if pinned in /etc/hosts,
4 the real server's own setup (only where the VIP is on lo; else run
lvsdiag rs there), 5 who answers ARP for the VIP, 6 after failover (the
master's MAC, its gratuitous ARP, stale neighbour entries), 7 the VRRP
census, 8 the IPVS connection table; with --trace on a director, 9 the
packet path: each packet to VIP:port traced through IPVS with eBPF while
lvsdiag's own connection passes. A check that cannot run here says why;
the others still run.

Exit status: 0 clean, 1 findings at or above --fail-on, 2 could not run
(bad flags, or no check could run).

Flags:
`

const rsUsage = `Usage: lvsdiag rs --vip ADDR [flags]

Run on a real server: checks arp_ignore and arp_announce (all and the
link: the kernel uses the larger), the VIP on lo or a dummy as a /32 and
not on the LAN link, the route to the VIP, rp_filter, a tunnel device
for LVS-TUN, and a listener on VIP:port.

Exit status: 0 clean, 1 findings at or above --fail-on, 2 could not run.

Flags:
`

// runChecklist is `lvsdiag [run]` and `lvsdiag rs`; it returns the exit
// status.
func runChecklist(mode string, args []string, stdout, stderr io.Writer) int {
	name := "lvsdiag"
	if mode == "rs" {
		name = "lvsdiag rs"
	}
	opts, err := parseChecklistFlags(mode, args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return diag.ExitClean
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return diag.ExitCouldNotRun
	}
	level := slog.LevelWarn
	if opts.Verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	env, err := diag.NewSystemEnv(diag.SystemOptions{LVSD: opts.LVSD, ConfigPath: opts.Config, NoIPVS: mode == "rs", Logger: logger})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return diag.ExitCouldNotRun
	}
	defer env.Close()
	if opts.Diag.Trace {
		env.Tracer = systemTracer{logger: logger}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := diag.Run(ctx, env, opts.Diag)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return diag.ExitCouldNotRun
	}
	colour := opts.Colour == "always" || (opts.Colour == "auto" && isTerminal(stdout) && os.Getenv("NO_COLOR") == "")
	if err := diag.WriteReport(stdout, rep, diag.ReportOptions{Format: opts.Format, Colour: colour, FailOn: opts.FailOn}); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return diag.ExitCouldNotRun
	}
	return rep.ExitCode(opts.FailOn)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// addrFlag parses an IP address, naming the flag in its error.
type addrFlag struct{ a *netip.Addr }

func (f addrFlag) String() string {
	if f.a == nil || !f.a.IsValid() {
		return ""
	}
	return f.a.String()
}

func (f addrFlag) Set(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("want an IP address like 192.168.0.100")
	}
	*f.a = a.Unmap()
	return nil
}

// portFlag parses a port number.
type portFlag struct{ p *uint16 }

func (f portFlag) String() string {
	if f.p == nil {
		return ""
	}
	return strconv.Itoa(int(*f.p))
}

func (f portFlag) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return fmt.Errorf("want a port number from 0 to 65535")
	}
	*f.p = uint16(n)
	return nil
}

func parseChecklistFlags(mode string, args []string, stderr io.Writer) (checklistOptions, error) {
	opts := checklistOptions{Diag: diag.Options{Mode: diag.ModeFull, Port: 80}}
	name, help := "lvsdiag", runUsage
	if mode == "rs" {
		opts.Diag.Mode = diag.ModeRealServer
		name, help = "lvsdiag rs", rsUsage
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, help)
		fs.PrintDefaults()
	}
	var output, failOn, probe string
	fs.Var(addrFlag{&opts.Diag.VIP}, "vip", "the virtual IP address (required)")
	fs.Var(portFlag{&opts.Diag.Port}, "port", "the virtual port (0: any)")
	fs.StringVar(&opts.Diag.Interface, "interface", "", "the link to the VIP's segment (default: the one the route to the VIP uses)")
	fs.DurationVar(&opts.Diag.Timeout, "timeout", diag.DefaultTimeout, "deadline for the whole run")
	fs.StringVar(&output, "output", "text", "report format: text, json or markdown")
	fs.StringVar(&failOn, "fail-on", "warning", "exit 1 for findings at or above this severity: info, warning or critical")
	fs.StringVar(&opts.Colour, "colour", "auto", "colour the text report: auto (on a terminal), always or never")
	fs.BoolVar(&opts.Verbose, "v", false, "log what the checks do to stderr")
	if mode != "rs" {
		fs.StringVar(&opts.Diag.Host, "host", "", "the site's host name, sent as Host and TLS SNI to each real server (default: the VIP)")
		fs.StringVar(&opts.Diag.Path, "path", "/", "the URL path asked of each real server")
		fs.StringVar(&probe, "probe", "auto", "how to probe real servers: auto (https on 443/8443, http on 80/8080, else tcp), http, https or tcp")
		fs.StringVar(&opts.LVSD, "lvsd", "", "lvsd's status API: http://HOST:PORT, HOST:PORT or unix:/path (default: none)")
		fs.StringVar(&opts.Config, "config", "", "lvsd's config file: its services' real servers and its VRRP instances")
		fs.DurationVar(&opts.Diag.Listen, "listen", diag.DefaultListen, "how long to watch the link for VRRP adverts and ARP, and to trace with --trace (at most half of --timeout)")
		fs.BoolVar(&opts.Diag.Trace, "trace", false, "on the director: trace lvsdiag's own connection to VIP:port (and clients' packets) through IPVS with eBPF for the listen window (check 9; needs root)")
	}
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	var err error
	switch {
	case fs.NArg() > 0:
		return opts, fmt.Errorf("unexpected arguments %q", fs.Args())
	case !opts.Diag.VIP.IsValid():
		return opts, errors.New("--vip is required: the virtual IP address to diagnose")
	case opts.Diag.Timeout <= 0:
		return opts, fmt.Errorf("--timeout %s: must be positive", opts.Diag.Timeout)
	case mode != "rs" && opts.Diag.Listen <= 0:
		return opts, fmt.Errorf("--listen %s: must be positive", opts.Diag.Listen)
	}
	if opts.Format, err = diag.ParseFormat(output); err != nil {
		return opts, fmt.Errorf("--output: %w", err)
	}
	if opts.FailOn, err = diag.ParseSeverity(failOn); err != nil {
		return opts, fmt.Errorf("--fail-on: %w", err)
	}
	switch opts.Colour {
	case "auto", "always", "never":
	default:
		return opts, fmt.Errorf("--colour %q: want auto, always or never", opts.Colour)
	}
	if probe != "" {
		opts.Diag.Probe = diag.ProbeKind(probe)
	}
	if err := opts.Diag.Validate(); err != nil {
		return opts, err
	}
	return opts, nil
}
