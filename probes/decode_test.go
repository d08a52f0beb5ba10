package probes

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// kernels are the Debian kernels the fixtures under testdata/ were
// captured on, in the VM (TestVMTracePaths and TestVMCaptureFixtures
// with LVSKIT_TRACE_CAPTURE set).
var kernels = []string{"6.1", "6.12"}

func fixtureDecoder(t testing.TB, kernel string) *decoder {
	t.Helper()
	raw, err := os.ReadFile("testdata/skb_drop_reason-" + kernel + ".btf")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	reasons, err := DropReasons(spec)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("testdata/kallsyms-" + kernel)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := ParseKallsyms(f)
	if err != nil {
		t.Fatal(err)
	}
	return &decoder{dropReasons: reasons, symbols: syms}
}

// records reads the raw events captured from the VM for one lab
// service on one kernel (testdata/records-KERNEL-NAME.bin).
func records(t testing.TB, kernel, name string) [][]byte {
	t.Helper()
	f, err := os.Open("testdata/records-" + kernel + "-" + name + ".bin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := readRecords(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatalf("%s %s: no records", kernel, name)
	}
	return recs
}

func recorded(t testing.TB, kernel, name string) []Event {
	t.Helper()
	recs := records(t, kernel, name)
	d := fixtureDecoder(t, kernel)
	var evs []Event
	for i, r := range recs {
		ev, err := d.decode(r)
		if err != nil {
			t.Fatalf("%s %s record %d: %v", kernel, name, i, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func find(evs []Event, ok func(Event) bool) *Event {
	if i := slices.IndexFunc(evs, ok); i >= 0 {
		return &evs[i]
	}
	return nil
}

// The drop reason numbers differ between the kernels; the names come
// from each kernel's BTF.
func TestDropReasonsFromEachKernelsBTF(t *testing.T) {
	for kernel, want := range map[string]map[uint32]string{
		"6.1":  {7: "NETFILTER_DROP", 2: "NO_SOCKET", 1: "NOT_SPECIFIED"},
		"6.12": {11: "NETFILTER_DROP", 3: "NO_SOCKET", 2: "NOT_SPECIFIED", 1: "SKB_CONSUMED"},
	} {
		d := fixtureDecoder(t, kernel)
		for n, name := range want {
			if d.dropReasons[n] != name {
				t.Errorf("%s: reason %d is %q, want %s", kernel, n, d.dropReasons[n], name)
			}
		}
	}
}

func TestDecodeRecordedDirectRoute(t *testing.T) {
	for _, k := range kernels {
		evs := recorded(t, k, "dr")
		vip := netip.MustParseAddrPort("10.77.0.200:80")
		rx := find(evs, func(e Event) bool { return e.Hop.Func == "netif_receive_skb" && e.TCPFlags == "SYN" })
		if rx == nil || rx.Tuple.Protocol != "TCP" || rx.Tuple.Dst != vip || rx.Hop.Device != "eth0" || rx.NetNS == 0 || rx.SKB == 0 {
			t.Errorf("%s: the SYN as received: %+v", k, rx)
		}
		s := find(evs, func(e Event) bool { return e.Hop.Func == "ip_vs_schedule" && e.Hop.RealServer != nil })
		if s == nil {
			t.Fatalf("%s: no ip_vs_schedule hop that chose a real server", k)
		}
		rs := s.Hop.RealServer
		if (rs.Address.Addr() != netip.MustParseAddr("10.77.0.21") && rs.Address.Addr() != netip.MustParseAddr("10.77.0.22")) ||
			rs.Address.Port() != 80 || rs.Weight != 1 || rs.Forwarding != DirectRoute {
			t.Errorf("%s: real server %+v", k, rs)
		}
		if svc := s.Hop.Service; svc == nil || svc.Address != vip || svc.Protocol != "TCP" || svc.Scheduler != "rr" || svc.FWMark != 0 {
			t.Errorf("%s: service %+v", k, s.Hop.Service)
		}
		if c := s.Hop.Conn; c == nil || c.Virtual != vip || c.RealServer != rs.Address || c.Client.Addr() != netip.MustParseAddr("10.77.0.2") || c.Forwarding != DirectRoute || c.Protocol != "TCP" {
			t.Errorf("%s: connection %+v", k, s.Hop.Conn)
		}
		if !strings.HasPrefix(s.Hop.Note, "rr chose 10.77.0.2") {
			t.Errorf("%s: note %q", k, s.Hop.Note)
		}
		stolen := find(evs, func(e Event) bool { return e.Hop.Func == "ip_vs_in_hook" && e.Hop.Verdict == VerdictStolen })
		if stolen == nil || stolen.Hop.Hook != "LOCAL_IN" {
			t.Errorf("%s: no ip_vs_in_hook at LOCAL_IN returning STOLEN: %+v", k, stolen)
		}
		found := find(evs, func(e Event) bool {
			return e.Hop.Func == "ip_vs_conn_in_get" && e.Hop.Conn != nil && strings.HasPrefix(e.Hop.Note, "connection found (")
		})
		if found == nil {
			t.Errorf("%s: no later packet found its connection", k)
		}
	}
}

func TestDecodeRecordedNATReply(t *testing.T) {
	for _, k := range kernels {
		evs := recorded(t, k, "nat")
		vip := netip.MustParseAddrPort("10.77.0.100:80")
		out := find(evs, func(e Event) bool { return e.Hop.Func == "ip_vs_conn_out_get" && e.Hop.Conn != nil })
		if out == nil || out.Hop.Conn.Virtual != vip || out.Hop.Conn.Forwarding != Masquerade || !strings.HasPrefix(out.Hop.Note, "reply of connection") {
			t.Fatalf("%s: the reply's connection lookup: %+v", k, out)
		}
		exit := find(evs, func(e Event) bool {
			return e.SKB == out.SKB && e.Hop.Func == "ip_vs_out_hook" && e.Hop.Verdict == VerdictAccept
		})
		if exit == nil || exit.Hop.Hook != "FORWARD" || exit.Tuple.Src != vip {
			t.Errorf("%s: the reply leaving ip_vs_out_hook: %+v, want FORWARD, ACCEPT, source rewritten to %v", k, exit, vip)
		}
		xmit := find(evs, func(e Event) bool { return e.Hop.Func == "ip_vs_nat_xmit" })
		if xmit == nil || !strings.HasPrefix(xmit.Hop.Note, "NAT to 10.78.0.11:80") {
			t.Errorf("%s: the masquerade transmit: %+v", k, xmit)
		}
	}
}

func TestDecodeRecordedTunnel(t *testing.T) {
	for _, k := range kernels {
		evs := recorded(t, k, "tun")
		q := find(evs, func(e Event) bool { return e.Hop.Func == "net_dev_queue" && e.Outer != nil })
		if q == nil {
			t.Fatalf("%s: no encapsulated packet queued", k)
		}
		if q.Outer.Protocol != "IPIP" || q.Outer.Dst.Addr() != netip.MustParseAddr("10.77.0.31") ||
			q.Tuple.Dst != netip.MustParseAddrPort("10.77.0.150:80") || q.Tuple.Protocol != "TCP" {
			t.Errorf("%s: queued %+v outer %+v", k, q.Tuple, q.Outer)
		}
		x := find(evs, func(e Event) bool { return e.Hop.Func == "ip_vs_tunnel_xmit" })
		if x == nil || x.Hop.Conn == nil || x.Hop.Conn.Forwarding != Tunnel {
			t.Errorf("%s: tunnel transmit %+v", k, x)
		}
	}
}

func TestDecodeRecordedNoDestination(t *testing.T) {
	for _, k := range kernels {
		evs := recorded(t, k, "weight0")
		e := find(evs, func(e Event) bool { return e.Hop.Func == "ip_vs_scheduler_err" })
		if e == nil || e.Hop.Service == nil || e.Hop.Service.Address != netip.MustParseAddrPort("10.77.0.250:80") ||
			e.Hop.Note != "IPVS found no destination: no destination available" {
			t.Errorf("%s: %+v", k, e)
		}
		drop := find(evs, func(e Event) bool { return e.Hop.Func == "kfree_skb" })
		if drop == nil || drop.Hop.DropReason != "NETFILTER_DROP" || !strings.HasPrefix(drop.Hop.DropLocation, "nf_hook_slow+0x") {
			t.Errorf("%s: drop %+v", k, drop)
		}
		v := find(evs, func(e Event) bool { return e.Hop.Func == "ip_vs_in_hook" && e.Hop.Verdict != "" })
		if v == nil || v.Hop.Verdict != VerdictDrop {
			t.Errorf("%s: ip_vs_in_hook's verdict %+v, want DROP", k, v)
		}
	}
}

func TestDecodeRecordedLocalStack(t *testing.T) {
	for _, k := range kernels {
		evs := recorded(t, k, "noservice")
		if x := find(evs, func(e Event) bool { return isXmitName(e.Hop.Func) }); x != nil {
			t.Errorf("%s: a packet to a port with no service was transmitted by %s", k, x.Hop.Func)
		}
		drop := find(evs, func(e Event) bool { return e.Hop.Func == "kfree_skb" })
		if drop == nil || drop.Hop.DropReason != "NO_SOCKET" {
			t.Errorf("%s: drop %+v, want NO_SOCKET", k, drop)
		}
	}
}

func isXmitName(f string) bool { return strings.HasPrefix(f, "ip_vs_") && strings.Contains(f, "_xmit") }

// parse reads every field where encoding/binary does.
func TestParseMatchesEncodingBinary(t *testing.T) {
	for _, k := range kernels {
		f, err := os.Open("testdata/records-" + k + "-tun.bin")
		if err != nil {
			t.Fatal(err)
		}
		recs, err := readRecords(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i, rec := range recs {
			var fast, slow rawEvent
			fast.parse(rec)
			if _, err := binary.Decode(rec, binary.LittleEndian, &slow); err != nil {
				t.Fatal(err)
			}
			if fast != slow {
				t.Fatalf("%s record %d: parse %+v\nbinary %+v", k, i, fast, slow)
			}
		}
	}
}

// Bad records are errors, never panics.
func TestDecodeRejectsShortAndUnknownRecords(t *testing.T) {
	d := &decoder{}
	if _, err := d.decode(make([]byte, 10)); err == nil {
		t.Error("a 10-byte record decoded")
	}
	rec := make([]byte, rawEventSize)
	rec[72] = 0xff // fn: unknown
	if _, err := d.decode(rec); err == nil || !strings.Contains(err.Error(), "unknown function") {
		t.Errorf("unknown function: %v", err)
	}
}

// An event carries the entry of the hook it ran in: the entry's time is
// the event's less entry_ago, and its hook is a netfilter hook function,
// or the record is an error.
func TestDecodeEntryCarriedByAnEvent(t *testing.T) {
	rec := make([]byte, rawEventSize)
	le := binary.LittleEndian
	le.PutUint64(rec[0:], 5000)
	le.PutUint16(rec[56:], uint16(fnIPVSConnInGet))
	le.PutUint16(rec[58:], evExit|evNoConn|evEntry)
	rec[60] = 1 // LOCAL_IN
	rec[61] = uint8(fnIPVSInHook)
	le.PutUint32(rec[380:], 1200)
	d := &decoder{}
	e, err := d.decode(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := HookEntry{Func: FuncInHook, Hook: "LOCAL_IN", At: 3800}
	if e.Entry != want || e.Hop.Func != FuncConnInGet || e.Hop.At != 5000 || e.Hop.Hook != "" {
		t.Errorf("decoded %+v with entry %+v; want ip_vs_conn_in_get at 5000 carrying %+v", e.Hop, e.Entry, want)
	}
	// The hook's own exit, nothing inside it traced: one hop at the
	// entry's time, with the verdict.
	le.PutUint16(rec[56:], uint16(fnIPVSInHook))
	le.PutUint16(rec[58:], evExit|evHook|evEntry)
	le.PutUint64(rec[32:], 1) // NF_ACCEPT
	if e, err = d.decode(rec); err != nil || e.Hop.At != 3800 || e.Hop.Verdict != VerdictAccept || e.Hop.Hook != "LOCAL_IN" || e.Entry.Func != FuncInHook {
		t.Errorf("the hook's whole visit: %+v, %+v, %v; want one hop at 3800 with ACCEPT", e.Hop, e.Entry, err)
	}
	// Its entry alone (a hook inside it on the same packet came first):
	// one hop at the entry's time, without a verdict.
	le.PutUint16(rec[58:], evHook|evEntry)
	if e, err = d.decode(rec); err != nil || e.Hop.At != 3800 || e.Hop.Verdict != "" || e.Hop.Hook != "LOCAL_IN" || e.Entry.Func != FuncInHook {
		t.Errorf("the hook's entry alone: %+v, %+v, %v; want one hop at 3800 without a verdict", e.Hop, e.Entry, err)
	}
	rec[61] = uint8(fnIPVSConnInGet)
	if _, err := d.decode(rec); err == nil || !strings.Contains(err.Error(), "not a netfilter hook") {
		t.Errorf("an entry of a function that is no hook: %v", err)
	}
}

// In the records of both kernels (DR: every hop, every packet), a hook
// that did nothing but return is one event, at its entry's time with
// its verdict, and ip_vs_in_hook's entry at LOCAL_IN comes with
// ip_vs_conn_in_get: no event is a hook's entry alone.
func TestDecodeRecordedHooksAreOneEventUnlessSomethingHappenedInside(t *testing.T) {
	for _, k := range kernels {
		evs := recorded(t, k, "dr")
		visits, carried := 0, 0
		for _, e := range evs {
			switch {
			case isHook(fnByName(e.Hop.Func)) && e.Hop.Verdict == "":
				t.Errorf("%s: an event of %s's entry alone (%s)", k, e.Hop.Func, e.Hop.Hook)
			case e.Entry.Func == e.Hop.Func:
				visits++
				if e.Hop.Verdict != VerdictAccept || e.Hop.Hook == "" {
					t.Errorf("%s: %s's whole visit %+v, want ACCEPT at its hook", k, e.Hop.Func, e.Hop)
				}
			case e.Entry.Func != "":
				carried++
				if e.Entry.Func != FuncInHook || e.Entry.Hook != "LOCAL_IN" || e.Hop.Func != FuncConnInGet || e.Entry.At > e.Hop.At {
					t.Errorf("%s: %s carries %+v, want ip_vs_conn_in_get carrying ip_vs_in_hook's LOCAL_IN entry, earlier", k, e.Hop.Func, e.Entry)
				}
			}
		}
		// Five packets: ip_vs_out_hook at LOCAL_IN and LOCAL_OUT, and
		// ip_vs_in_hook at LOCAL_OUT, did nothing else for each.
		if visits != 15 || carried != 5 {
			t.Errorf("%s: %d hooks in one event and %d entries carried, want 15 and 5", k, visits, carried)
		}
	}
}

func fnByName(name string) fnID {
	for f := fnNone + 1; f < fnMax; f++ {
		if f.String() == name {
			return f
		}
	}
	return fnNone
}

func FuzzDecode(f *testing.F) {
	for _, k := range kernels {
		for _, name := range []string{"dr", "tun"} {
			fh, err := os.Open("testdata/records-" + k + "-" + name + ".bin")
			if err != nil {
				f.Fatal(err)
			}
			recs, err := readRecords(fh)
			fh.Close()
			if err != nil {
				f.Fatal(err)
			}
			for _, r := range recs[:min(len(recs), 5)] {
				f.Add(r)
			}
		}
	}
	d := &decoder{}
	f.Fuzz(func(t *testing.T, rec []byte) {
		d.decode(rec)
	})
}

// BenchmarkDecode decodes the records captured on 6.12 (DR): the
// reader's cost per event.
func BenchmarkDecode(b *testing.B) {
	recs := records(b, "6.12", "dr")
	d := fixtureDecoder(b, "6.12")
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := d.decode(recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// A client's malformed TCP options (here an MPTCP option whose length
// points past the header, which made gopacket v1.7.0 panic) cannot stop
// a trace: the packet's ports and flags are still shown.
func TestDecodePacketIgnoresMalformedTCPOptions(t *testing.T) {
	ip := []byte{0x45, 0, 0, 52, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 77, 0, 2, 10, 77, 0, 100}
	tcp := []byte{
		0x9c, 0x40, 0, 80, // ports 40000 -> 80
		0, 0, 0, 1, 0, 0, 0, 0, // seq, ack
		8 << 4, 0x02, 0xff, 0xff, // data offset 8 (12 bytes of options), SYN
		0, 0, 0, 0, // checksum, urgent
		30, 200, 0x50, 0, // MPTCP, length 200 of the 12 there are
		1, 1, 1, 1, 1, 1, 1, 1,
	}
	var pd packetDecoder
	tuple, flags, outer := pd.decodePacket(append(ip, tcp...))
	if tuple.Src.Port() != 40000 || tuple.Dst.Port() != 80 || flags != "SYN" || outer != nil {
		t.Errorf("decoded %+v flags %q outer %v; want 10.77.0.2:40000 -> 10.77.0.100:80 SYN", tuple, flags, outer)
	}
}

// The decoder keeps its record, its layers and the values it decoded
// last between records: an event decoded earlier must not change when
// the ring buffer's memory is reused for the next record and the
// decoder moves on, and the values it hands out again must be the
// record's own.
func TestDecodedEventsOutliveTheNextRecord(t *testing.T) {
	for _, k := range kernels {
		for _, name := range []string{"dr", "nat", "tun", "weight0", "noservice"} {
			recs := records(t, k, name)
			d := fixtureDecoder(t, k)
			var got []Event
			for _, r := range recs {
				e, err := d.decode(r)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e)
				for i := range r { // the ring buffer writes the next record here
					r[i] = 0xa5
				}
			}
			for i, r := range records(t, k, name) {
				want, err := fixtureDecoder(t, k).decode(r) // nothing remembered
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got[i], want) {
					t.Fatalf("%s %s record %d changed after later records, or kept a value of an earlier one:\n got %+v\nwant %+v", k, name, i, got[i], want)
				}
			}
		}
	}
}
