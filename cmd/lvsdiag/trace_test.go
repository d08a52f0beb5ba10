package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/schematest"
	"github.com/lvskit/lvskit/probes"
	"github.com/lvskit/lvskit/probes/probestest"
)

func TestTraceBadFlagsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no vip", []string{"--port", "80"}, "--vip is required"},
		{"bad vip", []string{"--vip", "10.0.0.300"}, `invalid value "10.0.0.300" for flag -vip: want an IP address`},
		{"bad port", []string{"--vip", "10.0.0.1", "--port", "99999"}, `invalid value "99999" for flag -port`},
		{"bad client", []string{"--vip", "10.0.0.1", "--client", "10.0.0/8"}, `invalid value "10.0.0/8" for flag -client: want an address like 10.77.0.2 or a prefix like 10.77.0.0/24`},
		{"client family", []string{"--vip", "10.0.0.1", "--client", "2001:db8::/32"}, "--client 2001:db8::/32: not the same address family as --vip 10.0.0.1"},
		{"bad rs", []string{"--vip", "10.0.0.1", "--rs", "rs1"}, `invalid value "rs1" for flag -rs`},
		{"rs family", []string{"--vip", "10.0.0.1", "--rs", "2001:db8::1"}, "--rs 2001:db8::1: not the same address family"},
		{"bad proto", []string{"--vip", "10.0.0.1", "--proto", "icmp"}, `--proto "icmp": want tcp, udp or sctp`},
		{"bad netns", []string{"--vip", "10.0.0.1", "--netns", "../etc"}, `--netns "../etc": want a name from ip netns list or an inode number`},
		{"bad interface", []string{"--vip", "10.0.0.1", "--interface", "eth0/1"}, `--interface "eth0/1": want an interface name`},
		{"negative count", []string{"--vip", "10.0.0.1", "--count", "-1"}, "--count -1: want 0 (no limit) or more"},
		{"bad count", []string{"--vip", "10.0.0.1", "--count", "ten"}, `invalid value "ten" for flag -count`},
		{"negative duration", []string{"--vip", "10.0.0.1", "--duration", "-5s"}, "--duration -5s: want 0 (until Ctrl-C) or a positive duration"},
		{"bad backend", []string{"--vip", "10.0.0.1", "--backend", "uprobe"}, `--backend "uprobe": want auto, fentry, kprobe or kprobe-multi`},
		{"bad output", []string{"--vip", "10.0.0.1", "--output", "markdown"}, `--output "markdown": want text or json`},
		{"bad colour", []string{"--vip", "10.0.0.1", "--colour", "pink"}, `--colour "pink"`},
		{"stray argument", []string{"--vip", "10.0.0.1", "80"}, `unexpected arguments ["80"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			opened := false
			env := traceEnv{Open: func(context.Context, *traceOptions, *slog.Logger) (*tracing, error) {
				opened = true
				return nil, errors.New("not reached")
			}, Getenv: os.Getenv}
			if code := runTraceWith(tc.args, &stdout, &stderr, env); code != 2 {
				t.Errorf("exit %d, want 2; stderr %q", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "lvsdiag trace: ") || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.want)
			}
			if stdout.Len() != 0 || opened {
				t.Errorf("stdout %q, trace opened %v", stdout.String(), opened)
			}
		})
	}
}

func TestTraceFlagsBecomeTheFilter(t *testing.T) {
	opts, err := parseTraceFlags(strings.Fields("--vip 10.77.0.100 --port 80 --client 10.77.0.0/24 --rs 10.77.0.21 --proto TCP --netns lab-d1 --interface eth0 --count 5 --duration 10s --backend kprobe --output json --colour never"), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	want := probes.Filter{VIP: netip.MustParseAddr("10.77.0.100"), Port: 80, Client: netip.MustParsePrefix("10.77.0.0/24"),
		RealServer: netip.MustParseAddr("10.77.0.21"), Protocol: "tcp"}
	if opts.Filter != want || opts.NetNS != "lab-d1" || opts.Interface != "eth0" || opts.Count != 5 ||
		opts.Duration != 10*time.Second || opts.Backend != "kprobe" || opts.Output != "json" || opts.Colour != "never" {
		t.Errorf("options %+v", opts)
	}
	opts, err = parseTraceFlags([]string{"--vip", "10.77.0.100", "--client", "10.77.0.2"}, os.Stderr)
	if err != nil || opts.Filter.Client != netip.MustParsePrefix("10.77.0.2/32") {
		t.Errorf("--client ADDR: %v %v, want a /32", opts.Filter.Client, err)
	}
}

func TestTraceHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"trace", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"Usage: lvsdiag trace --vip ADDR", "-client ADDR|PREFIX", "-backend", "CAP_BPF"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stderr.String())
		}
	}
	stdout.Reset()
	run([]string{"--help"}, &stdout, &stderr)
	if strings.Contains(stdout.String(), "not built yet") || !strings.Contains(stdout.String(), "lvsdiag trace --vip ADDR") {
		t.Errorf("lvsdiag --help:\n%s", stdout.String())
	}
}

var (
	tClient = netip.MustParseAddrPort("10.77.0.2:40000")
	tVIP    = netip.MustParseAddrPort("10.77.0.100:80")
	tRS     = netip.MustParseAddrPort("10.77.0.21:80")
)

// packet is one packet forwarded to tRS, and one dropped for want of a
// destination.
func packets() []probes.Event {
	tuple := probes.Tuple{Protocol: "TCP", Src: tClient, Dst: tVIP}
	c := &probes.Conn{Protocol: "TCP", Client: tClient, Virtual: tVIP, RealServer: tRS, Forwarding: probes.DirectRoute, State: "SYN_RECV"}
	svc := &probes.Service{Protocol: "TCP", Address: tVIP, Scheduler: "rr"}
	at := func(us int) time.Duration { return time.Second + time.Duration(us)*time.Microsecond }
	return []probes.Event{
		{SKB: 1, Tuple: tuple, TCPFlags: "SYN", Hop: probes.Hop{Func: probes.FuncReceive, At: at(0), Device: "eth0"}},
		{SKB: 1, Hop: probes.Hop{Func: probes.FuncDRXmit, At: at(9), Conn: c}},
		{SKB: 1, Hop: probes.Hop{Func: probes.FuncQueue, At: at(12), Device: "eth0"}},
		{SKB: 2, Tuple: tuple, TCPFlags: "SYN", Hop: probes.Hop{Func: probes.FuncReceive, At: at(100), Device: "eth0"}},
		{SKB: 2, Hop: probes.Hop{Func: probes.FuncSchedulerErr, At: at(104), Service: svc}},
		{SKB: 2, Hop: probes.Hop{Func: probes.FuncDrop, At: at(106), DropReason: "NETFILTER_DROP", DropLocation: "nf_hook_slow+0x8d"}},
	}
}

func fakeTrace(src *probestest.Source, seen *traceOptions) traceEnv {
	return traceEnv{Getenv: func(string) string { return "" }, Open: func(_ context.Context, o *traceOptions, _ *slog.Logger) (*tracing, error) {
		*seen = *o
		return &tracing{Source: src, Grouper: probes.GrouperOptions{
			Destinations: func(probes.Service) ([]probes.Destination, bool) {
				return []probes.Destination{{Address: tRS, Weight: 0}}, true
			}}}, nil
	}}
}

func TestTraceTextPrintsEachPacketAndTheSummary(t *testing.T) {
	src := probestest.NewSource(packets()...)
	src.UnseenHops = []string{"ip_vs_conn_new: no kprobes on this kernel"}
	var seen traceOptions
	var stdout, stderr bytes.Buffer
	code := runTraceWith([]string{"--vip", "10.77.0.100", "--port", "80", "--count", "2"}, &stdout, &stderr, fakeTrace(src, &seen))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"eth0 TCP 10.77.0.2:40000 -> 10.77.0.100:80 [SYN]",
		"ip_vs_dr_xmit      TCP 10.77.0.2:40000 -> 10.77.0.100:80 via 10.77.0.21:80 (direct route) SYN_RECV",
		"=> forwarded: IPVS sent it to 10.77.0.21:80 by direct route",
		"=> dropped: IPVS found no destination (all real servers of TCP 10.77.0.100:80 have weight 0)",
		"Summary: 2 packets traced, 1 forwarded, 1 dropped",
		"  to 10.77.0.21:80: 1",
		"events lost: 0",
		"not visible on this kernel:\n  ip_vs_conn_new: no kprobes on this kernel",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour on a pipe")
	}
	if !strings.Contains(stderr.String(), "tracing packets to 10.77.0.100 port 80; after 2 packets, Ctrl-C ends it") ||
		!strings.Contains(stderr.String(), "not visible on this kernel: ip_vs_conn_new") {
		t.Errorf("stderr %q", stderr.String())
	}
	if !src.Closed() {
		t.Error("the trace was not closed")
	}
	if seen.Filter.VIP != tVIP.Addr() || seen.Filter.Port != 80 {
		t.Errorf("the tracer got %+v", seen.Filter)
	}
}

func TestTraceJSONLinesMatchTheSchema(t *testing.T) {
	src := probestest.NewSource(packets()...)
	var seen traceOptions
	var stdout, stderr bytes.Buffer
	if code := runTraceWith([]string{"--vip", "10.77.0.100", "--output", "json", "--count", "2"}, &stdout, &stderr, fakeTrace(src, &seen)); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 2 paths and a summary:\n%s", len(lines), stdout.String())
	}
	for _, l := range lines {
		schematest.Check(t, "../../probes/trace.schema.json", []byte(l))
	}
	if !strings.Contains(lines[2], `"by_outcome":{"forwarded":1,"reply":0,"local":0,"dropped":1,"unknown":0}`) {
		t.Errorf("summary %s", lines[2])
	}
}

func TestTraceColour(t *testing.T) {
	for _, tc := range []struct {
		name     string
		flag     string
		terminal bool
		noColour string
		want     bool
	}{
		{"terminal", "auto", true, "", true},
		{"NO_COLOR", "auto", true, "1", false},
		{"pipe", "auto", false, "", false},
		{"always", "always", false, "1", true},
		{"never", "never", true, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen traceOptions
			env := fakeTrace(probestest.NewSource(packets()...), &seen)
			env.Terminal = tc.terminal
			env.Getenv = func(k string) string {
				if k == "NO_COLOR" {
					return tc.noColour
				}
				return ""
			}
			var stdout, stderr bytes.Buffer
			runTraceWith([]string{"--vip", "10.77.0.100", "--count", "1", "--colour", tc.flag}, &stdout, &stderr, env)
			if got := strings.Contains(stdout.String(), "\x1b["); got != tc.want {
				t.Errorf("colour %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTraceCouldNotOpen(t *testing.T) {
	env := traceEnv{Getenv: os.Getenv, Open: func(context.Context, *traceOptions, *slog.Logger) (*tracing, error) {
		return nil, checkCapabilities("CapEff:\t0000000000003000\n")
	}}
	var stdout, stderr bytes.Buffer
	if code := runTraceWith([]string{"--vip", "10.77.0.100"}, &stdout, &stderr, env); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if want := "lvsdiag trace: loading eBPF programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN): run lvsdiag trace as root"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

func TestTraceFailingTraceExits2(t *testing.T) {
	src := probestest.NewSource()
	src.Fail(errors.New("ring buffer: epoll wait: bad file descriptor"))
	var seen traceOptions
	var stdout, stderr bytes.Buffer
	if code := runTraceWith([]string{"--vip", "10.77.0.100"}, &stdout, &stderr, fakeTrace(src, &seen)); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "lvsdiag trace: reading the trace: ring buffer: epoll wait") {
		t.Errorf("stderr %q", stderr.String())
	}
}

func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		capEff string
		want   string // empty: allowed
	}{
		{"000001ffffffffff", ""},                                     // root
		{"000000c000000000", ""},                                     // CAP_BPF + CAP_PERFMON
		{"0000000000200000", ""},                                     // CAP_SYS_ADMIN
		{"0000008000000000", "needs CAP_PERFMON (or CAP_SYS_ADMIN)"}, // CAP_BPF only
		{"0000000000000000", "needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)"},
		{"zz", `CapEff "zz"`},
	} {
		err := checkCapabilities("Name:\tlvsdiag\nCapInh:\t0000000000000000\nCapEff:\t" + tc.capEff + "\n")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CapEff %s: %v", tc.capEff, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CapEff %s: %v, want %q", tc.capEff, err, tc.want)
		}
	}
}

const procIPVS = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A4D0064:0050 rr
  -> 0A4D0015:0050      Route   0      0          0
  -> 0A4D0016:0050      Route   0      0          1
UDP  0A4D0064:0035 wlc
  -> 0A4D0015:0035      Masq    1      0          0
`

func TestServicesMatchingTheFilter(t *testing.T) {
	table, err := ipvs.ParseServiceTable(strings.NewReader(procIPVS))
	if err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr("10.77.0.100")
	for _, tc := range []struct {
		name string
		f    probes.Filter
		want string // the services matched, or the error
	}{
		{"any port", probes.Filter{VIP: vip}, "TCP 10.77.0.100:80,UDP 10.77.0.100:53"},
		{"port", probes.Filter{VIP: vip, Port: 80}, "TCP 10.77.0.100:80"},
		{"protocol", probes.Filter{VIP: vip, Protocol: "udp"}, "UDP 10.77.0.100:53"},
		{"no such port", probes.Filter{VIP: vip, Port: 443}, "no IPVS service matches --vip 10.77.0.100 --port 443: this host's services are TCP 10.77.0.100:80, UDP 10.77.0.100:53 (ipvsadm -Ln)"},
		{"wrong protocol", probes.Filter{VIP: vip, Port: 80, Protocol: "udp"}, "no IPVS service matches --vip 10.77.0.100 --port 80 --proto udp"},
		{"other vip", probes.Filter{VIP: netip.MustParseAddr("10.77.0.101")}, "no IPVS service matches --vip 10.77.0.101"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := matchServices(table, tc.f)
			var names []string
			for _, s := range got {
				names = append(names, s.ServiceKey.String())
			}
			s := strings.Join(names, ",")
			if err != nil {
				s = err.Error()
			}
			if !strings.HasPrefix(s, tc.want) {
				t.Errorf("got %q, want %q", s, tc.want)
			}
		})
	}
	if _, err := matchServices(ipvs.ServiceTable{}, probes.Filter{VIP: vip}); err == nil || !strings.Contains(err.Error(), "IPVS has no virtual services") {
		t.Errorf("empty table: %v", err)
	}
	dests, ok := destinations(table)(probes.Service{Protocol: "TCP", Address: netip.MustParseAddrPort("10.77.0.100:80")})
	if !ok || len(dests) != 2 || dests[0].Weight != 0 || dests[1].InactiveConns != 1 {
		t.Errorf("destinations %+v %v", dests, ok)
	}
}

