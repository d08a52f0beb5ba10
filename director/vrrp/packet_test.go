package vrrp

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func isErr(err, target error) bool { return errors.Is(err, target) }

var (
	src4 = netip.MustParseAddr("10.81.0.1")
	src6 = netip.MustParseAddr("fe80::5eff:fe81:1")
)

func TestUnmarshalErrors(t *testing.T) {
	g := readGolden(t, "v2-ipv4-pass")
	v2 := g.payload
	v3 := readGolden(t, "v3-ipv4").payload
	v6 := readGolden(t, "v3-ipv6").payload

	mutate := func(b []byte, f func([]byte)) []byte {
		b = bytes.Clone(b)
		f(b)
		return b
	}
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		want     error
	}{
		{"empty", nil, src4, IPv4Group, ErrTruncated},
		{"header cut", v2[:7], src4, IPv4Group, ErrTruncated},
		{"v2 without auth data", v2[:len(v2)-8], src4, IPv4Group, ErrTruncated},
		{"v3 address cut", v3[:len(v3)-1], src4, IPv4Group, ErrTruncated},
		{"count larger than packet", mutate(v3, func(b []byte) { b[3] = 5 }), src4, IPv4Group, ErrTruncated},
		{"count smaller than packet", mutate(v3, func(b []byte) { b[3] = 3 }), src4, IPv4Group, ErrAddressCount},
		{"trailing padding", append(bytes.Clone(v3), 0, 0), src4, IPv4Group, ErrAddressCount},
		{"version 1", mutate(v2, func(b []byte) { b[0] = 0x11 }), src4, IPv4Group, ErrBadVersion},
		{"version 4", mutate(v3, func(b []byte) { b[0] = 0x41 }), src4, IPv4Group, ErrBadVersion},
		{"version 2 over IPv6", mutate(v6, func(b []byte) { b[0] = 0x21 }), src6, IPv6Group, ErrBadVersion},
		{"type 2", mutate(v3, func(b []byte) { b[0] = 0x32 }), src4, IPv4Group, ErrBadType},
		{"v2 checksum", mutate(v2, func(b []byte) { b[7] ^= 1 }), src4, IPv4Group, ErrBadChecksum},
		{"v2 password changed", mutate(v2, func(b []byte) { b[len(b)-1] = 'x' }), src4, IPv4Group, ErrBadChecksum},
		{"v3 priority changed", mutate(v3, func(b []byte) { b[2]++ }), src4, IPv4Group, ErrBadChecksum},
		{"v3 wrong destination", v3, src4, netip.MustParseAddr("10.81.0.2"), ErrBadChecksum},
		{"v6 wrong source", v6, netip.MustParseAddr("fe80::1"), IPv6Group, ErrBadChecksum},
		{"mixed families", v3, src4, IPv6Group, ErrAddressFamily},
		{"no source", v3, netip.Addr{}, IPv4Group, ErrAddressFamily},
		{"4-in-6 source", v6, netip.MustParseAddr("::ffff:10.81.0.1"), IPv6Group, ErrAddressFamily},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Unmarshal(tt.b, tt.src, tt.dst)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if msg := err.Error(); msg != strings.ToLower(msg[:1])+msg[1:] {
				t.Errorf("error %q does not start lowercase", msg)
			}
		})
	}
}

// A packet with a bad checksum still shows who sent what, for lvsdiag.
func TestUnmarshalBadChecksumKeepsFields(t *testing.T) {
	b := bytes.Clone(readGolden(t, "v3-ipv4").payload)
	b[6] ^= 0xff
	a, err := Unmarshal(b, src4, IPv4Group)
	if !errors.Is(err, ErrBadChecksum) {
		t.Fatalf("got %v, want ErrBadChecksum", err)
	}
	if a.VRID != 53 || a.Priority != 200 || len(a.Addresses) != 4 {
		t.Fatalf("fields lost: %+v", a)
	}
}

