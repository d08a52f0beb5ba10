package probes

// fnID numbers the functions and tracepoints the BPF programs report
// (enum fn_id in bpf/trace.c; a test checks the two agree).
type fnID uint16

const (
	fnNone fnID = iota
	fnNetifReceiveSKB
	fnNetDevQueue
	fnKfreeSKB
	fnIPForward
	fnIPLocalDeliver
	fnIPOutput
	fnIPLocalOut
	fnIP6Forward
	fnIP6Input
	fnIP6Output
	fnIP6LocalOut
	fnIPVSInHook
	fnIPVSOutHook
	fnIPVSForwardICMP
	fnIPVSConnInGet
	fnIPVSConnOutGet
	fnTCPConnSchedule
	fnUDPConnSchedule
	fnSCTPConnSchedule
	fnIPVSSchedule
	fnIPVSConnNew
	fnIPVSSchedulerErr
	fnIPVSLeave
	fnIPVSNATXmit
	fnIPVSDRXmit
	fnIPVSTunnelXmit
	fnIPVSBypassXmit
	fnIPVSNullXmit
	fnIPVSNATXmitV6
	fnIPVSDRXmitV6
	fnIPVSTunnelXmitV6
	fnIPVSBypassXmitV6
	fnMax
)

// targetKind says which programs a target has and how it attaches.
type targetKind uint8

const (
	// kindTracepoint: tp_btf_NAME, or raw_tp_NAME.
	kindTracepoint targetKind = iota + 1
	// kindEntry: fentry_NAME, or kprobe_SHAPE (target.kprobe).
	kindEntry
	// kindExit: fexit_NAME, or kretprobe_SHAPE.
	kindExit
	// kindEntryExit: both; attached as a pair or not at all, since the
	// return probe pops what the entry probe pushed.
	kindEntryExit
)

// target is one kernel function or tracepoint the tracer attaches to.
type target struct {
	fn   fnID
	name string // kernel symbol or tracepoint name
	kind targetKind
	// ipvs: the function is in the ip_vs module.
	ipvs bool
	// stack: one of the stack's functions, traced only with HopsAll.
	stack bool
	// nat: only NAT replies need it (left out with Options.NoNAT).
	nat bool
	// kprobe names the kprobe programs a function shares with the others
	// of its shape: kprobe_SHAPE and kretprobe_SHAPE, told apart by the
	// link's cookie (the fn). fentry and fexit programs are one per
	// function: they are bound to its BTF when loaded.
	kprobe string
	// args is the function's argument count: fentry on 6.1 refuses
	// functions with more than 6.
	args int
	// family: only packets of this address family pass here (0: any).
	family uint16
	// proto: only packets of this IP protocol pass here (0: any).
	proto uint8
	// xmit: a transmitter, only for connections of forwarding method fwd.
	xmit bool
	fwd  Forwarding
	// hides is what a trace cannot show without this target, for a
	// person: "the connection IPVS creates is not shown".
	hides string
}

