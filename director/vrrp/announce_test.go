package vrrp

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// runSchedule drives an announceSchedule like the Instance does, until
// end, and lists the rounds sent as offsets from t0.
func runSchedule(cfg AnnounceConfig, end time.Duration) []string {
	s := announceSchedule{cfg: cfg}
	s.start(t0)
	var out []string
	now := t0
	for {
		rounds, next := s.due(now)
		for range rounds {
			out = append(out, "+"+now.Sub(t0).String())
		}
		if next.IsZero() || next.Sub(t0) > end {
			return out
		}
		now = next
	}
}

func TestAnnounceSchedule(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  AnnounceConfig
		want string
	}{
		{"keepalived default", DefaultAnnounce, "+0s +0s +0s +0s +0s +5s +5s +5s +5s +5s"},
		{"spaced rounds", AnnounceConfig{Repeat: 3, Interval: 100 * time.Millisecond, Delay: time.Second},
			"+0s +100ms +200ms +1s +1.1s +1.2s"},
		{"no second burst", AnnounceConfig{Repeat: 2}, "+0s +0s"},
		{"refresh", AnnounceConfig{Repeat: 1, Refresh: 10 * time.Second, RefreshRepeat: 2},
			"+0s +10s +10s +20s +20s +30s +30s"},
		{"second burst during a spaced burst", AnnounceConfig{Repeat: 3, Interval: time.Second, Delay: 1500 * time.Millisecond},
			"+0s +1s +2s +3s +4s +5s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(runSchedule(tc.cfg, 35*time.Second), " ")
			if got != tc.want {
				t.Errorf("rounds %s\nwant   %s", got, tc.want)
			}
		})
	}
}

func TestAnnounceScheduleStop(t *testing.T) {
	s := announceSchedule{cfg: DefaultAnnounce}
	s.start(t0)
	if n, next := s.due(t0); n != 5 || !next.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("due = %d, %v", n, next)
	}
	s.stop()
	if n, next := s.due(t0.Add(5 * time.Second)); n != 0 || !next.IsZero() {
		t.Fatalf("after stop: due = %d, %v", n, next)
	}
}

var testMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x81, 0x00, 0x01}

func TestGratuitousARP(t *testing.T) {
	b, err := GratuitousARP(testMAC, netip.MustParseAddr("192.0.2.10"))
	if err != nil {
		t.Fatal(err)
	}
	want := "ffffffffffff" + "02005e810001" + "0806" + // Ethernet: broadcast, from us, ARP
		"0001" + "0800" + "06" + "04" + "0001" + // Ethernet/IPv4, request
		"02005e810001" + "c000020a" + // sender: us, the VIP
		"000000000000" + "c000020a" // target: zero MAC, the VIP
	if got := hex.EncodeToString(b); got != want {
		t.Errorf("frame\n got %s\nwant %s", got, want)
	}
	if _, err := GratuitousARP(testMAC, netip.MustParseAddr("2001:db8::1")); err == nil {
		t.Error("IPv6 address accepted")
	}
}

