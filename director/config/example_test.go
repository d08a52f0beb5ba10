package config_test

import (
	"errors"
	"fmt"
	"testing/fstest"

	"github.com/lvskit/lvskit/director/config"
)

func ExampleParse() {
	file := []byte(`virtual_services:
  - name: web
    address: 192.168.0.100
    port: 80
    scheduler: wrr
    forwarding: masquerade
    health_check: {type: http, path: /healthz}
    real_servers:
      - {address: 10.0.0.2, port: 8080, weight: 3}
      - {address: 10.0.0.3, port: 8080}
`)
	cfg, err := config.Parse("lvsd.yaml", file, config.LoadOptions{FS: fstest.MapFS{}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, svc := range cfg.Desired() {
		fmt.Println(svc.Service.ServiceKey, svc.Service.Scheduler)
		for _, rs := range svc.RealServers {
			fmt.Println(" ->", rs.Key(), rs.Forwarding, rs.Weight, rs.HealthCheck.Type, rs.CheckTarget, rs.HealthCheck.Interval)
		}
	}
	// Output:
	// TCP 192.168.0.100:80 wrr
	//  -> 10.0.0.2:8080 Masq 3 http 10.0.0.2:8080 5s
	//  -> 10.0.0.3:8080 Masq 1 http 10.0.0.3:8080 5s
}

func ExampleErrorList() {
	file := []byte(`virtual_services:
  - address: 192.168.0.100
    port: 80
    scheduler: wrrr
    real_servers:
      - {address: 10.0.0.2, wieght: 2}
`)
	_, err := config.Parse("lvsd.yaml", file, config.LoadOptions{FS: fstest.MapFS{}})
	var list config.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Printf("line %d column %d: %s\n", e.Line, e.Column, e.Message)
		}
	}
	// Output:
	// line 4 column 16: scheduler: unknown scheduler "wrrr": did you mean "wrr"?
	// line 6 column 29: unknown key "wieght" in a real server: did you mean "weight"?
}
