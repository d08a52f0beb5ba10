package diag

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/vrrp"
	"github.com/lvskit/lvskit/director/vrrp/vrrptest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// stream is a router advertising at a steady interval over part of the
// listen.
type stream struct {
	src      string
	vrid     uint8
	version  vrrp.Version
	priority uint8
	interval time.Duration
	vips     []string
	from, to time.Duration // first and last advert, from the start
	ttl      int           // 0 means 255
	password string
	// last, if set, is the priority of one more advert right after to
	// (0 for a clean stop, or the last advert of a master yielding).
	last *uint8
}

func (s stream) observations(t *testing.T) []VRRPObservation {
	t.Helper()
	src := netip.MustParseAddr(s.src)
	dst := vrrp.FamilyOf(src).Group()
	ttl := s.ttl
	if ttl == 0 {
		ttl = 255
	}
	var vips []netip.Addr
	for _, v := range s.vips {
		vips = append(vips, netip.MustParseAddr(v))
	}
	mac := net.HardwareAddr{0x02, 0, 0x5e, 0, 0, src.AsSlice()[len(src.AsSlice())-1]}
	advert := func(at time.Duration, priority uint8) VRRPObservation {
		a := vrrp.Advertisement{Version: s.version, VRID: s.vrid, Priority: priority, Interval: s.interval, Addresses: vips}
		if s.password != "" {
			a.AuthType = vrrp.AuthSimple
			copy(a.AuthData[:], s.password)
		}
		b, err := a.Marshal(src, dst)
		if err != nil {
			t.Fatal(err)
		}
		return ObserveVRRP(t0.Add(at), vrrp.Packet{Payload: b, Src: src, Dst: dst, HopLimit: ttl, SrcMAC: mac})
	}
	var out []VRRPObservation
	for at := s.from; at <= s.to; at += s.interval {
		out = append(out, advert(at, s.priority))
	}
	if s.last != nil {
		out = append(out, advert(s.to+10*time.Millisecond, *s.last))
	}
	return out
}

func prio(p uint8) *uint8 { return &p }

var (
	vip100 = []string{"10.77.0.100"}
	vip200 = []string{"10.77.0.200", "10.77.0.201"}
)

func v3(src string, priority uint8, from, to time.Duration) stream {
	return stream{src: src, vrid: 51, version: vrrp.Version3, priority: priority, interval: 200 * time.Millisecond,
		vips: vip100, from: from, to: to}
}

func v2(src string, priority uint8, from, to time.Duration) stream {
	return stream{src: src, vrid: 51, version: vrrp.Version2, priority: priority, interval: time.Second,
		vips: vip100, from: from, to: to}
}

func with(s stream, edit func(*stream)) stream {
	edit(&s)
	return s
}

const (
	ms = time.Millisecond
	s5 = 5 * time.Second
)

