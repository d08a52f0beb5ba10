package config

// serviceErrorCases are errorCases about virtual services, their real servers, groups and the globals.
var serviceErrorCases = []errorCase{
	{
		name: "bad_addresses",
		file: `virtual_services:
  - address: 10.0.0.300
    port: 80
  - address: 192.168.0.100:80
    port: 80
  - address: 224.0.0.1
    port: 80
  - address: 192.168.0.0/24
    port: 80
  - address: 192.168.0.100
    port: 80
    real_servers:
      - address: 0.0.0.0
      - address: fe80::1%eth0
      - address: example.com
`,
		want: []string{
			"lvsd.yaml:2:14: address: \"10.0.0.300\" is not an IP address: write an IP address like 192.168.0.100 or 2001:db8::100",
			"lvsd.yaml:4:14: address: \"192.168.0.100:80\" has a port: write address: 192.168.0.100 and port: 80",
			"lvsd.yaml:6:14: address: 224.0.0.1 is a multicast address: write the virtual IP address clients connect to",
			"lvsd.yaml:8:14: address: \"192.168.0.0/24\" is a prefix: write the address alone, 192.168.0.0",
			"lvsd.yaml:13:18: address: 0.0.0.0 is the unspecified address: write the real server's own address",
			"lvsd.yaml:14:18: address: \"fe80::1%eth0\" has a zone: write the address without %eth0",
			"lvsd.yaml:15:18: address: \"example.com\" is not an IP address: write an IP address like 192.168.0.100 or 2001:db8::100",
		},
	},
	{
		name: "group",
		file: `virtual_services:
  - address: 192.168.0.100
    group:
      - {address: 192.168.0.100, port: 80}
      - {address: 192.168.0.100, port: 80}
      - {address: 2001:db8::1, port: 80}
      - {fwmark: 5, port: 80}
      - {port: 443}
      - {address: 192.168.0.101, port: 0}
    forwarding: direct_route
    real_servers:
      - {address: 10.0.0.2, port: 8080}
  - group: []
`,
		want: []string{
			"lvsd.yaml:2:5: a group's addresses, ports and marks are its entries: move this into group, or remove group",
			"lvsd.yaml:6:19: address: 2001:db8::1 is not ipv4 as the group's first address: put IPv4 and IPv6 in separate groups",
			"lvsd.yaml:7:9: a group entry is an address and a port, or a fwmark: not both: split it into two entries",
			"lvsd.yaml:8:9: a group entry needs address and port, or fwmark: write {address: 192.168.0.100, port: 80} or {fwmark: 5}",
			"lvsd.yaml:9:40: port: 0 (every port) needs persistence: add persistence: {timeout: 300s} to the service, or write the entry's port",
			"lvsd.yaml:12:35: port: a real server of a group (marks, or several ports) service with direct_route forwarding keeps the client's port: remove port, or use forwarding: masquerade to change it",
			"lvsd.yaml:13:12: group: empty: write its entries, such as [{address: 192.168.0.100, port: 80}, {fwmark: 5}]",
		},
	},
	{
		name: "group_duplicates",
		file: `virtual_services:
  - group:
      - {address: 192.168.0.100, port: 80}
      - {address: 192.168.0.100, port: 80}
      - {fwmark: 5}
  - fwmark: 5
`,
		want: []string{
			"lvsd.yaml:2:5: duplicate virtual service TCP 192.168.0.100:80: the group lists it twice: remove one entry",
			"lvsd.yaml:6:5: duplicate virtual service FWM 5: it is already defined at lvsd.yaml:2:5: merge the two entries into one",
		},
	},
	{
		name: "dr_port",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    real_servers:
      - address: 10.0.0.2
        port: 8080
  - fwmark: 2
    real_servers:
      - address: 10.0.0.2
        port: 80
`,
		want: []string{
			"lvsd.yaml:6:15: port: direct_route forwarding cannot change the port (8080, the service's is 80): remove port, or use forwarding: masquerade",
			"lvsd.yaml:10:15: port: a real server of a fwmark service with direct_route forwarding keeps the client's port: remove port, or use forwarding: masquerade to change it",
		},
	},
	{
		name: "duplicate_fwmark",
		file: `virtual_services:
  - fwmark: 1
  - fwmark: 1
    family: ipv6
  - fwmark: 1
`,
		want: []string{
			"lvsd.yaml:5:5: duplicate virtual service FWM 1: it is already defined at lvsd.yaml:2:5: merge the two entries into one",
		},
	},
	{
		name: "duplicate_key",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    port: 81
`,
		want: []string{
			"lvsd.yaml:4:5: duplicate key \"port\": it is already set at line 3: keep one of them",
		},
	},
	{
		name: "duplicate_name",
		file: `virtual_services:
  - {name: web, address: 192.168.0.100, port: 80}
  - {name: web, address: 192.168.0.100, port: 443}
`,
		want: []string{
			"lvsd.yaml:3:12: duplicate name \"web\": it is already used at lvsd.yaml:2:5: give each service its own name",
		},
	},
	{
		name: "duplicate_real_server",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    forwarding: masquerade
    real_servers:
      - address: 10.0.0.2
      - address: 10.0.0.2
        port: 80
      - address: 10.0.0.2
        port: 8080
`,
		want: []string{
			"lvsd.yaml:7:9: real server 10.0.0.2:80 is listed twice in this service (first at lvsd.yaml:6:9): remove one of them",
		},
	},
	{
		name: "duplicate_service",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
  - address: 192.168.0.100
    port: 80
  - address: 192.168.0.100
    port: 80
    protocol: udp
`,
		want: []string{
			"lvsd.yaml:4:5: duplicate virtual service TCP 192.168.0.100:80: it is already defined at lvsd.yaml:2:5: merge the two entries into one",
		},
	},
	{
		name: "durations",
		file: `lvsd:
  resync_interval: 2
virtual_services:
  - address: 192.168.0.100
    port: 80
    health_check:
      type: tcp
      interval: 2 sec
      timeout: -1s
      retry_delay: true
`,
		want: []string{
			"lvsd.yaml:2:20: resync_interval: 2 has no unit: write a duration with a unit, like \"5s\", \"1m30s\" or \"500ms\" (\"2s\" for 2 seconds)",
			"lvsd.yaml:8:17: interval: \"2 sec\" is not a duration: write a duration with a unit, like \"5s\", \"1m30s\" or \"500ms\"",
			"lvsd.yaml:9:16: timeout: -1s is negative: write a positive duration",
			"lvsd.yaml:10:20: retry_delay: the boolean true is not a duration: write a duration with a unit, like \"5s\", \"1m30s\" or \"500ms\"",
		},
	},
	{
		name: "enums",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    protocol: TCP
    forwarding: dr
    on_failure: drain
`,
		want: []string{
			"lvsd.yaml:4:15: protocol: \"TCP\": write tcp in lower case",
			"lvsd.yaml:5:17: forwarding: \"dr\": write direct_route",
			"lvsd.yaml:6:17: on_failure: unknown value \"drain\": use one of remove or quiesce",
		},
	},
	{
		name: "family_mismatch",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    family: ipv6
    real_servers:
      - address: 2001:db8::2
      - address: 2001:db8::3
        forwarding: tunnel
`,
		want: []string{
			"lvsd.yaml:4:13: family: ipv6 does not match address 192.168.0.100, which is ipv4: remove family",
			"lvsd.yaml:6:18: address: 2001:db8::2 is ipv6 but the service is ipv4: only tunnel forwarding can cross address families",
		},
	},
	{
		name: "fwmark_with_port",
		file: `virtual_services:
  - fwmark: 1
    address: 192.168.0.100
    port: 80
    protocol: tcp
`,
		want: []string{
			"lvsd.yaml:3:5: a fwmark service has no address: remove address (write family: ipv6 for an IPv6 fwmark service), or remove fwmark",
			"lvsd.yaml:4:5: a fwmark service has no port: remove port; the firewall rule that sets mark 1 chooses the ports",
			"lvsd.yaml:5:5: a fwmark service has no protocol: remove protocol; the firewall rule that sets mark 1 chooses the packets",
		},
	},
	{
		name: "fwmark_zero",
		file: `virtual_services:
  - fwmark: 0
`,
		want: []string{
			"lvsd.yaml:2:13: fwmark: 0 is not a mark: write 1 or more, the value your nft or iptables rule sets",
		},
	},
	{
		name: "globals",
		file: `lvsd:
  state_dir: var/lib/lvsd
  status_listen: localhost:9120
  metrics_listen: 127.0.0.1:9120
ipvs:
  timeouts: {tcp: 0s, tcp_fin: 1500ms}
  conn_reuse_mode: 4
  sync_threshold: {threshold: 50, period: 50}
  sync_daemon:
    interface: eth1/2
    mcast_group: 10.0.0.1
    mcast_ttl: 0
    max_len: 0
`,
		want: []string{
			"lvsd.yaml:2:14: state_dir: \"var/lib/lvsd\" is relative: write an absolute path such as /var/lib/lvsd",
			"lvsd.yaml:3:18: status_listen: \"localhost:9120\" is not a listen address: write an IP address and port (127.0.0.1:9120, [::1]:9120, :9120 for all addresses), a unix socket path (/run/lvsd/status.sock), or \"\" to turn it off",
			"lvsd.yaml:6:19: tcp: 0s is too short: write at least 1s, or leave tcp out to keep the kernel's timeout",
			"lvsd.yaml:6:32: tcp_fin: 1.5s is not a whole number of seconds: write 2s",
			"lvsd.yaml:7:20: conn_reuse_mode: 4 is out of range: write 0 (off), 1 (the kernel's default), 2 or 3",
			"lvsd.yaml:8:31: threshold: 50 must be lower than period 50: write a threshold below it (the kernel's defaults are 3 and 50)",
			"lvsd.yaml:10:5: sync_daemon needs a role: write vrrp_instance: VI_1 (master while that instance is master, backup otherwise), or role: master, backup or both",
			"lvsd.yaml:10:16: interface: \"eth1/2\" is not an interface name: write a name such as eth1 (at most 15 characters, no spaces or slashes)",
			"lvsd.yaml:11:18: mcast_group: 10.0.0.1 is not a multicast address: write one such as 224.0.0.81 (the kernel's default) or ff02::81",
			"lvsd.yaml:12:16: mcast_ttl: 0 would not leave this host: write 1 to 255, or leave it out for the kernel's default 1",
			"lvsd.yaml:13:14: max_len: 0 is out of range: write 1 to 65507, or leave it out for the kernel's default",
		},
	},
	{
		name: "listen_same",
		file: `lvsd:
  status_listen: "127.0.0.1:9120"
  metrics_listen: "127.0.0.1:9120"
`,
		want: []string{
			"lvsd.yaml:3:19: metrics_listen: 127.0.0.1:9120 is also status_listen: give metrics another port",
		},
	},
	{
		name: "missing_identity",
		file: `virtual_services:
  - scheduler: rr
  - address: 192.168.0.100
  - port: 80
`,
		want: []string{
			"lvsd.yaml:2:5: a virtual service needs address and port, or fwmark: write address: 192.168.0.100 and port: 80",
			"lvsd.yaml:3:5: a virtual service needs a port: write port: 80 (or port: 0 with persistence for every port)",
			"lvsd.yaml:4:5: a virtual service needs an address: write address: 192.168.0.100, or fwmark: 1 for a firewall-mark service",
		},
	},
	{
		name: "netmask",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    persistence: {netmask: 33}
  - address: 2001:db8::100
    port: 80
    persistence: {netmask: 129}
  - address: 192.168.0.100
    port: 81
    persistence: {netmask: 255.0.255.0}
  - address: 192.168.0.100
    port: 82
    persistence: {netmask: 0}
`,
		want: []string{
			"lvsd.yaml:4:28: netmask: 33 is out of range for IPv4: write a prefix length from 1 to 32, or a dotted mask such as 255.255.255.0",
			"lvsd.yaml:7:28: netmask: 129 is out of range: write a prefix length from 1 to 32 (IPv4) or 128 (IPv6)",
			"lvsd.yaml:10:28: netmask: 255.0.255.0 is not a contiguous netmask: write a prefix length such as 24, or a dotted mask such as 255.255.255.0",
			"lvsd.yaml:13:28: netmask: 0 is out of range: write a prefix length from 1 to 32 (IPv4) or 128 (IPv6)",
		},
	},
	{
		name: "one_packet",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    one_packet: true
`,
		want: []string{
			"lvsd.yaml:4:5: one_packet applies only to UDP: remove it, or write protocol: udp",
		},
	},
	{
		name: "persistence_timeout",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    persistence: {timeout: 1.5s, engine: sipp}
  - address: 192.168.0.100
    port: 81
    persistence: {timeout: 300}
`,
		want: []string{
			"lvsd.yaml:4:28: timeout: 1.5s is not a whole number of seconds: write 2s",
			"lvsd.yaml:4:42: engine: unknown persistence engine \"sipp\": write sip, or remove engine",
			"lvsd.yaml:7:28: timeout: 300 has no unit: write a duration with a unit, like \"5s\", \"1m30s\" or \"500ms\" (\"300s\" for 300 seconds)",
		},
	},
	{
		name: "port_range",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 70000
`,
		want: []string{
			"lvsd.yaml:3:11: port: 70000 is out of range: write a whole number from 0 to 65535",
		},
	},
	{
		name: "port_zero",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 0
`,
		want: []string{
			"lvsd.yaml:3:11: port: 0 (every port) needs persistence: add persistence: {timeout: 300s}, or write the service's port",
		},
	},
	{
		name: "scheduler_flags",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    scheduler: rr
    scheduler_flags: [sh-port, mh-fallbak, flag-1]
  - address: 192.168.0.100
    port: 81
    scheduler: sh
    scheduler_flags: [sh-fallback, flag-1]
`,
		want: []string{
			"lvsd.yaml:5:23: scheduler_flags: sh-port applies only to the sh scheduler, not rr: remove it, or write scheduler: sh",
			"lvsd.yaml:5:32: scheduler_flags: unknown flag \"mh-fallbak\": did you mean \"mh-fallback\"?",
			"lvsd.yaml:9:36: scheduler_flags: flag-1 repeats sh-fallback (the same flag): remove one",
		},
	},
	{
		name: "sorry_quorum",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    sorry_server: {address: 10.0.0.2}
    quorum: {weight: 5, hysteresis: 5, up_command: [], down_command: ["/usr/bin/notify down"]}
    real_servers:
      - {address: 10.0.0.2, weight: 2}
  - address: 192.168.0.100
    port: 81
    sorry_server: {port: 80}
    quorum: {hysteresis: 1}
`,
		want: []string{
			"lvsd.yaml:4:19: sorry_server 10.0.0.2:80 is also a real server (at lvsd.yaml:7:9): use another server, or remove it from real_servers",
			"lvsd.yaml:5:22: weight: 5 can never be reached: the real servers' weights add up to 2: write at most 2, or add real servers",
			"lvsd.yaml:5:37: hysteresis: 5 is out of range: write 0 to 4 (less than the quorum weight)",
			"lvsd.yaml:5:52: up_command: empty: write an argument list such as [/usr/local/bin/notify, up], or remove it",
			"lvsd.yaml:5:71: down_command: \"/usr/bin/notify down\" is one argument holding spaces, and no shell runs it: write each argument as its own item ([/usr/bin/notify, down])",
			"lvsd.yaml:10:19: a sorry server needs an address: write address: 10.0.0.2",
			"lvsd.yaml:10:26: port: direct_route forwarding cannot change the port (80, the service's is 81): remove port, or use forwarding: masquerade",
			"lvsd.yaml:11:13: quorum needs a weight: write weight: N, the total weight of the real servers that must be up",
		},
	},
	{
		name: "thresholds",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    real_servers:
      - {address: 10.0.0.2, upper_threshold: 100, lower_threshold: 200}
      - {address: 10.0.0.3, lower_threshold: 50}
      - {address: 10.0.0.4, upper_threshold: 100, lower_threshold: 100}
`,
		want: []string{
			"lvsd.yaml:5:68: lower_threshold: 200 is higher than upper_threshold 100: write at most 100",
			"lvsd.yaml:6:29: lower_threshold needs an upper_threshold (0 means no limit): add upper_threshold, or remove lower_threshold",
		},
	},
	{
		name: "tunnel_on_dr",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    tunnel: {type: gue, port: 6080}
    real_servers:
      - address: 10.0.0.2
        forwarding: masquerade
        tunnel: {type: ipip}
`,
		want: []string{
			"lvsd.yaml:4:5: tunnel options need forwarding: tunnel, but the service's forwarding is direct_route: remove tunnel, or write forwarding: tunnel",
			"lvsd.yaml:8:9: tunnel options need forwarding: tunnel, but its forwarding is masquerade: remove tunnel, or write forwarding: tunnel",
		},
	},
	{
		name: "tunnel_options",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    forwarding: tunnel
    tunnel: {type: gue}
    real_servers:
      - address: 10.0.0.2
        tunnel: {type: ipip, port: 6080, checksum: checksum}
      - address: 10.0.0.3
        tunnel: {type: gre, checksum: remote}
`,
		want: []string{
			"lvsd.yaml:5:13: a gue tunnel needs the real server's GUE port: write port: 6080 (the port of its fou/gue receiver)",
			"lvsd.yaml:8:30: port applies only to gue tunnels, not ipip: remove it",
			"lvsd.yaml:8:42: checksum applies only to gue and gre tunnels, not ipip: remove it",
			"lvsd.yaml:10:39: checksum: remote checksum offload works only with gue: write checksum: checksum or none",
		},
	},
	{
		name: "unknown_scheduler",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    scheduler: wrrr
  - address: 192.168.0.100
    port: 81
    scheduler: WRR
`,
		want: []string{
			"lvsd.yaml:4:16: scheduler: unknown scheduler \"wrrr\": did you mean \"wrr\"?",
			"lvsd.yaml:7:16: scheduler: write wrr in lower case",
		},
	},
	{
		name: "weights",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    real_servers:
      - {address: 10.0.0.2, weight: -1}
      - {address: 10.0.0.3, weight: 65536}
      - {address: 10.0.0.4, weight: 0}
`,
		want: []string{
			"lvsd.yaml:5:37: weight: -1 is negative: write 0 (no new connections) to 65535",
			"lvsd.yaml:6:37: weight: 65536 is too large: write at most 65535",
		},
	},
}
