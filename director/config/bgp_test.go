package config

import (
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func loadOK(t *testing.T, text string) *Config {
	t.Helper()
	cfg, err := Load("lvsd.yaml", LoadOptions{FS: fstest.MapFS{"lvsd.yaml": {Data: []byte(text)}}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

const bgpGood = `ipvs: {sloppy_tcp: true}
bgp:
  asn: 65001
  router_id: 10.0.0.2
  peers:
    - {address: 10.0.0.1, asn: 65000, hold_time: 9s, keepalive: 3s, password: s3cret}
    - {address: "2001:db8::1", asn: 65000}
  communities: ["65001:100", "65001:200"]
  low_watermark: 50%
  high_watermark: 0.75
virtual_services:
  - address: 192.168.0.100
    port: 80
    scheduler: mh
    scheduler_flags: [mh-port]
    announce: bgp
    real_servers: [{address: 10.0.1.2}, {address: 10.0.1.3}]
  - address: 192.168.0.100
    port: 443
    scheduler: mh
    scheduler_flags: [mh-port]
    announce: bgp
    real_servers: [{address: 10.0.1.2}, {address: 10.0.1.3}]
  - address: 192.168.0.101
    port: 80
    real_servers: [{address: 10.0.1.2}]
`

func TestBGPSectionLoadsWithDefaults(t *testing.T) {
	cfg := loadOK(t, bgpGood)
	b := cfg.BGP
	if b.ASN != 65001 || b.RouterID != netip.MustParseAddr("10.0.0.2") || len(b.Peers) != 2 {
		t.Fatalf("bgp = %+v", b)
	}
	if p := b.Peers[0]; p.HoldTime != 9*time.Second || p.Keepalive != 3*time.Second || p.Password != "s3cret" {
		t.Errorf("first peer = %+v", p)
	}
	if p := b.Peers[1]; p.HoldTime != DefaultBGPHoldTime || p.Port != 0 {
		t.Errorf("second peer's hold time = %v, want the default %v", p.HoldTime, DefaultBGPHoldTime)
	}
	if got := []string{b.Communities[0].String(), b.Communities[1].String()}; strings.Join(got, " ") != "65001:100 65001:200" {
		t.Errorf("communities = %v", got)
	}
	if b.LowWatermark != 0.5 || b.HighWatermark != 0.75 {
		t.Errorf("watermarks = %v, %v; want 50%%, 75%%", b.LowWatermark, b.HighWatermark)
	}
	want := []Announce{AnnounceBGP, AnnounceBGP, AnnounceVRRP}
	for i, s := range cfg.VirtualServices {
		if s.Announce != want[i] {
			t.Errorf("service %d announce = %q, want %q", i, s.Announce, want[i])
		}
	}
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("a config that follows the advice has warnings: %v", w)
	}
	if cfg.IPVS.SloppyTCP == nil || !*cfg.IPVS.SloppyTCP {
		t.Error("sloppy_tcp: true was not read")
	}
}

func TestHighWatermarkDefaultsToLow(t *testing.T) {
	cfg := loadOK(t, strings.Replace(bgpGood, "  high_watermark: 0.75\n", "", 1))
	if cfg.BGP.HighWatermark != 0.5 {
		t.Errorf("high_watermark = %v, want low_watermark's 50%%", cfg.BGP.HighWatermark)
	}
}

func TestBGPErrors(t *testing.T) {
	cases := []struct {
		name, file string
		want       []string
	}{{
		name: "section",
		file: `bgp:
  asn: 0
  router_id: "2001:db8::2"
  listen_port: 1179
  neighbors: []
  low_watermark: 80%
  high_watermark: 120%
  stop_drain: 2m
virtual_services:
  - {address: 192.168.0.100, port: 80, announce: bgp}
`,
		want: []string{
			`lvsd.yaml:2:3: bgp: no peers: write peers: [{address: ..., asn: ...}] (the routers to announce to)`,
			`lvsd.yaml:2:8: asn: 0 is reserved: write an AS number from 1 (private ones: 64512-65534, 4200000000-4294967294)`,
			`lvsd.yaml:3:14: router_id: 2001:db8::2 is not IPv4: a BGP identifier is an IPv4 address even on an IPv6-only director`,
			`lvsd.yaml:4:16: listen_port: lvsd does not listen on every address: write listen_addresses too (the addresses the peers connect to)`,
			`lvsd.yaml:5:3: unknown key "neighbors" in bgp: write peers (a list)`,
			`lvsd.yaml:7:19: high_watermark: "120%" is not a share: write a percentage from 0% to 100% ("50%") or a fraction from 0 to 1 (0.5)`,
			`lvsd.yaml:8:15: stop_drain: 2m0s is out of range: write 0s to 1m (default 1s)`,
		},
	}, {
		name: "peers",
		file: `bgp:
  asn: 65001
  router_id: 10.0.0.2
  peers:
    - {address: 10.0.0.1, asn: 65000, hold_time: 2s}
    - {address: 10.0.0.3, asn: 65000, hold_time: 9s, keepalive: 9s, passive: true}
    - {address: 10.0.0.1, asn: 65000, bfd: true, local_address: "2001:db8::2"}
    - {asn: 65000, hold_time: 1500ms}
  communities: [65001]
virtual_services:
  - {address: 192.168.0.100, port: 80, announce: bgp}
`,
		want: []string{
			`lvsd.yaml:5:50: hold_time: 2s is out of range: write 0s (no hold timer) or 3s to 65535s (RFC 4271)`,
			`lvsd.yaml:6:65: keepalive: 9s is not shorter than hold_time 9s: write a third of it (3s)`,
			`lvsd.yaml:6:69: passive: the peer must connect to lvsd, which does not listen: write listen_port and listen_addresses in bgp, or remove passive`,
			`lvsd.yaml:7:17: peer 10.0.0.1 is already listed at lvsd.yaml:5:7: list each peer once`,
			`lvsd.yaml:7:39: bfd: not supported by lvsd yet: remove it; a dead director's routes go after hold_time (write hold_time: 3s for the fastest the protocol allows)`,
			`lvsd.yaml:7:65: local_address: 2001:db8::2 is not of the peer's family (10.0.0.1): write an address of this director in the same family`,
			`lvsd.yaml:8:7: bgp peer: address is missing: write the router's address (address: 10.0.0.1)`,
			`lvsd.yaml:8:31: hold_time: 1.5s is not whole seconds: BGP counts in seconds`,
			`lvsd.yaml:9:17: communities: the number 65001 is not a community: write ASN:value, each 0 to 65535, in quotes ("65001:100")`,
		},
	}, {
		name: "announce",
		file: `vrrp:
  instances:
    - {name: VI_1, interface: eth0, virtual_router_id: 51, virtual_addresses: [192.168.0.200]}
virtual_services:
  - {address: 192.168.0.100, port: 80, announce: bgp}
  - {address: 192.168.0.100, port: 443}
  - {address: 192.168.0.101, port: 80, announce: both}
  - {fwmark: 7, announce: bgp}
  - {address: 192.168.0.102, port: 80, announce: ospf}
`,
		want: []string{
			`lvsd.yaml:5:50: announce: bgp needs a bgp section (asn, router_id, peers): write one, or announce: vrrp`,
			`lvsd.yaml:6:5: announce: vrrp, but the service of 192.168.0.100 at lvsd.yaml:5:5 is announced with bgp: a route is per address: write the same announce on every service of 192.168.0.100`,
			`lvsd.yaml:7:50: announce: both needs a bgp section (asn, router_id, peers): write one, or announce: vrrp`,
			`lvsd.yaml:7:50: announce: both: 192.168.0.101 is not a virtual address of any vrrp instance: add it to one, or write announce: bgp`,
			`lvsd.yaml:8:27: announce: bgp: a fwmark service has no address to announce: write announce on services with an address`,
			`lvsd.yaml:9:50: announce: unknown value "ospf": use one of vrrp, bgp or both`,
		},
	}, {
		name: "announce_disagrees",
		file: bgpGood + `  - {address: 192.168.0.101, port: 443, announce: bgp, scheduler: mh, scheduler_flags: [mh-port]}
`,
		want: []string{
			`lvsd.yaml:27:51: announce: bgp, but the service of 192.168.0.101 at lvsd.yaml:24:5 is announced with vrrp: a route is per address: write the same announce on every service of 192.168.0.101`,
		},
	}, {
		name: "nothing_announced",
		file: `bgp: {asn: 65001, router_id: 10.0.0.2, peers: [{address: 10.0.0.1, asn: 65000}]}
virtual_services:
  - {address: 192.168.0.100, port: 80}
`,
		want: []string{
			`lvsd.yaml:1:1: bgp: no virtual service is announced over it: write announce: bgp on the services whose address the routers should learn`,
		},
	}, {
		name: "included_file",
		file: `include: more.yaml
virtual_services: []
`,
		want: []string{
			`more.yaml:1:1: bgp belongs in the main file: an included file holds only virtual_services`,
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := loadErrors(t, map[string]string{"lvsd.yaml": tc.file, "more.yaml": "bgp: {asn: 1}\n"}, LoadOptions{})
			checkErrors(t, got, tc.want)
		})
	}
}

func TestBGPWarningsGuideToMaglevAndSloppyTCP(t *testing.T) {
	cfg := loadOK(t, `bgp: {asn: 65001, router_id: 10.0.0.2, peers: [{address: 10.0.0.1, asn: 65000}]}
virtual_services:
  - {address: 192.168.0.100, port: 80, scheduler: rr, announce: bgp}
  - {address: 192.168.0.100, port: 81, scheduler: sh, announce: bgp}
  - {address: 192.168.0.100, port: 82, scheduler: mh, announce: bgp}
  - {address: 192.168.0.100, port: 83, scheduler: mh, scheduler_flags: [mh-port], forwarding: masquerade, persistence: {}, announce: bgp}
  - {address: 192.168.0.100, port: 84, announce: bgp}
  - {address: 192.168.0.100, port: 85, scheduler: mh, scheduler_flags: [mh-port], on_failure: quiesce, health_check: {type: tcp}, announce: bgp, real_servers: [{address: 10.0.1.2}]}
  - {address: 192.168.0.100, port: 86, scheduler: mh, scheduler_flags: [mh-port], health_check: {type: tcp}, announce: bgp, real_servers: [{address: 10.0.1.2}]}
  - {address: 192.168.0.100, port: 87, scheduler: mh, scheduler_flags: [mh-port, mh-fallback], on_failure: quiesce, health_check: {type: tcp}, announce: bgp, real_servers: [{address: 10.0.1.2}]}
  - {address: 192.168.0.101, port: 80, scheduler: rr}
`)
	var got []string
	for _, w := range cfg.Warnings() {
		got = append(got, w.Error())
	}
	wantPrefixes := []string{
		"lvsd.yaml:1:6: bgp: without ipvs: {sloppy_tcp: true}",
		"lvsd.yaml:3:51: scheduler: rr on TCP 192.168.0.100:80, which every director announces over bgp: when a director goes",
		"lvsd.yaml:4:51: scheduler: sh on TCP 192.168.0.100:81",
		"lvsd.yaml:5:51: scheduler: mh without mh-port on TCP 192.168.0.100:82",
		"lvsd.yaml:6:95: forwarding: masquerade on TCP 192.168.0.100:83",
		"lvsd.yaml:6:120: persistence on TCP 192.168.0.100:83",
		"lvsd.yaml:7:5: scheduler: wlc on TCP 192.168.0.100:84",
		"lvsd.yaml:8:72: scheduler_flags: mh without mh-fallback on TCP 192.168.0.100:85",
		"lvsd.yaml:9:5: on_failure: remove on TCP 192.168.0.100:86",
	}
	if len(got) != len(wantPrefixes) {
		t.Fatalf("warnings:\n%s\nwant %d", strings.Join(got, "\n"), len(wantPrefixes))
	}
	for i, w := range wantPrefixes {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("warning %d:\n%s\nwant it to start with\n%s", i, got[i], w)
		}
	}
	if !strings.Contains(got[1], "Write scheduler: mh, scheduler_flags: [mh-port], and ipvs: {sloppy_tcp: true}") {
		t.Errorf("the rr warning does not say what to write: %s", got[1])
	}
}
