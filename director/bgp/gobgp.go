//go:build !nobgp

package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppacket "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// GoBGP is a Speaker on an embedded GoBGP server.
type GoBGP struct {
	srv   *server.BgpServer
	peers []PeerConfig
	log   *slog.Logger
	wg    sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	announced map[netip.Prefix]*apiutil.Path
}

var _ Speaker = (*GoBGP)(nil)

// importPolicyName is lvsd's global import policy: accept the paths lvsd
// itself originates, reject everything learned from peers.
const importPolicyName = "lvsd-import-local-only"

// NewGoBGP starts an embedded GoBGP speaker with cfg's peers. It starts no
// gRPC listener and no zebra client, rejects every route its peers send,
// leaves graceful restart off (a stopping director must take its routes
// with it) and listens for sessions only if cfg.ListenPort is set.
// On error nothing is left running.
func NewGoBGP(cfg Config, opts Options) (*GoBGP, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &GoBGP{
		srv: server.NewBgpServer(
			server.LoggerOption(log.With("component", "gobgp"), nil),
			server.TimingHookOption(slowOps{log}),
		),
		peers:     slices.Clone(cfg.Peers),
		log:       log,
		announced: map[netip.Prefix]*apiutil.Path{},
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.srv.Serve()
	}()
	if err := g.start(cfg); err != nil {
		g.stop()
		return nil, err
	}
	return g, nil
}

func (g *GoBGP) start(cfg Config) error {
	ctx := context.Background()
	listenPort := int32(-1) // GoBGP: negative means no listener
	var listen []string
	if cfg.ListenPort != 0 {
		listenPort = int32(cfg.ListenPort)
		for _, a := range cfg.ListenAddresses {
			listen = append(listen, a.String())
		}
	}
	err := g.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:             cfg.ASN,
		RouterId:        cfg.RouterID.String(),
		ListenPort:      listenPort,
		ListenAddresses: listen,
		GracefulRestart: &api.GracefulRestart{Enabled: false},
	}})
	if err != nil {
		return fmt.Errorf("starting bgp as %d router id %v: %w", cfg.ASN, cfg.RouterID, err)
	}
	if err := g.rejectImports(ctx); err != nil {
		return err
	}
	for _, p := range cfg.Peers {
		if err := g.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p)}); err != nil {
			return fmt.Errorf("adding bgp peer %v as %d: %w", p.Address, p.ASN, err)
		}
	}
	return nil
}

// rejectImports installs the global import policy: only local paths are
// accepted, so lvsd neither installs nor re-advertises what routers send it.
func (g *GoBGP) rejectImports(ctx context.Context) error {
	pol := &api.Policy{Name: importPolicyName, Statements: []*api.Statement{{
		Name:       importPolicyName + "-accept-local",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
	}}}
	if err := g.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: pol}); err != nil {
		return fmt.Errorf("adding bgp import policy %s: %w", importPolicyName, err)
	}
	err := g.srv.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*api.Policy{{Name: importPolicyName}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}})
	if err != nil {
		return fmt.Errorf("assigning bgp import policy %s: %w", importPolicyName, err)
	}
	return nil
}

func apiPeer(p PeerConfig) *api.Peer {
	families := []*api.AfiSafi{
		{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
		{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
	}
	peer := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			AuthPassword:    p.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          uint64(p.HoldTime / time.Second),
			KeepaliveInterval: uint64(p.Keepalive / time.Second),
			ConnectRetry:      5,
		}},
		Transport: &api.Transport{
			RemotePort:  uint32(p.Port),
			PassiveMode: p.Passive,
		},
		GracefulRestart: &api.GracefulRestart{Enabled: false},
		AfiSafis:        families,
	}
	if p.LocalAddress.IsValid() {
		peer.Transport.LocalAddress = p.LocalAddress.String()
	}
	if p.MultihopTTL != 0 {
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.MultihopTTL)}
	}
	return peer
}

// Announce implements Speaker.
func (g *GoBGP) Announce(prefix netip.Prefix, attrs Attributes) error {
	if err := checkPrefix(prefix); err != nil {
		return fmt.Errorf("announcing %v: %w", prefix, err)
	}
	path, err := buildPath(prefix, attrs)
	if err != nil {
		return fmt.Errorf("announcing %v: %w", prefix, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("announcing %v: %w", prefix, ErrClosed)
	}
	if _, err := g.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}}); err != nil {
		return fmt.Errorf("announcing %v: %w", prefix, err)
	}
	g.announced[prefix] = path
	return nil
}

// Withdraw implements Speaker.
func (g *GoBGP) Withdraw(prefix netip.Prefix) error {
	if err := checkPrefix(prefix); err != nil {
		return fmt.Errorf("withdrawing %v: %w", prefix, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("withdrawing %v: %w", prefix, ErrClosed)
	}
	path, ok := g.announced[prefix]
	if !ok {
		return nil
	}
	if err := g.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}}); err != nil {
		return fmt.Errorf("withdrawing %v: %w", prefix, err)
	}
	delete(g.announced, prefix)
	return nil
}

