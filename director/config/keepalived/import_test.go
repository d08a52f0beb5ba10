package keepalived

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/lvskit/lvskit/director/config"
)

// A director pair's keepalived.conf (with an include) imports to an lvsd
// config that lvsd loads, with every keepalived setting lvsd lacks
// named at its file:line.
func TestImportKeepalivedGolden(t *testing.T) {
	got, err := Import("testdata/director.conf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "director.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, got.YAML, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got.YAML)); diff != "" {
		t.Errorf("import differs from %s (go test -update rewrites it):\n%s", golden, diff)
	}
	wantWarnings := []string{
		"testdata/director.conf:3: router_id LVS_A: not imported: it does not change what lvsd does with traffic or the virtual addresses",
		"testdata/director.conf:4: notification_email: not imported: it does not change what lvsd does with traffic or the virtual addresses",
		"testdata/director.conf:27: state MASTER: not imported: lvsd starts every instance as backup and the highest priority becomes master, as keepalived does after its first adverts",
		"testdata/director.conf:38: 192.168.0.100/24 dev eth0 label eth0:vip: imported as 192.168.0.100/32: lvsd holds virtual addresses as host addresses; the /24 only adds a prefix route on the master, which the interface's own address normally provides",
		"testdata/director.conf:52: smtp_alert: not imported: lvsd sends no e-mail",
		"testdata/conf.d/web.conf:56: notify_down /usr/local/bin/down.sh: not imported: lvsd runs no command when a real server goes up or down: watch the status API or the metrics",
	}
	if diff := cmp.Diff(wantWarnings, warnings(got)); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}

	// lvsd loads it, and it means what keepalived meant.
	cfg, err := config.Parse("imported.yaml", got.YAML, config.LoadOptions{FS: fstest.MapFS{}})
	if err != nil {
		t.Fatalf("lvsd refuses the import: %v\n%s", err, got.YAML)
	}
	web := cfg.VirtualServices[0]
	if web.Scheduler != "wlc" || web.Forwarding != config.DirectRoute || web.Persistence.Netmask != 24 || web.OnFailure != config.Quiesce ||
		web.HealthCheck.Host != "www.example.com" || web.HealthCheck.Interval.String() != "6s" || web.HealthCheck.Retry != 3 ||
		web.Quorum.Weight != 2 || web.SorryServer == nil || len(web.RealServers) != 2 || web.RealServers[0].Weight != 2 {
		t.Errorf("web service: %+v", web)
	}
	fw := cfg.VirtualServices[1]
	if fw.FWMark != 10 || fw.Forwarding != config.Masquerade || fw.RealServers[0].HealthCheck.Type != config.CheckTCP ||
		fw.RealServers[1].HealthCheck.Type != config.CheckScript || !fw.RealServers[1].HealthCheck.Shell {
		t.Errorf("fwmark service: %+v", fw)
	}
	vi := cfg.VRRP.Instances[0]
	if vi.Version != 2 || vi.PreemptMode() || vi.Password() != "s3cret" || len(vi.TrackInterfaces) != 2 || vi.Notify == nil || len(vi.Notify.Any) != 1 {
		t.Errorf("VI_web: %+v", vi)
	}
	if gw := cfg.VRRP.Instances[1]; gw.Version != 3 || gw.AdvertInterval.String() != "500ms" || len(gw.UnicastPeers) != 1 {
		t.Errorf("VI_gw: %+v", gw)
	}
	if sd := cfg.IPVS.SyncDaemon; sd == nil || sd.VRRPInstance != "VI_web" || sd.SyncID != 51 {
		t.Errorf("sync daemon: %+v", sd)
	}
	if g := cfg.VRRP.SyncGroupOf("VI_gw"); g == nil || g.Name != "G_web" {
		t.Errorf("sync group: %+v", g)
	}
}

