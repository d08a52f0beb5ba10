package diag

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/lvskit/lvskit/director/scripts"
	"github.com/lvskit/lvskit/director/statusapi"
	"github.com/lvskit/lvskit/director/vrrp"
)

// SystemOptions configure NewSystemEnv.
type SystemOptions struct {
	// LVSD is lvsd's status API address (--lvsd), empty for none.
	LVSD string
	// ConfigPath is lvsd's config file (--config), empty for none.
	ConfigPath string
	// NoIPVS skips this host's IPVS (`lvsdiag rs`).
	NoIPVS bool
	Logger *slog.Logger
}

// NewSystemEnv returns the Env of this host: its /, ICMP, ARP and
// links, the packet filter, its IPVS, and lvsd's API and config when
// given. Only a bad --lvsd address or an unreadable --config is an
// error; what this host lacks (IPVS, privileges) makes the checks that
// need it say so.
func NewSystemEnv(opts SystemOptions) (*Env, error) {
	env := &Env{
		Root:     os.DirFS("/"),
		Pinger:   NewPinger(),
		ARP:      NewARPProber(),
		Prober:   &HTTPProber{},
		Net:      NewNetInfo(),
		Firewall: CommandFirewall{},
		VRRP:     SnoopListener{},
		Logger:   opts.Logger,
	}
	if opts.LVSD != "" {
		c, err := statusapi.NewClient(opts.LVSD)
		if err != nil {
			return nil, fmt.Errorf("--lvsd: %w", err)
		}
		env.LVSD = c
		env.LVSDLocal = statusapi.IsLocal(opts.LVSD)
	}
	if opts.ConfigPath != "" {
		// The scripts are checked as lvsd would, and reported as
		// findings rather than refused.
		cfg, err := config.Load(opts.ConfigPath, config.LoadOptions{Scripts: scripts.OS(), AuditScripts: true})
		if err != nil {
			return nil, fmt.Errorf("--config %s: %w", opts.ConfigPath, err)
		}
		env.Config = cfg
	}
	if !opts.NoIPVS {
		if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
			env.IPVSErr = ipvs.ErrIPVSUnavailable
		} else if c, err := ipvs.New(ipvs.Options{}); err != nil {
			env.IPVSErr = err
		} else {
			env.IPVS = c
		}
	}
	return env, nil
}

// Close releases what NewSystemEnv opened.
func (e *Env) Close() error {
	if e.IPVS != nil {
		return e.IPVS.Close()
	}
	return nil
}

// SnoopListener takes the census with vrrp.Snoop (AF_PACKET, sends
// nothing).
type SnoopListener struct{}

// Listen implements VRRPListener.
func (SnoopListener) Listen(ctx context.Context, iface string, d time.Duration) (*VRRPCensus, error) {
	conn, err := vrrp.Snoop(iface)
	if err != nil {
		return nil, err
	}
	return ListenVRRP(ctx, conn, VRRPListenOptions{Interface: iface, Duration: d})
}

// HTTPProber probes real servers by dialling their address directly,
// whatever the URL's host: the Host header and TLS server name are the
// site's, as if the real server were pinned in /etc/hosts. Certificates
// are not verified: it tests the server, not the PKI.
type HTTPProber struct {
	// MaxBody bounds how much of a body is read and digested (8 MiB).
	MaxBody int64
}

// Probe implements Prober.
func (p *HTTPProber) Probe(ctx context.Context, req ProbeRequest) ProbeResult {
	start := time.Now()
	var d net.Dialer
	if req.Kind == ProbeTCP {
		c, err := d.DialContext(ctx, "tcp", req.Address.String())
		if err != nil {
			return ProbeResult{Err: err}
		}
		c.Close()
		return ProbeResult{Latency: time.Since(start)}
	}
	scheme := "http"
	if req.Kind == ProbeHTTPS {
		scheme = "https"
	}
	host := req.Host
	if host == "" {
		host = req.Address.Addr().String()
	}
	transport := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, req.Address.String())
		},
		TLSClientConfig:   &tls.Config{ServerName: strings.Trim(stripPort(host), "[]"), InsecureSkipVerify: true}, //nolint:gosec // see the type's doc
		DisableKeepAlives: true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u := &url.URL{Scheme: scheme, Host: host, Path: req.Path}
	if u.Path == "" {
		u.Path = "/"
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return ProbeResult{Err: err}
	}
	hreq.Header.Set("User-Agent", "lvsdiag")
	resp, err := client.Do(hreq)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return ProbeResult{Err: err}
	}
	defer resp.Body.Close()
	max := p.MaxBody
	if max <= 0 {
		max = 8 << 20
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(resp.Body, max))
	if err != nil {
		return ProbeResult{Err: fmt.Errorf("reading the body: %w", err)}
	}
	return ProbeResult{Status: resp.StatusCode, Latency: time.Since(start), BodyBytes: n, Digest: hex.EncodeToString(h.Sum(nil))}
}

func stripPort(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}
