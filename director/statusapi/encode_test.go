package statusapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// encoded is st with its services encoded one by one, as the daemon
// keeps them.
func encoded(t *testing.T, st Status) *Encoded {
	t.Helper()
	e := &Encoded{Status: st}
	for i, s := range st.Services {
		b, err := EncodeService(s)
		if err != nil {
			t.Fatal(err)
		}
		e.Services = append(e.Services, EncodedService{Key: s.Key, JSON: b, Gen: uint64(i + 1)})
	}
	return e
}

// spanned is e with its services joined in spans of up to size, as the
// daemon serves them.
func spanned(e *Encoded, size int) *Encoded {
	s := &Encoded{Status: e.Status, Spans: []EncodedSpan{}}
	for i := 0; i < len(e.Services); i += size {
		sp := EncodedSpan{Services: e.Services[i:min(i+size, len(e.Services))], Gen: uint64(1000 + i)}
		for j, svc := range sp.Services {
			if j > 0 {
				sp.JSON = append(sp.JSON, ',')
			}
			sp.JSON = append(sp.JSON, svc.JSON...)
		}
		s.Spans = append(s.Spans, sp)
	}
	return s
}

func written(t *testing.T, e *Encoded) ([]byte, *Writer) {
	t.Helper()
	w, err := NewWriter(e)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	n, err := w.WriteTo(&out)
	if err != nil || n != int64(out.Len()) || out.Len() != w.Len() {
		t.Fatalf("WriteTo: %d bytes, %v; buffer %d; Len %d", n, err, out.Len(), w.Len())
	}
	return out.Bytes(), w
}

func encodingJSON(t *testing.T, st Status) []byte {
	t.Helper()
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(st); err != nil {
		t.Fatal(err)
	}
	return want.Bytes()
}

// randomString mixes what encoding/json escapes: quotes, backslashes,
// HTML's <, > and &, control characters, U+2028, invalid UTF-8.
func randomString(r *rand.Rand) string {
	parts := []string{"", "web", `"quoted"`, `back\slash`, "<b>&amp;</b>", "\x00\x1f\t\n", "\u2028\u2029", "\xff\xfe", "é 日本", `"services":[]`, "10.0.0.2:80"}
	var b strings.Builder
	for range r.IntN(4) {
		b.WriteString(parts[r.IntN(len(parts))])
	}
	return b.String()
}

func randomTime(r *rand.Rand) time.Time {
	if r.IntN(3) == 0 {
		return time.Time{}
	}
	return time.Date(2026, 3, 1, 12, 0, 0, r.IntN(1e9), time.FixedZone("x", 3600*(r.IntN(5)-2)))
}

func randomStatus(r *rand.Rand) Status {
	st := Status{
		Version: randomString(r), Config: randomString(r), Loaded: randomTime(r),
		LastReloadError: randomString(r), Events: []Event{},
	}
	for i := range r.IntN(6) {
		ss := ServiceStatus{
			Key: fmt.Sprintf("TCP 10.0.0.%d:80", i), Name: randomString(r), Source: randomString(r),
			Scheduler: "wrr", InKernel: r.IntN(2) == 0, SorryServer: randomString(r),
			Quorum: randomString(r), UpWeight: r.IntN(10) - 1,
		}
		for range r.IntN(4) {
			ss.RealServers = append(ss.RealServers, RealServerStatus{
				Address: randomString(r), Forwarding: "Route", Weight: r.Int32N(100) - 1,
				KernelWeight: r.Int32N(100) - 1, Health: randomString(r), Since: randomTime(r),
				Check: randomString(r), LastResult: randomString(r), LastCheck: randomTime(r), Why: randomString(r),
			})
		}
		st.Services = append(st.Services, ss)
	}
	if st.Services == nil {
		st.Services = []ServiceStatus{} // as the API serves no services
	}
	for range r.IntN(3) {
		st.Unowned = append(st.Unowned, randomString(r))
	}
	for range r.IntN(3) {
		st.VRRP = append(st.VRRP, VRRPStatus{Name: randomString(r), VRID: uint8(r.IntN(256)), State: "master", VIPs: []string{randomString(r)},
			Since: randomTime(r), Tracking: []VRRPTrack{{Kind: "script", Name: randomString(r), Effect: "-20"}}})
	}
	if r.IntN(2) == 0 {
		st.BGP = &BGPStatus{ASN: 65000, RouterID: randomString(r), Peers: []BGPPeerStatus{{Address: randomString(r), Since: randomTime(r)}},
			VIPs: []BGPVIPStatus{{Address: randomString(r), Reason: randomString(r)}}}
	}
	for range r.IntN(5) {
		st.Events = append(st.Events, Event{Time: randomTime(r), Kind: "check", Service: randomString(r), Message: randomString(r)})
	}
	return st
}

