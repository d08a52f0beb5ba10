package ipvs_test

import (
	"fmt"
	"log"
	"os"

	"github.com/lvskit/lvskit/director/ipvs"
)

// Count a connection table per service, real server and state, as lvstop
// does. AggregateFile(root) reads root/proc/net/ip_vs_conn instead.
func ExampleAggregate() {
	f, err := os.Open("testdata/proc/lab/ip_vs_conn") // captured from Linux 6.12
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	s, err := ipvs.Aggregate(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d entries, %d templates\n", s.Entries, s.Templates)
	for _, g := range s.SortedGroups()[:4] {
		fmt.Println(g.Service, "->", g.RealServer, g.State, g.Count)
	}
	// Output:
	// 42 entries, 6 templates
	// TCP 10.0.0.100:80 -> 10.0.2.11:80 ESTABLISHED 1
	// TCP 10.0.0.100:80 -> 10.0.2.11:80 TIME_WAIT 1
	// TCP 10.0.0.100:80 -> 10.0.2.11:80 CLOSE 1
	// TCP 10.0.0.100:80 -> 10.0.2.11:80 CLOSE_WAIT 1
}

// Stream a connection table without holding it: the callback gets one
// reused Connection per entry.
func ExampleScanConnections() {
	f, err := os.Open("testdata/proc/lab/ip_vs_conn")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	err = ipvs.ScanConnections(f, func(c *ipvs.Connection) error {
		if c.PEName != "" {
			fmt.Println(c.Virtual, c.PEName, c.PEData, c.State)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// 10.0.0.110:5060 sip a84b4c76e66710@pc33.example.com ASSURED
}

func ExampleParseServiceTable() {
	f, err := os.Open("testdata/proc/lab/ip_vs")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	t, err := ipvs.ParseServiceTable(f)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range t.Services {
		if s.Persistent() {
			fmt.Printf("%v %s persistent %ds /%d, %d real servers\n",
				s.ServiceKey, s.Scheduler, s.Timeout, s.NetmaskBits, len(s.RealServers))
		}
	}
	// Unordered output:
	// TCP 10.0.0.103:443 wrr persistent 300s /24, 2 real servers
	// TCP [fd00::101]:443 wlc persistent 120s /64, 1 real servers
	// UDP 10.0.0.110:5060 rr persistent 60s /32, 1 real servers
	// FWM 1 rr persistent 60s /32, 1 real servers
	// FWM 2 IPv6 rr persistent 90s /128, 1 real servers
}