// targets lists every place the tracer can attach, in path order.
var targets = []target{
	{fn: fnNetifReceiveSKB, name: "netif_receive_skb", kind: kindTracepoint, hides: "where packets are received is not shown"},
	{fn: fnIPVSInHook, name: "ip_vs_in_hook", kprobe: "hook", kind: kindEntryExit, ipvs: true, args: 3, hides: "packets entering IPVS and its verdicts are not shown"},
	{fn: fnIPVSConnInGet, name: "ip_vs_conn_in_get", kprobe: "conn", kind: kindExit, ipvs: true, args: 1, hides: "whether a packet belongs to an existing connection is not shown"},
	{fn: fnTCPConnSchedule, name: "tcp_conn_schedule", kprobe: "current", proto: 6, kind: kindEntry, ipvs: true, args: 7, hides: "TCP packets being scheduled are not shown"},
	{fn: fnUDPConnSchedule, name: "udp_conn_schedule", kprobe: "current", proto: 17, kind: kindEntry, ipvs: true, args: 7, hides: "UDP packets being scheduled are not shown"},
	{fn: fnSCTPConnSchedule, name: "sctp_conn_schedule", kprobe: "current", proto: 132, kind: kindEntry, ipvs: true, args: 7, hides: "SCTP packets being scheduled are not shown"},
	{fn: fnIPVSSchedule, name: "ip_vs_schedule", kprobe: "conn", kind: kindExit, ipvs: true, args: 5, hides: "the real server the scheduler chose is not shown"},
	{fn: fnIPVSConnNew, name: "ip_vs_conn_new", kprobe: "conn", kind: kindExit, ipvs: true, args: 7, hides: "the connection IPVS creates is not shown"},
	{fn: fnIPVSSchedulerErr, name: "ip_vs_scheduler_err", kprobe: "ip_vs_scheduler_err", kind: kindEntry, ipvs: true, args: 2, hides: "\"no destination\" (no real server available) is not shown"},
	{fn: fnIPVSLeave, name: "ip_vs_leave", kprobe: "ip_vs_leave", kind: kindEntry, ipvs: true, args: 4, hides: "IPVS giving up a packet it could not schedule is not shown"},
	{fn: fnIPVSNATXmit, name: "ip_vs_nat_xmit", kprobe: "xmit", xmit: true, fwd: Masquerade, family: afInet, kind: kindEntry, ipvs: true, args: 4, hides: "masquerade (NAT) transmits are not shown"},
	{fn: fnIPVSDRXmit, name: "ip_vs_dr_xmit", kprobe: "xmit", xmit: true, fwd: DirectRoute, family: afInet, kind: kindEntry, ipvs: true, args: 4, hides: "direct-route transmits are not shown"},
	{fn: fnIPVSTunnelXmit, name: "ip_vs_tunnel_xmit", kprobe: "xmit", xmit: true, fwd: Tunnel, kind: kindEntry, ipvs: true, args: 4, hides: "tunnel transmits are not shown"},
	{fn: fnIPVSBypassXmit, name: "ip_vs_bypass_xmit", kprobe: "xmit", xmit: true, fwd: Bypass, family: afInet, kind: kindEntry, ipvs: true, args: 4, hides: "bypass transmits are not shown"},
	{fn: fnIPVSNullXmit, name: "ip_vs_null_xmit", kprobe: "xmit", xmit: true, fwd: LocalNode, kind: kindEntry, ipvs: true, args: 4, hides: "packets for local real servers are not shown"},
	{fn: fnIPVSNATXmitV6, name: "ip_vs_nat_xmit_v6", kprobe: "xmit", xmit: true, fwd: Masquerade, family: afInet6, kind: kindEntry, ipvs: true, args: 4, hides: "IPv6 masquerade (NAT) transmits are not shown"},
	{fn: fnIPVSDRXmitV6, name: "ip_vs_dr_xmit_v6", kprobe: "xmit", xmit: true, fwd: DirectRoute, family: afInet6, kind: kindEntry, ipvs: true, args: 4, hides: "IPv6 direct-route transmits are not shown"},
	{fn: fnIPVSTunnelXmitV6, name: "ip_vs_tunnel_xmit_v6", kprobe: "xmit", xmit: true, fwd: Tunnel, kind: kindEntry, ipvs: true, args: 4, hides: "IPv6 tunnel transmits are not shown"},
	{fn: fnIPVSBypassXmitV6, name: "ip_vs_bypass_xmit_v6", kprobe: "xmit", xmit: true, fwd: Bypass, family: afInet6, kind: kindEntry, ipvs: true, args: 4, hides: "IPv6 bypass transmits are not shown"},
	{fn: fnIPVSOutHook, name: "ip_vs_out_hook", kprobe: "hook", kind: kindEntryExit, nat: true, ipvs: true, args: 3, hides: "replies IPVS rewrites on their way back (NAT) are not shown"},
	{fn: fnIPVSConnOutGet, name: "ip_vs_conn_out_get", kprobe: "conn", kind: kindExit, nat: true, ipvs: true, args: 1, hides: "which connection a reply belongs to is not shown"},
	{fn: fnIPVSForwardICMP, name: "ip_vs_forward_icmp", kprobe: "hook", kind: kindEntryExit, ipvs: true, args: 3, hides: "ICMP errors IPVS forwards are not shown"},
	{fn: fnIPForward, name: "ip_forward", kprobe: "skb_arg0", family: afInet, kind: kindEntry, stack: true, args: 1, hides: "IPv4 forwarding is not shown"},
	{fn: fnIPLocalDeliver, name: "ip_local_deliver", kprobe: "skb_arg0", family: afInet, kind: kindEntry, stack: true, args: 1, hides: "IPv4 delivery to the local stack is not shown"},
	{fn: fnIPLocalOut, name: "ip_local_out", kprobe: "skb_arg2", family: afInet, kind: kindEntry, stack: true, args: 3, hides: "locally sent IPv4 packets are not shown"},
	{fn: fnIPOutput, name: "ip_output", kprobe: "skb_arg2", family: afInet, kind: kindEntry, stack: true, args: 3, hides: "IPv4 output is not shown"},
	{fn: fnIP6Forward, name: "ip6_forward", kprobe: "skb_arg0", family: afInet6, kind: kindEntry, stack: true, args: 1, hides: "IPv6 forwarding is not shown"},
	{fn: fnIP6Input, name: "ip6_input", kprobe: "skb_arg0", family: afInet6, kind: kindEntry, stack: true, args: 1, hides: "IPv6 delivery to the local stack is not shown"},
	{fn: fnIP6LocalOut, name: "ip6_local_out", kprobe: "skb_arg2", family: afInet6, kind: kindEntry, stack: true, args: 3, hides: "locally sent IPv6 packets are not shown"},
	{fn: fnIP6Output, name: "ip6_output", kprobe: "skb_arg2", family: afInet6, kind: kindEntry, stack: true, args: 3, hides: "IPv6 output is not shown"},
	{fn: fnNetDevQueue, name: "net_dev_queue", kind: kindTracepoint, hides: "packets queued to a device are not shown"},
	{fn: fnKfreeSKB, name: "kfree_skb", kind: kindTracepoint, hides: "drops (where and why) are not shown"},
}

