package keepalived

import (
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/lvskit/lvskit/director/config"
)

// importFaithful imports a representative config, which must come
// through with the same behaviour, and loads it as lvsd would.
func importFaithful(t *testing.T, name string) (*Result, *config.Config) {
	t.Helper()
	r, err := Import(filepath.Join("testdata", "representative", name), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Findings {
		if !f.Cosmetic {
			t.Errorf("behaviour change: %s", f)
		}
	}
	cfg, err := config.Parse("imported.yaml", r.YAML, config.LoadOptions{FS: fstest.MapFS{}})
	if err != nil {
		t.Fatalf("lvsd refuses the import: %v\n%s", err, r.YAML)
	}
	return r, cfg
}

// keepalived's defaults are written out: NAT without lb_kind, the 5s
// connect timeout (longer than delay_loop), TCP_CHECK's one retry 1s
// apart, MISC_CHECK's timeout of delay_loop and no retry.
func TestImportKeepalivedDefaults(t *testing.T) {
	_, cfg := importFaithful(t, "nat-defaults.conf")
	s := cfg.VirtualServices[0]
	if s.Forwarding != config.Masquerade {
		t.Errorf("forwarding %q, want masquerade (keepalived's default)", s.Forwarding)
	}
	tcp, misc := s.RealServers[0].HealthCheck, s.RealServers[1].HealthCheck
	if tcp.Interval != 2*time.Second || tcp.Timeout != 5*time.Second || tcp.Retry != 1 || tcp.RetryDelay != time.Second || tcp.Rise != 1 || tcp.Fall != 1 {
		t.Errorf("TCP_CHECK: %+v", tcp)
	}
	if misc.Timeout != 2*time.Second || misc.Retry != 0 {
		t.Errorf("MISC_CHECK: %+v", misc)
	}
}

// fwmark real servers have no port (but a NAT one may); protocol is
// ignored; scheduler flags come through.
func TestImportKeepalivedFWMark(t *testing.T) {
	_, cfg := importFaithful(t, "fwmark.conf")
	a, b := cfg.VirtualServices[0], cfg.VirtualServices[1]
	if a.FWMark != 1 || a.Protocol != "" || a.Persistence == nil || a.Persistence.Timeout != 900*time.Second || a.RealServers[0].Port != 0 || a.HealthCheck.ConnectPort != 80 {
		t.Errorf("fwmark 1: %+v", a)
	}
	if b.FWMark != 2 || b.Forwarding != config.Masquerade || b.RealServers[0].Port != 443 || !slices.Equal(b.SchedulerFlags, []string{"sh-port"}) ||
		b.HealthCheck.RetryDelay != 3*time.Second || b.HealthCheck.Interval != time.Minute {
		t.Errorf("fwmark 2: %+v", b)
	}
}

// A virtual_server_group becomes an lvsd group (an address range is
// each of its addresses) with the group's real servers and checks,
// checked once; retry and connect_timeout at the virtual server level
// apply to the checks, delay_before_retry at the real server to its
// own.
func TestImportKeepalivedGroup(t *testing.T) {
	_, cfg := importFaithful(t, "groups.conf")
	if len(cfg.VirtualServices) != 1 {
		t.Fatalf("%d services, want the one group", len(cfg.VirtualServices))
	}
	var got []string
	for _, ds := range cfg.Desired() {
		got = append(got, ds.Service.ServiceKey.String())
		if len(ds.RealServers) != 2 || ds.HealthKey() != cfg.VirtualServices[0].Key() {
			t.Errorf("%v: real servers %+v, checks under %v", ds.Service.ServiceKey, ds.RealServers, ds.HealthKey())
			continue
		}
		c0, c1 := ds.RealServers[0].HealthCheck, ds.RealServers[1].HealthCheck
		if c0.Retry != 2 || c0.Timeout != 2*time.Second || c0.RetryDelay != 3*time.Second || c1.RetryDelay != 5*time.Second || c0.Interval != 10*time.Second {
			t.Errorf("%v: checks %+v %+v", ds.Service.ServiceKey, c0, c1)
		}
	}
	want := []string{"TCP 192.0.2.20:80", "TCP 192.0.2.30:80", "TCP 192.0.2.31:80", "TCP 192.0.2.32:80", "FWM 5"}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("services %q, want %q", got, want)
	}
}

// persistence_timeout without a value is 360s; 0 is no persistence;
// inhibit_on_failure quiesces.
func TestImportKeepalivedPersistence(t *testing.T) {
	_, cfg := importFaithful(t, "persistence.conf")
	web, dns, smtp := cfg.VirtualServices[0], cfg.VirtualServices[1], cfg.VirtualServices[2]
	if web.Persistence == nil || web.Persistence.Timeout != 360*time.Second || web.Persistence.Netmask != 24 || web.SorryServer == nil || web.Quorum.Weight != 2 {
		t.Errorf("web: %+v", web)
	}
	if dns.Persistence != nil || !dns.OnePacket || dns.Forwarding != config.Tunnel || dns.HealthCheck.Retry != 3 || dns.HealthCheck.RetryDelay != 5*time.Second {
		t.Errorf("dns: %+v %+v", dns, dns.HealthCheck)
	}
	if smtp.OnFailure != config.Quiesce || smtp.HealthCheck.Timeout != 10*time.Second || smtp.HealthCheck.Interval != time.Minute {
		t.Errorf("smtp: %+v", smtp)
	}
}

// VRRP: auth_pass cut to 8 as keepalived does, an address listed twice
// added once, a /24 held as /32, \# kept in a command.
func TestImportKeepalivedVRRP(t *testing.T) {
	r, cfg := importFaithful(t, "vrrp.conf")
	v2, v3 := cfg.VRRP.Instances[0], cfg.VRRP.Instances[1]
	if v2.Password() != "longpass" || len(v2.VirtualAddresses) != 2 || v3.Version != 3 || len(v3.UnicastPeers) != 1 {
		t.Errorf("instances: %+v\n%+v", v2, v3)
	}
	if cmd := cfg.VRRP.Scripts[0].Command; !slices.Equal(cmd, []string{"/usr/local/bin/check-web#1"}) {
		t.Errorf("script %q", cmd)
	}
	if len(r.Findings) != 6 {
		t.Errorf("findings: %v", r.Findings)
	}
}
