package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lvskit/lvskit/diag"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/cpuprofile"
	"github.com/lvskit/lvskit/probes"
)

// traceOptions are the flags of `lvsdiag trace`.
type traceOptions struct {
	// Filter is what the flags select; NetNS and Interface are resolved
	// to an inode and an index when the trace is opened.
	Filter    probes.Filter
	NetNS     string
	Interface string
	Count     int
	Duration  time.Duration
	Backend   string
	Hops      string
	// shape is what the services the filter matches let a packet
	// reach (from the kernel's table when the trace starts).
	shape   servicesShape
	Output  string
	Colour  string
	Verbose bool
}

const traceUsage = `Usage: lvsdiag trace --vip ADDR [flags]

Traces each packet to the VIP through the kernel's IPVS path with eBPF and
prints one block per packet as its path ends: the time, network
namespace, interface, addresses and TCP flags, then one line per place the
kernel handled it (the function, the time since the first, and what IPVS
decided there: the service, the scheduler's choice of real server, the
connection, the transmit path), then how it ended: forwarded to a real
server, a NAT reply on its way back, to the local stack (no IPVS service
took it), or dropped (where, and why). Ctrl-C, --count or --duration end
it and print a summary: packets per real server, drops by reason, events
lost, and the hops this kernel cannot show.

Run it on the director, as root (it loads eBPF programs: CAP_BPF and
CAP_PERFMON). It traces the network namespace it runs in unless --netns
names another.

Exit status: 0 traced, 2 could not run (bad flags, no privileges, IPVS
not loaded, no IPVS service matches the filter).

Flags:
`

// traceEnv is what lvsdiag trace needs from the system; tests fake it.
type traceEnv struct {
	// Open checks the privileges and IPVS, resolves the filter's
	// names, and starts the trace.
	Open func(ctx context.Context, opts *traceOptions, logger *slog.Logger) (*tracing, error)
	// Terminal says stdout is a terminal (for --colour auto).
	Terminal bool
	// Getenv reads the environment (NO_COLOR).
	Getenv func(string) string
	// CPUProfile, when set, is a new file to write a CPU profile of the
	// trace to, from when it is attached to its end: the environment's
	// LVSKIT_CPUPROFILE, for the tracer's benchmarks, which profile
	// lvsdiag where it runs (inside the test VM). Not a flag: it is for
	// lvskit's developers, not for on-call use.
	CPUProfile string
}

// tracing is a started trace.
type tracing struct {
	Source  probes.Source
	Grouper probes.GrouperOptions
	// Services are the IPVS services the filter matches, as ipvsadm
	// names them.
	Services []string
}

func runTrace(args []string, stdout, stderr io.Writer) int {
	return runTraceWith(args, stdout, stderr, traceEnv{Open: openTrace, Terminal: isTerminal(stdout), Getenv: os.Getenv,
		CPUProfile: os.Getenv("LVSKIT_CPUPROFILE")})
}

