package director

import (
	"fmt"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/health"
	"github.com/lvskit/lvskit/director/ipvs"
	"net/netip"
)

// targetID names a real server's health target; it stays the same across
// reloads while the service and real server do, so their health state
// survives a reload.
func targetID(k ipvs.ServiceKey, rk ipvs.RealServerKey) string {
	return k.String() + " " + rk.String()
}

// healthTargets builds the health targets of a config: one per checked
// real server, and one for all the services of a group (which share
// their HealthKey).
func healthTargets(desired []config.DesiredService) ([]health.Target, error) {
	var out []health.Target
	seen := map[string]bool{}
	for _, ds := range desired {
		for _, r := range ds.RealServers {
			if r.HealthCheck == nil || r.HealthCheck.Type == config.CheckNone {
				continue
			}
			id := targetID(ds.HealthKey(), r.Key())
			if seen[id] {
				continue
			}
			seen[id] = true
			spec, err := checkSpec(r.HealthCheck, r.CheckTarget)
			if err != nil {
				return nil, fmt.Errorf("health check of %v in %v (%s): %w", r.Key(), ds.Service.ServiceKey, ds.Source, err)
			}
			hc := r.HealthCheck
			out = append(out, health.Target{
				ID:    id,
				Check: spec,
				Policy: health.Policy{
					Interval: hc.Interval, Rise: hc.Rise, Fall: hc.Fall,
					Retry: hc.Retry, RetryDelay: hc.RetryDelay,
				},
			})
		}
	}
	return out, nil
}

func checkSpec(hc *config.HealthCheck, target netip.AddrPort) (health.Spec, error) {
	switch hc.Type {
	case config.CheckTCP:
		return health.TCPCheck{Address: target, Timeout: hc.Timeout}, nil
	case config.CheckHTTP, config.CheckHTTPS:
		spec := health.HTTPCheck{Address: target, Path: hc.Path, Host: hc.Host, Digest: hc.Digest, Timeout: hc.Timeout}
		for _, s := range hc.StatusCodes {
			spec.StatusCodes = append(spec.StatusCodes, health.StatusRange{Min: s.Low, Max: s.High})
		}
		if hc.Type == config.CheckHTTPS {
			spec.TLS = &health.TLSSettings{ServerName: hc.SNI, Verify: hc.VerifyTLS}
		}
		return spec, nil
	case config.CheckScript:
		p := hc.Run()
		return health.ScriptCheck{Argv: p.Args, Path: p.Path, User: p.User, Timeout: hc.Timeout}, nil
	case config.CheckDNS:
		return health.DNSCheck{Address: target, Name: hc.QueryName, Type: hc.QueryType, Timeout: hc.Timeout}, nil
	case config.CheckUDP:
		spec := health.UDPCheck{Address: target, RequireReply: hc.RequireReply, MinReplyBytes: hc.MinReplyBytes, MaxReplyBytes: hc.MaxReplyBytes, Timeout: hc.Timeout}
		var err error
		if hc.Payload != "" {
			if spec.Payload, _, err = config.ParseHex(hc.Payload, false); err != nil {
				return nil, fmt.Errorf("payload: %w", err)
			}
		}
		if hc.Reply != "" {
			if spec.Reply, spec.ReplyMask, err = config.ParseHex(hc.Reply, true); err != nil {
				return nil, fmt.Errorf("reply: %w", err)
			}
		}
		return spec, nil
	case config.CheckPing:
		return health.PingCheck{Address: target.Addr(), Timeout: hc.Timeout}, nil
	case config.CheckSMTP:
		spec := health.SMTPCheck{Address: target, HELOName: hc.HELOName, Timeout: hc.Timeout}
		if hc.StartTLS {
			spec.StartTLS = &health.TLSSettings{ServerName: hc.SNI, Verify: hc.VerifyTLS}
		}
		return spec, nil
	}
	return nil, fmt.Errorf("unknown check type %q", hc.Type)
}

// describeCheck says what a check does, for the status API.
func describeCheck(hc *config.HealthCheck, target netip.AddrPort) string {
	switch {
	case hc == nil || hc.Type == config.CheckNone:
		return ""
	case hc.Type == config.CheckHTTP || hc.Type == config.CheckHTTPS:
		return fmt.Sprintf("%s GET %s on %v", hc.Type, hc.Path, target)
	case hc.Type == config.CheckScript:
		return fmt.Sprintf("script %q", hc.Command)
	case hc.Type == config.CheckDNS:
		return fmt.Sprintf("dns %s %s from %v", hc.QueryType, hc.QueryName, target)
	case hc.Type == config.CheckPing:
		return fmt.Sprintf("ping %v", target.Addr())
	case hc.Type == config.CheckUDP:
		return fmt.Sprintf("udp datagram to %v", target)
	case hc.Type == config.CheckSMTP:
		return fmt.Sprintf("smtp HELO %s on %v", hc.HELOName, target)
	}
	return fmt.Sprintf("%s connect to %v", hc.Type, target)
}