// programNames are a function target's programs for a backend, the
// return probe first: an entry probe without its exit would push frames
// nobody pops. kprobe programs are shared by the functions of a shape
// (target.kprobe), fentry programs are the function's own.
func programNames(tg target, b Backend) []string {
	entry, exit := "kprobe_"+tg.kprobe, "kretprobe_"+tg.kprobe
	if b == BackendFentry {
		entry, exit = "fentry_"+tg.name, "fexit_"+tg.name
	}
	var names []string
	if tg.kind == kindExit || tg.kind == kindEntryExit {
		names = append(names, exit)
	}
	if tg.kind == kindEntry || tg.kind == kindEntryExit {
		names = append(names, entry)
	}
	return names
}

// consumeTracepoint is attached but reports nothing: it forgets freed
// skbs so that their addresses, when reused, are not traced by mistake.
const consumeTracepoint = "consume_skb"

// fnNames names each fnID as the kernel does.
var fnNames = func() map[fnID]string {
	m := make(map[fnID]string, len(targets))
	for _, t := range targets {
		m[t.fn] = t.name
	}
	return m
}()

func (f fnID) String() string {
	if n, ok := fnNames[f]; ok {
		return n
	}
	return "fn(" + itoa(int(f)) + ")"
}

func isHook(f fnID) bool {
	return f == fnIPVSInHook || f == fnIPVSOutHook || f == fnIPVSForwardICMP
}

func isXmit(f fnID) bool { return f >= fnIPVSNATXmit && f <= fnIPVSBypassXmitV6 }

// canMatch reports whether a packet the filter selects can pass through
// the target: an IPv4 VIP's packets never reach ip6_output, a UDP
// filter's never reach tcp_conn_schedule. Targets that cannot match are
// not attached (and hide nothing). The VIP decides the family: a
// masqueraded or direct-routed packet keeps it; tunnels, which may
// change it, are attached for both.
func (tg target) canMatch(c constants) bool {
	if tg.proto != 0 && c.Proto != 0 && tg.proto != c.Proto {
		return false
	}
	if tg.family != 0 && c.VIPAF != 0 && tg.family != c.VIPAF {
		return false
	}
	return true
}

// parseRelease reads a kernel release ("6.1.0-41-amd64", "6.12.57+deb12")
// as its major and minor version.
func parseRelease(r string) (major, minor int, ok bool) {
	var n [2]int
	i := 0
	for k := range n {
		start := i
		for i < len(r) && r[i] >= '0' && r[i] <= '9' {
			n[k] = n[k]*10 + int(r[i]-'0')
			i++
		}
		if i == start || k == 0 && (i == len(r) || r[i] != '.') {
			return 0, 0, false
		}
		i++
	}
	return n[0], n[1], true
}
