package config

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
)

// IsFWMark reports whether the service is identified by a firewall mark.
func (s *VirtualService) IsFWMark() bool { return s.FWMark != 0 }

// Key is the service's IPVS key.
func (s *VirtualService) Key() ipvs.ServiceKey {
	if s.IsFWMark() {
		return ipvs.FWMarkKey(s.Family.ipvs(), s.FWMark)
	}
	return ipvs.ServiceKey{Family: s.Family.ipvs(), Protocol: s.Protocol.ipvs(), Address: s.Address, Port: s.Port}
}

func (f Family) ipvs() ipvs.Family {
	if f == IPv6 {
		return ipvs.IPv6
	}
	return ipvs.IPv4
}

func (p Protocol) ipvs() ipvs.Protocol {
	switch p {
	case UDP:
		return ipvs.UDP
	case SCTP:
		return ipvs.SCTP
	case TCP:
		return ipvs.TCP
	}
	return 0
}

func (f Forwarding) ipvs() ipvs.Forwarding {
	switch f {
	case Masquerade:
		return ipvs.Masquerade
	case Tunnel:
		return ipvs.Tunnel
	}
	return ipvs.DirectRoute
}

// DesiredService is one virtual service as lvsd wants it in the kernel,
// with what lvsd needs to keep it so.
type DesiredService struct {
	// Name is the service's name from the config, possibly empty.
	Name string
	// Source is where the service is configured, "file:line".
	Source string
	// Service is the IPVS service: key, scheduler, flags, persistence.
	Service ipvs.Service
	// RealServers are the configured real servers, ordered by address and
	// port, with their configured weights; health checks decide which of
	// them are installed and at what weight.
	RealServers []DesiredRealServer
	// OnFailure says whether a failed real server is removed or quiesced.
	OnFailure OnFailure
	// SorryServer is installed while no real server is up; nil when none.
	SorryServer *ipvs.RealServer
	// Quorum is the service's quorum; nil when none.
	Quorum *Quorum
	// Announce is how the service's address reaches the network.
	Announce Announce
}

// DesiredRealServer is a real server with its health check.
type DesiredRealServer struct {
	ipvs.RealServer
	// HealthCheck is the check in force for this real server (its own or
	// the service's), defaults filled in; nil when it is not checked and
	// always counts as up.
	HealthCheck *HealthCheck
	// CheckTarget is the address and port the check connects to: the
	// real server's, or connect_ip and connect_port. Zero without a check.
	CheckTarget netip.AddrPort
}

// Desired expands the configuration into the IPVS services and real
// servers lvsd keeps in the kernel, ordered by ipvs.ServiceKey.Less.
func (c *Config) Desired() []DesiredService {
	out := make([]DesiredService, 0, len(c.VirtualServices))
	for i := range c.VirtualServices {
		out = append(out, c.desired(&c.VirtualServices[i]))
	}
	slices.SortStableFunc(out, func(a, b DesiredService) int {
		switch {
		case a.Service.ServiceKey.Less(b.Service.ServiceKey):
			return -1
		case b.Service.ServiceKey.Less(a.Service.ServiceKey):
			return 1
		}
		return 0
	})
	return out
}

func (c *Config) desired(s *VirtualService) DesiredService {
	svc := ipvs.Service{ServiceKey: s.Key(), Scheduler: s.Scheduler, NetmaskBits: 32}
	if s.Family == IPv6 {
		svc.NetmaskBits = 128
	}
	for _, name := range s.SchedulerFlags {
		svc.Flags |= ipvs.SchedulerFlagNames[name]
	}
	if s.OnePacket {
		svc.Flags |= ipvs.FlagOnePacket
	}
	if p := s.Persistence; p != nil {
		svc.Flags |= ipvs.FlagPersistent
		svc.Timeout = uint32(p.Timeout / time.Second)
		svc.NetmaskBits = uint8(p.Netmask)
		svc.PersistenceEngine = p.Engine
	}
	d := DesiredService{Name: s.Name, Service: svc, OnFailure: s.OnFailure, Announce: s.Announce}
	if c.pos != nil {
		if at := c.pos.m[s].value; at.known() {
			d.Source = fmt.Sprintf("%s:%d", at.file, at.line)
		}
	}
	for i := range s.RealServers {
		rs := &s.RealServers[i]
		drs := DesiredRealServer{RealServer: destination(rs.Address, rs.Port, rs.Forwarding, rs.Tunnel)}
		drs.Weight = rs.Weight
		drs.UpperThreshold = rs.UpperThreshold
		drs.LowerThreshold = rs.LowerThreshold
		h := rs.HealthCheck
		if h == nil {
			h = s.HealthCheck
		}
		if h != nil && h.Type != CheckNone {
			cp := *h
			cp.StatusCodes = slices.Clone(h.StatusCodes)
			cp.Command = slices.Clone(h.Command)
			drs.HealthCheck = &cp
			addr, port := rs.Address, rs.Port
			if h.ConnectIP.IsValid() {
				addr = h.ConnectIP
			}
			if h.ConnectPort != 0 {
				port = h.ConnectPort
			}
			drs.CheckTarget = netip.AddrPortFrom(addr, port)
		}
		d.RealServers = append(d.RealServers, drs)
	}
	slices.SortFunc(d.RealServers, func(a, b DesiredRealServer) int {
		if c := a.Address.Compare(b.Address); c != 0 {
			return c
		}
		return int(a.Port) - int(b.Port)
	})
	if ss := s.SorryServer; ss != nil {
		rs := destination(ss.Address, ss.Port, ss.Forwarding, ss.Tunnel)
		rs.Weight = 1
		d.SorryServer = &rs
	}
	if q := s.Quorum; q != nil {
		cp := *q
		cp.UpCommand = slices.Clone(q.UpCommand)
		cp.DownCommand = slices.Clone(q.DownCommand)
		d.Quorum = &cp
	}
	return d
}

