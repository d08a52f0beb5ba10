// Command lvsd is the lvskit director daemon: it turns a declarative config
// into IPVS rules, health-checks real servers and takes failed ones out.
//
//	lvsd --config FILE                  run the director
//	lvsd check --config FILE            validate a config, print every error
//	lvsd plan --config FILE             print the IPVS writes the config needs now
//	lvsd import-keepalived FILE         print the lvsd config of a keepalived.conf
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/lvskit/lvskit/director"
	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/config/keepalived"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/reconcile"
	"github.com/lvskit/lvskit/director/scripts"
	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/internal/buildinfo"
	"github.com/lvskit/lvskit/internal/cpuprofile"
)

const usage = `lvsd: the lvskit director daemon

Usage:
  lvsd --config FILE                  run the director (SIGHUP reloads, SIGTERM stops)
  lvsd check --config FILE            validate a config, print every error (exit 1)
  lvsd plan --config FILE             print the IPVS writes the config needs now
  lvsd import-keepalived FILE         print the lvsd config of a keepalived.conf
                                      (exit 0 same behaviour, 3 changed: lvsd help import-keepalived)
  lvsd help [import-keepalived]
  lvsd version                        print the version (also: lvsd --version)

Flags:
`

// options are lvsd's flags.
type options struct {
	config    string
	logLevel  string
	logFormat string
	modules   string
	// skipScripts leaves commands unchecked (check and plan only).
	skipScripts bool
	// configID is keepalived's -i for import-keepalived.
	configID string
	version  bool
	// cpuProfile is a file to write a CPU profile of the daemon's run
	// to (for benchmarks and bug reports).
	cpuProfile string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var o options
	fs := flag.NewFlagSet("lvsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "/etc/lvsd/lvsd.yaml", "the config `file`")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&o.cpuProfile, "cpu-profile", "", "write a CPU profile (pprof) of the daemon's run to a new `file`")
	fs.StringVar(&o.modules, "modules-dir", "", "kernel modules `dir` to check schedulers against (default /lib/modules/$(uname -r))")
	fs.BoolVar(&o.skipScripts, "skip-script-checks", false, "check, plan: do not resolve the config's commands nor check who could change them (to validate a config away from the director; the daemon always checks)")
	fs.StringVar(&o.configID, "config-id", shortHostname(), "import-keepalived: keepalived's config `id` (its -i) choosing the lines written @ID or @^ID")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	if cmd == "import-keepalived" || cmd == "help" && len(args) > 0 && args[0] == "import-keepalived" {
		if cmd == "help" || slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "--help" || a == "-help" }) {
			fmt.Fprint(stdout, importUsage)
			return 0
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.version {
		cmd = "version"
	}
	if cmd == "import-keepalived" {
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "lvsd import-keepalived: name the keepalived config: lvsd import-keepalived /etc/keepalived/keepalived.conf > /etc/lvsd/lvsd.yaml")
			return 2
		}
		return importKeepalived(fs.Arg(0), o, stdout, stderr)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lvsd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	log, err := newLogger(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "lvsd: %v\n", err)
		return 2
	}
	switch cmd {
	case "":
		if o.skipScripts {
			fmt.Fprintln(stderr, "lvsd: --skip-script-checks is for lvsd check and lvsd plan: the daemon always checks its scripts (lvsd.insecure_scripts: true accepts the risk)")
			return 2
		}
		return daemon(o, log, stderr)
	case "check":
		return check(o, stdout, stderr)
	case "plan":
		return plan(o, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, buildinfo.String("lvsd"))
		return 0
	case "help":
		fs.SetOutput(stdout)
		fmt.Fprint(stdout, usage)
		fs.PrintDefaults()
		return 0
	}
	fmt.Fprintf(stderr, "lvsd: unknown command %q (want check, plan, import-keepalived or version)\n", cmd)
	return 2
}

func newLogger(o options, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", o.logFormat)
}

// loadOptions checks every command against this system's files and
// users, and schedulers against the running kernel's modules when they
// can be listed (not on a build host without them).
func loadOptions(o options, stderr io.Writer) config.LoadOptions {
	dir := o.modules
	if dir == "" {
		if rel, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
			dir = filepath.Join("/lib/modules", strings.TrimSpace(string(rel)))
		}
	}
	opts := config.LoadOptions{Scripts: scripts.OS()}
	if o.skipScripts {
		opts.Scripts = nil
	}
	caps, err := config.KernelCapabilities(dir)
	if err != nil {
		fmt.Fprintf(stderr, "lvsd: not checking schedulers against the kernel: %v\n", err)
		return opts
	}
	opts.Kernel = &caps
	return opts
}

