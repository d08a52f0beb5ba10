package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvskit/lvskit/director/ipvs"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// examples are the files under examples/ that lvsd must load, each with a
// golden file of its Desired() under testdata/golden.
var examples = []string{
	"dr-rr.yaml",
	"nat-wrr.yaml",
	"tun.yaml",
	"persistence.yaml",
	"port0-persistence.yaml",
	"fwmark-web.yaml",
	"group.yaml",
	"ftp-fwmark.yaml",
	"reference.yaml",
	"vrrp-pair.yaml",
	"bgp-ecmp.yaml",
	"with-includes/lvsd.yaml",
}

func TestExamplesCovered(t *testing.T) {
	listed := map[string]bool{}
	for _, e := range examples {
		listed[e] = true
	}
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("examples/%s has no golden test: add it to examples", filepath.Base(f))
		}
	}
}

func TestExamplesDesired(t *testing.T) {
	fsys := os.DirFS("../../examples")
	for _, name := range examples {
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(name, LoadOptions{FS: fsys, Kernel: &Capabilities{Schedulers: ipvs.Schedulers, PersistenceEngines: []string{"sip"}}})
			if err != nil {
				t.Fatalf("loading examples/%s:\n%v", name, err)
			}
			got := formatConfig(cfg)
			golden := filepath.Join("testdata", "golden", strings.ReplaceAll(strings.TrimSuffix(name, ".yaml"), "/", "_")+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Desired() of examples/%s differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, golden, got, want)
			}
		})
	}
}

