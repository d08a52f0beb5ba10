package probes

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// sameAsOracles checks that the writers print p exactly as the
// fmt/encoding/json writers they replaced (oracle_test.go): JSON, plain
// and coloured text, in two time zones.
func sameAsOracles(t *testing.T, what string, p Path) {
	t.Helper()
	var got, want bytes.Buffer
	errGot, errWant := NewJSONWriter(&got).WritePath(p), oracleWriteJSON(&want, p)
	if (errGot != nil) != (errWant != nil) {
		t.Fatalf("%s: JSON error %v, encoding/json's %v", what, errGot, errWant)
	}
	if errWant == nil && !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("%s: JSON differs from encoding/json's:\n got %s\nwant %s", what, got.Bytes(), want.Bytes())
	}
	for _, opts := range []TextOptions{{Location: time.UTC}, {Colour: true, Location: time.FixedZone("X", -5*3600-1800)}} {
		got.Reset()
		want.Reset()
		if err := WriteText(&got, p, opts); err != nil {
			t.Fatal(err)
		}
		if err := oracleWriteText(&want, p, opts); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("%s: text (colour %v) differs from fmt's:\n got %q\nwant %q", what, opts.Colour, got.Bytes(), want.Bytes())
		}
	}
	for i, h := range p.Hops {
		if got, want := HopText(h), oracleHopText(h); got != want {
			t.Fatalf("%s: hop %d's text %q, fmt's %q", what, i, got, want)
		}
	}
}

// Every path of the records captured in the VM prints as encoding/json
// and fmt printed it.
func TestWritersMatchOraclesOnRecords(t *testing.T) {
	weight0 := func(Service) ([]Destination, bool) { return []Destination{{Weight: 0}}, true }
	for _, k := range kernels {
		for _, name := range []string{"dr", "nat", "tun", "weight0", "noservice"} {
			g := NewGrouper(GrouperOptions{Destinations: weight0, Boot: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)})
			var paths []Path
			for _, e := range recorded(t, k, name) {
				paths = append(paths, g.Add(e)...)
			}
			paths = append(paths, g.Close()...)
			if len(paths) == 0 {
				t.Fatalf("%s %s: no paths", k, name)
			}
			for i, p := range paths {
				sameAsOracles(t, k+"/"+name+" path "+itoa(i), p)
			}
			sameAsSummaryOracle(t, k+"/"+name, g.Summary())
		}
	}
}

func sameAsSummaryOracle(t *testing.T, what string, s Summary) {
	t.Helper()
	var got, want bytes.Buffer
	if err := NewJSONWriter(&got).WriteSummary(s); err != nil {
		t.Fatal(err)
	}
	if err := oracleWriteSummaryJSON(&want, s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("%s: summary JSON differs from encoding/json's:\n got %s\nwant %s", what, got.Bytes(), want.Bytes())
	}
}

// Random paths, with the strings JSON must escape and the addresses
// netip prints oddly, print as encoding/json and fmt printed them.
func TestWritersMatchOraclesOnRandomPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		sameAsOracles(t, "random path "+itoa(i), randomPath(r, nil))
	}
	for i := range 300 {
		sameAsSummaryOracle(t, "random summary "+itoa(i), randomSummary(r, nil))
	}
}

// writersBeside writes paths through one JSONWriter and one TextWriter
// and, beside them, through the oracles (encoding/json and fmt), so
// that a test compares what the writers printed over many paths.
type writersBeside struct {
	got, want, gotText, wantText bytes.Buffer
	jw                           *JSONWriter
	tw                           *TextWriter
	textOpts                     TextOptions
}

func newWritersBeside(textOpts TextOptions) *writersBeside {
	w := &writersBeside{textOpts: textOpts}
	w.jw, w.tw = NewJSONWriter(&w.got), NewTextWriter(&w.gotText, textOpts)
	return w
}

func (w *writersBeside) write(t *testing.T, p Path) {
	t.Helper()
	if err := w.jw.WritePath(p); err != nil {
		t.Fatal(err)
	}
	if err := oracleWriteJSON(&w.want, p); err != nil {
		t.Fatal(err)
	}
	if err := w.tw.WritePath(p); err != nil {
		t.Fatal(err)
	}
	if err := oracleWriteText(&w.wantText, p, w.textOpts); err != nil {
		t.Fatal(err)
	}
}

// same fails the test, saying how, if a writer printed otherwise than
// its oracle.
func (w *writersBeside) same(t *testing.T, how string) {
	t.Helper()
	if !bytes.Equal(w.got.Bytes(), w.want.Bytes()) {
		t.Fatalf("%s through one JSONWriter differ from encoding/json's", how)
	}
	if !bytes.Equal(w.gotText.Bytes(), w.wantText.Bytes()) {
		t.Fatalf("%s through one TextWriter differ from fmt's", how)
	}
}