const importUsage = `lvsd import-keepalived FILE > lvsd.yaml

Prints the lvsd config that does what the keepalived.conf FILE (and the
files it includes) does: its virtual servers (address:port, fwmark and
virtual_server_group), real servers and checks (TCP_CHECK, HTTP_GET,
SSL_GET, MISC_CHECK, DNS_CHECK), VRRP instances, track scripts, sync
groups, the connection sync daemon and lvs_timeouts. keepalived's
defaults are written out where lvsd's differ (NAT forwarding, delay_loop
60s, connect_timeout 5s, one retry, ...), so the result behaves as
keepalived did.

What lvsd does not carry over as it is goes to stderr, each with the
keepalived file:line, ranked: services, real servers, checks, virtual
addresses, VRRP and scripts first (these change behaviour), then what
changes nothing lvsd does with traffic or the addresses (router_id,
e-mail alerts, ...). Each is also a comment in the output next to where
it belonged.

Exit status:
  0  imported: lvsd does with traffic and the virtual addresses what
     keepalived did (only cosmetic settings left out); check it on the
     director with lvsd check --config FILE
  1  not imported: the keepalived.conf cannot be read (file:line says
     where), or lvsd would refuse the result (each refusal names the
     keepalived line it comes from)
  2  usage error
  3  imported, but behaviour changes: services, real servers, checks,
     virtual addresses, VRRP settings or scripts were left out or
     changed (listed first on stderr); the config is printed and loads,
     fix the listed lines before using it

Flags: --skip-script-checks does not resolve the scripts' commands nor
check who could change them (for an import away from the director);
--config-id ID imports the conditional lines (@ID ..., @^ID ...) as
keepalived -i ID reads them (default: this host's short name, as
keepalived's).
`

// Exit statuses of import-keepalived.
const (
	importFaithful = 0
	importFailed   = 1
	importChanged  = 3
)

// importKeepalived prints the lvsd config of a keepalived.conf, what it
// did not carry over on stderr (behaviour changes first), and exits 0
// only when the result behaves as keepalived did.
func importKeepalived(path string, o options, stdout, stderr io.Writer) int {
	imp, err := keepalived.Import(path, keepalived.Options{ConfigID: o.configID})
	if err != nil {
		fmt.Fprintf(stderr, "lvsd import-keepalived: %v\n", err)
		return importFailed
	}
	stdout.Write(imp.YAML)
	changed := 0
	for _, f := range imp.Ranked() {
		label := "changes behaviour"
		if f.Cosmetic {
			label = "cosmetic"
		} else {
			changed++
		}
		fmt.Fprintf(stderr, "lvsd import-keepalived: %s (%s, %s)\n", f, f.Kind, label)
	}
	// The scripts are reported, not refused: the import may run away
	// from the director, and fixing ownership is the next step anyway.
	lopts := loadOptions(o, io.Discard)
	lopts.AuditScripts = !o.skipScripts
	cfg, err := config.Parse(importedName, imp.YAML, lopts)
	if err != nil {
		fmt.Fprintf(stderr, "lvsd import-keepalived: lvsd would refuse this config; fix these in %s before using it:\n%s\n", path, fromKeepalived(err.Error(), imp))
		return importFailed
	}
	for _, s := range cfg.Scripts {
		if s.Problem != "" {
			fmt.Fprintf(stderr, "lvsd import-keepalived: %s: %s: lvsd would refuse it on this host: %s\n", fromKeepalived(s.At, imp), s.What, s.Problem)
		}
	}
	if changed > 0 {
		fmt.Fprintf(stderr, "lvsd import-keepalived: %d settings change behaviour (listed first), %d cosmetic ones left out: exit %d\n", changed, len(imp.Findings)-changed, importChanged)
		return importChanged
	}
	fmt.Fprintf(stderr, "lvsd import-keepalived: same behaviour as keepalived (%d cosmetic settings left out); check it on the director with lvsd check --config FILE\n", len(imp.Findings))
	return importFaithful
}

// shortHostname is keepalived's default config id: the host name up to
// its first dot.
func shortHostname() string {
	h, _ := os.Hostname()
	h, _, _ = strings.Cut(h, ".")
	return h
}

// importedName is what lvsd's own errors call the imported config.
const importedName = "imported.yaml"

var importedLine = regexp.MustCompile(regexp.QuoteMeta(importedName) + `:(\d+)(:\d+)?`)

// fromKeepalived rewrites the imported.yaml:LINE:COL positions of lvsd's
// errors into the keepalived file:line the setting came from.
func fromKeepalived(msg string, imp *keepalived.Result) string {
	return importedLine.ReplaceAllStringFunc(msg, func(m string) string {
		line, _ := strconv.Atoi(importedLine.FindStringSubmatch(m)[1])
		if at := imp.Origin(line); at != "" {
			return at + " (lvsd config line " + strconv.Itoa(line) + ")"
		}
		return "lvsd config line " + strconv.Itoa(line)
	})
}

