package diag

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestFailoverFindings(t *testing.T) {
	const masterMAC, oldMAC = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
	census := &VRRPCensus{Interface: "eth0", Start: tStart, End: tStart.Add(2500 * time.Millisecond)}
	master := func(firstSeen time.Duration) Speaker {
		return Speaker{Source: tAddr("10.9.0.10"), MAC: masterMAC, Role: RoleMaster, Interval: time.Second,
			Addresses: []netip.Addr{tVIP}, FirstSeen: tStart.Add(firstSeen)}
	}
	reply := func(mac string) ARPPacket {
		return ARPPacket{At: tStart.Add(10 * time.Millisecond), Reply: true, SenderMAC: tMAC(mac), SenderIP: tVIP, TargetIP: tAddr("10.9.0.2")}
	}
	// lvsd names the master by address: its MAC comes from its own reply.
	masterReply := ARPPacket{At: tStart.Add(20 * time.Millisecond), Reply: true, SenderMAC: tMAC(masterMAC), SenderIP: tAddr("10.9.0.10"), TargetIP: tAddr("10.9.0.2")}
	garp := ARPPacket{At: tStart.Add(1600 * time.Millisecond), SenderMAC: tMAC(masterMAC), SenderIP: tVIP, TargetIP: tVIP}
	neigh := func(mac string) []Neighbour {
		return []Neighbour{{IP: tVIP, MAC: tMAC(mac), Interface: "eth0", Complete: true}}
	}
	base := func() failoverFacts {
		return failoverFacts{target: tTarget, Census: census, Masters: []Speaker{master(0)},
			Capture:        ARPCapture{Start: tStart, End: census.End, Packets: []ARPPacket{reply(masterMAC)}},
			ReadNeighbours: true, Neighbours: neigh(masterMAC)}
	}
	for _, tc := range []struct {
		name   string
		edit   func(f *failoverFacts)
		status Status
		ids    []string
		notes  []string
	}{
		{"master answers and holds the neighbour entry", func(*failoverFacts) {}, "", nil,
			[]string{"VRRP master for the VIP: 10.9.0.10 (MAC " + masterMAC + ")", "no takeover during the listen", "points at the master"}},
		{"no census and no lvsd: could not run", func(f *failoverFacts) {
			f.Census, f.CensusErr, f.Masters = nil, errors.New("needs root"), nil
		}, StatusCouldNotRun, nil, nil},
		{"no VRRP at all: not applicable", func(f *failoverFacts) { f.Masters = nil }, StatusNotApplicable, nil, nil},
		{"two masters: split brain is check 7's", func(f *failoverFacts) {
			f.Masters = append(f.Masters, master(0))
		}, StatusNotApplicable, nil, nil},
		{"the old master still answers", func(f *failoverFacts) {
			f.Capture.Packets = []ARPPacket{reply(oldMAC)}
			f.Neighbours = neigh(oldMAC)
		}, "", []string{"failover-vip-mac-not-master VIP 10.9.0.100"}, []string{"answered who-has in this run"}},
		{"takeover during the listen without gratuitous ARP", func(f *failoverFacts) {
			f.Masters = []Speaker{master(1600 * time.Millisecond)}
		}, "", []string{"failover-no-garp VRRP master 10.9.0.10"}, nil},
		{"takeover with gratuitous ARP", func(f *failoverFacts) {
			f.Masters = []Speaker{master(1600 * time.Millisecond)}
			f.Capture.Packets = append(f.Capture.Packets, garp)
		}, "", nil, []string{"1 gratuitous ARP for 10.9.0.100 from " + masterMAC + ", the first at +1.600s"}},
		{"lvsd became master during the listen", func(f *failoverFacts) {
			f.Masters, f.LVSDMaster, f.MasterSince = nil, "10.9.0.10", tStart.Add(time.Second)
			f.Capture.Packets = append(f.Capture.Packets, masterReply)
		}, "", []string{"failover-no-garp VRRP master 10.9.0.10"}, nil},
		{"lvsd master since before the run", func(f *failoverFacts) {
			f.Masters, f.LVSDMaster, f.MasterSince = nil, "10.9.0.10", tStart.Add(-time.Hour)
			f.Capture.Packets = append(f.Capture.Packets, masterReply)
		}, "", nil, []string{"before this run: its gratuitous ARP could not be seen"}},
		{"stale neighbour entry", func(f *failoverFacts) {
			f.Neighbours = neigh(oldMAC)
		}, "", []string{"failover-stale-neighbour neighbour entry 10.9.0.100 on eth0"}, nil},
		{"neighbour table unreadable", func(f *failoverFacts) {
			f.Neighbours, f.NeighboursErr = nil, errors.New("open proc/net/arp: permission denied")
		}, "", nil, []string{"neighbour table not read: open proc/net/arp: permission denied"}},
		{"no ARP: the master's MAC is unknown, nothing else is judged", func(f *failoverFacts) {
			f.Capture, f.ARPErr = ARPCapture{}, errors.New("needs root (CAP_NET_RAW)")
			f.Masters[0].MAC = ""
			f.Neighbours = neigh(oldMAC)
		}, "", nil, []string{"(MAC unknown)", "ARP: needs root (CAP_NET_RAW)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			tc.edit(&f)
			checkOutcome(t, failoverFindings(f), tc.status, tc.ids, tc.notes...)
		})
	}
}