// The status API's JSON from services encoded one by one is
// encoding/json's encoding of the whole Status, byte for byte: clients
// see no difference.
func TestEncodedStatusIsEncodingJSONsByteForByte(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 4))
	for i := range 2000 {
		st := randomStatus(r)
		e := encoded(t, st)
		got, _ := written(t, e)
		want := encodingJSON(t, st)
		if !bytes.Equal(got, want) {
			t.Fatalf("status %d:\n got %s\nwant %s", i, got, want)
		}
		// Joined in spans with the events encoded one by one, as the
		// daemon serves them.
		sp := spanned(e, 1+r.IntN(4))
		sp.EventsJSON = [][]byte{}
		for _, ev := range st.Events {
			b, err := EncodeEvent(ev)
			if err != nil {
				t.Fatal(err)
			}
			sp.EventsJSON = append(sp.EventsJSON, b)
		}
		if got, _ := written(t, sp); !bytes.Equal(got, want) {
			t.Fatalf("status %d in spans, events encoded one by one:\n got %s\nwant %s", i, got, want)
		}
	}
}

// A client's entity tag names the bytes it got: the same status gives
// the same tag, any change to a service (a new encoding) or to the rest
// of the status a new one.
func TestETagChangesWithTheStatusAndOnlyWithIt(t *testing.T) {
	st := randomStatus(rand.New(rand.NewPCG(1, 1)))
	st.Services = []ServiceStatus{{Key: "TCP 10.0.0.1:80", Source: "a:1"}, {Key: "TCP 10.0.0.2:80", Source: "a:2"}}
	e := encoded(t, st)
	_, w1 := written(t, e)
	_, w2 := written(t, encoded(t, st))
	if w1.ETag() != w2.ETag() {
		t.Errorf("the same status has two tags: %s, %s", w1.ETag(), w2.ETag())
	}
	if tag := w1.ETag(); len(tag) != 18 || tag[0] != '"' || tag[17] != '"' {
		t.Errorf("ETag %s: want a quoted strong tag", tag)
	}
	seen := map[string]string{w1.ETag(): "original"}
	change := func(what string, e *Encoded) {
		t.Helper()
		_, w := written(t, e)
		if prev, ok := seen[w.ETag()]; ok {
			t.Errorf("%s: the tag %s is the one of %s", what, w.ETag(), prev)
		}
		seen[w.ETag()] = what
	}
	reencoded := *e
	reencoded.Services = append([]EncodedService(nil), e.Services...)
	reencoded.Services[1].Gen = 99
	change("service re-encoded", &reencoded)
	event := *e
	event.Status.Events = append(append([]Event(nil), e.Status.Events...), Event{Kind: "check", Message: "down"})
	change("one more event", &event)
	fewer := *e
	fewer.Services = e.Services[:1]
	change("one service fewer", &fewer)
}

// ?vip= keeps the services of that address, any protocol or port, and
// the rest of the status.
func TestFilterKeepsTheServicesOfOneVIP(t *testing.T) {
	st := Status{Config: "/etc/lvsd/lvsd.yaml", Events: []Event{{Kind: "config", Message: "loaded"}}, Services: []ServiceStatus{
		{Key: "TCP 192.168.0.100:80"}, {Key: "TCP 192.168.0.101:80"}, {Key: "UDP 192.168.0.100:53"},
		{Key: "FWM 1"}, {Key: "TCP [2001:db8::100]:443"}, {Key: "TCP 192.168.0.10:80"},
	}}
	for _, c := range []struct {
		vip  string
		keys []string
	}{
		{"192.168.0.100", []string{"TCP 192.168.0.100:80", "UDP 192.168.0.100:53"}},
		{"2001:db8::100", []string{"TCP [2001:db8::100]:443"}},
		{"192.168.0.1", nil},
	} {
		f := encoded(t, st).Filter(netip.MustParseAddr(c.vip))
		got, _ := written(t, &f)
		fs := spanned(encoded(t, st), 4).Filter(netip.MustParseAddr(c.vip))
		if fromSpans, _ := written(t, &fs); !bytes.Equal(fromSpans, got) {
			t.Errorf("vip %s: filtered from spans\n %s\nwant\n %s", c.vip, fromSpans, got)
		}
		var back Status
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, s := range back.Services {
			keys = append(keys, s.Key)
		}
		if fmt.Sprint(keys) != fmt.Sprint(c.keys) || back.Config != st.Config || len(back.Events) != 1 {
			t.Errorf("vip %s: services %q, config %q, %d events; want %q and the rest", c.vip, keys, back.Config, len(back.Events), c.keys)
		}
	}
}