func check(o options, stdout, stderr io.Writer) int {
	cfg, err := config.Load(o.config, loadOptions(o, stderr))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if len(cfg.VirtualServices) == 0 && len(cfg.VRRP.Instances) == 0 {
		// Valid (the packaged default config is like this: lvsd serves
		// its status and metrics and installs nothing), but rarely what
		// was meant: say so, without failing the unit's ExecStartPre.
		fmt.Fprintf(stderr, "%s: warning: nothing to check: no virtual services and no vrrp instances: lvsd will install nothing; write virtual_services or vrrp.instances (lvsd import-keepalived prints them from a keepalived.conf)\n", o.config)
	}
	rs, keys := 0, 0
	for _, s := range cfg.VirtualServices {
		rs += len(s.RealServers)
		keys += len(s.Keys())
	}
	groups := ""
	if keys != len(cfg.VirtualServices) {
		groups = fmt.Sprintf(" (%d IPVS services: groups have one per entry)", keys)
	}
	vrrpInstances := ""
	if n := len(cfg.VRRP.Instances); n > 0 {
		vrrpInstances = fmt.Sprintf(", %d vrrp instances", n)
	}
	nwarn := len(cfg.ScriptWarnings)
	for _, w := range cfg.ScriptWarnings {
		fmt.Fprintf(stderr, "%s: warning: %s\n", o.config, w)
	}
	if w := cfg.RootScriptsWarning; w != "" {
		nwarn++
		fmt.Fprintf(stderr, "%s: warning: %s\n", o.config, w)
	}
	for _, w := range cfg.Warnings() {
		nwarn++
		fmt.Fprintf(stderr, "%s:%d:%d: warning: %s\n", w.File, w.Line, w.Column, w.Message)
	}
	warnings := ""
	if nwarn > 0 {
		warnings = fmt.Sprintf(" (%d warnings)", nwarn)
	}
	fmt.Fprintf(stdout, "%s: ok: %d virtual services%s, %d real servers%s%s\n", o.config, len(cfg.VirtualServices), groups, rs, vrrpInstances, warnings)
	return 0
}

func openIPVS(cfg *config.Config, log *slog.Logger) (ipvs.Client, error) {
	if err := modprobe(cfg.Modules()); err != nil {
		log.Warn("loading kernel modules", "err", err)
	}
	return ipvs.New(ipvs.Options{})
}

func plan(o options, stdout, stderr io.Writer) int {
	cfg, err := config.Load(o.config, loadOptions(o, stderr))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	c, err := ipvs.New(ipvs.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "lvsd: %v\n", err)
		return 2
	}
	defer c.Close()
	rec, err := reconcile.NewReconciler(reconcile.ReconcilerOptions{Client: c, StateDir: cfg.LVSD.StateDir})
	if err != nil {
		fmt.Fprintf(stderr, "lvsd: %v\n", err)
		return 2
	}
	if err := rec.ReadKernel(); err != nil {
		fmt.Fprintf(stderr, "lvsd: %v\n", err)
		return 2
	}
	p := rec.Plan(reconcile.DesiredTable(cfg))
	for _, op := range p.Ops {
		fmt.Fprintln(stdout, op)
	}
	for _, k := range p.Unowned {
		fmt.Fprintf(stdout, "# not owned, left alone: %v\n", k)
	}
	fmt.Fprintf(stdout, "# %d writes (real servers taken as up: health checks decide after start)\n", len(p.Ops))
	return 0
}

