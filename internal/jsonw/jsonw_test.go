package jsonw_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lvskit/lvskit/internal/jsonw"
)

// Strings a status or a reason can hold: every ASCII byte, HTML's three,
// the JavaScript line separators, invalid UTF-8 alone and amid text.
var hardStrings = []string{
	"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnew\nline\rcr\bbs\fff",
	"\x00\x01\x1f\x7f", "é ü 中文 🙂", "\u2028\u2029", "bad \xff\xfe utf-8", "\xc3", "trunc \xe2\x80",
	"HTTP 503 from 10.0.0.2:80", "[fe80::1%eth0]:80",
}

func TestAppendStringIsEncodingJSONs(t *testing.T) {
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	cases := append([]string{string(all)}, hardStrings...)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonw.AppendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("AppendString(%q) = %s, encoding/json writes %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range hardStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonw.AppendString([]byte("x"), s); !bytes.Equal(got[1:], want) {
			t.Errorf("AppendString(%q) = %s, encoding/json writes %s", s, got[1:], want)
		}
	})
}

// An object of each kind of member, against the struct encoding/json
// encodes with the same tags.
func TestObjectIsEncodingJSONs(t *testing.T) {
	type member struct {
		S    string    `json:"s"`
		E    string    `json:"e,omitempty"`
		I    int64     `json:"i"`
		B    bool      `json:"b"`
		T    time.Time `json:"t,omitzero"`
		Zero time.Time `json:"zero,omitzero"`
	}
	east := time.FixedZone("", 5*3600+30*60+17) // seconds in the offset: RFC 3339 drops them
	for _, v := range []member{
		{S: "a<b", I: -7, B: true, T: time.Date(2026, 12, 6, 8, 0, 0, 123456789, time.UTC)},
		{E: "x", I: 1 << 40, T: time.Date(1, 1, 1, 0, 0, 0, 1, east)},
		{T: time.Date(9999, 12, 31, 23, 59, 59, 0, time.FixedZone("", -(23*3600+59*60)))},
	} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		o := jsonw.Open(nil)
		o.String("s", v.S)
		o.StringOmitEmpty("e", v.E)
		o.Int("i", v.I)
		o.Bool("b", v.B)
		if !o.TimeOmitZero("t", v.T) || !o.TimeOmitZero("zero", v.Zero) {
			t.Fatalf("%v: refused a time encoding/json encodes", v.T)
		}
		if got := o.Close(); !bytes.Equal(got, want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}

// The times encoding/json refuses are refused, so that the caller lets
// encoding/json say why; the ones it takes are taken.
func TestEncodableAgreesWithEncodingJSON(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -24*3600-60)),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 23*3600+59*60+59)),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
	} {
		_, err := json.Marshal(tm)
		if got := jsonw.Encodable(tm); got != (err == nil) {
			t.Errorf("Encodable(%v) = %v; encoding/json: %v", tm, got, err)
		}
	}
}
