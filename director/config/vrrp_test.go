package config

import (
	"testing"
	"time"
)

// vrrpErrorCases have one file per class of VRRP mistake, with every
// problem Load must report for it, in order.
var vrrpErrorCases = []struct {
	name, file string
	want       []string
}{
	{
		name: "missing",
		file: `vrrp:
  instances:
    - priority: 100
`,
		want: []string{
			"lvsd.yaml:3:7: a vrrp instance needs a name: write name: VI_1",
			"lvsd.yaml:3:7: a vrrp instance needs an interface: write interface: eth0 (the link shared with the other directors)",
			"lvsd.yaml:3:7: a vrrp instance needs a virtual_router_id: write virtual_router_id: 51 (1 to 255, the same on every director of the pair, unique on the link)",
			"lvsd.yaml:3:7: a vrrp instance needs virtual_addresses: write virtual_addresses: [192.168.0.100]",
		},
	},
	{
		name: "ranges",
		file: `vrrp:
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: 256
      version: 4
      priority: 0
      virtual_addresses: [192.168.0.100]
`,
		want: []string{
			"lvsd.yaml:5:26: virtual_router_id: 256 is out of range: write 1 to 255",
			"lvsd.yaml:6:16: version: 4 is not a VRRP version: write 2 (RFC 3768, IPv4 only) or 3 (RFC 5798)",
			"lvsd.yaml:7:17: priority: 0 is out of range: write 1 to 254, or 255 for the owner of the addresses (0 is reserved for a master stepping down)",
		},
	},
	{
		name: "duplicates",
		file: `vrrp:
  instances:
    - {name: VI_1, interface: eth0, virtual_router_id: 51, virtual_addresses: [192.168.0.100, 192.168.0.100]}
    - {name: VI_1, interface: eth0, virtual_router_id: 51, virtual_addresses: [192.168.0.101]}
    - {name: VI_2, interface: eth1, virtual_router_id: 51, virtual_addresses: [192.168.0.101]}
    - {name: VI_6, interface: eth0, virtual_router_id: 51, virtual_addresses: ["2001:db8::1"]}
`,
		want: []string{
			"lvsd.yaml:3:95: virtual_addresses: 192.168.0.100 is listed twice (first at lvsd.yaml:3:80): remove one",
			"lvsd.yaml:4:14: duplicate vrrp instance name \"VI_1\": it is already used at lvsd.yaml:3:7: give each instance its own name",
			"lvsd.yaml:4:56: virtual_router_id: 51 is already used on eth0 by instance \"VI_1\" at lvsd.yaml:3:7: give each instance on a link its own id",
			"lvsd.yaml:5:80: virtual address 192.168.0.101 is also held by instance \"VI_1\": give each address to one instance",
		},
	},
	{
		name: "intervals",
		file: `vrrp:
  instances:
    - {name: a, interface: eth0, virtual_router_id: 1, version: 2, advert_interval: 500ms, virtual_addresses: [10.0.0.1]}
    - {name: b, interface: eth0, virtual_router_id: 2, version: 2, advert_interval: 1500ms, virtual_addresses: [10.0.0.2]}
    - {name: c, interface: eth0, virtual_router_id: 3, version: 3, advert_interval: 15ms, virtual_addresses: [10.0.0.3]}
    - {name: d, interface: eth0, virtual_router_id: 4, version: 3, advert_interval: 41s, virtual_addresses: [10.0.0.4]}
    - {name: e, interface: eth0, virtual_router_id: 5, advert_interval: 5ms, virtual_addresses: [10.0.0.5]}
`,
		want: []string{
			"lvsd.yaml:3:85: advert_interval: 500ms is too short for version 2: write whole seconds from 1s to 255s, or version: 3 for shorter intervals",
			"lvsd.yaml:4:85: advert_interval: 1.5s is not a whole number of seconds, which version 2 needs: write 2s, or version: 3",
			"lvsd.yaml:5:85: advert_interval: 15ms is not a multiple of 10ms, which version 3 needs: write 20ms",
			"lvsd.yaml:6:85: advert_interval: 41s is too long: write at most 40.95s",
			"lvsd.yaml:7:73: advert_interval: 5ms is too short: write at least 10ms",
		},
	},
	{
		name: "addresses",
		file: `vrrp:
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: 51
      version: 2
      virtual_addresses:
        - 2001:db8::1
        - 10.0.0.1
        - {label: eth0:vip}
        - 224.0.0.1
      unicast_peers: [10.0.0.3]
    - name: VI_2
      interface: eth0
      virtual_router_id: 52
      virtual_addresses:
        - {address: 10.0.1.1, label: eth1:vip}
        - {address: 10.0.1.2, dev: eth1, label: eth1:vip}
        - {address: 10.0.1.3, dev: "eth 1"}
      unicast_peers: [10.0.1.9, "2001:db8::9", 224.0.0.18]
      source_address: 10.0.1.255
`,
		want: []string{
			"lvsd.yaml:9:11: virtual_addresses: 10.0.0.1 is not of the family of 2001:db8::1: put IPv4 and IPv6 addresses in separate instances",
			"lvsd.yaml:10:11: a virtual address needs an address: write address: 192.168.0.100",
			"lvsd.yaml:11:11: virtual_addresses: 224.0.0.1 is a multicast address: write the address clients reach this director pair on",
			"lvsd.yaml:17:38: label: \"eth1:vip\" must be \"eth0\" or start with \"eth0:\", at most 15 characters",
			"lvsd.yaml:19:36: dev: \"eth 1\" is not an interface name: write a name such as eth1, or leave it out for the instance's interface",
			"lvsd.yaml:20:33: unicast_peers: 2001:db8::9 is not of the virtual addresses' family: write the other director's IPv4 address",
			"lvsd.yaml:20:48: unicast_peers: 224.0.0.18 is not a unicast address: write the other director's address on eth0",
		},
	},
	{
		name: "address_syntax",
		file: `vrrp:
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: 51
      virtual_addresses:
        - {address: 10.0.0.2/24}
        - 10.0.1.4:80
        - [10.0.0.5]
`,
		want: []string{
			"lvsd.yaml:7:21: address: \"10.0.0.2/24\" is a prefix: write the address alone, 10.0.0.2",
			"lvsd.yaml:8:11: virtual_addresses: \"10.0.1.4:80\" has a port: write address: 10.0.1.4 and port: 80",
			"lvsd.yaml:9:11: virtual_addresses: expected an address (192.168.0.100) or a mapping of address, label and dev, got a list",
		},
	},
	{
		name: "ipv6",
		file: `vrrp:
  instances:
    - name: VI_6
      interface: eth0
      virtual_router_id: 51
      version: 2
      virtual_addresses: ["2001:db8::100"]
      unicast_peers: [10.0.0.3]
      source_address: "2001:db8::2"
      authentication: {password: secret}
`,
		want: []string{
			"lvsd.yaml:6:16: version: 2 carries IPv4 only, and the virtual addresses are IPv6: write version: 3",
			"lvsd.yaml:8:23: unicast_peers: 10.0.0.3 is not of the virtual addresses' family: write the other director's IPv6 address",
			"lvsd.yaml:9:23: source_address: 2001:db8::2 is not link-local: IPv6 adverts are sent from the link-local address (fe80::...); leave it out to use the interface's",
		},
	},
	{
		name: "preempt_auth_garp",
		file: `vrrp:
  instances:
    - name: owner
      interface: eth0
      virtual_router_id: 1
      priority: 255
      preempt: false
      virtual_addresses: [10.0.0.1]
      authentication: {password: secret}
      garp: {repeat: 0, refresh_repeat: 2}
    - name: lazy
      interface: eth0
      virtual_router_id: 2
      version: 2
      preempt: false
      preempt_delay: 10s
      virtual_addresses: [10.0.0.2]
      authentication: {password: far-too-long}
      garp: {dealy: 1s}
    - name: nopass
      interface: eth0
      virtual_router_id: 3
      version: 2
      virtual_addresses: [10.0.0.3]
      authentication: {}
`,
		want: []string{
			"lvsd.yaml:7:7: preempt: false does not apply to priority 255: the address owner always takes over; lower the priority or remove preempt",
			"lvsd.yaml:9:7: authentication applies only to version 2: version 3 has none; remove it, or write version: 2",
			"lvsd.yaml:10:22: repeat: 0 is out of range: write 1 to 100 (default 5)",
			"lvsd.yaml:10:25: refresh_repeat needs refresh: write refresh: 60s, or remove refresh_repeat",
			"lvsd.yaml:16:7: preempt_delay with preempt: false: a router that never preempts has nothing to delay; remove one of them",
			"lvsd.yaml:18:34: password: 12 bytes: write 1 to 8 (keepalived cuts longer ones to 8, so the peers would disagree)",
			"lvsd.yaml:19:14: unknown key \"dealy\" in garp: did you mean \"delay\"?",
			"lvsd.yaml:25:23: authentication needs a password: write password: and 1 to 8 characters (sent in clear text: no security)",
		},
	},
	{
		name: "keepalived_keys",
		file: `vrrp:
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: 51
      virtual_addresses: [10.0.0.1]
      nopreempt: true
      advert_int: 1
      track_script: [chk]
vrrp_instance: {}
`,
		want: []string{
			"lvsd.yaml:7:7: unknown key \"nopreempt\" in a vrrp instance: write preempt: false",
			"lvsd.yaml:8:7: unknown key \"advert_int\" in a vrrp instance: did you mean \"advert_interval\"?",
			"lvsd.yaml:9:7: unknown key \"track_script\" in a vrrp instance: did you mean \"track_scripts\"?",
			"lvsd.yaml:10:1: unknown key \"vrrp_instance\" at the top level: write vrrp: {instances: [...]}",
		},
	},
}

