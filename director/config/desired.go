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

// IsGroup reports whether the service is a group of several keys.
func (s *VirtualService) IsGroup() bool { return len(s.Group) > 0 }

// Key is the service's IPVS key; a group's first entry's.
func (s *VirtualService) Key() ipvs.ServiceKey {
	if s.IsGroup() {
		return s.entryKey(s.Group[0])
	}
	if s.IsFWMark() {
		return ipvs.FWMarkKey(s.Family.ipvs(), s.FWMark)
	}
	return ipvs.ServiceKey{Family: s.Family.ipvs(), Protocol: s.Protocol.ipvs(), Address: s.Address, Port: s.Port}
}

// Keys are the IPVS keys of the service: one, or one per group entry.
func (s *VirtualService) Keys() []ipvs.ServiceKey {
	if !s.IsGroup() {
		return []ipvs.ServiceKey{s.Key()}
	}
	out := make([]ipvs.ServiceKey, 0, len(s.Group))
	for _, e := range s.Group {
		out = append(out, s.entryKey(e))
	}
	return out
}

func (s *VirtualService) entryKey(e GroupEntry) ipvs.ServiceKey {
	if e.FWMark != 0 {
		return ipvs.FWMarkKey(s.Family.ipvs(), e.FWMark)
	}
	return ipvs.ServiceKey{Family: familyOf(e.Address).ipvs(), Protocol: s.Protocol.ipvs(), Address: e.Address, Port: e.Port}
}

// realServerPort is the port real servers get when they write none, and
// the one direct routing and tunnels keep: the service's, 0 for a fwmark
// service, and for a group its entries' port when they are all addresses
// with the same port, else 0.
func (s *VirtualService) realServerPort() uint16 {
	switch {
	case s.IsGroup():
		p := s.Group[0].Port
		for _, e := range s.Group {
			if e.FWMark != 0 || e.Port != p {
				return 0
			}
		}
		return p
	case s.IsFWMark():
		return 0
	}
	return s.Port
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
	// Quorum is the service's quorum; nil when none. In a group, only
	// the first entry's runs commands.
	Quorum *Quorum
	// Announce is how the service's address reaches the network.
	Announce Announce
	// CheckKey is the key whose health checks this service's real
	// servers share: its own, or its group's first entry's, so that a
	// group checks each real server once.
	CheckKey ipvs.ServiceKey
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
		s := &c.VirtualServices[i]
		d := c.desired(s)
		for j, k := range s.Keys() {
			e := d
			if j > 0 {
				e = d.clone()
				if e.Quorum != nil {
					// The group's quorum commands run once, from the
					// first entry.
					e.Quorum.UpCommand, e.Quorum.DownCommand = nil, nil
					e.Quorum.UpProgram, e.Quorum.DownProgram = nil, nil
				}
			}
			e.Service.ServiceKey = k
			e.CheckKey = d.Service.ServiceKey
			out = append(out, e)
		}
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

// HealthKey is the key the service's health checks run under: CheckKey,
// or the service's own key when CheckKey is unset.
func (d DesiredService) HealthKey() ipvs.ServiceKey {
	if d.CheckKey == (ipvs.ServiceKey{}) {
		return d.Service.ServiceKey
	}
	return d.CheckKey
}

// clone copies a desired service deeply enough to change its key,
// quorum and real servers apart from the original.
func (d DesiredService) clone() DesiredService {
	d.RealServers = slices.Clone(d.RealServers)
	if d.SorryServer != nil {
		ss := *d.SorryServer
		d.SorryServer = &ss
	}
	if d.Quorum != nil {
		q := *d.Quorum
		d.Quorum = &q
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