// The two checksum variants keepalived can be configured to send are named
// in the error, so an operator knows which peer setting to change.
func TestUnmarshalChecksumHints(t *testing.T) {
	a := Advertisement{Version: Version3, VRID: 7, Priority: 100, Interval: time.Second, Addresses: addrs("192.0.2.1")}
	// Checksum without pseudo-header, as keepalived's v3_checksum_as_v2.
	asV2, _ := a.Marshal(src4, IPv4Group)
	asV2[6], asV2[7] = 0, 0
	sum := checksum(Version2, src4, IPv4Group, asV2)
	asV2[6], asV2[7] = byte(sum>>8), byte(sum)
	_, err := Unmarshal(asV2, src4, IPv4Group)
	if !errors.Is(err, ErrBadChecksum) || !strings.Contains(err.Error(), "v3_checksum_as_v2") {
		t.Errorf("v2-style checksum: got %v", err)
	}
	// Unicast advert whose pseudo-header used the multicast group.
	peer := netip.MustParseAddr("10.81.0.2")
	oldUnicast, _ := a.Marshal(src4, IPv4Group)
	_, err = Unmarshal(oldUnicast, src4, peer)
	if !errors.Is(err, ErrBadChecksum) || !strings.Contains(err.Error(), "224.0.0.18") {
		t.Errorf("old unicast checksum: got %v", err)
	}
}

func TestMarshalErrors(t *testing.T) {
	base := Advertisement{Version: Version3, VRID: 1, Priority: 100, Interval: time.Second, Addresses: addrs("192.0.2.1")}
	tests := []struct {
		name     string
		edit     func(*Advertisement)
		src, dst netip.Addr
		want     error
	}{
		{"version 1", func(a *Advertisement) { a.Version = 1 }, src4, IPv4Group, ErrBadVersion},
		{"version 2 over IPv6", func(a *Advertisement) { a.Version = Version2; a.Addresses = addrs("2001:db8::1") }, src6, IPv6Group, ErrBadVersion},
		{"IPv6 VIP in IPv4 packet", func(a *Advertisement) { a.Addresses = addrs("2001:db8::1") }, src4, IPv4Group, ErrAddressFamily},
		{"IPv4 VIP in IPv6 packet", func(a *Advertisement) {}, src6, IPv6Group, ErrAddressFamily},
		{"invalid VIP", func(a *Advertisement) { a.Addresses = []netip.Addr{{}} }, src4, IPv4Group, ErrAddressFamily},
		{"256 VIPs", func(a *Advertisement) { a.Addresses = make([]netip.Addr, 256) }, src4, IPv4Group, ErrAddressCount},
		{"v3 interval not centiseconds", func(a *Advertisement) { a.Interval = 1234 * time.Microsecond }, src4, IPv4Group, ErrInterval},
		{"v3 interval too long", func(a *Advertisement) { a.Interval = 41 * time.Second }, src4, IPv4Group, ErrInterval},
		{"v2 interval not seconds", func(a *Advertisement) { a.Version = Version2; a.Interval = 1500 * time.Millisecond }, src4, IPv4Group, ErrInterval},
		{"v2 interval too long", func(a *Advertisement) { a.Version = Version2; a.Interval = 256 * time.Second }, src4, IPv4Group, ErrInterval},
		{"negative interval", func(a *Advertisement) { a.Interval = -time.Second }, src4, IPv4Group, ErrInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := base
			tt.edit(&a)
			if _, err := a.Marshal(tt.src, tt.dst); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// Reserved bits of the version 3 interval field are ignored on reception
// and sent as zero.
func TestV3ReservedBitsIgnored(t *testing.T) {
	a := Advertisement{Version: Version3, VRID: 9, Priority: 50, Interval: 40950 * time.Millisecond, Addresses: addrs("2001:db8::9")}
	b, err := a.Marshal(src6, IPv6Group)
	if err != nil {
		t.Fatal(err)
	}
	if b[4]&0xf0 != 0 {
		t.Fatalf("reserved bits sent: %x", b[4])
	}
	b[4] |= 0xf0
	b[6], b[7] = 0, 0
	sum := checksum(Version3, src6, IPv6Group, b)
	b[6], b[7] = byte(sum>>8), byte(sum)
	got, err := Unmarshal(b, src6, IPv6Group)
	if err != nil {
		t.Fatal(err)
	}
	if got.Interval != 40950*time.Millisecond {
		t.Fatalf("interval %s, want 40.95s", got.Interval)
	}
}

func TestAdvertisementString(t *testing.T) {
	a := Advertisement{Version: Version2, VRID: 52, Priority: 100, Interval: 2 * time.Second,
		Addresses: addrs("198.51.100.20", "198.51.100.21"), AuthType: AuthSimple}
	want := "VRRPv2 vrid 52 priority 100 interval 2s auth simple addresses 198.51.100.20 198.51.100.21"
	if got := a.String(); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