func daemon(o options, log *slog.Logger, stderr io.Writer) int {
	// No program lvsd runs may inherit a descriptor lvsd inherited.
	if err := scripts.CloseInheritedOnExec(); err != nil {
		log.Warn("marking inherited files close-on-exec", "err", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return runDaemon(ctx, daemonSystem{openIPVS: openIPVS, loadModules: modprobe, reload: hup}, o, log, stderr)
}

// daemonSystem is what runDaemon takes from the machine: the kernel's IPVS
// and modules, and the reload signal. Tests pass a fake kernel and their
// own channel.
type daemonSystem struct {
	openIPVS    func(*config.Config, *slog.Logger) (ipvs.Client, error)
	loadModules func([]string) error
	reload      <-chan os.Signal
}

// runDaemon is lvsd until ctx ends. It returns only after every goroutine
// it started (the listeners, the reload loop) has stopped.
func runDaemon(ctx context.Context, sys daemonSystem, o options, log *slog.Logger, stderr io.Writer) int {
	lopts := loadOptions(o, stderr)
	cfg, err := config.Load(o.config, lopts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, w := range cfg.Warnings() {
		log.Warn(w.Message, "at", fmt.Sprintf("%s:%d:%d", w.File, w.Line, w.Column))
	}
	c, err := openKernel(sys, cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "lvsd: %v\n", err)
		return 2
	}
	defer c.Close()
	metrics, err := director.NewMetrics(director.MetricsOptions{
		Logger:    log,
		Version:   buildinfo.Version(),
		GoVersion: buildinfo.GoVersion(),
	})
	if err != nil {
		fmt.Fprintf(stderr, "lvsd: %v\n", err)
		return 2
	}
	d, err := director.NewDaemon(director.DaemonOptions{
		ConfigPath:  o.config,
		Config:      cfg, // read once: the kernel was opened for this one
		Load:        lopts,
		Client:      c,
		Logger:      log,
		LoadModules: sys.loadModules,
		WriteSysctl: writeSysctl,
		RunCommand:  runCommand(log),
		Notify:      sdNotify,
		Metrics:     metrics,
		VRRP:        vrrpOptions(),
	})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if o.cpuProfile != "" {
		stopProfile, err := cpuprofile.Start(o.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "lvsd: --cpu-profile: %v\n", err)
			return 2
		}
		defer func() {
			if err := stopProfile(); err != nil {
				fmt.Fprintf(stderr, "lvsd: --cpu-profile: %v\n", err)
			}
		}()
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	// The listeners are opened before the first write so that a taken
	// port fails the start, not a later scrape; a reload does not move
	// them.
	if err := serveAPIs(ctx, &wg, cfg, d, metrics, log); err != nil {
		fmt.Fprintf(stderr, "lvsd: %v\n", err)
		return 2
	}
	wg.Go(func() { followReloads(ctx, sys.reload, d, log) })
	if err := d.Run(ctx); err != nil {
		log.Error("lvsd stopped", "err", err)
		return 1
	}
	return 0
}

// openKernel opens IPVS; without it, a config that needs nothing of it
// (VRRP only) runs on ipvs.Absent.
func openKernel(sys daemonSystem, cfg *config.Config, log *slog.Logger) (ipvs.Client, error) {
	c, err := sys.openIPVS(cfg, log)
	if errors.Is(err, ipvs.ErrIPVSUnavailable) && !cfg.NeedsIPVS() {
		// A VRRP-only director, like keepalived with vrrp_instance
		// blocks alone: nothing to install, so no ip_vs needed.
		log.Warn("running VRRP only: "+err.Error(), "reason", "the config has no virtual services and no ipvs settings")
		return ipvs.Absent(err), nil
	}
	return c, err
}

// serveAPIs opens the status API's and the metrics' listeners and serves
// each on a goroutine of wg until ctx ends. A listener that cannot be
// opened is an error naming it; those opened before are closed by their
// goroutines when ctx ends.
func serveAPIs(ctx context.Context, wg *sync.WaitGroup, cfg *config.Config, d *director.Daemon, metrics *director.Metrics, log *slog.Logger) error {
	for _, srv := range []struct {
		name    string
		addr    config.ListenAddress
		handler func() http.Handler
	}{
		{"status API", cfg.LVSD.StatusListen, func() http.Handler {
			return statusapi.NewAPIHandler(cfg.LVSD.StatusListen.Network, versioned(d.EncodedStatus), d)
		}},
		{"metrics", cfg.LVSD.MetricsListen, metrics.Handler},
	} {
		if srv.addr.IsZero() {
			continue
		}
		ln, err := statusapi.Listen(srv.addr.Network, srv.addr.Address)
		if err != nil {
			return fmt.Errorf("%s on %v: %w", srv.name, srv.addr, err)
		}
		log.Info("serving "+srv.name, "listen", srv.addr.String())
		name, h := srv.name, srv.handler()
		wg.Go(func() {
			if err := statusapi.Serve(ctx, ln, h, log); err != nil {
				log.Error("stopped serving "+name, "err", err)
			}
		})
	}
	return nil
}

// followReloads reloads the daemon's config on each signal (SIGHUP) until
// ctx ends.
func followReloads(ctx context.Context, signals <-chan os.Signal, d *director.Daemon, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-signals:
			if err := d.Reload(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("reload rejected", "err", err)
			}
		}
	}
}

// versioned stamps the build's version on every status the API serves.
func versioned(status func() (statusapi.Encoded, error)) func() (statusapi.Encoded, error) {
	return func() (statusapi.Encoded, error) {
		e, err := status()
		e.Status.Version = buildinfo.Version()
		return e, err
	}
}
