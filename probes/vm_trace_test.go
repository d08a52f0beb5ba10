//go:build vmtest && linux && amd64

package probes_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
	"github.com/lvskit/lvskit/probes"
)

// TestVMTracePaths traces real client traffic through a DR, a NAT and a
// TUN service, a weight-0 service and a port with no service, and checks
// each packet's hops in order, what IPVS decided, and that the chosen
// real server is the one ipvsadm -lcn shows.
func TestVMTracePaths(t *testing.T) {
	v := newVMLab(t)

	t.Run("DR", func(t *testing.T) {
		tr, rec := v.openHops(t, probes.Filter{VIP: v.drVIP.Addr(), Port: v.drVIP.Port()}, probes.BackendAuto, probes.HopsAll)
		client, served := get(t, v.client, v.drVIP)
		evs := drain(t, tr)
		capture(t, "dr", rec)
		checkLost(t, tr)
		syn := pathOf(evs, client, "SYN")
		logPath(t, syn)
		want := []string{"netif_receive_skb", "ip_local_deliver", "ip_vs_in_hook(LOCAL_IN)", "ip_vs_conn_in_get",
			"tcp_conn_schedule", "ip_vs_conn_new", "ip_vs_schedule", "ip_vs_dr_xmit", "ip_vs_in_hook(LOCAL_IN STOLEN)"}
		checkQueued(t, syn, "ip_vs_dr_xmit")
		if !hasInOrder(funcs(syn), want) {
			t.Errorf("SYN's hops %v, want %v in this order", funcs(syn), want)
		}
		chosen := checkScheduled(t, syn, v.drVIP, probes.DirectRoute)
		if rs := ipvsadmRealServer(t, v.director, client); chosen != rs || rs.Addr() != v.realServers[served] {
			t.Errorf("trace says %v, ipvsadm -lcn says %v, %s answered (%v)", chosen, rs, served, v.realServers[served])
		}
		ack := pathOf(evs, client, "ACK")
		logPath(t, ack)
		found := slices.IndexFunc(ack, func(e probes.Event) bool {
			return e.Hop.Func == "ip_vs_conn_in_get" && strings.HasPrefix(e.Hop.Note, "connection found (")
		})
		if found < 0 || !hasInOrder(funcs(ack), []string{"ip_vs_in_hook(LOCAL_IN)", "ip_vs_conn_in_get", "ip_vs_dr_xmit", "net_dev_queue"}) {
			t.Errorf("the client's ACK: %v, want the connection found and sent by ip_vs_dr_xmit", funcs(ack))
		}
	})

	t.Run("NAT", func(t *testing.T) {
		tr, rec := v.open(t, probes.Filter{VIP: v.natVIP.Addr(), Port: v.natVIP.Port()}, probes.BackendAuto)
		client, served := get(t, v.client, v.natVIP)
		evs := drain(t, tr)
		capture(t, "nat", rec)
		checkLost(t, tr)
		syn := pathOf(evs, client, "SYN")
		logPath(t, syn)
		want := []string{"netif_receive_skb", "ip_vs_in_hook(LOCAL_IN)", "ip_vs_conn_in_get", "tcp_conn_schedule",
			"ip_vs_conn_new", "ip_vs_schedule", "ip_vs_nat_xmit", "ip_vs_in_hook(LOCAL_IN STOLEN)"}
		checkQueued(t, syn, "ip_vs_nat_xmit")
		if !hasInOrder(funcs(syn), want) {
			t.Errorf("SYN's hops %v, want %v in this order", funcs(syn), want)
		}
		chosen := checkScheduled(t, syn, v.natVIP, probes.Masquerade)
		if rs := ipvsadmRealServer(t, v.director, client); chosen != rs || rs.Addr() != v.realServers[served] {
			t.Errorf("trace says %v, ipvsadm -lcn says %v, %s answered", chosen, rs, served)
		}
		// The masqueraded packet leaves with the real server as its
		// destination.
		if q := last(syn, "net_dev_queue"); q == nil || q.Tuple.Dst != chosen {
			t.Errorf("SYN queued as %+v, want it sent to %v", q, chosen)
		}
		reply := replyPathOf(evs, client)
		logPath(t, reply)
		if !hasInOrder(funcs(reply), []string{"ip_vs_conn_out_get", "ip_vs_out_hook(FORWARD ACCEPT)", "net_dev_queue"}) {
			t.Errorf("the NAT reply's hops %v, want ip_vs_conn_out_get, ip_vs_out_hook(FORWARD ACCEPT), net_dev_queue", funcs(reply))
		}
		if q := last(reply, "net_dev_queue"); q == nil || q.Tuple.Src != v.natVIP || q.Tuple.Dst != client {
			t.Errorf("the reply left as %+v, want %v -> %v (source rewritten to the VIP)", q, v.natVIP, client)
		}
	})

	t.Run("TUN", func(t *testing.T) {
		tr, rec := v.open(t, probes.Filter{VIP: v.tunVIP.Addr(), Port: v.tunVIP.Port()}, probes.BackendAuto)
		client, served := get(t, v.client, v.tunVIP)
		evs := drain(t, tr)
		capture(t, "tun", rec)
		checkLost(t, tr)
		syn := pathOf(evs, client, "SYN")
		logPath(t, syn)
		want := []string{"netif_receive_skb", "ip_vs_in_hook(LOCAL_IN)", "ip_vs_conn_in_get", "tcp_conn_schedule",
			"ip_vs_conn_new", "ip_vs_schedule", "ip_vs_tunnel_xmit", "ip_vs_in_hook(LOCAL_IN STOLEN)"}
		checkQueued(t, syn, "ip_vs_tunnel_xmit")
		if !hasInOrder(funcs(syn), want) {
			t.Errorf("SYN's hops %v, want %v in this order", funcs(syn), want)
		}
		chosen := checkScheduled(t, syn, v.tunVIP, probes.Tunnel)
		if rs := ipvsadmRealServer(t, v.director, client); chosen != rs || served != "tun1" {
			t.Errorf("trace says %v, ipvsadm -lcn says %v, %s answered", chosen, rs, served)
		}
		q := last(syn, "net_dev_queue")
		if q == nil || q.Outer == nil || q.Outer.Protocol != "IPIP" || q.Outer.Dst.Addr() != chosen.Addr() || q.Tuple.Dst != v.tunVIP {
			t.Errorf("SYN queued as %+v, want IPIP to %v around %v -> %v", q, chosen.Addr(), client, v.tunVIP)
		}
	})

	t.Run("Weight0", func(t *testing.T) {
		tr, rec := v.open(t, probes.Filter{VIP: v.zeroVIP.Addr(), Port: v.zeroVIP.Port()}, probes.BackendAuto)
		client, err := dialOnly(t, v.client, v.zeroVIP)
		if err == nil {
			t.Fatalf("connecting to %v with all weights 0 succeeded", v.zeroVIP)
		}
		evs := drain(t, tr)
		capture(t, "weight0", rec)
		checkLost(t, tr)
		syn := pathOf(evs, client, "SYN")
		logPath(t, syn)
		want := []string{"netif_receive_skb", "ip_vs_in_hook(LOCAL_IN)", "ip_vs_conn_in_get", "tcp_conn_schedule",
			"ip_vs_scheduler_err", "ip_vs_schedule", "ip_vs_leave", "ip_vs_in_hook(LOCAL_IN DROP)", "kfree_skb"}
		if !hasInOrder(funcs(syn), want) {
			t.Errorf("SYN's hops %v, want %v in this order", funcs(syn), want)
		}
		if e := last(syn, "ip_vs_scheduler_err"); e == nil || e.Hop.Service == nil || e.Hop.Service.Address != v.zeroVIP ||
			!strings.Contains(e.Hop.Note, "no destination") {
			t.Errorf("ip_vs_scheduler_err hop %+v, want the service %v and \"no destination\"", e, v.zeroVIP)
		}
		if e := last(syn, "kfree_skb"); e == nil || e.Hop.DropReason != "NETFILTER_DROP" || !strings.HasPrefix(e.Hop.DropLocation, "nf_hook_slow+") {
			t.Errorf("drop hop %+v, want NETFILTER_DROP in nf_hook_slow", e)
		}
	})

	t.Run("NoServiceOnPort", func(t *testing.T) {
		vip := netip.AddrPortFrom(v.drVIP.Addr(), 81)
		tr, rec := v.openHops(t, probes.Filter{VIP: vip.Addr(), Port: vip.Port()}, probes.BackendAuto, probes.HopsAll)
		client, err := dialOnly(t, v.client, vip)
		if err == nil {
			t.Fatalf("connecting to %v succeeded; nothing listens there", vip)
		}
		evs := drain(t, tr)
		capture(t, "noservice", rec)
		checkLost(t, tr)
		syn := pathOf(evs, client, "SYN")
		logPath(t, syn)
		want := []string{"netif_receive_skb", "ip_local_deliver", "ip_vs_in_hook(LOCAL_IN)", "ip_vs_conn_in_get", "ip_vs_in_hook(LOCAL_IN ACCEPT)", "kfree_skb"}
		if !hasInOrder(funcs(syn), want) {
			t.Errorf("SYN's hops %v, want %v in this order", funcs(syn), want)
		}
		for _, e := range syn {
			if strings.Contains(e.Hop.Func, "xmit") || e.Hop.Func == "ip_vs_conn_new" {
				t.Errorf("IPVS handled a packet to a port with no service: %s", e.Hop.Func)
			}
		}
		if e := last(syn, "kfree_skb"); e == nil || e.Hop.DropReason != "NO_SOCKET" {
			t.Errorf("drop hop %+v, want the local stack's NO_SOCKET", e)
		}
	})

	// By default the stack's own functions are left out: IPVS's hooks
	// stand where they are, and each costs every packet a probe. With
	// NoNAT (lvsdiag's choice when no matched service masquerades), so
	// are the reply side's.
	t.Run("DefaultHopsLeaveOutTheStack", func(t *testing.T) {
		tr, err := probes.Open(probes.Options{Filter: probes.Filter{VIP: v.drVIP.Addr(), Port: v.drVIP.Port(), NetNS: v.netns}, NoNAT: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		for _, a := range tr.Attachments() {
			if strings.HasPrefix(a.Target, "ip_") && !strings.HasPrefix(a.Target, "ip_vs_") {
				t.Errorf("%s attached without HopsAll", a.Target)
			}
			if a.Target == "ip_vs_out_hook" || a.Target == "ip_vs_conn_out_get" {
				t.Errorf("%s attached with NoNAT", a.Target)
			}
		}
		if u := tr.Unseen(); len(u) != 0 {
			t.Errorf("unseen: %v, want nothing hidden that was asked for", u)
		}
		client, _ := get(t, v.client, v.drVIP)
		syn := pathOf(drain(t, tr), client, "SYN")
		logPath(t, syn)
		want := []string{"netif_receive_skb", "ip_vs_in_hook(LOCAL_IN)", "ip_vs_dr_xmit", "net_dev_queue"}
		if !hasInOrder(funcs(syn), want) {
			t.Errorf("SYN's hops %v, want %v in this order", funcs(syn), want)
		}
		checkLost(t, tr)
	})

	t.Run("FilterMatchesNothing", func(t *testing.T) {
		tr, _ := v.open(t, probes.Filter{VIP: netip.MustParseAddr("10.77.0.99"), Port: 80}, probes.BackendAuto)
		get(t, v.client, v.drVIP)
		get(t, v.client, v.natVIP)
		if evs := drain(t, tr); len(evs) != 0 {
			logPath(t, evs)
			t.Errorf("%d events for a filter that matches no packet", len(evs))
		}
	})

	// A packet ip_vs_in_hook takes in that its headers leave out skips
	// the hops inside the hook. Not so for a real server filter, which
	// only the connection IPVS creates can match, and not for the client
	// a client filter names.
	t.Run("FiltersThatIPVSDecides", func(t *testing.T) {
		filters := map[string]probes.Filter{
			"dr1":          {VIP: v.drVIP.Addr(), Port: v.drVIP.Port(), RealServer: v.realServers["dr1"]},
			"dr2":          {VIP: v.drVIP.Addr(), Port: v.drVIP.Port(), RealServer: v.realServers["dr2"]},
			"client":       {VIP: v.drVIP.Addr(), Port: v.drVIP.Port(), Client: netip.PrefixFrom(v.client.Addr(), 32)},
			"other client": {VIP: v.drVIP.Addr(), Port: v.drVIP.Port(), Client: netip.MustParsePrefix("10.77.0.99/32")},
		}
		tracers := map[string]*probes.Tracer{}
		for name, f := range filters {
			tracers[name], _ = v.open(t, f, probes.BackendAuto)
		}
		client, served := get(t, v.client, v.drVIP)
		evs := map[string][]probes.Event{}
		for name, tr := range tracers {
			evs[name] = drain(t, tr)
			checkLost(t, tr)
		}
		other := map[string]string{"dr1": "dr2", "dr2": "dr1"}[served]
		if other == "" {
			t.Fatalf("%s answered, not dr1 or dr2", served)
		}
		if hops, want := funcs(evs[served]), []string{"ip_vs_conn_new", "ip_vs_schedule", "ip_vs_dr_xmit"}; !hasInOrder(hops, want) {
			t.Errorf("the real server filter for %s, which answered: hops %v, want %v in this order", served, hops, want)
		}
		if n := len(evs[other]); n != 0 {
			logPath(t, evs[other])
			t.Errorf("the real server filter for %s, which did not answer: %d events, want none", other, n)
		}
		syn := pathOf(evs["client"], client, "SYN")
		want := []string{"netif_receive_skb", "ip_vs_in_hook(LOCAL_IN)", "ip_vs_conn_in_get", "tcp_conn_schedule",
			"ip_vs_conn_new", "ip_vs_schedule", "ip_vs_dr_xmit", "ip_vs_in_hook(LOCAL_IN STOLEN)"}
		if !hasInOrder(funcs(syn), want) {
			t.Errorf("the client filter, SYN's hops %v, want %v in this order", funcs(syn), want)
		}
		if n := len(evs["other client"]); n != 0 {
			logPath(t, evs["other client"])
			t.Errorf("another client's filter: %d events, want none", n)
		}
	})

	t.Run("Backends", func(t *testing.T) {
		type run struct {
			backend  probes.Backend
			attached map[string]bool
			hops     []string
		}
		var runs []run
		for _, b := range []probes.Backend{probes.BackendFentry, probes.BackendKprobe, probes.BackendKprobeMulti} {
			tr, err := probes.Open(probes.Options{Filter: probes.Filter{VIP: v.drVIP.Addr(), Port: 80, NetNS: v.netns}, Backend: b})
			if err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			r := run{backend: b, attached: map[string]bool{}}
			for _, a := range tr.Attachments() {
				if a.Backend == string(b) {
					r.attached[a.Target] = true
				}
			}
			if !r.attached["ip_vs_in_hook"] {
				t.Logf("%s: not supported by this kernel: %v", b, tr.Unseen())
				tr.Close()
				continue
			}
			client, _ := get(t, v.client, v.drVIP)
			r.hops = funcs(pathOf(drain(t, tr), client, "SYN"))
			checkLost(t, tr)
			tr.Close()
			t.Logf("%s: %d functions attached: %v", b, len(r.attached), r.hops)
			runs = append(runs, r)
		}
		if len(runs) < 2 {
			t.Fatalf("%d backends work on this kernel, want at least fentry or kprobe-multi besides kprobe", len(runs))
		}
		// Compare on the functions every backend attached to.
		common := func(hops []string) []string {
			var out []string
			for _, h := range hops {
				name, _, _ := strings.Cut(h, "(")
				if !strings.HasPrefix(name, "ip_") && !strings.Contains(name, "conn_schedule") {
					out = append(out, h) // tracepoints
					continue
				}
				all := true
				for _, r := range runs {
					all = all && r.attached[name]
				}
				if all {
					out = append(out, h)
				}
			}
			return out
		}
		base := common(runs[0].hops)
		for _, r := range runs[1:] {
			if got := common(r.hops); !slices.Equal(got, base) {
				t.Errorf("%s sees %v, %s sees %v", r.backend, got, runs[0].backend, base)
			}
		}
	})
}

// checkScheduled finds the hop where the scheduler chose a real server,
// checks its service and the connection's forwarding method, and returns
// the real server.
func checkScheduled(t *testing.T, path []probes.Event, vip netip.AddrPort, fwd probes.Forwarding) netip.AddrPort {
	t.Helper()
	e := last(path, "ip_vs_schedule")
	if e == nil || e.Hop.RealServer == nil || e.Hop.Conn == nil || e.Hop.Service == nil {
		t.Fatalf("no ip_vs_schedule hop with a connection, real server and service: %+v", e)
	}
	s := e.Hop.Service
	if s.Address != vip || s.Protocol != "TCP" || s.Scheduler != "rr" {
		t.Errorf("scheduled for %+v, want TCP %v rr", s, vip)
	}
	if e.Hop.Conn.Forwarding != fwd || e.Hop.RealServer.Forwarding != fwd || e.Hop.Conn.Virtual != vip {
		t.Errorf("connection %+v, real server %+v, want forwarding %v to %v", e.Hop.Conn, e.Hop.RealServer, fwd, vip)
	}
	if e.Hop.RealServer.Weight != 1 || e.Hop.Conn.RealServer != e.Hop.RealServer.Address {
		t.Errorf("real server %+v (connection to %v), want weight 1 and the same address", e.Hop.RealServer, e.Hop.Conn.RealServer)
	}
	return e.Hop.RealServer.Address
}

// checkQueued: after the transmitter, the packet is queued to a device
// (right away, or once the real server's address is resolved).
func checkQueued(t *testing.T, path []probes.Event, xmit string) {
	t.Helper()
	if !hasInOrder(funcs(path), []string{xmit, "net_dev_queue"}) {
		t.Errorf("hops %v: not queued to a device after %s", funcs(path), xmit)
	}
}

func last(path []probes.Event, fn string) *probes.Event {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i].Hop.Func == fn {
			return &path[i]
		}
	}
	return nil
}

