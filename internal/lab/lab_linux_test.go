//go:build linux

package lab_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/internal/lab"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPingOverBridge(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	a := l.AddHost("a", "10.77.0.2/24", "fd77::2/64")
	b := l.AddHost("b") // next free address in the subnet
	b.AddAddr(b.Interface, "fd77::3/64")
	ctx := testContext(t)

	if got, want := b.Addr(), netip.MustParseAddr("10.77.0.3"); got != want {
		t.Errorf("auto-assigned address of b = %v, want %v", got, want)
	}
	for _, dst := range []string{b.Addr().String(), "fd77::3"} {
		if out, err := a.Run(ctx, "ping", "-c", "1", "-W", "5", dst); err != nil {
			t.Errorf("a cannot ping b at %s: %v", dst, err)
		} else if !strings.Contains(out, "1 received") {
			t.Errorf("ping a -> %s: %s", dst, out)
		}
	}
	if _, err := b.Run(ctx, "ping", "-c", "1", "-W", "5", a.Addr().String()); err != nil {
		t.Errorf("b cannot ping a: %v", err)
	}

	// eth0 in the namespace is the link we report, with its MAC.
	out, err := a.Run(ctx, "ip", "-o", "link", "show", "dev", a.Interface)
	if err != nil {
		t.Fatal(err)
	}
	if mac := a.MAC().String(); !strings.Contains(out, mac) {
		t.Errorf("ip link show eth0 in a = %q, want MAC %s", out, mac)
	}
	if got, want := a.NetNSPath(), "/run/netns/"+l.ID()+"-a"; got != want {
		t.Errorf("NetNSPath = %q, want %q", got, want)
	}
	// The bridge is in the switch namespace, not here.
	if _, err := net.InterfaceByName(l.Bridge()); err == nil {
		t.Errorf("bridge %s is in the root namespace", l.Bridge())
	}
	out, err = l.Switch().Run(ctx, "ip", "-o", "link", "show", "master", l.Bridge())
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "master "+l.Bridge()); n != 2 {
		t.Errorf("bridge has %d ports, want 2:\n%s", n, out)
	}
}

func TestNginxAnswersWithHostName(t *testing.T) {
	t.Parallel()
	before := nginxSystemFiles(t)
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	client := l.AddHost("client", "10.77.0.2/24")
	rs1 := l.AddHost("rs1", "10.77.0.11/24")
	rs2 := l.AddHost("rs2", "10.77.0.12/24")
	ctx := testContext(t)

	n1 := rs1.StartNginx(lab.HTTPOptions{})
	rs2.StartNginx(lab.HTTPOptions{Port: 8080, Body: "custom body"})

	for _, tc := range []struct{ url, want string }{
		{"http://10.77.0.11/", "rs1\n"},
		{"http://10.77.0.11/any/path", "rs1\n"},
		{"http://10.77.0.12:8080/", "custom body"},
	} {
		body, err := client.HTTPGet(ctx, tc.url)
		if err != nil {
			t.Errorf("GET %s: %v", tc.url, err)
			continue
		}
		if body != tc.want {
			t.Errorf("GET %s = %q, want %q", tc.url, body, tc.want)
		}
	}
	resp, err := client.HTTPClient().Get("http://10.77.0.11/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get(lab.HostHeader); got != "rs1" {
		t.Errorf("%s = %q, want rs1", lab.HostHeader, got)
	}
	// The access log is on the process's output, with the client's address.
	if _, err := n1.WaitForOutput(ctx, "10.77.0.2:"); err != nil {
		t.Error(err)
	}
	// Taking a real server down: connections are refused.
	if err := n1.Stop(); err != nil {
		t.Errorf("stopping nginx: %v", err)
	}
	if _, err := client.HTTPGet(ctx, "http://10.77.0.11/"); err == nil {
		t.Error("rs1 still answers after nginx was stopped")
	}
	if after := nginxSystemFiles(t); !slices.Equal(before, after) {
		t.Errorf("nginx touched the system's files:\nbefore %v\nafter  %v", before, after)
	}
}

// nginxSystemFiles describes the files a system nginx writes, to check
// that lab nginx leaves them alone.
func nginxSystemFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"/var/log/nginx/*", "/run/nginx.pid", "/var/lib/nginx/*"} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			fi, err := os.Stat(m)
			if err != nil {
				continue
			}
			files = append(files, fmt.Sprintf("%s %d %s", m, fi.Size(), fi.ModTime()))
		}
	}
	return files
}