var censusCases = []struct {
	name    string
	streams []stream
	extra   func(t *testing.T) []VRRPObservation
	want    []string // finding IDs, in report order
}{
	{
		name: "clean",
		streams: []stream{
			v3("10.77.0.2", 150, 0, s5),
			with(v3("10.77.0.4", 120, 0, s5), func(s *stream) { s.vrid, s.vips = 52, vip200 }),
			{src: "fe80::2", vrid: 51, version: vrrp.Version3, priority: 100, interval: time.Second,
				vips: []string{"fe80::51:1", "2001:db8:77::100"}, from: 300 * ms, to: s5},
		},
	},
	{
		// A backup stepped up after the master's priority-0 advert: a
		// handover, not two masters.
		name: "handover",
		streams: []stream{
			with(v3("10.77.0.2", 150, 0, 2*time.Second), func(s *stream) { s.last = prio(0) }),
			v3("10.77.0.3", 100, 2130*ms, s5),
		},
	},
	{
		// A higher-priority router preempts: the old master sends one
		// more advert and falls silent.
		name: "preempt",
		streams: []stream{
			with(v3("10.77.0.3", 100, 0, 3*time.Second), func(s *stream) { s.last = prio(100) }),
			v3("10.77.0.2", 150, 3*time.Second, s5),
		},
	},
	{
		name: "clash",
		streams: []stream{
			v3("10.77.0.2", 150, 0, s5),
			with(v3("10.77.0.4", 150, 1*time.Second, s5), func(s *stream) { s.vips = vip200 }),
		},
		want: []string{"vrrp-vrid-clash"},
	},
	{
		name: "split-brain",
		streams: []stream{
			v3("10.77.0.2", 150, 0, s5),
			v3("10.77.0.3", 100, 2*time.Second, s5),
		},
		want: []string{"vrrp-split-brain"},
	},
	{
		name: "ttl",
		streams: []stream{
			with(v3("10.77.0.9", 150, 0, s5), func(s *stream) { s.ttl = 254 }),
		},
		want: []string{"vrrp-ttl"},
	},
	{
		name: "version-mismatch",
		streams: []stream{
			v2("10.77.0.2", 150, 0, s5),
			with(v3("10.77.0.3", 100, 0, s5), func(s *stream) { s.interval = time.Second }),
		},
		want: []string{"vrrp-split-brain", "vrrp-version-mismatch"},
	},
	{
		name: "interval-mismatch",
		streams: []stream{
			v2("10.77.0.2", 150, 0, s5),
			with(v2("10.77.0.3", 100, 0, s5), func(s *stream) { s.interval = 2 * time.Second }),
		},
		want: []string{"vrrp-interval-mismatch", "vrrp-split-brain"},
	},
	{
		name: "auth-mismatch",
		streams: []stream{
			with(v2("10.77.0.2", 150, 0, s5), func(s *stream) { s.password = "lvskit" }),
			with(v2("10.77.0.3", 100, 0, s5), func(s *stream) { s.password = "other" }),
		},
		want: []string{"vrrp-auth-mismatch", "vrrp-split-brain"},
	},
	{
		name:    "invalid",
		streams: []stream{v3("10.77.0.2", 150, 0, s5)},
		extra: func(t *testing.T) []VRRPObservation {
			src := netip.MustParseAddr("10.77.0.7")
			a := vrrp.Advertisement{Version: vrrp.Version3, VRID: 51, Priority: 100, Interval: time.Second,
				Addresses: []netip.Addr{netip.MustParseAddr("10.77.0.100")}}
			b, err := a.Marshal(src, vrrp.IPv4Group)
			if err != nil {
				t.Fatal(err)
			}
			b[7] ^= 1
			p := vrrp.Packet{Payload: b, Src: src, Dst: vrrp.IPv4Group, HopLimit: 255,
				SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 7}}
			return []VRRPObservation{ObserveVRRP(t0.Add(time.Second), p), ObserveVRRP(t0.Add(2*time.Second), vrrp.Packet{
				Payload: b[:6], Src: src, Dst: vrrp.IPv4Group, HopLimit: 255, SrcMAC: p.SrcMAC})}
		},
		want: []string{"vrrp-invalid-packet"},
	},
	{name: "silence"},
}

func caseIndex(name string) int {
	for i, c := range censusCases {
		if c.name == name {
			return i
		}
	}
	panic("no census case " + name)
}

func buildCase(t *testing.T, i int) (*VRRPCensus, []Finding) {
	t.Helper()
	tc := censusCases[i]
	var obs []VRRPObservation
	for _, s := range tc.streams {
		obs = append(obs, s.observations(t)...)
	}
	if tc.extra != nil {
		obs = append(obs, tc.extra(t)...)
	}
	slices.SortStableFunc(obs, func(a, b VRRPObservation) int { return a.At.Compare(b.At) })
	c := BuildVRRPCensus("eth0", t0, t0.Add(s5+100*ms), obs)
	return c, c.Findings()
}

func TestVRRPCensusFindings(t *testing.T) {
	for i, tc := range censusCases {
		t.Run(tc.name, func(t *testing.T) {
			_, fs := buildCase(t, i)
			var ids []string
			for _, f := range fs {
				ids = append(ids, f.ID)
				if f.Subject == "" || len(f.Evidence) == 0 || f.Fix == "" {
					t.Errorf("finding %s lacks subject, evidence or fix: %+v", f.ID, f)
				}
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("findings %q, want %q", ids, tc.want)
			}
			if got, want := ExitCode(fs), min(len(tc.want), 1); got != want {
				t.Errorf("exit code %d, want %d", got, want)
			}
		})
	}
}

func TestVRRPCensusRoles(t *testing.T) {
	c, _ := buildCase(t, caseIndex("handover"))
	r := c.Routers[0]
	roles := fmt.Sprint(r.Speakers[0].Role, " ", r.Speakers[1].Role)
	if roles != "stepped-down master" || fmt.Sprint(r.Masters()) != "[10.77.0.3]" {
		t.Errorf("roles %s, masters %v", roles, r.Masters())
	}
}

