package director

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/health"
)

// TestUDPPingSMTPChecksReachTheScheduler: the new check types of a config
// become the health specs with every option, and keepalived's defaults
// where the config leaves them out.
func TestUDPPingSMTPChecksReachTheScheduler(t *testing.T) {
	cfg, err := config.Parse("lvsd.yaml", []byte(`virtual_services:
  - address: 192.168.0.100
    port: 53
    protocol: udp
    health_check: {type: udp, timeout: 2s, payload: "01 02", reply: "0aXX", min_reply_bytes: 2, max_reply_bytes: 40}
    real_servers:
      - address: 10.0.0.2
      - address: 10.0.0.3
        health_check: {type: udp}
      - address: 10.0.0.4
        health_check: {type: ping, connect_ip: 10.0.0.40, timeout: 1s}
  - address: 192.168.0.100
    port: 25
    health_check: {type: smtp, timeout: 3s}
    real_servers:
      - address: 10.0.0.5
        health_check: {type: smtp, helo_name: lvs1.example.com, connect_port: 2525, timeout: 3s}
      - address: 10.0.0.6
      - address: 10.0.0.7
        health_check: {type: smtp, starttls: true, sni: mx.example.com, verify_tls: true, timeout: 3s}
`), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	targets, err := healthTargets(cfg.Desired())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]health.Spec{}
	for _, tg := range targets {
		got[tg.ID] = tg.Check
	}
	want := map[string]health.Spec{
		"UDP 192.168.0.100:53 10.0.0.2:53": health.UDPCheck{Address: netip.MustParseAddrPort("10.0.0.2:53"), Payload: []byte{1, 2}, Reply: []byte{0x0a, 0}, ReplyMask: []byte{0, 0xff}, MinReplyBytes: 2, MaxReplyBytes: 40, Timeout: 2 * time.Second},
		"UDP 192.168.0.100:53 10.0.0.3:53": health.UDPCheck{Address: netip.MustParseAddrPort("10.0.0.3:53"), MaxReplyBytes: 255, Timeout: 3 * time.Second},
		"UDP 192.168.0.100:53 10.0.0.4:53": health.PingCheck{Address: netip.MustParseAddr("10.0.0.40"), Timeout: time.Second},
		"TCP 192.168.0.100:25 10.0.0.5:25": health.SMTPCheck{Address: netip.MustParseAddrPort("10.0.0.5:2525"), HELOName: "lvs1.example.com", Timeout: 3 * time.Second},
		"TCP 192.168.0.100:25 10.0.0.6:25": health.SMTPCheck{Address: netip.MustParseAddrPort("10.0.0.6:25"), HELOName: "smtpchecker.keepalived.org", Timeout: 3 * time.Second},
		"TCP 192.168.0.100:25 10.0.0.7:25": health.SMTPCheck{Address: netip.MustParseAddrPort("10.0.0.7:25"), HELOName: "smtpchecker.keepalived.org", StartTLS: &health.TLSSettings{ServerName: "mx.example.com", Verify: true}, Timeout: 3 * time.Second},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("specs:\n%#v\nwant:\n%#v", got, want)
	}
	for id, spec := range got {
		if _, err := spec.NewChecker(health.Env{}); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}