func TestGoHTTPServer(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{})
	client := l.AddHost("client")
	rs := l.AddHost("rs")
	ctx := testContext(t)

	srv := rs.StartGoHTTP(lab.HTTPOptions{Port: 8000})
	url := "http://" + net.JoinHostPort(rs.Addr().String(), "8000") + "/"
	body, err := client.HTTPGet(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if body != "rs\n" {
		t.Errorf("GET %s = %q, want %q", url, body, "rs\n")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.HTTPGet(ctx, url); err == nil {
		t.Errorf("GET %s after Close succeeded", url)
	}
}

func TestSysctlsArePerNamespace(t *testing.T) {
	t.Parallel()
	const key = "net.ipv4.conf.all.arp_ignore"
	rootBefore := readRootSysctl(t, key)
	l := lab.New(t, lab.Options{})
	rs := l.AddHost("rs")
	other := l.AddHost("other")

	rs.ConfigureDRRealServer("10.77.0.100")
	for _, tc := range []struct {
		host      *lab.Host
		key, want string
	}{
		{rs, key, "1"},
		{rs, "net.ipv4.conf.all.arp_announce", "2"},
		{rs, "net.ipv4.conf.eth0.arp_ignore", "1"},
		{rs, "net/ipv4/conf/eth0/arp_announce", "2"},
		{other, key, "0"},
	} {
		got, err := tc.host.Sysctl(tc.key)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: %s = %q, want %q", tc.host.Name, tc.key, got, tc.want)
		}
	}
	if rootAfter := readRootSysctl(t, key); rootAfter != rootBefore {
		t.Errorf("root namespace %s changed from %s to %s", key, rootBefore, rootAfter)
	}
	if _, err := rs.Sysctl("kernel.hostname"); err == nil {
		t.Error("reading kernel.hostname through a lab host succeeded; want refusal of non-net keys")
	}
}

func readRootSysctl(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	if err != nil {
		t.Skipf("needs /proc/sys/%s: %v", key, err)
	}
	return strings.TrimSpace(string(b))
}

func TestDirectRoutingRealServerIgnoresARPForVIP(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{})
	client := l.AddHost("client", "10.77.0.2/24")
	director := l.AddHost("director", "10.77.0.10/24")
	rs := l.AddHost("rs", "10.77.0.11/24")
	ctx := testContext(t)
	const vip = "10.77.0.100"

	rs.ConfigureDRRealServer(vip)
	out, err := rs.Run(ctx, "ip", "-o", "addr", "show", "dev", "lo")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, vip+"/32") {
		t.Fatalf("VIP not on lo of rs:\n%s", out)
	}
	// The real server holds the VIP but does not answer ARP for it: no
	// reply within arping's deadline.
	capture := l.Capture("arp")
	if out, err := client.Run(ctx, "arping", "-c", "1", "-w", "1", "-i", "eth0", vip); err == nil {
		t.Errorf("rs answered ARP for the VIP despite arp_ignore:\n%s", out)
	}
	if _, err := capture.WaitFor(ctx, "who-has "+vip); err != nil {
		t.Error(err)
	}
	// The director, holding the VIP on eth0, answers.
	director.AddAddr(director.Interface, vip+"/24")
	if out, err := client.Run(ctx, "arping", "-c", "1", "-w", "5", "-i", "eth0", vip); err != nil {
		t.Errorf("no ARP reply from the director: %v\n%s", err, out)
	}
	line, err := capture.WaitFor(ctx, vip+" is-at "+director.MAC().String())
	if err != nil {
		t.Fatal(err)
	}
	if mac := rs.MAC().String(); strings.Contains(strings.Join(capture.Lines(), "\n"), "is-at "+mac) {
		t.Errorf("rs (%s) sent an ARP reply; first director reply: %s", mac, line)
	}
	if err := capture.Stop(); err != nil {
		t.Errorf("stopping capture: %v", err)
	}
	if fi, err := os.Stat(capture.Path()); err != nil || fi.Size() == 0 {
		t.Errorf("pcap file %s: %v, %v", capture.Path(), fi, err)
	}
}

func TestNATRealServerRoutesViaDirector(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{})
	client := l.AddHost("client", "10.77.0.2/24")
	director := l.AddHost("director", "10.77.0.10/24", "10.78.0.1/24")
	rs := l.AddHost("rs", "10.78.0.11/24")
	ctx := testContext(t)

	director.EnableForwarding()
	rs.SetDefaultRoute(netip.MustParseAddr("10.78.0.1"))
	client.AddRoute("10.78.0.0/24", director.Addr().String())
	if got, err := director.Sysctl("net.ipv4.ip_forward"); err != nil || got != "1" {
		t.Fatalf("ip_forward on director = %q, %v", got, err)
	}
	rs.StartGoHTTP(lab.HTTPOptions{})
	body, err := client.HTTPGet(ctx, "http://10.78.0.11/")
	if err != nil {
		t.Fatal(err)
	}
	if body != "rs\n" {
		t.Errorf("body = %q, want rs", body)
	}
	out, err := rs.Run(ctx, "ip", "route", "show", "default")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "via 10.78.0.1") {
		t.Errorf("default route of rs = %q, want via 10.78.0.1", out)
	}
}

