package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
)

func mapFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, text := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(text)}
	}
	return fsys
}

// TestAllErrorsAtOnce checks that one file with mistakes in every section
// reports each of them, in file order, not just the first.
func TestAllErrorsAtOnce(t *testing.T) {
	file := `lvsd:
  state_dir: relative
  resync_interval: 1
ipvs:
  timeouts: {udp: 2.5s}
  sync_daemon: {role: primary, interface: eth1}
virtual_services:
  - address: 192.168.0.100
    port: 80
    scheduler: roundrobin
    forwarding: masquerade
    real_servers:
      - {address: 10.0.0.2, weight: -3}
      - {address: 10.0.0.2}
  - fwmark: 1
    port: 443
    persistence: {netmask: 40}
vrrp: {instances: [{name: VI_1, interface: eth0, virtual_router_id: 0, virtual_addresses: [192.168.0.100]}]}
`
	checkErrors(t, loadErrors(t, map[string]string{"lvsd.yaml": file}, LoadOptions{}), []string{
		`lvsd.yaml:2:14: state_dir: "relative" is relative: write an absolute path such as /var/lib/lvsd`,
		`lvsd.yaml:3:20: resync_interval: 1 has no unit: write a duration with a unit, like "5s", "1m30s" or "500ms" ("1s" for 1 seconds)`,
		`lvsd.yaml:5:19: udp: 2.5s is not a whole number of seconds: write 3s`,
		`lvsd.yaml:6:23: role: unknown value "primary": use one of master, backup or both`,
		`lvsd.yaml:10:16: scheduler: unknown scheduler "roundrobin": use one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh or twos`,
		`lvsd.yaml:13:37: weight: -3 is negative: write 0 (no new connections) to 65535`,
		`lvsd.yaml:14:9: real server 10.0.0.2:80 is listed twice in this service (first at lvsd.yaml:13:9): remove one of them`,
		`lvsd.yaml:16:5: a fwmark service has no port: remove port; the firewall rule that sets mark 1 chooses the ports`,
		`lvsd.yaml:17:28: netmask: 40 is out of range for IPv4: write a prefix length from 1 to 32, or a dotted mask such as 255.255.255.0`,
		`lvsd.yaml:18:69: virtual_router_id: 0 is out of range: write 1 to 255`,
	})
}

func TestKernelCapabilities(t *testing.T) {
	const file = `virtual_services:
  - address: 192.168.0.100
    port: 80
    scheduler: twos
  - address: 192.168.0.100
    port: 81
  - address: 192.168.0.100
    port: 5060
    protocol: udp
    persistence: {engine: sip}
`
	kernel := &Capabilities{Schedulers: []string{"rr", "wrr"}, PersistenceEngines: []string{}}
	want := []string{
		"lvsd.yaml:4:16: scheduler: twos is not available in this kernel (no ip_vs_twos module): use one of rr or wrr",
		"lvsd.yaml:5:5: scheduler: wlc is not available in this kernel (no ip_vs_wlc module): use one of rr or wrr",
		"lvsd.yaml:7:5: scheduler: wlc is not available in this kernel (no ip_vs_wlc module): use one of rr or wrr",
		"lvsd.yaml:10:27: engine: persistence engine sip is not available in this kernel (no ip_vs_pe_sip module): remove engine",
	}
	checkErrors(t, loadErrors(t, map[string]string{"lvsd.yaml": file}, LoadOptions{Kernel: kernel}), want)

	// The same check after Load, for a kernel learnt later.
	cfg := mustLoad(t, map[string]string{"lvsd.yaml": file})
	err := cfg.ValidateAgainst(*kernel)
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("ValidateAgainst: %v", err)
	}
	checkErrors(t, errorStrings(list), want)
	if err := cfg.ValidateAgainst(Capabilities{}); err != nil {
		t.Errorf("ValidateAgainst(unknown kernel) = %v, want nil", err)
	}
	if err := cfg.ValidateAgainst(Capabilities{Schedulers: ipvs.Schedulers, PersistenceEngines: []string{"sip"}}); err != nil {
		t.Errorf("ValidateAgainst(full kernel) = %v, want nil", err)
	}
	checkErrors(t, loadErrors(t, map[string]string{"lvsd.yaml": "virtual_services: [{address: 10.0.0.1, port: 1, scheduler: rr}]\n"},
		LoadOptions{Kernel: &Capabilities{Schedulers: []string{}}}),
		[]string{"lvsd.yaml:1:60: scheduler: rr is not available: this kernel has no IPVS schedulers at all (is ip_vs built? CONFIG_IP_VS)"})
}

