package diag

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// TestHTTPProberPinsTheRealServer: the prober dials the real server's
// address whatever the site's name resolves to, and sends the site's
// Host header and TLS server name, as curl --connect-to would.
func TestHTTPProberPinsTheRealServer(t *testing.T) {
	var gotHost, gotSNI string
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost = r.Host
		if r.TLS != nil {
			gotSNI = r.TLS.ServerName
		}
		io.WriteString(w, "page\n")
	})
	sum := sha256.Sum256([]byte("page\n"))
	for _, tc := range []struct {
		kind ProbeKind
		srv  *httptest.Server
	}{
		{ProbeHTTP, httptest.NewServer(handler)},
		{ProbeHTTPS, httptest.NewTLSServer(handler)},
	} {
		defer tc.srv.Close()
		gotHost, gotSNI = "", ""
		addr := netip.MustParseAddrPort(strings.TrimPrefix(strings.TrimPrefix(tc.srv.URL, "http://"), "https://"))
		res := (&HTTPProber{}).Probe(context.Background(), ProbeRequest{Kind: tc.kind, Address: addr, Host: "www.example.invalid", Path: "/x"})
		if res.Err != nil || res.Status != 200 || res.Digest != hex.EncodeToString(sum[:]) || res.BodyBytes != 5 {
			t.Errorf("%s: %+v", tc.kind, res)
		}
		if gotHost != "www.example.invalid" {
			t.Errorf("%s: Host %q", tc.kind, gotHost)
		}
		if tc.kind == ProbeHTTPS && gotSNI != "www.example.invalid" {
			t.Errorf("https: SNI %q", gotSNI)
		}
	}
	res := (&HTTPProber{}).Probe(context.Background(), ProbeRequest{Kind: ProbeTCP, Address: netip.MustParseAddrPort("127.0.0.1:1")})
	if res.Err == nil {
		t.Error("TCP probe of a closed port succeeded")
	}
}

func TestParseARPFrame(t *testing.T) {
	frame, _ := hex.DecodeString("ffffffffffff02005e00000a0806" + "0001080006040002" + "02005e00000a" + "0a4d0064" + "02005e000002" + "0a4d0002")
	p, ok := parseARPFrame(frame)
	if !ok || !p.Reply || p.SenderIP.String() != "10.77.0.100" || p.TargetIP.String() != "10.77.0.2" || p.SenderMAC.String() != "02:00:5e:00:00:0a" || p.Gratuitous() {
		t.Errorf("parsed %+v, %v", p, ok)
	}
	for i := range len(frame) {
		parseARPFrame(frame[:i]) // never panics
	}
}

func FuzzParseARPFrame(f *testing.F) {
	f.Add([]byte("ffffffffffff02005e00000a0806"))
	f.Fuzz(func(t *testing.T, b []byte) { parseARPFrame(b) })
}

func TestParseProcSocket(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:0050":                         "127.0.0.1:80",
		"00000000:01BB":                         "0.0.0.0:443",
		"00000000000000000000000001000000:0050": "[::1]:80",
	} {
		got, ok := parseProcSocket(in)
		if !ok || got.String() != want {
			t.Errorf("%s: %v %v, want %s", in, got, ok, want)
		}
	}
}