func runTraceWith(args []string, stdout, stderr io.Writer, env traceEnv) int {
	opts, err := parseTraceFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return diag.ExitClean
	}
	if err != nil {
		fmt.Fprintf(stderr, "lvsdiag trace: %v\n", err)
		return diag.ExitCouldNotRun
	}
	level := slog.LevelWarn
	if opts.Verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tr, err := env.Open(ctx, &opts, logger)
	if err != nil {
		fmt.Fprintf(stderr, "lvsdiag trace: %v\n", err)
		return diag.ExitCouldNotRun
	}
	// --duration counts from when the probes are attached.
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	if env.CPUProfile != "" {
		stop, err := cpuprofile.Start(env.CPUProfile)
		if err != nil {
			tr.Source.Close()
			fmt.Fprintf(stderr, "lvsdiag trace: LVSKIT_CPUPROFILE: %v\n", err)
			return diag.ExitCouldNotRun
		}
		defer func() {
			if err := stop(); err != nil {
				fmt.Fprintf(stderr, "lvsdiag trace: LVSKIT_CPUPROFILE: %v\n", err)
			}
		}()
	}
	fmt.Fprintf(stderr, "lvsdiag trace: tracing %s; %s\n", describeFilter(opts), endsWhen(opts))
	for _, u := range tr.Source.Unseen() {
		fmt.Fprintf(stderr, "lvsdiag trace: not visible on this kernel: %s\n", u)
	}
	colour := opts.Colour == "always" || (opts.Colour == "auto" && env.Terminal && env.Getenv("NO_COLOR") == "")
	text := probes.TextOptions{Colour: colour}
	// The paths of a batch of events are written at once, when Collect
	// has handled what the tracer had buffered: one write for a burst,
	// not one per packet, and nothing held back while the trace waits.
	out := bufio.NewWriterSize(stdout, 64<<10)
	emit := probes.NewTextWriter(out, text).WritePath // one buffer for every block
	jw := probes.NewJSONWriter(out)                   // one buffer for every line
	if opts.Output == "json" {
		emit = jw.WritePath
	}
	tr.Grouper.Hidden = len(tr.Source.Unseen()) > 0
	// The writers keep nothing of a path once it is written.
	// The probes detach after the summary is out: on 6.12 that takes
	// seconds for every IPVS hop (KeepOpen).
	defer tr.Source.Close()
	sum, err := probes.Collect(ctx, tr.Source, probes.CollectOptions{Grouper: tr.Grouper, Count: opts.Count, Flush: out.Flush, ReuseHops: true, KeepOpen: true}, emit)
	if err != nil {
		fmt.Fprintf(stderr, "lvsdiag trace: %v\n", err)
		return diag.ExitCouldNotRun
	}
	if opts.Output == "json" {
		err = jw.WriteSummary(sum)
	} else {
		err = probes.WriteSummaryText(out, sum, text)
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		fmt.Fprintf(stderr, "lvsdiag trace: writing the summary: %v\n", err)
		return diag.ExitCouldNotRun
	}
	return diag.ExitClean
}

func describeFilter(o traceOptions) string {
	f := o.Filter
	what := strings.ToUpper(f.Protocol)
	if what == "" {
		what = "packets"
	}
	what += " to " + f.VIP.String()
	if f.Port != 0 {
		what += " port " + strconv.Itoa(int(f.Port))
	}
	if f.Client.IsValid() {
		what += " from " + f.Client.String()
	}
	if f.RealServer.IsValid() {
		what += " sent to " + f.RealServer.String()
	}
	if o.Interface != "" {
		what += " on " + o.Interface
	}
	if f.NetNS != 0 {
		what += fmt.Sprintf(" in netns %d", f.NetNS)
	}
	return what
}

func endsWhen(o traceOptions) string {
	var parts []string
	if o.Count > 0 {
		parts = append(parts, fmt.Sprintf("after %d packet%s", o.Count, map[bool]string{true: "", false: "s"}[o.Count == 1]))
	}
	if o.Duration > 0 {
		parts = append(parts, "after "+o.Duration.String())
	}
	parts = append(parts, "Ctrl-C ends it")
	return strings.Join(parts, ", ")
}

// prefixFlag parses an address or a prefix.
type prefixFlag struct{ p *netip.Prefix }

func (f prefixFlag) String() string {
	if f.p == nil || !f.p.IsValid() {
		return ""
	}
	return f.p.String()
}

func (f prefixFlag) Set(s string) error {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		*f.p = netip.PrefixFrom(a, a.BitLen())
		return nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("want an address like 10.77.0.2 or a prefix like 10.77.0.0/24")
	}
	*f.p = p.Masked()
	return nil
}