// One JSONWriter (or TextWriter) writes many lines through one buffer:
// a line must not carry bytes of the longer line before it.
func TestWritersReuseTheirBuffersCleanly(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	w := newWritersBeside(TextOptions{Colour: true, Location: time.UTC})
	for range 200 {
		p := randomPath(r, nil)
		p.At = time.Time{}
		w.write(t, p)
	}
	w.same(t, "lines written")
}

// One JSONWriter (and one TextWriter) writing every recorded path in
// turn, each also again with one hop's member changed, prints what
// encoding/json (and fmt) prints: a hop is copied from the path before
// only where it is the same but for its time.
func TestWritersCopyOnlyEqualHops(t *testing.T) {
	w := newWritersBeside(TextOptions{Location: time.UTC})
	change := []func(*Hop){
		func(h *Hop) { h.Device = "eth1" },
		func(h *Hop) { h.Note = "another note" },
		func(h *Hop) { h.Verdict = VerdictDrop },
		func(h *Hop) { h.Hook = "FORWARD" },
		func(h *Hop) { h.Func = "ip_vs_nat_xmit" },
		func(h *Hop) { h.DropReason, h.DropLocation = "NO_SOCKET", "tcp_v4_rcv+0x1" },
		func(h *Hop) { h.Service = &Service{Protocol: "UDP", Address: netip.MustParseAddrPort("10.0.0.1:53")} },
		func(h *Hop) { h.RealServer = &RealServer{Address: netip.MustParseAddrPort("10.0.0.9:53"), Weight: 2} },
		func(h *Hop) {
			c := Conn{Protocol: "UDP", Client: netip.MustParseAddrPort("10.0.0.2:1000"), State: "UDP"}
			h.Conn = &c
		},
	}
	n := 0
	for _, k := range kernels {
		for _, name := range []string{"dr", "nat", "tun", "weight0", "noservice"} {
			g := NewGrouper(GrouperOptions{})
			var paths []Path
			for _, e := range recorded(t, k, name) {
				paths = append(paths, g.Add(e)...)
			}
			for _, p := range append(paths, g.Close()...) {
				w.write(t, p)
				q := p
				q.Hops = slices.Clone(p.Hops)
				i := n % len(q.Hops)
				change[n%len(change)](&q.Hops[i])
				q.Hops[i].At += time.Microsecond
				w.write(t, q)
				w.write(t, p)
				n++
			}
		}
	}
	w.same(t, "paths written")
}

func FuzzWriters(f *testing.F) {
	f.Add(uint64(1), "ip_vs_in_hook", "eth0", "a \"quoted\" note\n", "fe80::1%eth\x01")
	f.Add(uint64(7), "kfree_skb", "\xff\xfe", "\u2028\u2029", "")
	f.Fuzz(func(t *testing.T, seed uint64, fn, device, note, zone string) {
		r := rand.New(rand.NewPCG(seed, seed>>7))
		strs := []string{fn, device, note, zone}
		sameAsOracles(t, "fuzzed path", randomPath(r, strs))
		sameAsSummaryOracle(t, "fuzzed summary", randomSummary(r, strs))
	})
}

// randomString is one of extra, or text with the bytes JSON and fmt
// treat specially.
func randomString(r *rand.Rand, extra []string) string {
	if len(extra) > 0 && r.IntN(3) == 0 {
		return extra[r.IntN(len(extra))]
	}
	pieces := []string{"", "a", "eth0", "TCP", " ", "\"", "\\", "\n", "\t", "\r", "\b", "\f", "\x00", "\x1f", "\x7f",
		"<&>", "é", "日本", "\u2028", "\u2029", "\xff", "\xe2\x80", "SKB_DROP_REASON_", "NETFILTER_DROP", "ip_vs_", "_xmit"}
	var b strings.Builder
	for range r.IntN(5) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

func randomAddrPort(r *rand.Rand, extra []string) netip.AddrPort {
	var a netip.Addr
	switch r.IntN(6) {
	case 0: // the zero value
	case 1, 2:
		a = netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
	case 3:
		var b [16]byte
		for i := range b {
			b[i] = byte(r.IntN(4))
		}
		a = netip.AddrFrom16(b)
	case 4:
		a = netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 10, 15: byte(r.IntN(256))}) // 4in6
	case 5:
		a = netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 15: 1}).WithZone(randomString(r, extra))
	}
	port := uint16(0)
	if r.IntN(3) > 0 {
		port = uint16(r.IntN(65536))
	}
	return netip.AddrPortFrom(a, port)
}

func randomTuple(r *rand.Rand, extra []string) Tuple {
	protos := []string{"", "TCP", "UDP", "ICMP", "IPIP", "proto 99"}
	return Tuple{Protocol: protos[r.IntN(len(protos))], Src: randomAddrPort(r, extra), Dst: randomAddrPort(r, extra)}
}

