package probes

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
)

// Backend is how the tracer attaches to kernel functions.
type Backend string

// The backends. Tracepoints use tp_btf, or raw_tp where BTF tracing is
// refused, whatever the backend.
const (
	// BackendAuto picks per function: fentry/fexit where the kernel
	// allows it, else kprobe/kretprobe, else kprobe-multi.
	BackendAuto Backend = "auto"
	// BackendFentry: BPF trampolines (fentry/fexit).
	BackendFentry Backend = "fentry"
	// BackendKprobe: kprobe/kretprobe, one per function.
	BackendKprobe Backend = "kprobe"
	// BackendKprobeMulti: kprobe-multi links (fprobe; Linux 5.18+,
	// CONFIG_FPROBE).
	BackendKprobeMulti Backend = "kprobe-multi"
)

// Hops chooses which kernel functions a trace reports.
type Hops string

const (
	// HopsIPVS: IPVS's functions, and the receive, queue and drop
	// tracepoints. IPVS's netfilter hooks stand where the stack's input,
	// forward and output stations are, so a director's packet shows
	// every decision; each further function would cost every packet in
	// every namespace one more probe. The default.
	HopsIPVS Hops = "ipvs"
	// HopsAll adds the stack's functions: ip_forward, ip_local_deliver,
	// ip_local_out and ip_output (and IPv6's), for packets that never
	// reach IPVS's hooks.
	HopsAll Hops = "all"
)

// Options configures a Tracer.
type Options struct {
	// Filter selects the packets to trace.
	Filter Filter
	// Backend forces one way of attaching to functions; empty means
	// BackendAuto.
	Backend Backend
	// Hops chooses the functions traced; empty means HopsIPVS.
	Hops Hops
	// NoNAT says that no service the filter can match masquerades (the
	// caller read the kernel's table): replies never pass IPVS, so
	// ip_vs_out_hook and ip_vs_conn_out_get, which every packet passes
	// and only NAT replies need, are not attached. A masquerading real
	// server added during the trace shows its requests, not its replies.
	NoNAT bool
	// Forwarding, when set, lists the forwarding methods of the real
	// servers of the services the filter can match (the caller read the
	// kernel's table): the transmitters of other methods, which no traced
	// packet reaches, are not attached, and the trace starts sooner. A
	// real server of another method added during the trace shows no
	// transmit hop.
	Forwarding []Forwarding
	// Protocols, when set, lists the protocols ("tcp", "udp", "sctp") of
	// the services the filter can match: the other protocols' scheduling
	// entries are not attached.
	Protocols []string
	// Logger gets a line per target attached or skipped; nil discards.
	Logger *slog.Logger
	// WithoutIPVS lets Open trace the generic hops when the ip_vs module
	// is not loaded (the IPVS hops are then listed in Unseen); without
	// it Open returns ErrIPVSNotLoaded.
	WithoutIPVS bool
	// Record, when set, receives every raw ring buffer record as read
	// (the format is in records.go), to keep real events as test fixtures.
	Record io.Writer
}

// Attachment is one target the tracer attached to, and how.
type Attachment struct {
	// Target is the kernel function or tracepoint.
	Target string
	// Backend is "fentry", "kprobe", "kprobe-multi", "tp_btf" or
	// "raw_tp".
	Backend string
}

var (
	// ErrPermission: loading BPF programs needs CAP_BPF and CAP_PERFMON
	// (or CAP_SYS_ADMIN, as root has).
	ErrPermission = errors.New("tracing needs CAP_BPF and CAP_PERFMON (run as root)")
	// ErrIPVSNotLoaded: the ip_vs module is not loaded, so there is no
	// IPVS to trace.
	ErrIPVSNotLoaded = errors.New("the ip_vs module is not loaded (no IPVS service was ever added; modprobe ip_vs)")
	// ErrClosed: Read was called on, or unblocked by, a closed Tracer.
	ErrClosed = errors.New("tracer closed")
	// ErrUnsupported: tracing is implemented for Linux on amd64 only.
	ErrUnsupported = errors.New("tracing is implemented for linux/amd64 only")
)

// protocolNumbers are the IP protocol numbers of IPVS's protocols.
var protocolNumbers = map[string]uint8{"tcp": 6, "udp": 17, "sctp": 132}

// validShape checks Forwarding and Protocols.
func (o Options) validShape() error {
	for _, f := range o.Forwarding {
		if f > Bypass {
			return fmt.Errorf("forwarding method %v: want Masq, Local, Tunnel, Route or Bypass", f)
		}
	}
	for _, p := range o.Protocols {
		if _, ok := protocolNumbers[strings.ToLower(p)]; !ok {
			return fmt.Errorf("protocol %q: want tcp, udp or sctp", p)
		}
	}
	return nil
}

// mayPass says whether a packet of the services Forwarding and
// Protocols describe can reach tg.
func (o Options) mayPass(tg target) bool {
	if tg.xmit && len(o.Forwarding) > 0 && !slices.Contains(o.Forwarding, tg.fwd) {
		return false
	}
	if tg.proto != 0 && len(o.Protocols) > 0 && !slices.ContainsFunc(o.Protocols, func(p string) bool {
		return protocolNumbers[strings.ToLower(p)] == tg.proto
	}) {
		return false
	}
	return true
}

func (h Hops) valid() bool {
	return h == "" || h == HopsIPVS || h == HopsAll
}

func (b Backend) valid() bool {
	switch b {
	case "", BackendAuto, BackendFentry, BackendKprobe, BackendKprobeMulti:
		return true
	}
	return false
}