// The tracer attaches only to what the matched services' packets can
// reach: a trace of a direct-routing TCP service loads no NAT, tunnel or
// UDP programs.
func TestTraceAttachesWhatTheMatchedServicesUse(t *testing.T) {
	table, err := ipvs.ParseServiceTable(strings.NewReader(procIPVS + `FWM  00000007 rr
  -> 0A4D0017:0000      Tunnel  1      0          0
TCP  0A4D0065:0050 rr
`))
	if err != nil {
		t.Fatal(err)
	}
	pick := func(keys ...string) []ipvs.ServiceEntry {
		var out []ipvs.ServiceEntry
		for _, s := range table.Services {
			if slices.Contains(keys, s.ServiceKey.String()) {
				out = append(out, s)
			}
		}
		if len(out) != len(keys) {
			t.Fatalf("picked %d of %v", len(out), keys)
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		services   []string
		noNAT      bool
		forwarding []probes.Forwarding
		protocols  []string
	}{
		{"direct route", []string{"TCP 10.77.0.100:80"}, true, []probes.Forwarding{probes.DirectRoute}, []string{"tcp"}},
		{"masquerade", []string{"UDP 10.77.0.100:53"}, false, []probes.Forwarding{probes.Masquerade}, []string{"udp"}},
		{"both", []string{"TCP 10.77.0.100:80", "UDP 10.77.0.100:53"}, false, []probes.Forwarding{probes.DirectRoute, probes.Masquerade}, []string{"tcp", "udp"}},
		// Any protocol carries a mark, and only a fwmark service bypasses.
		{"fwmark", []string{"FWM 7"}, true, []probes.Forwarding{probes.Bypass, probes.Tunnel}, nil},
		// No real server yet: any method may come.
		{"no real servers", []string{"TCP 10.77.0.101:80"}, true, nil, []string{"tcp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := shapeOf(pick(tc.services...))
			if sh.noNAT != tc.noNAT || !slices.Equal(sh.forwarding, tc.forwarding) || !slices.Equal(sh.protocols, tc.protocols) {
				t.Errorf("got %+v, want noNAT %v, forwarding %v, protocols %v", sh, tc.noNAT, tc.forwarding, tc.protocols)
			}
		})
	}
}

// endingSource is a fake trace that can end by itself (probes.Ender),
// as the tracer does, and records what lvsdiag had written when it was
// closed.
type endingSource struct {
	*probestest.Source
	out     *bytes.Buffer
	closed  bool
	atClose string
}

func (s *endingSource) End() { s.Source.Fail(io.EOF) }

func (s *endingSource) Close() error {
	if !s.closed {
		s.closed, s.atClose = true, s.out.String()
	}
	return s.Source.Close()
}

// The summary is out before the probes detach, which takes seconds on
// 6.12: after Ctrl-C or --count the counts show at once.
func TestTraceSummaryBeforeDetach(t *testing.T) {
	var stdout, stderr bytes.Buffer
	src := &endingSource{Source: probestest.NewSource(packets()...), out: &stdout}
	var seen traceOptions
	env := fakeTrace(src.Source, &seen)
	open := env.Open
	env.Open = func(ctx context.Context, o *traceOptions, l *slog.Logger) (*tracing, error) {
		tr, err := open(ctx, o, l)
		if tr != nil {
			tr.Source = src
		}
		return tr, err
	}
	if code := runTraceWith([]string{"--vip", "10.77.0.100", "--count", "2"}, &stdout, &stderr, env); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !src.Closed() {
		t.Fatal("the trace was not closed")
	}
	if !strings.Contains(src.atClose, "Summary: 2 packets traced") {
		t.Errorf("the trace was closed before the summary was written; written by then:\n%s", src.atClose)
	}
}
