package statusapi_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvskit/lvskit/director/statusapi"
)

func sample() statusapi.Status {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return statusapi.Status{
		Config: "/etc/lvsd/lvsd.yaml",
		Loaded: t0,
		Services: []statusapi.ServiceStatus{{
			Key: "TCP 192.168.0.100:80", Scheduler: "wlc", InKernel: true,
			RealServers: []statusapi.RealServerStatus{{Address: "10.0.0.2:80", Forwarding: "dr", Weight: 1, KernelWeight: 0, Health: "down", Why: "HTTP 503"}},
		}},
		VRRP:   []statusapi.VRRPStatus{{Name: "vi1", VRID: 51, State: "master", VIPs: []string{"192.168.0.100"}}},
		Events: []statusapi.Event{{Time: t0, Kind: "config", Message: "loaded"}, {Time: t0.Add(time.Minute), Kind: "check", Message: "down"}},
	}
}

// The client reads what lvsd's own handler serves, over TCP and over a
// unix socket, in every address form --lvsd accepts.
func TestClientReadsDaemonHandler(t *testing.T) {
	h := statusapi.NewStatusHandler(sample)
	srv := httptest.NewServer(h)
	defer srv.Close()

	sock := filepath.Join(t.TempDir(), "status.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	usrv := &http.Server{Handler: h}
	go usrv.Serve(ln)
	defer usrv.Close()

	hostport := strings.TrimPrefix(srv.URL, "http://")
	for _, target := range []string{srv.URL, srv.URL + "/", hostport, "unix:" + sock, sock} {
		t.Run(target, func(t *testing.T) {
			c, err := statusapi.NewClient(target)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Services) != 1 || got.Services[0].RealServers[0].Why != "HTTP 503" || got.VRRP[0].State != "master" {
				t.Errorf("Status = %+v", got)
			}
			ev, err := c.Events(context.Background(), sample().Loaded)
			if err != nil {
				t.Fatal(err)
			}
			if len(ev) != 1 || ev[0].Kind != "check" {
				t.Errorf("Events(since first) = %+v, want only the later event", ev)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	for _, target := range []string{"lvsd", "unix:", "unix:relative.sock", "http://"} {
		if _, err := statusapi.NewClient(target); err == nil || !strings.Contains(err.Error(), "want") && !strings.Contains(err.Error(), "absolute") {
			t.Errorf("NewClient(%q) = %v, want an error saying which forms work", target, err)
		}
	}
	// Something that is not lvsd answers 404: the error says so.
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	c, err := statusapi.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "status_listen") {
		t.Errorf("Status from a non-lvsd server = %v", err)
	}
	// Nothing listening: the error names the address.
	c, _ = statusapi.NewClient("unix:" + filepath.Join(t.TempDir(), "none.sock"))
	if _, err := c.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "none.sock") && !strings.Contains(err.Error(), "lvsd") {
		t.Errorf("Status with nothing listening = %v", err)
	}
}

// An lvsd on this machine (loopback, a socket, one of its own addresses)
// is local; another machine's is not.
func TestIsLocal(t *testing.T) {
	for target, want := range map[string]bool{
		"unix:/run/lvsd/status.sock": true,
		"/run/lvsd/status.sock":      true,
		"http://127.0.0.1:9120":      true,
		"localhost:9120":             true,
		"[::1]:9120":                 true,
		"http://203.0.113.9:9120":    false,
		"lvsd.example.com:9120":      false,
	} {
		if got := statusapi.IsLocal(target); got != want {
			t.Errorf("IsLocal(%q) = %v, want %v", target, got, want)
		}
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			if target := "http://" + n.IP.String() + ":9120"; !statusapi.IsLocal(target) {
				t.Errorf("IsLocal(%q) = false for this machine's own address", target)
			}
			return
		}
	}
}

// Polling an lvsd that did not change moves no status: the client asks
// with the ETag it has, lvsd answers 304, and the client returns the
// status it had; a change is fetched whole.
func TestClientAsksOnlyForAChangedStatus(t *testing.T) {
	var mu sync.Mutex
	st := sample()
	h := statusapi.NewStatusHandler(func() statusapi.Status {
		mu.Lock()
		defer mu.Unlock()
		return st
	})
	var codes []int
	var bodies int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		mu.Lock()
		codes = append(codes, rec.Code)
		bodies += rec.Body.Len()
		mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()
	c, err := statusapi.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	full := bodies
	second, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(codes) != "[200 304]" || bodies != full || !reflect.DeepEqual(first, second) {
		t.Errorf("an unchanged status: answers %v, %d bytes after %d, same status %v; want [200 304] and no more bytes", codes, bodies, full, reflect.DeepEqual(first, second))
	}
	mu.Lock()
	st.Services[0].RealServers = []statusapi.RealServerStatus{{Address: "10.0.0.2:80", Health: "up"}}
	mu.Unlock()
	third, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if codes[len(codes)-1] != 200 || third.Services[0].RealServers[0].Health != "up" {
		t.Errorf("a changed status: answer %d, real server %+v; want 200 and the change", codes[len(codes)-1], third.Services[0].RealServers[0])
	}
	// A filtered read is its own: it neither uses nor replaces the
	// whole status's tag.
	one, err := c.StatusOfVIP(ctx, netip.MustParseAddr("192.168.0.100"))
	if err != nil || len(one.Services) != 1 {
		t.Fatalf("StatusOfVIP: %+v, %v", one.Services, err)
	}
	other, err := c.StatusOfVIP(ctx, netip.MustParseAddr("192.168.0.7"))
	if err != nil || len(other.Services) != 0 || other.Config != st.Config {
		t.Errorf("StatusOfVIP of no service: %+v, %v; want no services and the rest", other, err)
	}
}