func TestKernelSchedulers(t *testing.T) {
	dir := t.TempDir()
	ipvsDir := filepath.Join(dir, "kernel", "net", "netfilter", "ipvs")
	if err := os.MkdirAll(ipvsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ip_vs.ko.xz", "ip_vs_rr.ko.xz", "ip_vs_wrr.ko.zst", "ip_vs_mh.ko", "ip_vs_sh.ko.gz", "ip_vs_ftp.ko.xz", "ip_vs_pe_sip.ko.xz", "ip_vs_rr.ko.xz.sig", "ip_vs_new.ko"} {
		if err := os.WriteFile(filepath.Join(ipvsDir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	builtin := "kernel/net/netfilter/ipvs/ip_vs_lc.ko\nkernel/net/ipv4/tcp_cubic.ko\n"
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte(builtin), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := KernelSchedulers(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"lc", "mh", "rr", "sh", "wrr"}; !slices.Equal(got, want) {
		t.Errorf("KernelSchedulers = %q, want %q", got, want)
	}
	caps, err := KernelCapabilities(dir)
	if err != nil || !slices.Equal(caps.PersistenceEngines, []string{"sip"}) {
		t.Errorf("KernelCapabilities = %+v, %v; want engine sip", caps, err)
	}

	// A kernel with IPVS elsewhere than kernel/net/netfilter/ipvs.
	flat := t.TempDir()
	if err := os.MkdirAll(filepath.Join(flat, "updates"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(flat, "updates", "ip_vs_twos.ko"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := KernelSchedulers(flat); err != nil || !slices.Equal(got, []string{"twos"}) {
		t.Errorf("KernelSchedulers(flat) = %q, %v", got, err)
	}

	if _, err := KernelSchedulers(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "listing IPVS modules in") {
		t.Errorf("KernelSchedulers(missing dir) error = %v", err)
	}
}

func TestDefaults(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"lvsd.yaml": `virtual_services:
  - address: 2001:db8::100
    port: 443
    persistence: {}
    health_check: {type: https, host: www.example.com}
    real_servers:
      - address: 2001:db8::2
`})
	d := cfg.LVSD
	if d.StateDir != DefaultStateDir || d.StatusListen.String() != DefaultStatusListen || d.MetricsListen.String() != DefaultMetricsListen ||
		d.ResyncInterval != DefaultResyncInterval || d.FlushOnStop {
		t.Errorf("lvsd defaults: %+v", d)
	}
	s := cfg.VirtualServices[0]
	if s.Protocol != TCP || s.Family != IPv6 || s.Scheduler != "wlc" || s.Forwarding != DirectRoute || s.OnFailure != Remove || s.Tunnel != nil {
		t.Errorf("service defaults: %+v", s)
	}
	if p := s.Persistence; p.Timeout != 300*time.Second || p.Netmask != 128 || p.Engine != "" {
		t.Errorf("persistence defaults: %+v", p)
	}
	h := s.HealthCheck
	if h.Interval != 5*time.Second || h.Timeout != 3*time.Second || h.Rise != 2 || h.Fall != 3 || h.Retry != 0 || h.RetryDelay != time.Second ||
		h.Path != "/" || !slices.Equal(h.StatusCodes, []StatusRange{{200, 299}}) || h.SNI != "www.example.com" || h.VerifyTLS {
		t.Errorf("health check defaults: %+v", h)
	}
	rs := s.RealServers[0]
	if rs.Port != 443 || rs.Weight != 1 || rs.Forwarding != DirectRoute {
		t.Errorf("real server defaults: %+v", rs)
	}
	ds := cfg.Desired()[0]
	if ds.Service.Flags != ipvs.FlagPersistent || ds.Service.Timeout != 300 || ds.Service.NetmaskBits != 128 {
		t.Errorf("desired service: %+v", ds.Service)
	}
	if got := cfg.Modules(); !slices.Equal(got, []string{"ip_vs", "ip_vs_wlc"}) {
		t.Errorf("Modules() = %q", got)
	}

	// A short interval shortens the default timeout with it.
	cfg = mustLoad(t, map[string]string{"lvsd.yaml": "virtual_services: [{address: 10.0.0.1, port: 1, health_check: {type: tcp, interval: 1s}}]\n"})
	if h := cfg.VirtualServices[0].HealthCheck; h.Timeout != time.Second {
		t.Errorf("timeout with interval 1s = %v, want 1s", h.Timeout)
	}
}

func TestEmptyAndCommentOnlyFiles(t *testing.T) {
	for _, text := range []string{"", "# nothing yet\n", "---\n", "virtual_services:\n"} {
		cfg := mustLoad(t, map[string]string{"lvsd.yaml": text})
		if len(cfg.VirtualServices) != 0 || cfg.LVSD.StateDir != DefaultStateDir {
			t.Errorf("%q: %+v", text, cfg)
		}
	}
}

func TestListenAddresses(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"lvsd.yaml": `lvsd:
  status_listen: unix:/run/lvsd/status.sock
  metrics_listen: ""
`})
	if l := cfg.LVSD.StatusListen; l.Network != "unix" || l.Address != "/run/lvsd/status.sock" {
		t.Errorf("status_listen = %+v", l)
	}
	if !cfg.LVSD.MetricsListen.IsZero() {
		t.Errorf("metrics_listen \"\" = %+v, want off", cfg.LVSD.MetricsListen)
	}
	for text, want := range map[string]ListenAddress{
		"/run/s.sock":   {"unix", "/run/s.sock"},
		"[::1]:9120":    {"tcp", "[::1]:9120"},
		":9121":         {"tcp", ":9121"},
		"0.0.0.0:9121":  {"tcp", "0.0.0.0:9121"},
		"10.0.0.1:9121": {"tcp", "10.0.0.1:9121"},
	} {
		cfg := mustLoad(t, map[string]string{"lvsd.yaml": "lvsd: {metrics_listen: \"" + text + "\"}\n"})
		if cfg.LVSD.MetricsListen != want {
			t.Errorf("metrics_listen %q = %+v, want %+v", text, cfg.LVSD.MetricsListen, want)
		}
	}
}

func TestSyncDaemons(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"lvsd.yaml": "ipvs: {sync_daemon: {role: both, interface: eth1, sync_id: 9}}\n"})
	got := cfg.IPVS.KernelSyncDaemons()
	if len(got) != 2 || got[0].Role != ipvs.SyncMaster || got[1].Role != ipvs.SyncBackup || got[1].Interface != "eth1" || got[1].SyncID != 9 {
		t.Errorf("KernelSyncDaemons = %+v", got)
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"lvsd.yaml": `x-check: &check {type: tcp, interval: 2s}
virtual_services:
  - &web
    address: 192.168.0.100
    port: 80
    health_check: *check
    real_servers: [{address: 10.0.0.2}]
  - <<: *web
    port: 8080
`})
	ds := cfg.Desired()
	if len(ds) != 2 || ds[1].Service.Port != 8080 || ds[1].RealServers[0].Port != 8080 {
		t.Fatalf("merged service: %+v", ds)
	}
	for _, d := range ds {
		if h := d.RealServers[0].HealthCheck; h == nil || h.Type != CheckTCP || h.Interval != 2*time.Second {
			t.Errorf("%s: check %+v, want the anchored tcp check", d.Service.ServiceKey, h)
		}
	}
	// The services share nodes, not values.
	cfg.VirtualServices[0].RealServers[0].Weight = 7
	if cfg.VirtualServices[1].RealServers[0].Weight != 1 {
		t.Error("services decoded from one anchor share their real servers")
	}
}

