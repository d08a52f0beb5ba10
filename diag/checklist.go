package diag

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"
)

// Mode is which checklist Run runs.
type Mode string

const (
	// ModeFull is `lvsdiag --vip V`: checks 1-8 (4 only when this host
	// is a real server of the VIP), and 9 with --trace.
	ModeFull Mode = "full"
	// ModeRealServer is `lvsdiag rs --vip V`, run on a real server:
	// check 4.
	ModeRealServer Mode = "rs"
)

// Options say what to diagnose.
type Options struct {
	Mode Mode
	// VIP is the virtual address; Port the virtual port (0: any).
	VIP  netip.Addr
	Port uint16
	// Host is the site's name, sent as the Host header and TLS server
	// name to each real server; empty means the VIP.
	Host string
	// Path is the URL path the real servers are asked for ("/").
	Path string
	// Probe is how real servers are probed; auto picks https for 443
	// and 8443, http for 80 and 8080, a TCP connect otherwise.
	Probe ProbeKind
	// Interface is the link to the VIP's segment; empty means the one
	// the route to the VIP (or the VIP itself) is on.
	Interface string
	// Timeout bounds the whole run; Listen is how long the link is
	// watched for VRRP adverts and ARP (at most half the timeout).
	Timeout time.Duration
	Listen  time.Duration
	// PingCount is the number of echo requests per address.
	PingCount int
	// Trace adds check 9: trace the packets to VIP:port through this
	// host's IPVS (a director) for the listen window, while lvsdiag's
	// own connection (and any client's) passes.
	Trace bool
}

// Defaults of Options.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultListen    = 2500 * time.Millisecond
	DefaultPingCount = 3
)

