package config

// yamlErrorCases are errorCases about the file's shape: YAML syntax, unknown keys, values of the wrong kind.
var yamlErrorCases = []errorCase{
	{
		name: "top_not_mapping",
		file: `- address: 192.168.0.100
`,
		want: []string{
			"lvsd.yaml:1:1: expected a mapping of settings at the top of the file (virtual_services: ...), got a list",
		},
	},
	{
		name: "two_documents",
		file: `virtual_services: []
---
virtual_services: []
`,
		want: []string{
			"lvsd.yaml:2:1: a second YAML document: keep one document per file (remove the --- line, or move it to an included file)",
		},
	},
	{
		name: "unknown_key_keepalived",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    lb_algo: rr
`,
		want: []string{
			"lvsd.yaml:4:5: unknown key \"lb_algo\" in a virtual service: write scheduler",
		},
	},
	{
		name: "unknown_key_list",
		file: `lvsd:
  colour: blue
`,
		want: []string{
			"lvsd.yaml:2:3: unknown key \"colour\" in lvsd: the keys here are state_dir, status_listen, metrics_listen, resync_interval, flush_on_stop, script_user or insecure_scripts",
		},
	},
	{
		name: "unknown_key_suggest",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    real_servers:
      - address: 10.0.0.2
        wieght: 2
`,
		want: []string{
			"lvsd.yaml:6:9: unknown key \"wieght\" in a real server: did you mean \"weight\"?",
		},
	},
	{
		name: "unknown_top",
		file: `virtual_service:
  - address: 192.168.0.100
`,
		want: []string{
			"lvsd.yaml:1:1: unknown key \"virtual_service\" at the top level: did you mean \"virtual_services\"?",
		},
	},
	{
		name: "wrong_type_bool",
		file: `lvsd:
  flush_on_stop: yes
`,
		want: []string{
			"lvsd.yaml:2:18: flush_on_stop: expected true or false, got \"yes\"",
		},
	},
	{
		name: "wrong_type_float",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    real_servers:
      - {address: 10.0.0.2, weight: 1.5}
`,
		want: []string{
			"lvsd.yaml:5:37: weight: expected a whole number, got the number 1.5",
		},
	},
	{
		name: "wrong_type_int",
		file: `virtual_services:
  - address: 192.168.0.100
    port: http
`,
		want: []string{
			"lvsd.yaml:3:11: port: expected a whole number from 0 to 65535, got \"http\"",
		},
	},
	{
		name: "wrong_type_list",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    real_servers:
      address: 10.0.0.2
`,
		want: []string{
			"lvsd.yaml:5:7: real_servers: expected a list (items starting with \"- \", or [a, b]), got a mapping",
		},
	},
	{
		name: "wrong_type_mapping",
		file: `virtual_services:
  - address: 192.168.0.100
    port: 80
    persistence: 300
`,
		want: []string{
			"lvsd.yaml:4:18: persistence: expected a mapping of timeout, netmask or engine, got the number 300",
		},
	},
	{
		name: "yaml_syntax",
		file: `virtual_services:
  - address: "192.168.0.100
    port: 80
`,
		want: []string{
			"lvsd.yaml:2: invalid YAML: found unexpected end of stream: check the indentation and the quoting near here",
		},
	},
	{
		name: "yaml_tab",
		file: `virtual_services:
  - address: 192.168.0.100
	port: 80
`,
		want: []string{
			"lvsd.yaml:3:1: invalid YAML: a tab in the indentation: indent with spaces",
		},
	},
}
