//go:build linux && amd64

package probes_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/internal/lab"
	"github.com/lvskit/lvskit/probes"
)

// netnsInode is the inode of a host's network namespace, as the probes
// report it.
func netnsInode(t testing.TB, h *lab.Host) uint32 {
	t.Helper()
	fi, err := os.Stat(h.NetNSPath())
	if err != nil {
		t.Fatal(err)
	}
	return uint32(inode(fi))
}

// TestTraceOnTracepointsSeesLabPackets runs the tracer on whatever this
// kernel allows (on the development host: tp_btf only, no ip_vs): a
// client's connection to a server in a netns lab shows up as received
// and queued packets with the right tuple, SYN first, and every hop the
// kernel cannot show is named with what it hides.
func TestTraceOnTracepointsSeesLabPackets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN)")
	}
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	client := l.AddHost("client", "10.77.0.2/24")
	server := l.AddHost("server", "10.77.0.10/24")
	ln, err := server.Listen("tcp", "10.77.0.10:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	tr, err := probes.Open(probes.Options{
		Filter: probes.Filter{
			VIP:   netip.MustParseAddr("10.77.0.10"),
			Port:  8080,
			NetNS: netnsInode(t, server),
		},
		WithoutIPVS: true,
		Hops:        probes.HopsAll,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	t.Logf("attached: %v", tr.Attachments())
	for _, u := range tr.Unseen() {
		t.Logf("unseen: %s", u)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := client.DialContext(ctx, "tcp", "10.77.0.10:8080")
	if err != nil {
		t.Fatal(err)
	}
	clientAddr := netip.MustParseAddrPort(conn.LocalAddr().String())
	conn.Close()

	var synSeen bool
	for !synSeen {
		ev, err := tr.Read(ctx)
		if err != nil {
			t.Fatalf("reading events before the client's SYN was seen: %v", err)
		}
		t.Logf("%s %s %s %v -> %v %s", ev.Hop.Func, ev.Hop.Device, ev.Tuple.Protocol, ev.Tuple.Src, ev.Tuple.Dst, ev.TCPFlags)
		if ev.NetNS != netnsInode(t, server) {
			t.Errorf("event from netns %d, want only the server's %d", ev.NetNS, netnsInode(t, server))
		}
		if ev.Hop.Func == "netif_receive_skb" && ev.Tuple.Src == clientAddr && ev.TCPFlags == "SYN" {
			if ev.Tuple.Dst != netip.MustParseAddrPort("10.77.0.10:8080") || ev.Hop.Device != "eth0" || ev.Tuple.Protocol != "TCP" {
				t.Errorf("SYN received as %+v on %q, want TCP %v -> 10.77.0.10:8080 on eth0", ev.Tuple, ev.Hop.Device, clientAddr)
			}
			synSeen = true
		}
	}

	// What this kernel hides depends on it: on the development host
	// (no ip_vs, no kprobes, fentry refused) the IPVS hops and the
	// function hops are each named with the reason.
	unseen := strings.Join(tr.Unseen(), "\n")
	var wants []string
	if _, err := os.Stat("/sys/module/ip_vs"); err != nil {
		wants = append(wants,
			"ip_vs_in_hook: the ip_vs module is not loaded: packets entering IPVS",
			"ip_vs_conn_new: the ip_vs module is not loaded: the connection IPVS creates is not shown")
	}
	if _, err := os.Stat("/sys/bus/event_source/devices/kprobe"); err != nil && !attachedWith(tr, "fentry") {
		wants = append(wants, "ip_local_deliver: fentry is refused by this kernel (operation not permitted); kprobes are not available on this kernel; kprobe-multi is not available on this kernel: IPv4 delivery to the local stack is not shown")
	}
	for _, want := range wants {
		if !strings.Contains(unseen, want) {
			t.Errorf("Unseen does not say %q:\n%s", want, unseen)
		}
	}
	if lost, err := tr.Lost(); err != nil || lost != 0 {
		t.Errorf("Lost() = %d, %v; want 0 at this rate", lost, err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := tr.Read(ctx); !errors.Is(err, probes.ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
	if tr.Buffered() {
		t.Errorf("Buffered after Close: true, want false (and no panic: the ring is gone)")
	}

	// The default hops leave the stack's functions out: not attached,
	// and not named as hidden either (nobody asked for them).
	def, err := probes.Open(probes.Options{Filter: probes.Filter{Port: 8080, NetNS: netnsInode(t, server)}, WithoutIPVS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer def.Close()
	for _, a := range def.Attachments() {
		if a.Target == "ip_local_deliver" || a.Target == "ip_output" {
			t.Errorf("default hops attached %s", a.Target)
		}
	}
	if u := strings.Join(def.Unseen(), "\n"); strings.Contains(u, "ip_local_deliver") {
		t.Errorf("default hops name ip_local_deliver as unseen:\n%s", u)
	}
}

func attachedWith(tr *probes.Tracer, backend string) bool {
	for _, a := range tr.Attachments() {
		if a.Backend == backend {
			return true
		}
	}
	return false
}

// TestOpenWithoutPrivilegesNamesTheCapability runs Open as nobody (the
// test binary re-executed under setpriv) and expects ErrPermission,
// whose text names CAP_BPF.
func TestOpenWithoutPrivilegesNamesTheCapability(t *testing.T) {
	if os.Getenv("LVSKIT_PROBES_AS_NOBODY") == "1" {
		_, err := probes.Open(probes.Options{WithoutIPVS: true})
		if !errors.Is(err, probes.ErrPermission) || !strings.Contains(err.Error(), "CAP_BPF") {
			t.Fatalf("Open as nobody: %v, want ErrPermission naming CAP_BPF", err)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop to nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed")
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		os.Args[0], "-test.run=^TestOpenWithoutPrivilegesNamesTheCapability$", "-test.v")
	cmd.Env = append(os.Environ(), "LVSKIT_PROBES_AS_NOBODY=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("as nobody, the test did not run:\n%s", out)
	}
}

func TestOpenWithoutIPVSSaysSo(t *testing.T) {
	if _, err := os.Stat("/sys/module/ip_vs"); err == nil {
		t.Skip("ip_vs is loaded on this machine")
	}
	_, err := probes.Open(probes.Options{})
	if !errors.Is(err, probes.ErrIPVSNotLoaded) || !strings.Contains(err.Error(), "modprobe ip_vs") {
		t.Errorf("Open without ip_vs: %v, want ErrIPVSNotLoaded saying how to fix it", err)
	}
}