// A bad ?vip= is an error that says what is wanted, not every service.
func TestServeEncodedRejectsABadVIP(t *testing.T) {
	rec := httptest.NewRecorder()
	ServeEncoded(rec, httptest.NewRequest("GET", "/status?vip=web", nil), *encoded(t, Status{Services: []ServiceStatus{{Key: "TCP 10.0.0.1:80"}}, Events: []Event{}}), WholeStatus)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `vip=\"web\": want an IP address`) {
		t.Errorf("?vip=web: %d %s", rec.Code, rec.Body.String())
	}
}

// A status encoding/json refuses (a time outside RFC 3339's years) is an
// error that names the service, as encoding/json's was.
func TestEncodeServiceRefusesWhatEncodingJSONRefuses(t *testing.T) {
	s := ServiceStatus{Key: "TCP 10.0.0.1:80", RealServers: []RealServerStatus{{Address: "10.0.0.2:80", LastCheck: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}}
	if b, err := EncodeService(s); err == nil || !strings.Contains(err.Error(), "TCP 10.0.0.1:80") {
		t.Errorf("EncodeService with a year-10000 check = %s, %v; want an error naming the service", b, err)
	}
}

func FuzzEncodeService(f *testing.F) {
	f.Add("TCP 10.0.0.1:80", "web", "lvsd.yaml:3", "10.0.0.2:80", "HTTP 503 from <10.0.0.2:80>", int64(1764979200123456789), int32(3), uint8(5))
	f.Add("", "\xff\u2028", "\x00", "", "", int64(0), int32(-1), uint8(0))
	f.Fuzz(func(t *testing.T, key, name, source, addr, result string, nanos int64, weight int32, n uint8) {
		s := ServiceStatus{Key: key, Name: name, Source: source, Scheduler: "wrr", InKernel: n&1 == 0, Quorum: name, UpWeight: int(weight)}
		at := time.Unix(0, nanos).In(time.FixedZone("", int(weight%86400)))
		for i := range int(n % 4) {
			s.RealServers = append(s.RealServers, RealServerStatus{Address: addr, Forwarding: "Masq", Weight: weight, KernelWeight: int32(i) - 1,
				Health: "up", Since: at, Check: source, LastResult: result, LastCheck: at.Add(time.Duration(i)), Why: name})
		}
		want, wantErr := json.Marshal(s)
		got, err := EncodeService(s)
		if (err == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
			t.Errorf("EncodeService = %s, %v\nencoding/json   %s, %v", got, err, want, wantErr)
		}
	})
}

// BenchmarkEncodeService is a service of 4 checked real servers, encoded
// as the status API encodes it again after a check, beside
// encoding/json's Marshal of the same (the reference, and what it was).
func BenchmarkEncodeService(b *testing.B) {
	at := time.Date(2026, 12, 6, 8, 0, 0, 123456789, time.UTC)
	s := ServiceStatus{Key: "TCP 10.100.3.170:80", Source: "/etc/lvsd/lvsd.yaml:120", Scheduler: "wrr", InKernel: true, UpWeight: 10}
	for i := range 4 {
		addr := fmt.Sprintf("10.83.0.%d:20938", 21+i)
		s.RealServers = append(s.RealServers, RealServerStatus{Address: addr, Forwarding: "Masq", Weight: int32(i + 1), KernelWeight: int32(i + 1),
			Health: "up", Since: at, Check: "tcp connect to " + addr, LastResult: "connected to " + addr, LastCheck: at})
	}
	b.Run("hand-written", func(b *testing.B) {
		for b.Loop() {
			if _, err := EncodeService(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