// TestVRRPReportGolden renders every case in every format and compares
// with testdata/vrrp/CASE.{txt,json,md}; -update rewrites them.
func TestVRRPReportGolden(t *testing.T) {
	exts := map[Format]string{Text: "txt", JSON: "json", Markdown: "md"}
	for i, tc := range censusCases {
		c, fs := buildCase(t, i)
		for format, ext := range exts {
			t.Run(tc.name+"/"+string(format), func(t *testing.T) {
				var b bytes.Buffer
				if err := WriteVRRPReport(&b, c, fs, format); err != nil {
					t.Fatal(err)
				}
				golden(t, filepath.Join("testdata", "vrrp", tc.name+"."+ext), b.Bytes())
			})
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (regenerate with go test ./diag -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./diag -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestListenVRRPReadsUntilTheDuration listens on a fake wire: it sees
// what is injected and returns after the duration.
func TestListenVRRPReadsUntilTheDuration(t *testing.T) {
	wire := vrrptest.NewWire()
	port := wire.Port()
	src := netip.MustParseAddr("10.77.0.2")
	a := vrrp.Advertisement{Version: vrrp.Version3, VRID: 51, Priority: 150, Interval: time.Second,
		Addresses: []netip.Addr{netip.MustParseAddr("10.77.0.100")}}
	b, err := a.Marshal(src, vrrp.IPv4Group)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		wire.Inject(vrrp.Packet{Payload: b, Src: src, Dst: vrrp.IPv4Group, HopLimit: 255})
	}
	c, err := ListenVRRP(context.Background(), port, VRRPListenOptions{Interface: "eth0", Duration: 200 * ms})
	if err != nil {
		t.Fatal(err)
	}
	if c.Packets != 3 || len(c.Routers) != 1 || c.Routers[0].Speakers[0].Adverts != 3 {
		t.Fatalf("census %+v", c)
	}
	if d := c.End.Sub(c.Start); d < 200*ms {
		t.Errorf("listened %s", d)
	}
	if len(wire.Sent()) != 0 {
		t.Error("the census sent packets")
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"text", "json", "markdown"} {
		if _, err := ParseFormat(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil || !strings.Contains(err.Error(), "yaml") {
		t.Errorf("ParseFormat(yaml) = %v", err)
	}
}

// TestForeignRouterFindings: with lvsd's VRRP instances, a router on one
// of our VRIDs with other addresses is foreign, named by its source and
// VIPs; our own peers are not.
func TestForeignRouterFindings(t *testing.T) {
	c, _ := buildCase(t, caseIndex("clash"))
	ours := []config.VRRPInstance{{Name: "VI_1", Interface: "eth0", VirtualRouterID: 51,
		VirtualAddresses: []config.VirtualAddress{{Address: netip.MustParseAddr("10.77.0.100")}}}}
	fs := c.ForeignRouterFindings(ours)
	if len(fs) != 1 || fs[0].ID != "vrrp-foreign-router" || fs[0].Subject != "VRID 51 (IPv4) on eth0, source 10.77.0.4" ||
		!strings.Contains(fs[0].Evidence[0], "10.77.0.4 (MAC 02:00:5e:00:00:04) advertises VRID 51 for 10.77.0.200 10.77.0.201") {
		t.Errorf("findings %+v", fs)
	}
	// Another VRID: nothing is ours to defend.
	ours[0].VirtualRouterID = 52
	if fs := c.ForeignRouterFindings(ours); len(fs) != 0 {
		t.Errorf("VRID 52: %+v", fs)
	}
	// Unicast peers: a router with our VIPs that is not a peer is foreign too.
	clean, _ := buildCase(t, caseIndex("split-brain"))
	ours[0].VirtualRouterID = 51
	ours[0].UnicastPeers = []netip.Addr{netip.MustParseAddr("10.77.0.2")}
	ours[0].SourceAddress = netip.MustParseAddr("10.77.0.9")
	fs = clean.ForeignRouterFindings(ours)
	if len(fs) != 1 || !strings.HasSuffix(fs[0].Subject, "source 10.77.0.3") {
		t.Errorf("unicast: %+v", fs)
	}
}