func TestImportKeepalivedErrors(t *testing.T) {
	for name, tc := range map[string]struct{ conf, want string }{
		"unclosed":     {"vrrp_instance VI_1 {\n  interface eth0\n", "keepalived.conf:1: a block opened here is never closed: add }"},
		"stray brace":  {"}\n", "keepalived.conf:1: a } closes no block: remove it"},
		"quote":        {"vrrp_script c {\n script \"/bin/true\n}\n", "keepalived.conf:2: unterminated quoted string"},
		"bad priority": {"vrrp_instance VI_1 {\n priority high\n}\n", `keepalived.conf:2: priority "high": want a whole number from 1 to 255`},
		"bad lb_kind":  {"virtual_server 10.0.0.1 80 {\n lb_kind FOO\n}\n", "keepalived.conf:2: lb_kind FOO: want NAT, DR or TUN"},
		"bad address":  {"virtual_server nowhere 80 {\n}\n", "keepalived.conf:1: virtual_server nowhere: not an address"},
		"missing file": {"include missing.conf\n", ""},
		"include loop": {"include keepalived.conf\n", "includes nested more than 8 deep"},
		"track weight": {"vrrp_instance VI_1 {\n track_interface {\n  eth0 weight lots\n }\n}\n", `keepalived.conf:3: eth0 weight "lots": want a whole number from -253 to 253`},
		"bad advert":   {"vrrp_instance VI_1 {\n advert_int soon\n}\n", `keepalived.conf:2: advert_int "soon": want a number of seconds`},
		"sync daemon":  {"global_defs {\n lvs_sync_daemon eth1\n}\n", "keepalived.conf:2: lvs_sync_daemon needs an interface and a vrrp instance"},
		"auth AH":      {"vrrp_instance VI_1 {\n authentication {\n  auth_type AH\n  auth_pass x\n }\n}\n", "keepalived.conf:3: auth_type AH: lvsd has no IPsec AH authentication"},
		"no group":     {"virtual_server group G {\n}\n", "keepalived.conf:1: virtual_server group G: no virtual_server_group G is defined"},
		"bad range":    {"virtual_server_group G {\n 10.0.0.9-3 80\n}\nvirtual_server group G {\n}\n", "keepalived.conf:2: virtual_server_group entry 10.0.0.9-3"},
		"bad rs port":  {"virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 http {\n }\n}\n", `keepalived.conf:2: real_server "http": want a whole number from 0 to 65535`},
	} {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{"keepalived.conf": {Data: []byte(tc.conf)}}
			_, err := Import("keepalived.conf", Options{FS: fsys})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v, want none (an include pattern matching nothing includes nothing)", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzImport: any input imports or fails with an error; never
// a panic.
func FuzzImport(f *testing.F) {
	for _, p := range []string{"testdata/director.conf", "testdata/conf.d/web.conf"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("vrrp_instance VI_1 {\n virtual_ipaddress { 10.0.0.1/24 dev\n }\n}\n"))
	for _, p := range []string{"testdata/representative/groups.conf", "testdata/representative/fwmark.conf", "testdata/representative/persistence.conf", "testdata/representative/vrrp.conf"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("@high vrrp_script s {\n@^high script /x\\#1 \\\n arg\n}\n"))
	f.Fuzz(func(t *testing.T, conf []byte) {
		fsys := fstest.MapFS{"keepalived.conf": {Data: conf}}
		imp, err := Import("keepalived.conf", Options{FS: fsys})
		if err == nil && len(imp.YAML) == 0 {
			t.Error("no error and no output")
		}
	})
}

// enable_script_security and script_user, global and per script (user
// in vrrp_script and MISC_CHECK, USERNAME [GROUPNAME] after notify and
// quorum commands), become lvsd's script_user settings.
func TestImportKeepalivedScriptSecurity(t *testing.T) {
	got, err := Import("testdata/script-security.conf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "script-security.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, got.YAML, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got.YAML)); diff != "" {
		t.Errorf("import differs from %s (go test -update rewrites it):\n%s", golden, diff)
	}
	wantWarnings := []string{
		"testdata/script-security.conf:31: notify_fault /usr/local/libexec/keepalived/notify-fault root: not imported: lvsd runs all notify commands of a block as one script_user, and the others run as notifier: run this one as that user too, or through a wrapper",
	}
	if diff := cmp.Diff(wantWarnings, warnings(got)); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	cfg, err := config.Parse("imported.yaml", got.YAML, config.LoadOptions{FS: fstest.MapFS{}})
	if err != nil {
		t.Fatalf("lvsd refuses the import: %v\n%s", err, got.YAML)
	}
	if cfg.LVSD.ScriptUser != "keepalived_script:nogroup" || cfg.VRRP.Scripts[0].ScriptUser != "nginx_check" || cfg.VRRP.Scripts[1].ScriptUser != "root:root" ||
		cfg.VRRP.Instances[0].Notify.ScriptUser != "notifier" || cfg.VirtualServices[0].Quorum.ScriptUser != "pager:pager" ||
		cfg.VirtualServices[0].HealthCheck.ScriptUser != "web_check" {
		t.Errorf("script users not carried over:\n%s", got.YAML)
	}
	if n := cfg.VRRP.Instances[0].Notify; strings.Join(n.Master, " ") != "/usr/local/libexec/keepalived/notify master" {
		t.Errorf("notify master %q", n.Master)
	}
}

func warnings(r *Result) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.String())
	}
	return out
}

