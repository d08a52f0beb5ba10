package config

import (
	"slices"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
)

const trackingConfig = `ipvs:
  sync_daemon: {interface: eth1, vrrp_instance: VI_ext}
vrrp:
  scripts:
    - name: chk_nginx
      command: [/usr/bin/pgrep, -x, nginx]
    - {name: chk_slow, command: [/usr/local/bin/slow], interval: 5s, timeout: 2s, rise: 3, fall: 2, weight: -20}
  sync_groups:
    - name: G1
      instances: [VI_ext, VI_int]
      notify: {master: [/usr/local/bin/lvs-notify, group-master]}
  instances:
    - name: VI_ext
      interface: eth0
      virtual_router_id: 51
      virtual_addresses: [192.168.0.100]
      track_interfaces: [eth2, {name: eth3, weight: -30}]
      track_scripts: [chk_nginx, {name: chk_slow, weight: 10}]
      notify:
        master: [/usr/local/bin/lvs-notify, master]
        any: [/usr/local/bin/lvs-notify]
    - {name: VI_int, interface: eth1, virtual_router_id: 52, virtual_addresses: [10.0.0.1]}
`

// The keepalived features a director needs beyond failover, written the
// lvsd way, decode with keepalived's defaults.
func TestVRRPTrackingDecodes(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"lvsd.yaml": trackingConfig})
	v := &cfg.VRRP
	s := v.Script("chk_nginx")
	if s == nil || s.Interval != time.Second || s.Timeout != time.Second || s.Rise != 1 || s.Fall != 1 || s.Weight != 0 || s.Shell {
		t.Errorf("chk_nginx with defaults: %+v", s)
	}
	if s := v.Script("chk_slow"); s == nil || s.Interval != 5*time.Second || s.Timeout != 2*time.Second || s.Rise != 3 || s.Fall != 2 || s.Weight != -20 {
		t.Errorf("chk_slow: %+v", s)
	}
	in := v.Instances[0]
	if !slices.Equal(in.TrackInterfaces, []TrackInterface{{Name: "eth2"}, {Name: "eth3", Weight: -30}}) {
		t.Errorf("track_interfaces: %+v", in.TrackInterfaces)
	}
	if len(in.TrackScripts) != 2 || in.TrackScripts[0].Name != "chk_nginx" || in.TrackScripts[0].Weight != nil || *in.TrackScripts[1].Weight != 10 {
		t.Errorf("track_scripts: %+v", in.TrackScripts)
	}
	if in.Notify == nil || !slices.Equal(in.Notify.Master, []string{"/usr/local/bin/lvs-notify", "master"}) || len(in.Notify.Any) != 1 {
		t.Errorf("notify: %+v", in.Notify)
	}
	if g := v.SyncGroupOf("VI_int"); g == nil || g.Name != "G1" || v.SyncGroupOf("nope") != nil {
		t.Errorf("SyncGroupOf: %+v", g)
	}
	// The sync daemon follows VI_ext: it starts as backup.
	sd := cfg.IPVS.KernelSyncDaemons()
	if len(sd) != 1 || sd[0].Role != ipvs.SyncBackup || sd[0].Interface != "eth1" {
		t.Errorf("KernelSyncDaemons() = %+v, want the backup daemon on eth1", sd)
	}
	if m := cfg.IPVS.SyncDaemonAs(ipvs.SyncMaster); m.Role != ipvs.SyncMaster || m.Interface != "eth1" {
		t.Errorf("SyncDaemonAs(master) = %+v", m)
	}
}

func TestVRRPTrackingErrors(t *testing.T) {
	file := `ipvs:
  sync_daemon: {interface: eth1, vrrp_instance: VI_9, role: master}
vrrp:
  scripts:
    - {name: chk, command: [], interval: 10ms, rise: 0, weight: 300}
    - {name: chk, command: [/bin/true]}
    - {command: [/bin/true]}
  sync_groups:
    - {name: G1, instances: [VI_1, VI_x]}
    - {name: G2, instances: [VI_1, VI_2]}
    - {name: G3, instances: [VI_2]}
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: 51
      virtual_addresses: [10.0.0.1]
      track_interfaces: [eth1, eth1, "bad/if", {name: eth2, weight: -254}]
      track_scripts: [chk_missing, {name: chk, weight: 999}]
      notify: {master: []}
    - {name: VI_2, interface: eth0, virtual_router_id: 52, virtual_addresses: [10.0.0.2]}
`
	checkErrors(t, loadErrors(t, map[string]string{"lvsd.yaml": file}, LoadOptions{}), []string{
		"lvsd.yaml:2:49: vrrp_instance: \"VI_9\" is not a vrrp instance of this config: write the name of one (VI_1, VI_2)",
		"lvsd.yaml:2:55: sync_daemon has both role and vrrp_instance: the instance's state chooses the role; remove role",
		"lvsd.yaml:5:7: a vrrp script needs a command: write command: [/usr/bin/pgrep, -x, nginx] (run without a shell; exit 0 is a pass)",
		"lvsd.yaml:5:42: interval: 10ms is too short: write 100ms or more",
		"lvsd.yaml:5:54: rise: 0: write 1 or more",
		"lvsd.yaml:5:65: weight: 300 is out of range: write -253 to 253 (0: fault while down)",
		"lvsd.yaml:6:14: duplicate vrrp script name \"chk\": it is already used at lvsd.yaml:5:7: give each script its own name",
		"lvsd.yaml:7:7: a vrrp script needs a name: write name: chk_nginx",
		"lvsd.yaml:9:36: instances: \"VI_x\" is not a vrrp instance of this config: write the name of one (VI_1, VI_2)",
		"lvsd.yaml:10:30: instances: VI_1 is already in sync group \"G1\": an instance belongs to one group at most",
		"lvsd.yaml:11:7: a sync group needs two or more instances: write instances: [VI_1, VI_2]",
		"lvsd.yaml:11:30: instances: VI_2 is already in sync group \"G2\": an instance belongs to one group at most",
		"lvsd.yaml:17:32: track_interfaces: eth1 is listed twice: list each link once",
		"lvsd.yaml:17:38: track_interfaces: \"bad/if\" is not an interface name: write a name such as eth1",
		"lvsd.yaml:17:69: weight: -254 is out of range: write -253 to 253 (0: fault while down)",
		"lvsd.yaml:18:23: track_scripts: \"chk_missing\" is not a vrrp script: write one of chk, or define it under vrrp: {scripts: [{name: chk_missing, command: [...]}]}",
		"lvsd.yaml:18:56: weight: 999 is out of range: write -253 to 253 (0: fault while down)",
		"lvsd.yaml:19:24: an empty notify command: write the program and its arguments, [/usr/local/bin/lvs-notify, master], or leave the key out",
	})
}