func randomHop(r *rand.Rand, extra []string) Hop {
	funcs := []string{FuncInHook, FuncOutHook, FuncForwardICMP, FuncConnInGet, FuncSchedule, FuncConnNew,
		FuncSchedulerErr, FuncLeave, FuncDRXmit, FuncNATXmit, FuncTunnelXmitV6, FuncReceive, FuncIPRcv,
		FuncQueue, FuncDrop, FuncConsume, FuncTCPRcv, FuncOutput, ""}
	h := Hop{Func: funcs[r.IntN(len(funcs))], At: time.Duration(r.Int64N(1 << 40))}
	if r.IntN(4) == 0 {
		h.Func = randomString(r, extra)
	}
	if r.IntN(8) == 0 {
		h.At = -h.At
	}
	if r.IntN(2) == 0 {
		h.Hook = hookNames[r.IntN(len(hookNames))]
	}
	verdicts := []Verdict{VerdictNone, VerdictAccept, VerdictDrop, VerdictStolen, Verdict("verdict -3")}
	h.Verdict = verdicts[r.IntN(len(verdicts))]
	if r.IntN(2) == 0 {
		h.Device = randomString(r, extra)
	}
	if r.IntN(2) == 0 {
		h.Service = randomService(r, extra)
	}
	if r.IntN(2) == 0 {
		h.RealServer = &RealServer{Address: randomAddrPort(r, extra), Weight: r.Int32() - 1<<30, Forwarding: Forwarding(r.IntN(6))}
	}
	if r.IntN(2) == 0 {
		h.Conn = randomConn(r, extra)
	}
	if r.IntN(3) == 0 {
		h.DropReason = randomString(r, extra)
		h.DropLocation = randomString(r, extra)
	}
	if r.IntN(2) == 0 {
		h.Note = randomString(r, extra)
	}
	return h
}

func randomService(r *rand.Rand, extra []string) *Service {
	s := &Service{Protocol: randomString(r, extra), Address: randomAddrPort(r, extra), Scheduler: randomString(r, extra)}
	if r.IntN(4) == 0 {
		s.FWMark = r.Uint32()
	}
	return s
}

func randomConn(r *rand.Rand, extra []string) *Conn {
	return &Conn{Protocol: randomString(r, extra), Client: randomAddrPort(r, extra), Virtual: randomAddrPort(r, extra),
		RealServer: randomAddrPort(r, extra), Forwarding: Forwarding(r.IntN(6)), State: randomString(r, extra), Flags: r.Uint32()}
}

func randomPath(r *rand.Rand, extra []string) Path {
	outcomes := []Outcome{OutcomeForwarded, OutcomeLocal, OutcomeDropped, OutcomeReply, OutcomeUnknown, ""}
	p := Path{NetNS: r.Uint32(), Device: randomString(r, extra), Tuple: randomTuple(r, extra), TCPFlags: randomString(r, extra),
		Outcome: outcomes[r.IntN(len(outcomes))], Why: randomString(r, extra)}
	switch r.IntN(8) {
	case 0: // no time
	case 1:
		p.At = time.Date(10000+r.IntN(10), 1, 1, 0, 0, 0, 0, time.UTC) // RFC 3339 cannot write it
	default:
		p.At = time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(time.FixedZone("Y", 3600*r.IntN(14)))
	}
	if r.IntN(3) == 0 {
		o := randomTuple(r, extra)
		p.Outer = &o
	}
	for range r.IntN(8) {
		p.Hops = append(p.Hops, randomHop(r, extra))
	}
	if r.IntN(2) == 0 {
		p.Service = randomService(r, extra)
	}
	if r.IntN(2) == 0 {
		p.RealServer = &RealServer{Address: randomAddrPort(r, extra), Weight: r.Int32(), Forwarding: Forwarding(r.IntN(6))}
	}
	if r.IntN(2) == 0 {
		p.Conn = randomConn(r, extra)
	}
	return p
}

func randomSummary(r *rand.Rand, extra []string) Summary {
	s := Summary{Packets: r.IntN(1000), ByOutcome: map[Outcome]int{}, ByRealServer: map[netip.AddrPort]int{},
		Drops: map[string]int{}, Lost: r.Uint64(), Missed: r.Uint64()}
	for _, o := range outcomes {
		if r.IntN(2) == 0 {
			s.ByOutcome[o] = r.IntN(100)
		}
	}
	for range r.IntN(5) {
		s.ByRealServer[randomAddrPort(r, extra)] = r.IntN(4)
		s.Drops[randomString(r, extra)] = r.IntN(4)
	}
	for range r.IntN(3) {
		s.Unseen = append(s.Unseen, randomString(r, extra))
	}
	return s
}