var update = flag.Bool("update", false, "rewrite the golden files")

// What changes behaviour is never a cosmetic finding: a checker lvsd
// lacks, excluded addresses, a static route; and ranks before the
// cosmetic ones.
func TestImportKeepalivedBehaviourChanges(t *testing.T) {
	conf := "global_defs {\n router_id X\n}\nstatic_routes {\n 10.9.0.0/16 via 10.0.0.1\n}\n" +
		"vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n virtual_ipaddress {\n  10.0.0.100\n }\n virtual_ipaddress_excluded {\n  10.0.0.101\n }\n}\n" +
		"virtual_server 10.0.0.100 53 {\n protocol UDP\n real_server 10.0.1.1 53 {\n  BFD_CHECK {\n  }\n }\n}\n"
	r, err := Import("keepalived.conf", Options{FS: fstest.MapFS{"keepalived.conf": {Data: []byte(conf)}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range r.Ranked() {
		got = append(got, fmt.Sprintf("%s %s %v", f.At, f.Kind, f.Cosmetic))
	}
	want := []string{"keepalived.conf:21 check false", "keepalived.conf:4 virtual address false", "keepalived.conf:15 virtual address false", "keepalived.conf:2 global true"}
	if diff := cmp.Diff(want, got); diff != "" || r.Faithful() {
		t.Errorf("ranked findings (-want +got):\n%s", diff)
	}
}

// Conditional lines apply as keepalived -i ID reads them; \# is a
// literal #.
func TestImportKeepalivedConditional(t *testing.T) {
	conf := "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n@high priority 170\n@low\tpriority 85\n@^high nopreempt\n notify_master /bin/n\\#1\n}\n"
	for id, want := range map[string]string{"high": "priority: 170\n", "low": "priority: 85\n", "other": ""} {
		r, err := Import("keepalived.conf", Options{ConfigID: id, FS: fstest.MapFS{"keepalived.conf": {Data: []byte(conf)}}})
		if err != nil {
			t.Fatal(err)
		}
		y := string(r.YAML)
		if want != "" && !strings.Contains(y, want) || want == "" && strings.Contains(y, "priority:") {
			t.Errorf("config id %s: want %q in\n%s", id, want, y)
		}
		if strings.Contains(y, "preempt: false") != (id != "high") {
			t.Errorf("config id %s: @^high nopreempt applied wrongly:\n%s", id, y)
		}
		if !strings.Contains(y, "master: [/bin/n#1]") {
			t.Errorf("\\# not a literal #:\n%s", y)
		}
	}
}

// keepalived's UDP when protocol is left out is written out, not
// lvsd's TCP.
func TestImportKeepalivedProtocolDefault(t *testing.T) {
	conf := "virtual_server 10.0.0.1 53 {\n real_server 10.0.1.1 53 {\n }\n}\nvirtual_server fwmark 3 {\n real_server 10.0.1.1 {\n }\n}\n"
	r, err := Import("keepalived.conf", Options{FS: fstest.MapFS{"keepalived.conf": {Data: []byte(conf)}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("imported.yaml", r.YAML, config.LoadOptions{FS: fstest.MapFS{}})
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.VirtualServices[0].Protocol; p != config.UDP {
		t.Errorf("protocol %q, want udp as keepalived", p)
	}
	if p := cfg.VirtualServices[1].Protocol; p != "" {
		t.Errorf("fwmark service protocol %q, want none", p)
	}
	if len(r.Findings) != 1 || !r.Findings[0].Cosmetic || !strings.Contains(r.Findings[0].Why, "keepalived defaults to UDP") {
		t.Errorf("findings %v", r.Findings)
	}
}

// TestImportUDPPingSMTPChecks: keepalived's UDP_CHECK, PING_CHECK and
// SMTP_CHECK import as lvsd's udp, ping and smtp checks with their
// options and keepalived's timing defaults (retry 1, 1s apart, connect
// timeout 5s), and the import says the behaviour is the same; reply
// lengths without reply data (which keepalived ignores) are left out
// as cosmetic.
func TestImportUDPPingSMTPChecks(t *testing.T) {
	conf := `virtual_server 10.0.0.100 53 {
 protocol UDP
 delay_loop 10
 real_server 10.0.1.1 53 {
  UDP_CHECK {
   payload 0a 1b2c
   require_reply 0aXX
   min_reply_length 2
   max_reply_length 100
  }
 }
 real_server 10.0.1.2 53 {
  UDP_CHECK {
   require_reply
   max_reply_length 100
  }
 }
 real_server 10.0.1.3 53 {
  PING_CHECK {
   connect_ip 10.0.1.30
  }
 }
}
virtual_server 10.0.0.100 25 {
 protocol TCP
 real_server 10.0.1.4 25 {
  SMTP_CHECK {
   helo_name lvs1.example.com
   connect_timeout 2
  }
 }
}
`
	r, err := Import("keepalived.conf", Options{FS: fstest.MapFS{"keepalived.conf": {Data: []byte(conf)}}})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Faithful() {
		t.Errorf("import not faithful: %+v", r.Ranked())
	}
	out := string(r.YAML)
	for _, want := range []string{
		"type: udp\n          payload: 0a 1b2c\n          reply: 0aXX\n          min_reply_bytes: 2\n          max_reply_bytes: 100\n          interval: 10s\n          timeout: 5s\n          rise: 1\n          fall: 1\n          retry: 1\n          retry_delay: 1s\n",
		"type: udp\n          require_reply: true\n          interval: 10s\n",
		"max_reply_length 100: not imported: keepalived applies it only with require_reply data, and there is none",
		"type: ping\n          connect_ip: 10.0.1.30\n          interval: 10s\n          timeout: 5s\n",
		"type: smtp\n      helo_name: lvs1.example.com\n      interval: 1m0s\n      timeout: 2s\n      rise: 1\n      fall: 1\n      retry: 1\n      retry_delay: 1s\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("import lacks %q:\n%s", want, out)
		}
	}
	cfg, err := config.Parse("lvsd.yaml", r.YAML, config.LoadOptions{})
	if err != nil {
		t.Fatalf("lvsd refuses the import: %v\n%s", err, out)
	}
	if n := len(cfg.Desired()); n != 2 {
		t.Errorf("%d services, want 2", n)
	}
}

// A statement with bytes that are not UTF-8 is quoted in its comment
// with U+FFFD, not a panic of the YAML writer (FuzzImport's crasher
// 2a602d62537160cc).
func TestImportQuotesStatementsThatAreNotUTF8(t *testing.T) {
	fsys := fstest.MapFS{"keepalived.conf": {Data: []byte("\\\n0\x800")}}
	imp, err := Import("keepalived.conf", Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(imp.YAML) || !strings.Contains(string(imp.YAML), "0\uFFFD0") {
		t.Errorf("the import does not quote the statement as 0\\uFFFD0:\n%s", imp.YAML)
	}
}