func parseTraceFlags(args []string, stderr io.Writer) (traceOptions, error) {
	var opts traceOptions
	fs := flag.NewFlagSet("lvsdiag trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, traceUsage)
		fs.PrintDefaults()
	}
	f := &opts.Filter
	fs.Var(addrFlag{&f.VIP}, "vip", "the virtual IP address (required)")
	fs.Var(portFlag{&f.Port}, "port", "the virtual port (0: any)")
	fs.Var(prefixFlag{&f.Client}, "client", "only packets from (and replies to) this client `ADDR|PREFIX`")
	fs.Var(addrFlag{&f.RealServer}, "rs", "only packets IPVS sends to (or NAT replies from) this real server `ADDR`")
	fs.StringVar(&f.Protocol, "proto", "", "only this protocol: tcp, udp or sctp (default: all)")
	fs.StringVar(&opts.NetNS, "netns", "", "trace the network namespace `NAME|INODE` (ip netns name, or the inode of /proc/PID/ns/net; default: this one)")
	fs.StringVar(&opts.Interface, "interface", "", "only packets on this interface `IF` (in the traced namespace)")
	fs.IntVar(&opts.Count, "count", 0, "stop after `N` packets (0: no limit)")
	fs.DurationVar(&opts.Duration, "duration", 0, "stop after `D`, like 10s (0: until Ctrl-C)")
	fs.StringVar(&opts.Backend, "backend", "auto", "how to attach to kernel functions: auto (the best per function), fentry, kprobe or kprobe-multi")
	fs.StringVar(&opts.Hops, "hops", "ipvs", "which functions to show: ipvs (IPVS's functions and hooks, received, queued, dropped) or all (adds ip_forward, ip_local_deliver, ip_local_out, ip_output: each costs every packet one more probe)")
	fs.StringVar(&opts.Output, "output", "text", "text (one block per packet), or json (one JSON object a line; see probes/trace.schema.json)")
	fs.StringVar(&opts.Colour, "colour", "auto", "colour the text: auto (on a terminal, unless NO_COLOR is set), always or never")
	fs.BoolVar(&opts.Verbose, "v", false, "log what the tracer does to stderr")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	return opts, opts.validate(fs.Args())
}

func (o *traceOptions) validate(rest []string) error {
	f := &o.Filter
	switch {
	case len(rest) > 0:
		return fmt.Errorf("unexpected arguments %q: every option is a flag (lvsdiag trace --help)", rest)
	case !f.VIP.IsValid():
		return errors.New("--vip is required: the virtual IP address whose packets to trace")
	case f.Client.IsValid() && f.Client.Addr().Is4() != f.VIP.Is4():
		return fmt.Errorf("--client %s: not the same address family as --vip %s", f.Client, f.VIP)
	case f.RealServer.IsValid() && f.RealServer.Is4() != f.VIP.Is4() && f.RealServer.Is6() != f.VIP.Is6():
		return fmt.Errorf("--rs %s: not the same address family as --vip %s", f.RealServer, f.VIP)
	case o.Count < 0:
		return fmt.Errorf("--count %d: want 0 (no limit) or more", o.Count)
	case o.Duration < 0:
		return fmt.Errorf("--duration %s: want 0 (until Ctrl-C) or a positive duration like 10s", o.Duration)
	}
	f.Protocol = strings.ToLower(f.Protocol)
	if f.Protocol != "" && !slices.Contains([]string{"tcp", "udp", "sctp"}, f.Protocol) {
		return fmt.Errorf("--proto %q: want tcp, udp or sctp", f.Protocol)
	}
	if !slices.Contains([]string{"auto", "fentry", "kprobe", "kprobe-multi"}, o.Backend) {
		return fmt.Errorf("--backend %q: want auto, fentry, kprobe or kprobe-multi", o.Backend)
	}
	if o.Hops != "ipvs" && o.Hops != "all" {
		return fmt.Errorf("--hops %q: want ipvs or all", o.Hops)
	}
	if o.Output != "text" && o.Output != "json" {
		return fmt.Errorf("--output %q: want text or json", o.Output)
	}
	if !slices.Contains([]string{"auto", "always", "never"}, o.Colour) {
		return fmt.Errorf("--colour %q: want auto, always or never", o.Colour)
	}
	if o.NetNS != "" {
		if _, err := strconv.ParseUint(o.NetNS, 10, 32); err != nil && (strings.ContainsAny(o.NetNS, "/\x00") || o.NetNS == "." || o.NetNS == "..") {
			return fmt.Errorf("--netns %q: want a name from ip netns list or an inode number like 4026531840", o.NetNS)
		}
	}
	if strings.ContainsAny(o.Interface, "/ \x00") || len(o.Interface) > 15 {
		return fmt.Errorf("--interface %q: want an interface name like eth0 (ip -br link)", o.Interface)
	}
	return nil
}