func checkLost(t *testing.T, tr *probes.Tracer) {
	t.Helper()
	if n, err := tr.Lost(); err != nil || n != 0 {
		t.Errorf("lost events: %d, %v; want 0", n, err)
	}
}

// TestVMCaptureFixtures writes what the unit tests decode recorded
// events with: the kernel's enum skb_drop_reason as a small BTF blob.
// It runs only when LVSKIT_TRACE_CAPTURE names a directory.
func TestVMCaptureFixtures(t *testing.T) {
	dir := os.Getenv("LVSKIT_TRACE_CAPTURE")
	if dir == "" {
		t.Skip("LVSKIT_TRACE_CAPTURE is not set")
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	var e *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &e); err != nil {
		t.Fatal(err)
	}
	b, err := btf.NewBuilder([]btf.Type{e}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "skb_drop_reason-"+kernelRelease(t)+".btf")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	kallsyms, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	// Enough of kallsyms to name drop locations: netfilter's and TCP's
	// receive functions and their neighbours.
	var keep []string
	lines := strings.Split(string(kallsyms), "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 3 && (f[2] == "nf_hook_slow" || f[2] == "tcp_v4_rcv" || strings.HasPrefix(f[2], "ip_vs_")) {
			keep = append(keep, l)
			if i+1 < len(lines) {
				keep = append(keep, lines[i+1])
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "kallsyms-"+kernelRelease(t)), []byte(strings.Join(keep, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
