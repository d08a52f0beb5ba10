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
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"

	"github.com/lvskit/lvskit/director"
	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/scripts"
	"github.com/lvskit/lvskit/internal/buildinfo"
)

const usage = `lvsd: the lvskit director daemon

Usage:
  lvsd --config FILE                  run the director (SIGHUP reloads, SIGTERM stops)
  lvsd check --config FILE            validate a config, print every error (exit 1)
  lvsd plan --config FILE             print the IPVS writes the config needs now
  lvsd import-keepalived FILE         print the lvsd config of a keepalived.conf
                                      (what cannot be imported: on stderr and as comments)
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
	version     bool
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
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
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
		fs.Usage()
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

// importKeepalived prints the lvsd config of a keepalived.conf, the
// settings it could not import on stderr, and fails (exit 1) when lvsd
// would refuse the result, saying why.
func importKeepalived(path string, o options, stdout, stderr io.Writer) int {
	imp, err := config.ImportKeepalived(path, config.ImportOptions{})
	if err != nil {
		fmt.Fprintf(stderr, "lvsd import-keepalived: %v\n", err)
		return 1
	}
	stdout.Write(imp.YAML)
	for _, w := range imp.Warnings {
		fmt.Fprintf(stderr, "lvsd import-keepalived: %s\n", w)
	}
	// The scripts are reported, not refused: the import may run away
	// from the director, and fixing ownership is the next step anyway.
	lopts := loadOptions(o, io.Discard)
	lopts.AuditScripts = true
	cfg, err := config.Parse("imported.yaml", imp.YAML, lopts)
	if err != nil {
		fmt.Fprintf(stderr, "lvsd import-keepalived: lvsd would refuse this config; fix these before using it:\n%v\n", err)
		return 1
	}
	for _, s := range cfg.Scripts {
		if s.Problem != "" {
			fmt.Fprintf(stderr, "lvsd import-keepalived: %s: %s: lvsd would refuse it on this host: %s\n", s.At, s.What, s.Problem)
		}
	}
	fmt.Fprintf(stderr, "lvsd import-keepalived: %d settings not imported; the config loads: check it with lvsd check --config FILE\n", len(imp.Warnings))
	return 0
}

func check(o options, stdout, stderr io.Writer) int {
	cfg, err := config.Load(o.config, loadOptions(o, stderr))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	rs := 0
	for _, s := range cfg.VirtualServices {
		rs += len(s.RealServers)
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
	fmt.Fprintf(stdout, "%s: ok: %d virtual services, %d real servers%s%s\n", o.config, len(cfg.VirtualServices), rs, vrrpInstances, warnings)
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
	rec, err := director.NewReconciler(director.ReconcilerOptions{Client: c, StateDir: cfg.LVSD.StateDir})
	if err != nil {
		fmt.Fprintf(stderr, "lvsd: %v\n", err)
		return 2
	}
	if err := rec.ReadKernel(); err != nil {
		fmt.Fprintf(stderr, "lvsd: %v\n", err)
		return 2
	}
	p := rec.Plan(director.DesiredTable(cfg))
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
	c, err := sys.openIPVS(cfg, log)
	switch {
	case errors.Is(err, ipvs.ErrIPVSUnavailable) && !cfg.NeedsIPVS():
		// A VRRP-only director, like keepalived with vrrp_instance
		// blocks alone: nothing to install, so no ip_vs needed.
		log.Warn("running VRRP only: "+err.Error(), "reason", "the config has no virtual services and no ipvs settings")
		c = ipvs.Absent(err)
	case err != nil:
		fmt.Fprintf(stderr, "lvsd: %v\n", err)
		return 2
	}
	defer c.Close()
	var d *director.Daemon
	metrics, err := director.NewMetrics(director.MetricsOptions{
		Logger:          log,
		ReconcilerStats: func() director.Stats { return d.Reconciler().Stats() },
		Version:         buildinfo.Version(),
		GoVersion:       buildinfo.GoVersion(),
	})
	if err != nil {
		fmt.Fprintf(stderr, "lvsd: %v\n", err)
		return 2
	}
	d, err = director.NewDaemon(director.DaemonOptions{
		ConfigPath:  o.config,
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
		stopProfile, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "lvsd: --cpu-profile: %v\n", err)
			return 2
		}
		defer stopProfile()
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
	for _, srv := range []struct {
		name    string
		addr    config.ListenAddress
		handler func() http.Handler
	}{
		{"status API", cfg.LVSD.StatusListen, func() http.Handler { return director.NewStatusHandler(versioned(d.Status)) }},
		{"metrics", cfg.LVSD.MetricsListen, metrics.Handler},
	} {
		if srv.addr.IsZero() {
			continue
		}
		ln, err := director.Listen(srv.addr)
		if err != nil {
			fmt.Fprintf(stderr, "lvsd: %s on %v: %v\n", srv.name, srv.addr, err)
			return 2
		}
		log.Info("serving "+srv.name, "listen", srv.addr.String())
		name, h := srv.name, srv.handler()
		wg.Go(func() {
			if err := director.Serve(ctx, ln, h, log); err != nil {
				log.Error("stopped serving "+name, "err", err)
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-sys.reload:
				if err := d.Reload(ctx); err != nil && !errors.Is(err, context.Canceled) {
					log.Error("reload rejected", "err", err)
				}
			}
		}
	})
	if err := d.Run(ctx); err != nil {
		log.Error("lvsd stopped", "err", err)
		return 1
	}
	return 0
}

// versioned stamps the build's version on every status the API serves.
func versioned(status func() director.Status) func() director.Status {
	return func() director.Status {
		st := status()
		st.Version = buildinfo.Version()
		return st
	}
}

// startCPUProfile profiles the process into path, a new file (an
// existing file or symlink there is refused) readable by its owner only.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting CPU profile into %s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