func destination(addr netip.Addr, port uint16, fwd Forwarding, tun *TunnelOptions) ipvs.RealServer {
	rs := ipvs.RealServer{Address: addr, Port: port, Forwarding: fwd.ipvs()}
	if fwd == Tunnel && tun != nil {
		switch tun.Type {
		case TunnelGUE:
			rs.TunnelType = ipvs.TunnelGUE
			rs.TunnelPort = tun.Port
		case TunnelGRE:
			rs.TunnelType = ipvs.TunnelGRE
		}
		switch tun.Checksum {
		case ChecksumOn:
			rs.TunnelFlags = ipvs.TunnelChecksum
		case ChecksumRemote:
			rs.TunnelFlags = ipvs.TunnelRemoteChecksum
		}
	}
	return rs
}

// Modules are the kernel modules the configuration needs, sorted: ip_vs,
// the schedulers it names (ip_vs_wrr...) and persistence engines
// (ip_vs_pe_sip). lvsd loads them before its first write, because
// autoloading a scheduler later can deadlock IPVS. None when the config
// needs no IPVS (VRRP only).
func (c *Config) Modules() []string {
	if !c.NeedsIPVS() {
		return nil // VRRP only
	}
	mods := []string{"ip_vs"}
	for _, s := range c.VirtualServices {
		if s.Scheduler != "" {
			mods = append(mods, "ip_vs_"+s.Scheduler)
		}
		if s.Persistence != nil && s.Persistence.Engine != "" {
			mods = append(mods, "ip_vs_pe_"+s.Persistence.Engine)
		}
	}
	slices.Sort(mods)
	return slices.Compact(mods)
}

// KernelTimeouts are the configured timeouts in the kernel's seconds; a
// zero field means "leave as it is", as ipvs.Client.SetTimeouts wants.
func (g *Globals) KernelTimeouts() ipvs.Timeouts {
	return ipvs.Timeouts{
		TCP:    uint32(g.Timeouts.TCP / time.Second),
		TCPFin: uint32(g.Timeouts.TCPFin / time.Second),
		UDP:    uint32(g.Timeouts.UDP / time.Second),
	}
}

// KernelSyncDaemons are the sync daemons to run: one per role, two for
// role both; none when sync_daemon is not configured.
func (g *Globals) KernelSyncDaemons() []ipvs.SyncDaemon {
	sd := g.SyncDaemon
	switch {
	case sd == nil:
		return nil
	case sd.VRRPInstance != "":
		// Every instance starts as backup; lvsd switches the role with
		// the instance's state (SyncDaemonAs).
		return []ipvs.SyncDaemon{g.SyncDaemonAs(ipvs.SyncBackup)}
	}
	var out []ipvs.SyncDaemon
	if sd.Role == SyncMaster || sd.Role == SyncBoth {
		out = append(out, g.SyncDaemonAs(ipvs.SyncMaster))
	}
	if sd.Role == SyncBackup || sd.Role == SyncBoth {
		out = append(out, g.SyncDaemonAs(ipvs.SyncBackup))
	}
	return out
}

// SyncDaemonAs is the configured sync daemon in the given role, for a
// sync daemon that follows a VRRP instance (vrrp_instance); the zero
// SyncDaemon without a sync_daemon.
func (g *Globals) SyncDaemonAs(role ipvs.SyncRole) ipvs.SyncDaemon {
	sd := g.SyncDaemon
	if sd == nil {
		return ipvs.SyncDaemon{}
	}
	return ipvs.SyncDaemon{
		Role:          role,
		Interface:     sd.Interface,
		SyncID:        sd.SyncID,
		MaxSyncLen:    sd.MaxLen,
		MulticastAddr: sd.McastGroup,
		MulticastPort: sd.McastPort,
		MulticastTTL:  sd.McastTTL,
	}
}

// NeedsIPVS reports whether the config asks anything of IPVS: a virtual
// service or any kernel-wide IPVS setting. A config that does not (VRRP
// only) can run on a kernel without ip_vs.
func (c *Config) NeedsIPVS() bool {
	g := &c.IPVS
	return len(c.VirtualServices) > 0 || g.Timeouts != (Timeouts{}) || g.ExpireNodestConn != nil ||
		g.ExpireQuiescentTemplate != nil || g.ConnReuseMode != nil || g.SyncThreshold != nil || g.SyncDaemon != nil
}