// TestHostileFiles checks that alias bombs and merge cycles end quickly
// with an error rather than hang or crash.
func TestHostileFiles(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-args: &args [")
	for i := range 200 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("a")
	}
	b.WriteString("]\nx-rs: &rs {address: 10.0.0.2, health_check: {type: script, command: *args}}\nx-list: &list [")
	for i := range 200 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("*rs")
	}
	b.WriteString("]\nvirtual_services: [")
	for i := range 200 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("{address: 10.0.0.1, port: 1, real_servers: *list}")
	}
	b.WriteString("]\n")
	// The expansion is capped (a count of values, not a clock): the
	// bomb ends in this error instead of expanding 200 x 200 x 200.
	_, err := Parse("bomb.yaml", []byte(b.String()), LoadOptions{FS: fstest.MapFS{}})
	if err == nil || !strings.Contains(err.Error(), "too many values") {
		t.Errorf("alias bomb: %v", err)
	}

	_, err = Parse("cycle.yaml", []byte("virtual_services:\n  - &a {<<: *a, port: 1}\n"), LoadOptions{FS: fstest.MapFS{}})
	if err == nil {
		t.Error("merge cycle: no error")
	}
}

func TestErrorFormat(t *testing.T) {
	for e, want := range map[Error]string{
		{File: "a.yaml", Line: 3, Column: 5, Message: "m"}: "a.yaml:3:5: m",
		{File: "a.yaml", Line: 3, Message: "m"}:            "a.yaml:3: m",
		{File: "a.yaml", Message: "m"}:                     "a.yaml: m",
	} {
		if got := e.Error(); got != want {
			t.Errorf("%+v.Error() = %q, want %q", e, got, want)
		}
	}
}

// A VRRP-only config asks nothing of IPVS, so lvsd can run it on a
// kernel without ip_vs; any virtual service or ipvs setting needs it.
func TestNeedsIPVS(t *testing.T) {
	vrrpOnly := "vrrp:\n  instances:\n    - {name: vi, interface: eth0, virtual_router_id: 51, priority: 100, virtual_addresses: [10.0.0.100]}\n"
	cfg := mustLoad(t, map[string]string{"lvsd.yaml": vrrpOnly})
	if cfg.NeedsIPVS() || cfg.Modules() != nil {
		t.Errorf("VRRP only: NeedsIPVS() = %v, Modules() = %q; want false, none", cfg.NeedsIPVS(), cfg.Modules())
	}
	for name, extra := range map[string]string{
		"a virtual service": "virtual_services: [{address: 10.0.0.1, port: 80}]\n",
		"timeouts":          "ipvs: {timeouts: {tcp: 900s}}\n",
		"a sysctl":          "ipvs: {expire_nodest_conn: true}\n",
	} {
		cfg := mustLoad(t, map[string]string{"lvsd.yaml": vrrpOnly + extra})
		if !cfg.NeedsIPVS() || !slices.Contains(cfg.Modules(), "ip_vs") {
			t.Errorf("with %s: NeedsIPVS() = %v, Modules() = %q; want true and ip_vs", name, cfg.NeedsIPVS(), cfg.Modules())
		}
	}
}