func (o Options) withDefaults() Options {
	if o.Mode == "" {
		o.Mode = ModeFull
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if o.Probe == "" {
		o.Probe = ProbeAuto
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Listen <= 0 {
		o.Listen = DefaultListen
	}
	o.Listen = min(o.Listen, o.Timeout/2)
	if o.PingCount <= 0 {
		o.PingCount = DefaultPingCount
	}
	return o
}

// Validate rejects options Run cannot work with.
func (o Options) Validate() error {
	if !o.VIP.IsValid() {
		return errors.New("--vip is required: the virtual IP address to diagnose")
	}
	if o.Mode != "" && o.Mode != ModeFull && o.Mode != ModeRealServer {
		return fmt.Errorf("unknown mode %q", o.Mode)
	}
	switch o.Probe {
	case "", ProbeAuto, ProbeHTTP, ProbeHTTPS, ProbeTCP:
	default:
		return fmt.Errorf("--probe %q: want auto, http, https or tcp", o.Probe)
	}
	return nil
}

// CheckID names a check, stable for runbooks.
type CheckID string

// The checks, numbered as in the on-call checklist.
const (
	CheckReachability CheckID = "reachability"
	CheckDirector     CheckID = "director"
	CheckRealServers  CheckID = "real-servers"
	CheckRealServer   CheckID = "real-server-config"
	CheckARP          CheckID = "arp"
	CheckFailover     CheckID = "failover"
	CheckVRRP         CheckID = "vrrp"
	CheckConnections  CheckID = "connections"
	CheckPacketPath   CheckID = "packet-path"
)

// checkDef is one check of the list.
type checkDef struct {
	Number int
	ID     CheckID
	Title  string
	run    func(ctx context.Context, r *run) outcome
}

var checks = []checkDef{
	{1, CheckReachability, "Reachability (ICMP)", checkReachability},
	{2, CheckDirector, "Director", checkDirector},
	{3, CheckRealServers, "Each real server, as if pinned in /etc/hosts", checkRealServers},
	{4, CheckRealServer, "Real server configuration (run on a real server)", checkRealServerConfig},
	{5, CheckARP, "ARP for the VIP", checkARP},
	{6, CheckFailover, "After failover", checkFailover},
	{7, CheckVRRP, "VRRP on the segment", checkVRRP},
	{8, CheckConnections, "Connection table", checkConnections},
	{9, CheckPacketPath, "Packet path (eBPF trace through IPVS)", checkTrace},
}

// Status is how a check ended.
type Status string

// Check statuses.
const (
	// StatusOK: it ran and found nothing.
	StatusOK Status = "ok"
	// StatusFindings: it ran and found something.
	StatusFindings Status = "findings"
	// StatusCouldNotRun: it could not run here (Reason says why).
	StatusCouldNotRun Status = "could-not-run"
	// StatusNotApplicable: it does not apply (Reason says why).
	StatusNotApplicable Status = "not-applicable"
)

// CheckResult is one check's outcome.
type CheckResult struct {
	Number int
	ID     CheckID
	Title  string
	Status Status
	// Reason says why the check could not run or does not apply.
	Reason string
	// Notes are what was seen, one fact a line, findings or not.
	Notes    []string
	Findings []Finding
	Duration time.Duration
}

// Report is a whole run.
type Report struct {
	Mode      Mode
	VIP       netip.Addr
	Port      uint16
	Host      string
	Interface string
	Start     time.Time
	Duration  time.Duration
	Checks    []CheckResult
}

// Findings returns every finding, most severe first.
func (r *Report) Findings() []Finding {
	var fs []Finding
	for _, c := range r.Checks {
		fs = append(fs, c.Findings...)
	}
	SortFindings(fs)
	return fs
}

// ExitCode is 1 when a finding is at least failOn, else 2 when no check
// could run at all, else 0.
func (r *Report) ExitCode(failOn Severity) int {
	for _, f := range r.Findings() {
		if f.Severity >= failOn {
			return ExitFindings
		}
	}
	ran := false
	for _, c := range r.Checks {
		if c.Status == StatusOK || c.Status == StatusFindings {
			ran = true
		}
	}
	if !ran {
		return ExitCouldNotRun
	}
	return ExitClean
}

// outcome is what a check function returns.
type outcome struct {
	status   Status // empty: ok or findings
	reason   string
	notes    []string
	findings []Finding
}

func (o *outcome) note(format string, args ...any) {
	o.notes = append(o.notes, fmt.Sprintf(format, args...))
}

func (o *outcome) add(f Finding) { o.findings = append(o.findings, f) }

func couldNotRun(format string, args ...any) outcome {
	return outcome{status: StatusCouldNotRun, reason: fmt.Sprintf(format, args...)}
}

func notApplicable(format string, args ...any) outcome {
	return outcome{status: StatusNotApplicable, reason: fmt.Sprintf(format, args...)}
}

// Run runs the checklist: every check concurrently under one deadline
// (opts.Timeout). A check that cannot run says why; the others still
// run.
func Run(ctx context.Context, env *Env, opts Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	r := &run{env: env, opts: opts, start: env.now()}
	r.iface = r.findInterface(ctx)

	var defs []checkDef
	for _, c := range checks {
		switch {
		case opts.Mode == ModeRealServer && c.ID == CheckRealServer:
			defs = append(defs, c)
		case opts.Mode == ModeFull && c.ID == CheckRealServer:
			// In the full run check 4 applies only where the VIP is on lo.
			c.run = checkRealServerHere
			defs = append(defs, c)
		case opts.Mode == ModeFull && c.ID == CheckPacketPath:
			if opts.Trace {
				defs = append(defs, c)
			}
		case opts.Mode == ModeFull:
			defs = append(defs, c)
		}
	}
	results := make([]CheckResult, len(defs))
	var wg sync.WaitGroup
	for i, c := range defs {
		wg.Go(func() { results[i] = r.runCheck(ctx, c) })
	}
	wg.Wait()
	return &Report{
		Mode: opts.Mode, VIP: opts.VIP, Port: opts.Port, Host: opts.host(), Interface: r.iface,
		Start: r.start, Duration: env.now().Sub(r.start), Checks: results,
	}, nil
}

func (o Options) host() string {
	if o.Host != "" {
		return o.Host
	}
	return o.VIP.String()
}

// runCheck runs one check, turning a panic into "could not run".
func (r *run) runCheck(ctx context.Context, c checkDef) (res CheckResult) {
	start := r.env.now()
	res = CheckResult{Number: c.Number, ID: c.ID, Title: c.Title}
	defer func() {
		if v := recover(); v != nil {
			r.env.logger().Error("check panicked", "check", c.ID, "panic", v, "stack", string(debug.Stack()))
			res.Status, res.Reason = StatusCouldNotRun, fmt.Sprintf("internal error: %v", v)
		}
		res.Duration = r.env.now().Sub(start)
	}()
	o := c.run(ctx, r)
	res.Notes, res.Findings, res.Reason = o.notes, o.findings, o.reason
	switch {
	case o.status != "":
		res.Status = o.status
	case len(o.findings) > 0:
		res.Status = StatusFindings
	default:
		res.Status = StatusOK
	}
	if ctx.Err() != nil && res.Status == StatusOK && len(res.Notes) == 0 {
		res.Status, res.Reason = StatusCouldNotRun, fmt.Sprintf("ran out of time (--timeout %s)", r.opts.Timeout)
	}
	SortFindings(res.Findings)
	r.env.logger().Debug("check done", "check", c.ID, "status", res.Status, "findings", len(res.Findings))
	return res
}

// run is the state one Run shares between its checks: facts gathered
// once (the director's view, the VRRP census, the ARP capture) and
// waited for by every check that needs them.
type run struct {
	env   *Env
	opts  Options
	start time.Time
	iface string

	linksOnce sync.Once
	links     []Link
	linksErr  error

	directorOnce sync.Once
	director     *directorView

	censusOnce sync.Once
	census     *VRRPCensus
	censusErr  error

	arpOnce sync.Once
	arp     ARPCapture
	arpErr  error
}
