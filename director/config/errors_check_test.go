package config

// checkErrorCases are errorCases about health checks: their types, keys, targets and timing.
var checkErrorCases = []errorCase{
	{
		name: "check_dns",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 53
    protocol: udp
    health_check: {type: dns, query_type: AXFRR, query_name: ""}
`,
		want: []string{
			"lvsd.yaml:5:43: query_type: unknown record type \"AXFRR\": write A, AAAA, CNAME, MX, NS, PTR, SOA, SRV or TXT",
			"lvsd.yaml:5:62: query_name: \"\" is not a DNS name: write a name such as example.com (default \".\")",
		},
	},
	{
		name: "check_fwmark_port",
		file: `virtual_services:
  - fwmark: 3
    health_check: {type: http}
    real_servers:
      - address: 10.0.0.2
      - address: 10.0.0.3
      - address: 10.0.0.4
        health_check: {type: tcp}
      - address: 10.0.0.5
        health_check: {type: tcp, connect_port: 22}
`,
		want: []string{
			"lvsd.yaml:3:19: the http check needs a port, but the real servers of a fwmark service have none: write connect_port: 80",
			"lvsd.yaml:8:23: the tcp check needs a port, but this real server has none (fwmark service): write connect_port: 80",
		},
	},
	{
		name: "check_http",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 443
    health_check:
      type: https
      path: health
      status_codes: [200, "299-200", 700]
      digest: 12345
      sni: 10.0.0.1
`,
		want: []string{
			"lvsd.yaml:6:13: path: \"health\" must start with /: write /health",
			"lvsd.yaml:7:27: status_codes: range 299-200 runs backwards: write 200-299",
			"lvsd.yaml:7:38: status_codes: the number 700 is not a status code: write a status code from 100 to 599 (200) or a range (\"200-299\")",
			"lvsd.yaml:8:15: digest: \"12345\" is not an MD5 digest: write the 32 hex digits genhash prints for the page (genhash -s ADDRESS -p PORT -u PATH)",
			"lvsd.yaml:9:12: sni: 10.0.0.1 is an IP address, which TLS cannot send as a server name: write the certificate's host name, or remove sni",
		},
	},
	{
		name: "check_keys",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    health_check:
      type: tcp
      path: /health
      command: [/bin/true]
    real_servers:
      - address: 10.0.0.2
        health_check: {type: none, interval: 5s}
      - address: 10.0.0.3
        health_check: {interval: 5s}
`,
		want: []string{
			"lvsd.yaml:6:7: path applies only to http or https checks, not tcp: remove it, or write type: http",
			"lvsd.yaml:7:7: command applies only to script checks, not tcp: remove it, or write type: script",
			"lvsd.yaml:10:36: interval does not apply to type: none (no check): remove it, or choose a check type",
			"lvsd.yaml:12:23: health_check needs a type: write type: tcp, http, https, script, dns, udp, ping, smtp or none",
		},
	},
	{
		name: "check_udp_smtp_ping",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 53
    protocol: udp
    health_check: {type: udp, payload: "0a zz", reply: "0aXX", min_reply_bytes: 9, max_reply_bytes: 4}
    real_servers:
      - address: 10.0.0.2
        health_check: {type: udp, max_reply_bytes: 70000, helo_name: mx}
      - address: 10.0.0.3
        health_check: {type: smtp, helo_name: "a b", payload: "00"}
      - address: 10.0.0.4
        health_check: {type: ping, connect_port: 7}
      - address: 10.0.0.5
        health_check: {type: smtp, verify_tls: true}
`,
		want: []string{
			`lvsd.yaml:5:40: payload: 'z' at offset 3 is not a hex digit: write the datagram in hex digits, such as 0a1b2c`,
			"lvsd.yaml:5:81: min_reply_bytes: 9 is above max_reply_bytes 4: the check could never pass",
			"lvsd.yaml:8:52: max_reply_bytes: 70000 is out of range: write 0 to 65535",
			"lvsd.yaml:8:52: min_reply_bytes and max_reply_bytes apply only with reply (as in keepalived): write reply: with the expected bytes, or remove them",
			"lvsd.yaml:8:59: helo_name applies only to smtp checks, not udp: remove it, or write type: smtp",
			`lvsd.yaml:10:47: helo_name: "a b" is not a host name: write this director's name, such as lvs1.example.com (default smtpchecker.keepalived.org)`,
			"lvsd.yaml:10:54: payload applies only to udp checks, not smtp: remove it, or write type: udp",
			"lvsd.yaml:12:36: connect_port applies only to tcp, http, https, dns, udp or smtp checks, not ping: remove it, or write type: tcp",
			"lvsd.yaml:14:36: sni and verify_tls apply to an smtp check only with starttls: true: add it, or remove them",
		},
	},
	{
		name: "check_script",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    real_servers:
      - address: 10.0.0.2
        health_check: {type: script}
      - address: 10.0.0.3
        health_check: {type: script, command: "/usr/bin/check --fast"}
      - address: 10.0.0.4
        health_check: {type: script, command: ["/usr/bin/check --fast"]}
      - address: 10.0.0.5
        health_check: {type: script, shell: true, command: [check-a, check-b]}
`,
		want: []string{
			"lvsd.yaml:6:23: a script check needs a command: write command: [/usr/local/bin/check, --port, \"80\"] (exit status 0 means up)",
			"lvsd.yaml:8:47: command: expected a list of arguments, got the string \"/usr/bin/check --fast\": write [/usr/bin/check, --fast] (no shell runs it)",
			"lvsd.yaml:10:48: command: \"/usr/bin/check --fast\" is one argument holding spaces, and no shell runs it: write each argument as its own item ([/usr/bin/check, --fast]), or set shell: true",
			"lvsd.yaml:12:60: command: with shell: true, write the script as one string: command: [\"check-a && check-b\"]",
		},
	},
	{
		name: "check_timing",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    health_check: {type: tcp, interval: 1s, timeout: 2s, rise: 0, fall: -1}
`,
		want: []string{
			"lvsd.yaml:4:64: rise: 0 is too small: write 1 or more (default 2)",
			"lvsd.yaml:4:73: fall: -1 is too small: write 1 or more (default 3)",
		},
	},
}