// Privileges the trace needs: CAP_BPF to load programs and maps,
// CAP_PERFMON to attach tracing programs; CAP_SYS_ADMIN covers both.
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// checkCapabilities reads CapEff from /proc/self/status.
func checkCapabilities(status string) error {
	for line := range strings.Lines(status) {
		v, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return fmt.Errorf("reading the process's capabilities (CapEff %q): %w", strings.TrimSpace(v), err)
		}
		has := func(c uint) bool { return caps&(1<<c) != 0 }
		if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
			return nil
		}
		var missing []string
		if !has(capBPF) {
			missing = append(missing, "CAP_BPF")
		}
		if !has(capPerfmon) {
			missing = append(missing, "CAP_PERFMON")
		}
		return fmt.Errorf("loading eBPF programs needs %s (or CAP_SYS_ADMIN): run lvsdiag trace as root (sudo lvsdiag trace ...)", strings.Join(missing, " and "))
	}
	return errors.New("reading the process's capabilities: no CapEff line in /proc/self/status")
}

// ipvsProtocol is the filter's protocol as IPVS names it.
func ipvsProtocol(p string) ipvs.Protocol {
	switch p {
	case "tcp":
		return ipvs.TCP
	case "udp":
		return ipvs.UDP
	case "sctp":
		return ipvs.SCTP
	}
	return 0
}

// matchServices returns the services of the table the filter can
// match, or an error saying there are none and what there is. A fwmark
// service of the VIP's family may match any packet: it counts.
// servicesShape is what packets of the matched services can pass in
// IPVS: their real servers' forwarding methods, their protocols, and
// whether replies come back through IPVS (NAT). The tracer attaches
// only to those functions, and starts sooner for it.
type servicesShape struct {
	noNAT      bool
	forwarding []probes.Forwarding // nil: any
	protocols  []string            // nil: any
}

func shapeOf(matched []ipvs.ServiceEntry) servicesShape {
	sh := servicesShape{noNAT: true}
	anyProto := false
	add := func(f probes.Forwarding) {
		if !slices.Contains(sh.forwarding, f) {
			sh.forwarding = append(sh.forwarding, f)
		}
	}
	for _, s := range matched {
		if s.IsFWMark() {
			// A fwmark service carries whatever the mark says, and only
			// it sends bypass packets (net.ipv4.vs.cache_bypass).
			anyProto = true
			add(probes.Bypass)
		} else if p := strings.ToLower(s.Protocol.String()); !slices.Contains(sh.protocols, p) {
			sh.protocols = append(sh.protocols, p)
		}
		for _, rs := range s.RealServers {
			add(probes.Forwarding(rs.Forwarding))
			if rs.Forwarding == ipvs.Masquerade {
				sh.noNAT = false
			}
		}
	}
	if anyProto {
		sh.protocols = nil
	}
	if !slices.ContainsFunc(sh.forwarding, func(f probes.Forwarding) bool { return f != probes.Bypass }) {
		sh.forwarding = nil // no real server yet: any may be added
	}
	return sh
}