// Peers implements Speaker.
func (g *GoBGP) Peers() ([]PeerState, error) {
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("listing bgp peers: %w", ErrClosed)
	}
	byAddr := map[netip.Addr]PeerState{}
	err := g.srv.ListPeer(context.Background(), &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		st := peerState(p)
		byAddr[st.Address] = st
	})
	if err != nil {
		return nil, fmt.Errorf("listing bgp peers: %w", err)
	}
	out := make([]PeerState, 0, len(g.peers))
	for _, c := range g.peers {
		st, ok := byAddr[c.Address]
		if !ok {
			st = PeerState{Address: c.Address, ASN: c.ASN, State: SessionUnknown}
		}
		out = append(out, st)
	}
	return out, nil
}

func peerState(p *api.Peer) PeerState {
	var st PeerState
	if s := p.GetState(); s != nil {
		st.Address, _ = netip.ParseAddr(s.GetNeighborAddress())
		st.ASN = s.GetPeerAsn()
		st.State = sessionState(s.GetSessionState())
	}
	if ts := p.GetTimers().GetState(); ts != nil {
		t := ts.GetDowntime()
		if st.State == SessionEstablished {
			t = ts.GetUptime()
		}
		if t != nil && t.GetSeconds() > 0 {
			st.Since = t.AsTime()
		}
	}
	for _, af := range p.GetAfiSafis() {
		st.Advertised += int(af.GetState().GetAdvertised())
	}
	return st
}

func sessionState(s api.PeerState_SessionState) SessionState {
	switch s {
	case api.PeerState_SESSION_STATE_IDLE:
		return SessionIdle
	case api.PeerState_SESSION_STATE_CONNECT:
		return SessionConnect
	case api.PeerState_SESSION_STATE_ACTIVE:
		return SessionActive
	case api.PeerState_SESSION_STATE_OPENSENT:
		return SessionOpenSent
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return SessionOpenConfirm
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return SessionEstablished
	}
	return SessionUnknown
}

// Close implements Speaker: every session is ended with a Cease
// notification, so peers drop lvsd's routes at once rather than after the
// hold time.
func (g *GoBGP) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	g.stop()
	return nil
}

func (g *GoBGP) stop() {
	g.srv.Stop() // sends Cease to every peer, stops BFD, waits for Serve
	g.wg.Wait()
}

func buildPath(prefix netip.Prefix, attrs Attributes) (*apiutil.Path, error) {
	nlri, err := bgppacket.NewIPAddrPrefix(prefix)
	if err != nil {
		return nil, err
	}
	family := bgppacket.RF_IPv4_UC
	nexthop := netip.IPv4Unspecified()
	if prefix.Addr().Is6() {
		family = bgppacket.RF_IPv6_UC
		nexthop = netip.IPv6Unspecified()
	}
	if attrs.NextHop.IsValid() {
		if attrs.NextHop.Is4() != prefix.Addr().Is4() {
			return nil, fmt.Errorf("next hop %v is not of the prefix's family", attrs.NextHop)
		}
		nexthop = attrs.NextHop
	}
	pattrs := []bgppacket.PathAttributeInterface{
		bgppacket.NewPathAttributeOrigin(bgppacket.BGP_ORIGIN_ATTR_TYPE_IGP),
	}
	if family == bgppacket.RF_IPv4_UC {
		nh, err := bgppacket.NewPathAttributeNextHop(nexthop)
		if err != nil {
			return nil, err
		}
		pattrs = append(pattrs, nh)
	} else {
		mp, err := bgppacket.NewPathAttributeMpReachNLRI(family, []bgppacket.PathNLRI{{NLRI: nlri}}, nexthop)
		if err != nil {
			return nil, err
		}
		pattrs = append(pattrs, mp)
	}
	if attrs.MED != 0 {
		pattrs = append(pattrs, bgppacket.NewPathAttributeMultiExitDisc(attrs.MED))
	}
	if len(attrs.Communities) > 0 {
		cs := make([]uint32, len(attrs.Communities))
		for i, c := range attrs.Communities {
			cs[i] = uint32(c)
		}
		pattrs = append(pattrs, bgppacket.NewPathAttributeCommunities(cs))
	}
	return &apiutil.Path{Family: family, Nlri: nlri, Attrs: pattrs}, nil
}

// slowOpThreshold is how long an operation of GoBGP's server loop (an
// announce, a withdraw, a peer listing, an accepted connection) may wait
// and run before it is logged: every announce and withdraw goes through
// that one loop.
const slowOpThreshold = 20 * time.Millisecond

// slowOps logs, at debug level, the server loop's operations that waited
// or ran longer than slowOpThreshold.
type slowOps struct{ log *slog.Logger }

// Observe implements server.FSMTimingHook. GoBGP times an operation from
// the moment its loop began to wait, so an operation that arrived at an
// idle loop has a negative wait, and its run includes the idle time.
func (h slowOps) Observe(op server.FSMOperation, tOp, tWait time.Duration) {
	if tWait < 0 {
		tOp += tWait
		tWait = 0
	}
	if tOp+tWait < slowOpThreshold {
		return
	}
	name := map[server.FSMOperation]string{server.FSMMgmtOp: "api call", server.FSMAccept: "accept", server.FSMROAEvent: "roa", server.FSMMessage: "peer message"}[op]
	h.log.Debug("gobgp: slow server loop operation", "op", name, "waited", tWait, "ran", tOp)
}