// formatConfig renders what a configuration asks of the kernel and of
// lvsd, one fact per line, for golden files.
func formatConfig(cfg *Config) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("files: %s", strings.Join(cfg.Files, " "))
	d := cfg.LVSD
	w("lvsd: state_dir=%s status=%q metrics=%q resync=%v flush_on_stop=%v", d.StateDir, d.StatusListen, d.MetricsListen, d.ResyncInterval, d.FlushOnStop)
	w("modules: %s", strings.Join(cfg.Modules(), " "))
	g := &cfg.IPVS
	w("ipvs timeouts: %+v", g.KernelTimeouts())
	if g.ExpireNodestConn != nil {
		w("ipvs expire_nodest_conn: %v", *g.ExpireNodestConn)
	}
	if g.ExpireQuiescentTemplate != nil {
		w("ipvs expire_quiescent_template: %v", *g.ExpireQuiescentTemplate)
	}
	if g.SloppyTCP != nil {
		w("ipvs sloppy_tcp: %v", *g.SloppyTCP)
	}
	if b := cfg.BGP; b.ASN != 0 {
		w("bgp: asn=%d router_id=%v listen=%d %v communities=%v med=%d watermarks=%v..%v stop_drain=%v", b.ASN, b.RouterID, b.ListenPort, b.ListenAddresses, b.Communities, b.MED, b.LowWatermark, b.HighWatermark, b.StopDrain)
		for _, p := range b.Peers {
			w("  peer %v asn=%d port=%d local=%v hold=%v keepalive=%v password=%v passive=%v multihop=%d", p.Address, p.ASN, p.Port, p.LocalAddress, p.HoldTime, p.Keepalive, p.Password != "", p.Passive, p.MultihopTTL)
		}
	}
	if g.ConnReuseMode != nil {
		w("ipvs conn_reuse_mode: %d", *g.ConnReuseMode)
	}
	if g.SyncThreshold != nil {
		w("ipvs sync_threshold: %d %d", g.SyncThreshold.Threshold, g.SyncThreshold.Period)
	}
	for _, sd := range g.KernelSyncDaemons() {
		w("ipvs sync daemon: %v if=%s id=%d maxlen=%d group=%v port=%d ttl=%d", sd.Role, sd.Interface, sd.SyncID, sd.MaxSyncLen, sd.MulticastAddr, sd.MulticastPort, sd.MulticastTTL)
	}
	for _, sc := range cfg.VRRP.Scripts {
		w("vrrp script %s: %q shell=%v interval=%v timeout=%v rise=%d fall=%d weight=%d", sc.Name, sc.Command, sc.Shell, sc.Interval, sc.Timeout, sc.Rise, sc.Fall, sc.Weight)
	}
	for _, sg := range cfg.VRRP.SyncGroups {
		w("vrrp sync group %s: %v", sg.Name, sg.Instances)
	}
	for _, v := range cfg.VRRP.Instances {
		w("vrrp %s: v%d priority=%d interval=%v preempt=%v delay=%v source=%v peers=%v password=%q", v.String(), v.Version, v.Priority, v.AdvertInterval, v.PreemptMode(), v.PreemptDelay, v.SourceAddress, v.UnicastPeers, v.Password())
		for _, va := range v.VirtualAddresses {
			w("  vip %s label=%q dev=%q", va.Address, va.Label, va.Dev)
		}
		w("  garp %+v", v.GARP)
		for _, ti := range v.TrackInterfaces {
			w("  track interface %s weight=%d", ti.Name, ti.Weight)
		}
		for _, ts := range v.TrackScripts {
			weight := "script's"
			if ts.Weight != nil {
				weight = fmt.Sprint(*ts.Weight)
			}
			w("  track script %s weight=%s", ts.Name, weight)
		}
		if n := v.Notify; n != nil {
			w("  notify master=%q backup=%q fault=%q stop=%q any=%q", n.Master, n.Backup, n.Fault, n.Stop, n.Any)
		}
	}
	for _, ds := range cfg.Desired() {
		s := ds.Service
		w("")
		w("service %s name=%q source=%s", s.ServiceKey, ds.Name, ds.Source)
		w("  family=%v scheduler=%s flags=%#x timeout=%d netmask=%d pe=%q on_failure=%s", s.Family, s.Scheduler, uint32(s.Flags), s.Timeout, s.NetmaskBits, s.PersistenceEngine, ds.OnFailure)
		if ds.Announce.OverBGP() {
			w("  announce=%s", ds.Announce)
		}
		if ds.CheckKey != s.ServiceKey {
			w("  checks shared with %s", ds.CheckKey)
		}
		for _, rs := range ds.RealServers {
			w("  -> %s", formatDestination(rs.RealServer))
			if h := rs.HealthCheck; h != nil {
				w("     check %s", formatCheck(h, rs.CheckTarget.String()))
			}
		}
		if ds.SorryServer != nil {
			w("  sorry -> %s", formatDestination(*ds.SorryServer))
		}
		if q := ds.Quorum; q != nil {
			w("  quorum weight=%d hysteresis=%d up=%q down=%q", q.Weight, q.Hysteresis, q.UpCommand, q.DownCommand)
		}
	}
	return b.String()
}

func formatDestination(rs ipvs.RealServer) string {
	s := fmt.Sprintf("%s %v weight=%d upper=%d lower=%d", rs.Key(), rs.Forwarding, rs.Weight, rs.UpperThreshold, rs.LowerThreshold)
	if rs.Forwarding == ipvs.Tunnel {
		s += fmt.Sprintf(" tunnel=%v port=%d flags=%d", rs.TunnelType, rs.TunnelPort, rs.TunnelFlags)
	}
	return s
}

func formatCheck(h *HealthCheck, target string) string {
	s := fmt.Sprintf("%s %s interval=%v timeout=%v rise=%d fall=%d retry=%d retry_delay=%v", h.Type, target, h.Interval, h.Timeout, h.Rise, h.Fall, h.Retry, h.RetryDelay)
	switch h.Type {
	case CheckHTTP, CheckHTTPS:
		s += fmt.Sprintf(" path=%s codes=%v digest=%q host=%q sni=%q verify_tls=%v", h.Path, h.StatusCodes, h.Digest, h.Host, h.SNI, h.VerifyTLS)
	case CheckScript:
		s += fmt.Sprintf(" command=%q shell=%v", h.Command, h.Shell)
	case CheckDNS:
		s += fmt.Sprintf(" query=%s %s", h.QueryName, h.QueryType)
	}
	return s
}