func TestUnsolicitedNA(t *testing.T) {
	src := netip.MustParseAddr("fe80::2")
	target := netip.MustParseAddr("2001:db8:81::40")
	b, err := UnsolicitedNA(testMAC, src, target, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 14+40+32 {
		t.Fatalf("frame of %d bytes", len(b))
	}
	if !bytes.Equal(b[0:6], allNodesMAC) || !bytes.Equal(b[6:12], testMAC) || b[12] != 0x86 || b[13] != 0xdd {
		t.Errorf("Ethernet header % x", b[:14])
	}
	ip := b[14:]
	if ip[6] != 58 || ip[7] != 255 || !bytes.Equal(ip[8:24], src.AsSlice()) || !bytes.Equal(ip[24:40], allNodes.AsSlice()) {
		t.Errorf("IPv6 header % x", ip[:40])
	}
	na := ip[40:]
	if na[0] != 136 || na[4] != 0x20 || !bytes.Equal(na[8:24], target.AsSlice()) || na[24] != 2 || !bytes.Equal(na[26:32], testMAC) {
		t.Errorf("NA % x", na)
	}
	// A correct checksum sums, with the pseudo-header, to zero.
	var sum uint32
	sum = sumBytes(sum, src.AsSlice())
	sum = sumBytes(sum, allNodes.AsSlice())
	sum += uint32(len(na)) + 58
	sum = sumBytes(sum, na)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	if sum != 0xffff {
		t.Errorf("checksum %#04x does not verify (sum %#x)", na[2:4], sum)
	}
	r, err := UnsolicitedNA(testMAC, src, target, true)
	if err != nil || r[14+40+4] != 0xa0 {
		t.Errorf("router flag: flags %#x, %v", r[14+40+4], err)
	}
}

type recordFrames struct{ frames [][]byte }

func (r *recordFrames) WriteFrame(b []byte) error {
	r.frames = append(r.frames, slices.Clone(b))
	return nil
}

func TestFrameAnnouncerPicksARPOrNA(t *testing.T) {
	var w recordFrames
	a, err := NewFrameAnnouncer(&w, FrameAnnouncerOptions{HardwareAddr: testMAC, NASource: netip.MustParseAddr("fe80::2")})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Announce(addrs("192.0.2.10", "2001:db8::40")); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, f := range w.frames {
		types = append(types, fmt.Sprintf("%x", f[12:14]))
	}
	if got := strings.Join(types, " "); got != "0806 86dd" {
		t.Errorf("ethertypes %s", got)
	}
	if _, err := NewFrameAnnouncer(&w, FrameAnnouncerOptions{}); err == nil {
		t.Error("announcer without a MAC accepted")
	}
}

// frameOf wraps a VRRP payload in IPv4 and Ethernet headers, padded to
// the Ethernet minimum as on the wire.
func frameOf(g golden) []byte {
	var b []byte
	b = append(b, broadcastMAC...)
	b = append(b, testMAC...)
	if g.src.Is4() {
		b = append(b, 0x08, 0x00)
		total := 20 + len(g.payload)
		b = append(b, 0x45, 0, byte(total>>8), byte(total), 0, 0, 0, 0, byte(g.ttl), IPProtocol, 0, 0)
	} else {
		b = append(b, 0x86, 0xdd)
		b = append(b, 0x60, 0, 0, 0, byte(len(g.payload)>>8), byte(len(g.payload)), IPProtocol, byte(g.ttl))
	}
	b = append(b, g.src.AsSlice()...)
	b = append(b, g.dst.AsSlice()...)
	b = append(b, g.payload...)
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}

func TestParseFrameGolden(t *testing.T) {
	for _, name := range []string{"v2-ipv4-noauth", "v3-ipv4", "v3-ipv6"} {
		g := readGolden(t, name)
		p, ok := ParseFrame(frameOf(g))
		if !ok {
			t.Fatalf("%s: not parsed", name)
		}
		if p.Src != g.src || p.Dst != g.dst || p.HopLimit != g.ttl || !bytes.Equal(p.Payload, g.payload) || !bytes.Equal(p.SrcMAC, testMAC) {
			t.Errorf("%s: got %+v", name, p)
		}
		if _, err := Unmarshal(p.Payload, p.Src, p.Dst); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseFrameRejects(t *testing.T) {
	g := readGolden(t, "v3-ipv4")
	good := frameOf(g)
	fragment := slices.Clone(good)
	fragment[14+6] = 0x20 // more fragments
	otherProto := slices.Clone(good)
	otherProto[14+9] = 17
	long := slices.Clone(good)
	long[14+2], long[14+3] = 0x05, 0xdc // total length 1500
	arp, _ := GratuitousARP(testMAC, netip.MustParseAddr("192.0.2.10"))
	for name, f := range map[string][]byte{
		"fragment": fragment, "udp": otherProto, "length beyond frame": long, "arp": arp,
		"short": good[:20], "empty": nil,
	} {
		if p, ok := ParseFrame(f); ok {
			t.Errorf("%s: parsed as %+v", name, p)
		}
	}
}

func FuzzParseFrame(f *testing.F) {
	for _, name := range []string{"v2-ipv4-pass", "v3-ipv6"} {
		f.Add(frameOf(readGolden(f, name)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := ParseFrame(b)
		if !ok {
			return
		}
		if len(p.Payload) > len(b) {
			t.Fatalf("payload of %d bytes from a frame of %d", len(p.Payload), len(b))
		}
		_, _ = Unmarshal(p.Payload, p.Src, p.Dst)
	})
}
