package vrrp

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzUnmarshal feeds arbitrary payloads to Unmarshal. It must never panic,
// and whatever it accepts must encode back to the same advertisement (and,
// reserved bits aside, to the same bytes). With fixChecksum set the fuzzer
// writes a correct checksum first, so it also explores the paths behind the
// checksum check. The seed corpus in testdata/fuzz/FuzzUnmarshal holds the
// keepalived captures and edge cases.
func FuzzUnmarshal(f *testing.F) {
	for _, name := range []string{"v2-ipv4-noauth", "v2-ipv4-pass", "v3-ipv4", "v3-ipv6"} {
		g := readGolden(f, name)
		f.Add(g.payload, g.src.Is6(), false)
	}
	f.Fuzz(func(t *testing.T, b []byte, ipv6, fixChecksum bool) {
		src, dst := netip.MustParseAddr("10.81.0.1"), IPv4Group
		if ipv6 {
			src, dst = netip.MustParseAddr("fe80::5eff:fe81:1"), IPv6Group
		}
		if fixChecksum && len(b) >= headerLen {
			b = bytes.Clone(b)
			b[6], b[7] = 0, 0
			sum := checksum(Version(b[0]>>4), src, dst, b)
			b[6], b[7] = byte(sum>>8), byte(sum)
		}
		a, err := Unmarshal(b, src, dst)
		if err != nil {
			return
		}
		out, err := a.Marshal(src, dst)
		if err != nil {
			t.Fatalf("accepted %x but cannot encode %+v: %v", b, a, err)
		}
		again, err := Unmarshal(out, src, dst)
		if err != nil {
			t.Fatalf("cannot decode own encoding %x of %+v: %v", out, a, err)
		}
		a.Checksum, again.Checksum = 0, 0
		if !equalAdvert(a, again) {
			t.Fatalf("round trip changed the advertisement:\n  %+v\n  %+v", a, again)
		}
		if a.Version == Version3 && b[4]&0xf0 != 0 {
			return // reserved bits are not sent back
		}
		// 0x0000 and 0xffff are both one's-complement zero: a packet may
		// carry either, Marshal writes 0x0000.
		sameSum := bytes.Equal(out[6:8], b[6:8]) || out[6]|out[7] == 0 && b[6]&b[7] == 0xff
		if !bytes.Equal(out[:6], b[:6]) || !bytes.Equal(out[8:], b[8:]) || !sameSum {
			t.Fatalf("round trip changed the bytes:\n  %x\n  %x", b, out)
		}
	})
}