func matchServices(t ipvs.ServiceTable, f probes.Filter) ([]ipvs.ServiceEntry, error) {
	var out []ipvs.ServiceEntry
	var all []string
	proto := ipvsProtocol(f.Protocol)
	for _, s := range t.Services {
		all = append(all, s.ServiceKey.String())
		switch {
		case s.IsFWMark():
			if s.Family == ipvs.FamilyOf(f.VIP) {
				out = append(out, s)
			}
		case s.Address == f.VIP && (f.Port == 0 || s.Port == 0 || s.Port == f.Port) && (proto == 0 || s.Protocol == proto):
			out = append(out, s)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if len(all) == 0 {
		return nil, errors.New("IPVS has no virtual services in this network namespace (ipvsadm -Ln lists none): run lvsdiag trace on the director, or name its namespace with --netns")
	}
	want := "--vip " + f.VIP.String()
	if f.Port != 0 {
		want += " --port " + strconv.Itoa(int(f.Port))
	}
	if f.Protocol != "" {
		want += " --proto " + f.Protocol
	}
	return nil, fmt.Errorf("no IPVS service matches %s: this host's services are %s (ipvsadm -Ln); check the address, port and protocol", want, strings.Join(all, ", "))
}

// errIPVSNotLoaded explains a missing /proc/net/ip_vs.
var errIPVSNotLoaded = errors.New("ip_vs is not loaded here (no /proc/net/ip_vs), so there is nothing to trace: run lvsdiag trace on the director, where lvsd loads it (or modprobe ip_vs)")

// destinations answers the Grouper's question from a table read at the
// start: a service's real servers and their weights.
func destinations(t ipvs.ServiceTable) func(probes.Service) ([]probes.Destination, bool) {
	return func(svc probes.Service) ([]probes.Destination, bool) {
		for _, s := range t.Services {
			if !serviceIs(s.Service, svc) {
				continue
			}
			var out []probes.Destination
			for _, rs := range s.RealServers {
				out = append(out, probes.Destination{Address: netip.AddrPortFrom(rs.Address, rs.Port), Weight: rs.Weight,
					UpperThreshold: rs.UpperThreshold, ActiveConns: rs.ActiveConns, InactiveConns: rs.InactiveConns})
			}
			return out, true
		}
		return nil, false
	}
}

func serviceIs(s ipvs.Service, p probes.Service) bool {
	if p.FWMark != 0 || s.IsFWMark() {
		return s.FWMark == p.FWMark
	}
	return s.Protocol.String() == p.Protocol && s.Address == p.Address.Addr() && s.Port == p.Address.Port()
}

// systemTracer is the checklist's diag.Tracer on this host's kernel:
// the same checks and tracer as lvsdiag trace.
type systemTracer struct {
	logger *slog.Logger
}

// Trace implements diag.Tracer.
func (s systemTracer) Trace(ctx context.Context, req diag.TraceRequest) (diag.TraceResult, error) {
	opts := traceOptions{Filter: req.Filter, Backend: "auto", Hops: "ipvs"}
	tr, err := openTrace(ctx, &opts, s.logger)
	if err != nil {
		return diag.TraceResult{}, err
	}
	// The window ends what is traced; what the probes saw within it is
	// still decoded and judged, unless the checklist's own time is up.
	window := ctx
	if req.Window > 0 {
		var cancel context.CancelFunc
		window, cancel = context.WithTimeout(ctx, req.Window)
		defer cancel()
	}
	if req.Ready != nil {
		req.Ready()
	}
	tr.Grouper.Hidden = len(tr.Source.Unseen()) > 0
	var res diag.TraceResult
	res.Summary, err = probes.Collect(window, tr.Source, probes.CollectOptions{Grouper: tr.Grouper, Count: req.Count, Abort: ctx.Done()}, func(p probes.Path) error {
		res.Paths = append(res.Paths, p)
		return nil
	})
	return res, err
}
