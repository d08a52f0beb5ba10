package health_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/health"
)

// TestPingLoopback pings 127.0.0.1 through PingChecker.Check (its own
// event loop): up with the echo reply. Where this process may have no
// ICMP socket at all (no CAP_NET_RAW, not in ping_group_range) the
// check must say how to allow one, and the test skips.
func TestPingLoopback(t *testing.T) {
	t.Parallel()
	for _, a := range []string{"127.0.0.1", "::1"} {
		t.Run(a, func(t *testing.T) {
			t.Parallel()
			c, err := health.NewPingChecker(health.PingCheck{Address: netip.MustParseAddr(a), Timeout: 2 * time.Second}, health.Env{})
			if err != nil {
				t.Fatal(err)
			}
			r := c.Check(context.Background())
			if !r.Up && strings.Contains(r.Reason, "CAP_NET_RAW") {
				t.Skipf("no ICMP socket for this process: %s", r.Reason)
			}
			if !r.Up && strings.Contains(r.Reason, "no event loop") {
				t.Skip(r.Reason)
			}
			if a == "::1" && !r.Up && strings.Contains(r.Reason, "address not available") {
				t.Skipf("no IPv6 loopback here: %s", r.Reason)
			}
			if want := "echo reply from " + a; !r.Up || r.Reason != want {
				t.Errorf("up=%v %q, want up %q", r.Up, r.Reason, want)
			}
		})
	}
}

func TestPingRefusesBadAddresses(t *testing.T) {
	t.Parallel()
	for _, a := range []netip.Addr{{}, netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("224.0.0.1")} {
		if _, err := health.NewPingChecker(health.PingCheck{Address: a}, health.Env{}); err == nil || !strings.Contains(err.Error(), "need a unicast address") {
			t.Errorf("ping of %v: %v, want an error asking for a unicast address", a, err)
		}
	}
}

// TestEchoWire: the echo request is keepalived's (128 bytes of its
// filler after the header), with a valid ICMPv4 checksum; a reply is
// recognised only with our identifier (raw sockets) and sequence
// number, after the IPv4 header a raw socket hands over.
func TestEchoWire(t *testing.T) {
	req := health.AppendEcho(nil, false, 0x1234, 7)
	if len(req) != 8+128 || req[0] != 8 || !strings.HasPrefix(string(req[8:]), "keepalived check - keepalived check - ") {
		t.Fatalf("echo request % x", req[:16])
	}
	if health.ICMPChecksum(req) != 0 {
		t.Errorf("checksum of the request does not verify")
	}
	reply := append([]byte(nil), req...)
	reply[0] = 0
	ip := append([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1}, reply...)
	for _, tc := range []struct {
		msg             []byte
		ipHeader, check bool
		id, seq         uint16
		want            bool
	}{
		{reply, false, false, 0, 7, true},
		{reply, false, true, 0x1234, 7, true},
		{reply, false, true, 0x1235, 7, false},
		{reply, false, false, 0, 8, false},
		{ip, true, true, 0x1234, 7, true},
		{ip[:24], true, true, 0x1234, 7, false},
		{req, false, false, 0, 7, false}, // our own request, looped back to a raw socket
	} {
		if got := health.IsEchoReply(tc.msg, false, tc.ipHeader, tc.check, tc.id, tc.seq); got != tc.want {
			t.Errorf("IsEchoReply(%d bytes, ip=%v, id %#x/%v, seq %d) = %v, want %v", len(tc.msg), tc.ipHeader, tc.id, tc.check, tc.seq, got, tc.want)
		}
	}
}
