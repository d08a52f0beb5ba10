package tui

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/statusapi"
)

func lvsdServer(t *testing.T) *statusapi.Client {
	t.Helper()
	st := statusapi.Status{
		Services: []statusapi.ServiceStatus{{
			Key: "TCP 192.168.0.100:80", Name: "web", Scheduler: "wlc", InKernel: true,
			RealServers: []statusapi.RealServerStatus{
				{Address: "10.0.0.11:80", Forwarding: "Route", Weight: 1, KernelWeight: 1, Health: "up"},
				{Address: "10.0.0.12:80", Forwarding: "Route", Weight: 1, KernelWeight: 1, Health: "down",
					LastResult: "HTTP 503 from 10.0.0.12:80", Why: "3 of 3 failures: HTTP 503 from 10.0.0.12:80 at 12:00:03"},
				{Address: "10.0.0.13:80", Forwarding: "Route", Weight: 1, KernelWeight: 0, Health: "unknown"},
			},
		}},
		VRRP: []statusapi.VRRPStatus{{Name: "VI_1", VRID: 51, Interface: "eth0", State: "master", Priority: 150, VIPs: []string{"192.168.0.100"}}},
		BGP: &statusapi.BGPStatus{ASN: 65001, RouterID: "10.0.0.2", Phase: "running",
			Peers: []statusapi.BGPPeerStatus{{Address: "10.0.0.1", ASN: 65000, State: "established", Up: true}, {Address: "10.0.0.3", ASN: 65000, State: "active"}},
			VIPs: []statusapi.BGPVIPStatus{
				{Address: "192.168.0.100", Prefix: "192.168.0.100/32", Announced: true, Reason: "every service at or above the high watermark 0%"},
				{Address: "192.168.0.101", Prefix: "192.168.0.101/32", Reason: "TCP 192.168.0.101:80 has no real server up"},
			}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(st)
	}))
	t.Cleanup(srv.Close)
	c, err := statusapi.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLVSDSourceAddsHealthAndVRRP: with lvsd, the drill-down says which
// real server is down and why, and the header shows VRRP.
func TestLVSDSourceAddsHealthAndVRRP(t *testing.T) {
	k := newIncidentKernel(t)
	src := &LVSDSource{Status: lvsdServer(t), Base: k.src}
	var m Model
	f := m.Update(collect(t, src, ConnQuery{}))
	svc := f.Snap.FindService(ipvs.TCPKey(webVIP))
	if svc == nil || svc.Name != "web" {
		t.Fatalf("service: %+v", svc)
	}
	rows := FormatTable(RealServerRows(f, svc), "")
	golden(t, "lvsd-servers.txt", rows)
	for _, want := range []string{"HEALTH", "down", "3 of 3 failures: HTTP 503 from 10.0.0.12:80 at 12:00:03"} {
		if !strings.Contains(rows, want) {
			t.Errorf("drill-down lacks %q:\n%s", want, rows)
		}
	}
	header := strings.Join(HeaderLines(f), "\n")
	if !strings.Contains(header, "VRRP VI_1 vrid 51 on eth0: MASTER prio 150 holds 192.168.0.100") {
		t.Errorf("header lacks VRRP:\n%s", header)
	}
	if want := "BGP as 65001: announces 192.168.0.100/32; withdrawn 192.168.0.101/32 (TCP 192.168.0.101:80 has no real server up); peers 10.0.0.1 up, 10.0.0.3 DOWN (active)"; !strings.Contains(header, want) {
		t.Errorf("header lacks BGP:\n%s\nwant %s", header, want)
	}
	if svc.Up() != 1 {
		t.Errorf("up: %d, want 1 (one down, one at weight 0)", svc.Up())
	}

	// lvsd alone (remote): services and health, no counters.
	alone := collect(t, &LVSDSource{Status: lvsdServer(t), Clock: fixedClock(labTime)}, ConnQuery{})
	if len(alone.Services) != 1 || alone.HaveConns || alone.Services[0].HasCounters || alone.Services[0].RealServers[1].Health != "down" {
		t.Errorf("lvsd alone: %+v", alone)
	}
	// The header's clock is the snapshot's time, not 00:00:00.
	if !alone.Taken.Equal(labTime) {
		t.Errorf("lvsd alone taken at %v, want %v", alone.Taken, labTime)
	}
}