func TestVRRPErrors(t *testing.T) {
	for _, tc := range vrrpErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, loadErrors(t, map[string]string{"lvsd.yaml": tc.file}, LoadOptions{}), tc.want)
		})
	}
}

func TestVRRPOnlyInMainFile(t *testing.T) {
	got := loadErrors(t, map[string]string{
		"lvsd.yaml": "include: more.yaml\n",
		"more.yaml": "vrrp: {instances: []}\n",
	}, LoadOptions{})
	checkErrors(t, got, []string{"more.yaml:1:1: vrrp belongs in the main file: an included file holds only virtual_services"})
}

func TestVRRPDefaults(t *testing.T) {
	cfg, err := Parse("lvsd.yaml", []byte(`vrrp:
  instances:
    - {name: VI_1, interface: eth0, virtual_router_id: 51, virtual_addresses: [192.168.0.100]}
`), LoadOptions{FS: mapFS(nil)})
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.VRRP.Instances[0]
	if in.Version != 3 || in.Priority != 100 || in.AdvertInterval != time.Second || !in.PreemptMode() || in.PreemptDelay != 0 {
		t.Errorf("defaults: version %d priority %d interval %v preempt %v delay %v", in.Version, in.Priority, in.AdvertInterval, in.PreemptMode(), in.PreemptDelay)
	}
	if g := in.GARP; g != (GARP{Delay: 5 * time.Second, Repeat: 5, RefreshRepeat: 1}) {
		t.Errorf("garp defaults: %+v", g)
	}
}