func TestDoRunsInNamespace(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{})
	a := l.AddHost("a")
	b := l.AddHost("b")
	ctx := testContext(t)

	var names []string
	err := a.Do(func() error {
		ifaces, err := net.Interfaces()
		for _, i := range ifaces {
			names = append(names, i.Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if want := []string{"eth0", "lo"}; !slices.Equal(names, want) {
		t.Errorf("links seen inside a = %v, want %v", names, want)
	}

	// A listener opened inside stays in the namespace.
	ln, err := b.Listen("tcp", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, "hello from b\n")
		c.Close()
	}()
	address := net.JoinHostPort(b.Addr().String(), "7000")
	if err := a.WaitTCP(ctx, address); err != nil {
		t.Fatal(err)
	}
	// The address is b's alone: the root namespace does not have it.
	// (Never dial lab addresses from the root namespace: with no route
	// there, the packets would leave the machine.)
	rootAddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range rootAddrs {
		if strings.HasPrefix(a.String(), b.Addr().String()+"/") {
			t.Errorf("root namespace has %s", a)
		}
	}

	// The error of fn comes back as is; a panic is re-raised.
	sentinel := errors.New("sentinel")
	if err := a.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do returned %v, want the error of fn", err)
	}
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want boom", v)
			}
		}()
		a.Do(func() error { panic("boom") })
	}()
}

func TestRunErrorNamesCommandAndHost(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{})
	a := l.AddHost("a")
	_, err := a.Run(testContext(t), "sh", "-c", "echo oops >&2; exit 3")
	if err == nil {
		t.Fatal("Run of a failing command returned no error")
	}
	for _, want := range []string{"sh -c", "on a", "exit status 3", "oops"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestStopEndsProcessGroup(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{})
	a := l.AddHost("a")
	ctx := testContext(t)

	p := a.Start(ctx, "sh", "-c", "sleep 300 & sleep 300 & echo started; wait")
	if _, err := p.WaitForOutput(ctx, "started"); err != nil {
		t.Fatal(err)
	}
	if n := len(groupMembers(t, p.Pid())); n != 3 {
		t.Errorf("process group has %d members, want 3 (sh and two sleeps)", n)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if left := groupMembers(t, p.Pid()); len(left) != 0 {
		t.Errorf("processes left in the group after Stop: %v", left)
	}
}

// groupMembers lists live processes whose process group is pgid.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) < 3 || fields[0] == "Z" {
			continue
		}
		if g, _ := strconv.Atoi(fields[2]); g == pgid {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// requireRoot skips tests that check a lab from outside, as New would
// skip the lab itself.
func requireRoot(t *testing.T) {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		t.Skipf("needs root (CAP_NET_ADMIN): running as uid %d", uid)
	}
}

// The helpers below run in a child test process, started by the tests
// after them, so that a failing or crashing test can be observed from
// outside.
const helperEnv = "LVSKIT_LAB_HELPER"

func TestAddDummy(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{})
	d := l.AddHost("director")
	ctx := testContext(t)
	if out, err := d.Run(ctx, "ip", "link", "add", "probe0", "type", "dummy"); err != nil {
		t.Skipf("needs the kernel's dummy link driver (CONFIG_DUMMY): %s", strings.TrimSpace(out))
	}
	d.AddDummy("ipvs0", "192.168.99.1/32", "fd99::1/128")
	out, err := d.Run(ctx, "ip", "-o", "addr", "show", "dev", "ipvs0")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"192.168.99.1/32", "fd99::1/128"} {
		if !strings.Contains(out, want) {
			t.Errorf("ipvs0 lacks %s:\n%s", want, out)
		}
	}
}

func TestConnectManyOpensEveryConnection(t *testing.T) {
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.77.0.0/24")})
	client := l.AddHost("client", "10.77.0.2/24")
	server := l.AddHost("server", "10.77.0.3/24")
	ln, err := server.Listen("tcp", "10.77.0.3:7000")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 25)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()
	ctx := testContext(t)
	rate, err := client.ConnectMany(ctx, "10.77.0.3:7000", 25, 4)
	if err != nil || rate <= 0 {
		t.Fatalf("rate %v, error %v", rate, err)
	}
	for i := range 25 {
		select {
		case <-accepted:
		case <-ctx.Done():
			t.Fatalf("the server accepted %d connections, want 25", i)
		}
	}
	// Nothing listens here: the first refusal ends it, named.
	if _, err := client.ConnectMany(testContext(t), "10.77.0.3:7001", 5, 2); err == nil || !strings.Contains(err.Error(), "of 5") {
		t.Errorf("error %v, want the refused connection named", err)
	}
}
