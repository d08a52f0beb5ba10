//go:build vmtest && linux && amd64

package probes_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/internal/lab"
	"github.com/lvskit/lvskit/probes"
)

// vmLab is a director with a DR, a NAT, a TUN and a weight-0 service,
// their real servers and a client, on one bridge.
type vmLab struct {
	l        *lab.Lab
	client   *lab.Host
	director *lab.Host
	netns    uint32
	ipvs     ipvs.Client

	drVIP, natVIP, tunVIP, zeroVIP netip.AddrPort
	realServers                    map[string]netip.Addr
}

func newVMLab(t *testing.T) *vmLab { return newVMLabTB(t) }

func newVMLabTB(t testing.TB) *vmLab {
	t.Helper()
	v := &vmLab{
		drVIP:       netip.MustParseAddrPort("10.77.0.200:80"),
		natVIP:      netip.MustParseAddrPort("10.77.0.100:80"),
		tunVIP:      netip.MustParseAddrPort("10.77.0.150:80"),
		zeroVIP:     netip.MustParseAddrPort("10.77.0.250:80"),
		realServers: map[string]netip.Addr{},
	}
	v.l = lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	v.client = v.l.AddHost("client", "10.77.0.2/24")
	v.director = v.l.AddHost("director", "10.77.0.10/24", "10.78.0.1/24")
	for _, vip := range []netip.AddrPort{v.drVIP, v.natVIP, v.tunVIP, v.zeroVIP} {
		v.director.AddAddr(lab.HostInterface, vip.Addr().String()+"/32")
	}
	v.director.EnableForwarding()
	for _, k := range []string{"all", "default", lab.HostInterface} {
		v.director.SetSysctl("net.ipv4.conf."+k+".send_redirects", "0")
	}
	v.netns = netnsInode(t, v.director)

	add := func(name, prefix string) *lab.Host {
		h := v.l.AddHost(name, prefix)
		v.realServers[name] = h.Addr()
		serveName(t, h)
		return h
	}
	add("dr1", "10.77.0.21/24").ConfigureDRRealServer(v.drVIP.Addr().String())
	add("dr2", "10.77.0.22/24").ConfigureDRRealServer(v.drVIP.Addr().String())
	nat := add("nat1", "10.78.0.11/24")
	nat.SetDefaultRoute(netip.MustParseAddr("10.78.0.1"))
	tun := add("tun1", "10.77.0.31/24")
	configureTunnelRealServer(t, tun, v.tunVIP.Addr())
	add("zero1", "10.77.0.41/24").ConfigureDRRealServer(v.zeroVIP.Addr().String())

	c, err := ipvs.New(ipvs.Options{NetNS: v.director.NetNSPath()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	v.ipvs = c
	for _, s := range []struct {
		vip    netip.AddrPort
		rss    []string
		fwd    ipvs.Forwarding
		weight int32
	}{
		{v.drVIP, []string{"dr1", "dr2"}, ipvs.DirectRoute, 1},
		{v.natVIP, []string{"nat1"}, ipvs.Masquerade, 1},
		{v.tunVIP, []string{"tun1"}, ipvs.Tunnel, 1},
		{v.zeroVIP, []string{"zero1"}, ipvs.DirectRoute, 0},
	} {
		key := ipvs.TCPKey(s.vip)
		if err := c.AddService(ipvs.Service{ServiceKey: key, Scheduler: "rr"}); err != nil {
			t.Fatalf("adding %v: %v", key, err)
		}
		for _, name := range s.rss {
			rs := ipvs.RealServer{Address: v.realServers[name], Port: 80, Forwarding: s.fwd, Weight: s.weight}
			if err := c.AddRealServer(key, rs); err != nil {
				t.Fatalf("adding %s to %v: %v", name, key, err)
			}
		}
	}
	return v
}

// configureTunnelRealServer makes h an IP-in-IP real server for vip: the
// VIP on tunl0, reverse path filtering off so decapsulated packets are
// accepted.
func configureTunnelRealServer(t testing.TB, h *lab.Host, vip netip.Addr) {
	t.Helper()
	ctx := context.Background()
	if out, err := h.Run(ctx, "ip", "link", "set", "tunl0", "up"); err != nil {
		t.Fatalf("tun1: tunl0 up: %v: %s", err, out)
	}
	h.AddAddr("tunl0", vip.String()+"/32")
	for _, dev := range []string{"all", "default", "tunl0", h.Interface} {
		h.SetSysctl("net.ipv4.conf."+dev+".rp_filter", "0")
	}
	for _, dev := range []string{"all", h.Interface} {
		h.SetSysctl("net.ipv4.conf."+dev+".arp_ignore", "1")
		h.SetSysctl("net.ipv4.conf."+dev+".arp_announce", "2")
	}
}

// serveName runs an HTTP server on h:80 that answers with its name.
func serveName(t testing.TB, h *lab.Host) {
	t.Helper()
	ln, err := h.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, h.Name)
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
}

// open starts a tracer on the director; its raw records are kept as
// fixtures when LVSKIT_TRACE_CAPTURE names a directory.
func (v *vmLab) open(t *testing.T, f probes.Filter, backend probes.Backend) (*probes.Tracer, *bytes.Buffer) {
	t.Helper()
	return v.openHops(t, f, backend, probes.HopsIPVS)
}

// openHops is open with a choice of hops.
func (v *vmLab) openHops(t *testing.T, f probes.Filter, backend probes.Backend, hops probes.Hops) (*probes.Tracer, *bytes.Buffer) {
	t.Helper()
	if f.NetNS == 0 {
		f.NetNS = v.netns
	}
	var rec bytes.Buffer
	start := time.Now()
	tr, err := probes.Open(probes.Options{Filter: f, Backend: backend, Hops: hops, Record: &rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("open (%s): %v, %d targets attached", backend, time.Since(start).Round(time.Millisecond), len(tr.Attachments()))
	for _, u := range tr.Unseen() {
		t.Logf("unseen: %s", u)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, &rec
}

// capture writes a run's raw records (and what decoding them needs) to
// LVSKIT_TRACE_CAPTURE/records-KERNEL-NAME.bin. To refresh the fixtures,
// for VM_KERNEL=6.1 and 6.12:
//
//	mkdir -p /tmp/cap && LVSKIT_VM_RW=/tmp/cap LVSKIT_TRACE_CAPTURE=/tmp/cap \
//	  go test -tags vmtest -run '^TestVM(TracePaths|CaptureFixtures)$' -exec $PWD/scripts/vm/run ./probes/
//	cp /tmp/cap/* probes/testdata/
func capture(t *testing.T, name string, rec *bytes.Buffer) {
	dir := os.Getenv("LVSKIT_TRACE_CAPTURE")
	if dir == "" {
		return
	}
	path := filepath.Join(dir, "records-"+kernelRelease(t)+"-"+name+".bin")
	if err := os.WriteFile(path, rec.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("captured %s", path)
}

func kernelRelease(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	// "6.12.57+deb12-amd64", "6.1.0-41-amd64": major.minor
	f := strings.SplitN(strings.TrimSpace(string(b)), ".", 3)
	if len(f) < 2 {
		t.Fatalf("kernel release %q", b)
	}
	return f[0] + "." + f[1]
}

// get makes one HTTP request from the client to vip over a fresh
// connection and returns the client's address and who answered.
func get(t *testing.T, client *lab.Host, vip netip.AddrPort) (netip.AddrPort, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, "tcp", vip.String())
	if err != nil {
		t.Fatalf("connecting to %v: %v", vip, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", vip.Addr())
	body, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer from %v: %v", vip, err)
	}
	_, name, _ := strings.Cut(string(body), "\r\n\r\n")
	return netip.MustParseAddrPort(c.LocalAddr().String()), name
}

// dialOnly sends a connection attempt that may fail (no service, weight 0)
// and returns the client's address once the attempt is over.
func dialOnly(t *testing.T, client *lab.Host, vip netip.AddrPort) (netip.AddrPort, error) {
	t.Helper()
	var local netip.AddrPort
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// Bind the local port first so the caller knows it even if the
	// connection fails.
	err := client.Do(func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: client.Addr().AsSlice()}}
		ln, err := net.Listen("tcp", client.Addr().String()+":0")
		if err != nil {
			return err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		d.LocalAddr = &net.TCPAddr{IP: client.Addr().AsSlice(), Port: port}
		local = netip.AddrPortFrom(client.Addr(), uint16(port))
		c, err := d.DialContext(ctx, "tcp", vip.String())
		if err == nil {
			c.Close()
		}
		return err
	})
	return local, err
}

// drain reads every event already produced: the probes write as the
// packets pass, so once the traffic is over nothing more is coming.
func drain(t *testing.T, tr *probes.Tracer) []probes.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var evs []probes.Event
	for {
		ev, err := tr.Read(ctx)
		if err != nil {
			if err == context.Canceled {
				return evs
			}
			t.Fatalf("reading events: %v", err)
		}
		evs = append(evs, ev)
	}
}

// pathOf is the events of the packet first received from client with
// the given TCP flags: from its netif_receive_skb on, same skb (or the
// skb it was replaced by), until another packet's hop reuses it.
func pathOf(evs []probes.Event, client netip.AddrPort, flags string) []probes.Event {
	start := slices.IndexFunc(evs, func(e probes.Event) bool {
		return e.Hop.Func == "netif_receive_skb" && e.Tuple.Src == client && e.TCPFlags == flags
	})
	if start < 0 {
		return nil
	}
	skbs := map[uint64]bool{evs[start].SKB: true}
	path := []probes.Event{evs[start]}
	queued := false
	for _, e := range evs[start+1:] {
		if e.PrevSKB != 0 && skbs[e.PrevSKB] {
			skbs[e.SKB] = true
		}
		if !skbs[e.SKB] {
			continue
		}
		if e.Hop.Func == "netif_receive_skb" || queued && !late(e.Hop) {
			break // the address was reused by the next packet
		}
		queued = queued || e.Hop.Func == "net_dev_queue"
		path = append(path, e)
		if e.Hop.Func == "kfree_skb" {
			break
		}
	}
	return path
}

// late reports whether a hop can follow its packet's queueing: a hook's
// verdict, another queue event, a free. Anything else in the same skb
// is the next packet in a reused address (on 6.1 a NAT reply often is).
func late(h probes.Hop) bool {
	switch h.Func {
	case "net_dev_queue", "net_dev_xmit", "kfree_skb", "consume_skb":
		return true
	}
	return h.Hook != "" && h.Verdict != ""
}

// replyPathOf is the events of the first reply to client that IPVS
// matched to a connection (NAT), from ip_vs_conn_out_get on.
func replyPathOf(evs []probes.Event, client netip.AddrPort) []probes.Event {
	start := slices.IndexFunc(evs, func(e probes.Event) bool {
		return e.Hop.Func == "ip_vs_conn_out_get" && e.Hop.Conn != nil && e.Hop.Conn.Client == client
	})
	if start < 0 {
		return nil
	}
	skb := evs[start].SKB
	path := []probes.Event{evs[start]}
	for _, e := range evs[start+1:] {
		if e.SKB != skb {
			continue
		}
		if e.Hop.Func == "netif_receive_skb" {
			break
		}
		path = append(path, e)
	}
	return path
}

func funcs(path []probes.Event) []string {
	var fs []string
	for _, e := range path {
		if en := e.Entry; en.Func != "" && en.Func != e.Hop.Func {
			// The entry of the hook e happened inside, sent with e.
			fs = append(fs, en.Func+"("+en.Hook+")")
		}
		f := e.Hop.Func
		if e.Hop.Hook != "" {
			f += "(" + e.Hop.Hook
			if e.Hop.Verdict != "" {
				f += " " + string(e.Hop.Verdict)
			}
			f += ")"
		}
		fs = append(fs, f)
	}
	return fs
}

// hasInOrder reports whether want appears in got in order (others may
// come between).
func hasInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func logPath(t *testing.T, path []probes.Event) {
	t.Helper()
	for _, e := range path {
		if en := e.Entry; en.Func != "" && en.Func != e.Hop.Func {
			t.Logf("  %-22s %-14s (entry, sent with the next event)", en.Func, en.Hook)
		}
		t.Logf("  %-22s %-14s %-10s skb=%x prev=%x %v %s %s %s", e.Hop.Func, e.Hop.Hook, e.Hop.Verdict, e.SKB, e.PrevSKB, e.Tuple, e.TCPFlags, e.Hop.Note, e.Hop.DropReason)
	}
}

// ipvsadmRealServer is the real server `ipvsadm -lcn` shows for the
// client's connection.
func ipvsadmRealServer(t *testing.T, dir *lab.Host, client netip.AddrPort) netip.AddrPort {
	t.Helper()
	out, err := dir.Run(context.Background(), "ipvsadm", "-lcn")
	if err != nil {
		t.Fatalf("ipvsadm -lcn: %v: %s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		// pro expire state source virtual destination
		if len(f) == 6 && f[3] == client.String() {
			return netip.MustParseAddrPort(f[5])
		}
	}
	t.Fatalf("ipvsadm -lcn has no connection from %v:\n%s", client, out)
	return netip.AddrPort{}
}
