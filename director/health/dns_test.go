package health_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/lvskit/lvskit/director/health"
)

// dnsServer answers each query on a loopback UDP socket with what answer
// returns (nothing when it returns nil).
func dnsServer(t *testing.T, answer func(q dnsmessage.Message) [][]byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var q dnsmessage.Message
			if err := q.Unpack(buf[:n]); err != nil {
				t.Errorf("server got a bad query: %v", err)
				continue
			}
			for _, a := range answer(q) {
				pc.WriteTo(a, from)
			}
		}
	})
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// reply builds the answer to q with rcode and n A records.
func reply(t *testing.T, q dnsmessage.Message, id uint16, rcode dnsmessage.RCode, n int) []byte {
	t.Helper()
	m := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, Response: true, RCode: rcode, RecursionDesired: q.Header.RecursionDesired},
		Questions: q.Questions,
	}
	for i := range n {
		m.Answers = append(m.Answers, dnsmessage.Resource{
			Header: dnsmessage.ResourceHeader{Name: q.Questions[0].Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
			Body:   &dnsmessage.AResource{A: [4]byte{10, 0, 0, byte(i + 1)}},
		})
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDNS(t *testing.T) {
	var mu sync.Mutex
	var asked []dnsmessage.Question
	var recursion []bool
	answers := func(rcode dnsmessage.RCode, n int) func(q dnsmessage.Message) [][]byte {
		return func(q dnsmessage.Message) [][]byte {
			mu.Lock()
			asked = append(asked, q.Questions...)
			recursion = append(recursion, q.Header.RecursionDesired)
			mu.Unlock()
			return [][]byte{reply(t, q, q.Header.ID, rcode, n)}
		}
	}
	tests := []struct {
		name   string
		spec   health.DNSCheck
		server func(q dnsmessage.Message) [][]byte
		want   string // reason; an up one starts with "DNS NOERROR" and ends in "answer records"
		up     bool
	}{
		{"answer", health.DNSCheck{Name: "www.example.com", Type: "a"}, answers(dnsmessage.RCodeSuccess, 2),
			"DNS NOERROR from %s for A www.example.com.: 2 answer records", true},
		{"defaults to SOA of the root", health.DNSCheck{}, answers(dnsmessage.RCodeSuccess, 1),
			"DNS NOERROR from %s for SOA .: 1 answer record", true},
		{"NXDOMAIN", health.DNSCheck{Name: "nope.example.com.", Type: "AAAA"}, answers(dnsmessage.RCodeNameError, 0),
			"DNS NXDOMAIN from %s for AAAA nope.example.com.", false},
		{"SERVFAIL", health.DNSCheck{Name: "example.com"}, answers(dnsmessage.RCodeServerFailure, 0),
			"DNS SERVFAIL from %s for SOA example.com.", false},
		{"no records", health.DNSCheck{Name: "example.com", Type: "MX"}, answers(dnsmessage.RCodeSuccess, 0),
			"DNS NOERROR from %s for MX example.com. with no answer records", false},
		{"stray datagrams are skipped", health.DNSCheck{Name: "example.com", Type: "A"}, func(q dnsmessage.Message) [][]byte {
			return [][]byte{[]byte("junk"), reply(t, q, q.Header.ID+1, dnsmessage.RCodeNameError, 0), reply(t, q, q.Header.ID, dnsmessage.RCodeSuccess, 1)}
		}, "DNS NOERROR from %s for A example.com.: 1 answer record", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := dnsServer(t, tt.server)
			tt.spec.Address = addr
			tt.spec.Timeout = 2 * time.Second
			c, err := health.NewDNSChecker(tt.spec, health.Env{})
			if err != nil {
				t.Fatal(err)
			}
			r := c.Check(context.Background())
			want := strings.Replace(tt.want, "%s", addr.String(), 1)
			if r.Up != tt.up || r.Reason != want {
				t.Errorf("up=%v %q, want up=%v %q", r.Up, r.Reason, tt.up, want)
			}
			if !tt.up && !errorsIs(r.Err, health.ErrDNSAnswer) {
				t.Errorf("error %v is not ErrDNSAnswer", r.Err)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for i, rd := range recursion {
		if !rd {
			t.Errorf("query %d (%v) without Recursion Desired", i, asked[i])
		}
	}
}

func TestDNSSilentServerDoesNotBlockOthers(t *testing.T) {
	const timeout = time.Second
	addr := dnsServer(t, func(dnsmessage.Message) [][]byte { return nil })
	c, err := health.NewDNSChecker(health.DNSCheck{Address: addr, Timeout: timeout}, health.Env{})
	if err != nil {
		t.Fatal(err)
	}
	r, took := checkAlongside(t, c, nil, healthyHTTP(t))
	assertDown(t, r, health.ErrTimeout, "timeout after 1s reading DNS answer from "+addr.String())
	assertEndsAtTimeout(t, took, timeout)
}

func TestDNSRefused(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	c, _ := health.NewDNSChecker(health.DNSCheck{Address: addr, Timeout: 2 * time.Second}, health.Env{})
	assertDown(t, c.Check(context.Background()), nil, "reading DNS answer from "+addr.String()+": connection refused")
}

func TestDNSSpecErrors(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:53")
	for _, spec := range []health.DNSCheck{
		{},
		{Address: addr, Type: "AXFR"},
		{Address: addr, Name: "a..b"},
		{Address: addr, Name: strings.Repeat("x", 64) + ".com"},
	} {
		if _, err := health.NewDNSChecker(spec, health.Env{}); err == nil {
			t.Errorf("%+v was accepted", spec)
		}
	}
}
