package vrrp_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/lvskit/lvskit/director/vrrp"
)

// Encode a VRRPv3 advertisement for two IPv4 virtual addresses and decode
// it as a receiver would, with the addresses from the IP header.
func Example() {
	src := netip.MustParseAddr("10.81.0.1")
	advert := vrrp.Advertisement{
		Version:   vrrp.Version3,
		VRID:      53,
		Priority:  200,
		Interval:  500 * time.Millisecond,
		Addresses: []netip.Addr{netip.MustParseAddr("203.0.113.30"), netip.MustParseAddr("203.0.113.31")},
	}
	payload, err := advert.Marshal(src, vrrp.IPv4Group)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("% x\n", payload)

	got, err := vrrp.Unmarshal(payload, src, vrrp.IPv4Group)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got.String())

	// The same bytes claimed by another sender fail the v3 checksum.
	_, err = vrrp.Unmarshal(payload, netip.MustParseAddr("10.81.0.9"), vrrp.IPv4Group)
	fmt.Println(err)
	// Output:
	// 31 35 c8 02 00 32 a3 71 cb 00 71 1e cb 00 71 1f
	// VRRPv3 vrid 53 priority 200 interval 500ms addresses 203.0.113.30 203.0.113.31
	// decoding vrrp from 10.81.0.9: checksum 0xa371 is wrong: vrrp checksum mismatch
}
