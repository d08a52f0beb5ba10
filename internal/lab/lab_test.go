package lab

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestNginxConfigKeepsToItsDirectory(t *testing.T) {
	conf := nginxConfig("/tmp/lab-x", "rs1", 8080, true)
	for _, want := range []string{
		"daemon off;", "master_process off;",
		"pid /tmp/lab-x/nginx.pid;", "error_log stderr",
		"client_body_temp_path /tmp/lab-x/tmp-client_body;",
		"listen 8080;", "listen [::]:8080 ipv6only=on;",
		"add_header X-Lab-Host rs1 always;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	for _, bad := range []string{"/var/", "/run/", "include"} {
		if strings.Contains(conf, bad) {
			t.Errorf("config mentions %q:\n%s", bad, conf)
		}
	}
	if strings.Contains(nginxConfig("/d", "rs1", 80, false), "[::]") {
		t.Error("config listens on IPv6 where the host has none")
	}
}

func TestSysctlPath(t *testing.T) {
	for key, want := range map[string]string{
		"net.ipv4.conf.all.arp_ignore":       "/proc/sys/net/ipv4/conf/all/arp_ignore",
		"net/ipv4/conf/eth0.10/rp_filter":    "/proc/sys/net/ipv4/conf/eth0.10/rp_filter",
		"net.ipv6.conf.default.accept_dad":   "/proc/sys/net/ipv6/conf/default/accept_dad",
		"/net/ipv4/ip_forward":               "/proc/sys/net/ipv4/ip_forward",
		"kernel.hostname":                    "",
		"net/../kernel/hostname":             "",
		"vm.swappiness":                      "",
		"netfilter/../../kernel/core_patter": "",
	} {
		got, err := sysctlPath(key)
		if want == "" {
			if err == nil {
				t.Errorf("sysctlPath(%q) = %q, want refusal", key, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
}

func TestSwitchPortName(t *testing.T) {
	for _, tc := range []struct {
		index      int
		host, want string
	}{
		{1, "client", "v1-client"},
		{12, "director-backup", "v12-director-ba"},
	} {
		if got := switchPortName(tc.index, tc.host); got != tc.want || len(got) > maxLinkName {
			t.Errorf("switchPortName(%d, %q) = %q, want %q", tc.index, tc.host, got, tc.want)
		}
	}
}

func TestOutputBufferWaitFor(t *testing.T) {
	b := newOutputBuffer()
	done := make(chan struct{})
	go func() {
		b.Write([]byte("starting\nlistening on br0, link-type"))
		b.Write([]byte(" EN10MB\nmore\n"))
		close(done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	line, ok := b.waitFor(ctx, "link-type EN10MB", done)
	if !ok || line != "listening on br0, link-type EN10MB" {
		t.Errorf("waitFor = %q, %v", line, ok)
	}
	<-done
	if _, ok := b.waitFor(ctx, "never", done); ok {
		t.Error("waitFor found text that was never written")
	}
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, ok := b.waitFor(cancelled, "never", make(chan struct{})); ok {
		t.Error("waitFor with a cancelled context found text that was never written")
	}
}

func TestHostNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"client": true, "rs1": true, "director-backup": true,
		"": false, "Client": false, "1rs": false, "rs_1": false, "switch": false,
		"a-name-longer-than-20": false,
	} {
		l := &Lab{}
		_, err := l.hostPrefixes(name, []string{"10.0.0.1/24"})
		if (err == nil) != ok {
			t.Errorf("hostPrefixes(%q): %v, want ok=%v", name, err, ok)
		}
	}
}
