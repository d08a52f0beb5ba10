package diag

import (
	"testing"
	"time"
)

func TestARPFindings(t *testing.T) {
	const dir, rs, stranger = "02:00:00:00:00:0a", "02:00:00:00:00:15", "02:00:00:00:00:33"
	reply := func(mac string) ARPPacket {
		return ARPPacket{Reply: true, SenderMAC: tMAC(mac), SenderIP: tVIP, TargetIP: tAddr("10.9.0.2")}
	}
	names := map[string]string{dir: "VRRP router 10.9.0.10 (VRID 51)", rs: "real server 10.9.0.21"}
	for _, tc := range []struct {
		name    string
		answers []string
		masters []string
		link    *Link
		ids     []string
	}{
		{"the director alone answers", []string{dir}, []string{dir}, nil, nil},
		{"nobody answers", nil, nil, nil, []string{"arp-vip-no-answer VIP 10.9.0.100 on eth0"}},
		{"this host holds the VIP itself", nil, nil, &Link{Name: "eth0", Kind: "veth", MAC: tMAC(dir)}, nil},
		{"a real server leaks beside the master", []string{dir, rs}, []string{dir}, nil,
			[]string{"arp-vip-leak real server 10.9.0.21 (MAC " + rs + ")"}},
		{"an unknown host answers beside the master", []string{dir, stranger}, []string{dir}, nil,
			[]string{"arp-vip-leak MAC " + stranger}},
		{"a real server leaks, no VRRP heard", []string{stranger, rs}, nil, nil,
			[]string{"arp-vip-leak real server 10.9.0.21 (MAC " + rs + ")"}},
		{"two hosts and no way to tell the director", []string{dir, stranger}, nil, nil,
			[]string{"arp-vip-multiple VIP 10.9.0.100 on eth0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := arpFacts{target: tTarget, Names: names, Masters: tc.masters,
				Capture: ARPCapture{Start: tStart, End: tStart.Add(2500 * time.Millisecond)}}
			for _, mac := range tc.answers {
				f.Capture.Packets = append(f.Capture.Packets, reply(mac))
			}
			if tc.link != nil {
				f.VIPLink, f.HaveVIPLink = *tc.link, true
			}
			checkOutcome(t, arpFindings(f), "", tc.ids)
		})
	}
}
