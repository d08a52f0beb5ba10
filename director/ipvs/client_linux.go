//go:build linux

package ipvs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	moby "github.com/moby/ipvs"
	"golang.org/x/sys/unix"
)

// genlVersion is IPVS_GENL_VERSION.
const genlVersion = 1

// mobyHandle is the part of moby/ipvs's Handle lvskit writes through.
type mobyHandle interface {
	NewService(*moby.Service) error
	UpdateService(*moby.Service) error
	DelService(*moby.Service) error
	NewDestination(*moby.Service, *moby.Destination) error
	UpdateDestination(*moby.Service, *moby.Destination) error
	DelDestination(*moby.Service, *moby.Destination) error
	Flush() error
	Close()
}

// linuxClient reads over its own generic-netlink socket (64-bit stats,
// tunnel attributes, sync daemons, info, timeouts, zeroing are all missing
// from moby/ipvs) and writes services and plain real servers through
// moby/ipvs. One mutex serialises both sockets: neither is safe for
// concurrent requests.
type linuxClient struct {
	mu     sync.Mutex
	conn   *genetlink.Conn
	family uint16
	moby   mobyHandle
	// netns is the namespace's path (opts.NetNS); empty: the caller's.
	netns string
}

// New opens IPVS in the namespace opts.NetNS. It returns ErrIPVSUnavailable
// when the kernel has no IPVS family: moby/ipvs would report success for
// every write there and do nothing.
func New(opts Options) (Client, error) {
	cfg := &netlink.Config{}
	if opts.NetNS != "" {
		ns, err := os.Open(opts.NetNS)
		if err != nil {
			return nil, fmt.Errorf("opening network namespace %s: %w", opts.NetNS, err)
		}
		defer ns.Close()
		cfg.NetNS = int(ns.Fd())
	}
	conn, err := genetlink.Dial(cfg)
	if err != nil {
		return nil, fmt.Errorf("opening generic netlink socket: %w", err)
	}
	fam, err := conn.GetFamily(genlFamilyName)
	if err != nil {
		conn.Close()
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrIPVSUnavailable
		}
		return nil, fmt.Errorf("looking up the IPVS netlink family: %w", err)
	}
	// moby/ipvs writes to the process's logrus logger only from its
	// one-time setup, and only when `modprobe ip_vs` fails or the IPVS
	// family is missing. The family was found above, so setup's modprobe
	// is a no-op and it logs nothing; the process's logrus settings are
	// the caller's, and lvskit leaves them alone.
	h, err := moby.New(opts.NetNS)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("opening moby/ipvs handle: %w", err)
	}
	c := newClient(conn, fam.ID, h)
	c.netns = opts.NetNS
	return c, nil
}

func newClient(conn *genetlink.Conn, family uint16, h mobyHandle) *linuxClient {
	return &linuxClient{conn: conn, family: family, moby: h}
}

func (c *linuxClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.moby != nil {
		c.moby.Close()
	}
	return c.conn.Close()
}

// execute sends one IPVS command over the client's own socket.
func (c *linuxClient) execute(cmd uint8, flags netlink.HeaderFlags, encode func(*netlink.AttributeEncoder)) ([]genetlink.Message, error) {
	ae := netlink.NewAttributeEncoder()
	if encode != nil {
		encode(ae)
	}
	data, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msg := genetlink.Message{Header: genetlink.Header{Command: cmd, Version: genlVersion}, Data: data}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.Execute(msg, c.family, netlink.Request|flags)
}

func (c *linuxClient) write(cmd uint8, encode func(*netlink.AttributeEncoder)) error {
	_, err := c.execute(cmd, netlink.Acknowledge, encode)
	return err
}

func (c *linuxClient) withMoby(fn func(mobyHandle) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fn(c.moby)
}

func (c *linuxClient) Info() (Info, error) {
	msgs, err := c.execute(cmdGetInfo, 0, nil)
	if err != nil {
		return Info{}, fmt.Errorf("reading IPVS info: %w", kernelError(err, nil, nil))
	}
	if len(msgs) == 0 {
		return Info{}, fmt.Errorf("reading IPVS info: %w: empty reply", errMalformed)
	}
	return decodeInfo(msgs[0].Data)
}

func (c *linuxClient) Services() ([]Service, error) {
	msgs, err := c.execute(cmdGetService, netlink.Dump, func(ae *netlink.AttributeEncoder) {
		ae.Nested(attrService, func(*netlink.AttributeEncoder) error { return nil })
	})
	if err != nil {
		return nil, fmt.Errorf("listing virtual services: %w", kernelError(err, nil, nil))
	}
	out := make([]Service, 0, len(msgs))
	for _, m := range msgs {
		s, err := decodeService(m.Data)
		if err != nil {
			return nil, fmt.Errorf("listing virtual services: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (c *linuxClient) Service(key ServiceKey) (Service, error) {
	msgs, err := c.execute(cmdGetService, 0, serviceKeyNest(key))
	if err != nil {
		return Service{}, fmt.Errorf("reading virtual service %v: %w", key, kernelError(err, ErrServiceNotFound, nil))
	}
	if len(msgs) == 0 {
		return Service{}, fmt.Errorf("reading virtual service %v: %w", key, ErrServiceNotFound)
	}
	s, err := decodeService(msgs[0].Data)
	if err != nil {
		return Service{}, fmt.Errorf("reading virtual service %v: %w", key, err)
	}
	return s, nil
}

func serviceKeyNest(key ServiceKey) func(*netlink.AttributeEncoder) {
	return func(ae *netlink.AttributeEncoder) {
		ae.Nested(attrService, func(nae *netlink.AttributeEncoder) error {
			encodeServiceKey(nae, key)
			return nil
		})
	}
}

func (c *linuxClient) AddService(s Service) error {
	ms := toMobyService(s)
	if err := c.withMoby(func(h mobyHandle) error { return h.NewService(ms) }); err != nil {
		return fmt.Errorf("adding virtual service %v: %w", s.ServiceKey, serviceWriteError(err, s, ErrServiceExists))
	}
	return nil
}

func (c *linuxClient) UpdateService(s Service) error {
	ms := toMobyService(s)
	if err := c.withMoby(func(h mobyHandle) error { return h.UpdateService(ms) }); err != nil {
		return fmt.Errorf("updating virtual service %v: %w", s.ServiceKey, serviceWriteError(err, s, nil))
	}
	return nil
}

func (c *linuxClient) DeleteService(key ServiceKey) error {
	ms := toMobyService(Service{ServiceKey: key})
	if err := c.withMoby(func(h mobyHandle) error { return h.DelService(ms) }); err != nil {
		return fmt.Errorf("deleting virtual service %v: %w", key, kernelError(err, ErrServiceNotFound, nil))
	}
	return nil
}

// serviceWriteError explains ENOENT on a service write: the kernel could
// not load the scheduler or persistence engine.
func serviceWriteError(err error, s Service, exists error) error {
	if errors.Is(err, unix.ENOENT) {
		what := fmt.Sprintf("scheduler %q", s.Scheduler)
		if s.PersistenceEngine != "" {
			what += fmt.Sprintf(" or persistence engine %q", s.PersistenceEngine)
		}
		return fmt.Errorf("%w: %s (load ip_vs_%s)", ErrNotSupported, what, s.Scheduler)
	}
	return kernelError(err, ErrServiceNotFound, exists)
}

func (c *linuxClient) RealServers(key ServiceKey) ([]RealServer, error) {
	msgs, err := c.execute(cmdGetDest, netlink.Dump, serviceKeyNest(key))
	if err != nil {
		return nil, fmt.Errorf("listing real servers of %v: %w", key, kernelError(err, ErrServiceNotFound, nil))
	}
	out := make([]RealServer, 0, len(msgs))
	for _, m := range msgs {
		r, err := decodeRealServer(m.Data, key.Family)
		if err != nil {
			return nil, fmt.Errorf("listing real servers of %v: %w", key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// ownDestWrite reports whether a real server needs attributes moby/ipvs
// cannot send: a tunnel type, port or flags, or a family other than the
// service's.
func ownDestWrite(key ServiceKey, r RealServer) bool {
	if r.Forwarding == Tunnel && (r.TunnelType != TunnelIPIP || r.TunnelPort != 0 || r.TunnelFlags != 0) {
		return true
	}
	return FamilyOf(r.Address) != key.Family
}

func (c *linuxClient) destWrite(cmd uint8, key ServiceKey, r RealServer) error {
	if !ownDestWrite(key, r) {
		ms, md := toMobyService(Service{ServiceKey: key}), toMobyDestination(r)
		return c.withMoby(func(h mobyHandle) error {
			switch cmd {
			case cmdNewDest:
				return h.NewDestination(ms, md)
			case cmdSetDest:
				return h.UpdateDestination(ms, md)
			default:
				return h.DelDestination(ms, md)
			}
		})
	}
	return c.write(cmd, func(ae *netlink.AttributeEncoder) {
		serviceKeyNest(key)(ae)
		ae.Nested(attrDest, func(nae *netlink.AttributeEncoder) error {
			encodeRealServer(nae, r)
			return nil
		})
	})
}

func (c *linuxClient) AddRealServer(key ServiceKey, r RealServer) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("adding real server to %v: %w", key, err)
	}
	if err := c.destWrite(cmdNewDest, key, r); err != nil {
		return fmt.Errorf("adding real server %v to %v: %w", r.Key(), key, kernelError(err, ErrServiceNotFound, ErrRealServerExists))
	}
	return nil
}

func (c *linuxClient) UpdateRealServer(key ServiceKey, r RealServer) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("updating real server of %v: %w", key, err)
	}
	if err := c.destWrite(cmdSetDest, key, r); err != nil {
		return fmt.Errorf("updating real server %v of %v: %w", r.Key(), key, destMissing(err))
	}
	return nil
}

func (c *linuxClient) DeleteRealServer(key ServiceKey, rk RealServerKey) error {
	r := RealServer{Address: rk.Address, Port: rk.Port}
	if err := c.destWrite(cmdDelDest, key, r); err != nil {
		return fmt.Errorf("deleting real server %v from %v: %w", rk, key, destMissing(err))
	}
	return nil
}

// destMissing maps the kernel's errors for an edit or delete of a real
// server: ESRCH is the service, ENOENT the real server.
func destMissing(err error) error {
	if errors.Is(err, unix.ENOENT) {
		return ErrRealServerNotFound
	}
	return kernelError(err, ErrServiceNotFound, nil)
}

func (c *linuxClient) Timeouts() (Timeouts, error) {
	msgs, err := c.execute(cmdGetConfig, 0, nil)
	if err != nil {
		return Timeouts{}, fmt.Errorf("reading IPVS timeouts: %w", kernelError(err, nil, nil))
	}
	if len(msgs) == 0 {
		return Timeouts{}, fmt.Errorf("reading IPVS timeouts: %w: empty reply", errMalformed)
	}
	return decodeTimeouts(msgs[0].Data)
}

func (c *linuxClient) SetTimeouts(t Timeouts) error {
	if err := c.write(cmdSetConfig, func(ae *netlink.AttributeEncoder) { encodeTimeouts(ae, t) }); err != nil {
		return fmt.Errorf("setting IPVS timeouts tcp %d tcpfin %d udp %d: %w", t.TCP, t.TCPFin, t.UDP, kernelError(err, nil, nil))
	}
	return nil
}

func (c *linuxClient) SyncDaemons() ([]SyncDaemon, error) {
	msgs, err := c.execute(cmdGetDaemon, netlink.Dump, nil)
	if err != nil {
		return nil, fmt.Errorf("listing sync daemons: %w", kernelError(err, nil, nil))
	}
	var out []SyncDaemon
	for _, m := range msgs {
		d, err := decodeDaemon(m.Data)
		if err != nil {
			return nil, fmt.Errorf("listing sync daemons: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}

func (c *linuxClient) StartSyncDaemon(d SyncDaemon) error {
	err := c.write(cmdNewDaemon, func(ae *netlink.AttributeEncoder) {
		ae.Nested(attrDaemon, func(nae *netlink.AttributeEncoder) error {
			encodeDaemon(nae, d)
			return nil
		})
	})
	if err != nil {
		if errors.Is(err, unix.ENODEV) {
			err = fmt.Errorf("no interface %q in this namespace", d.Interface)
		} else {
			err = kernelError(err, nil, nil)
		}
		return fmt.Errorf("starting %v sync daemon on %s syncid %d: %w", d.Role, d.Interface, d.SyncID, err)
	}
	return nil
}

func (c *linuxClient) StopSyncDaemon(role SyncRole) error {
	err := c.write(cmdDelDaemon, func(ae *netlink.AttributeEncoder) {
		ae.Nested(attrDaemon, func(nae *netlink.AttributeEncoder) error {
			nae.Uint32(daemonState, uint32(role))
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("stopping %v sync daemon: %w", role, kernelError(err, nil, nil))
	}
	return nil
}

func (c *linuxClient) ZeroService(key ServiceKey) error {
	if err := c.write(cmdZero, serviceKeyNest(key)); err != nil {
		return fmt.Errorf("zeroing counters of %v: %w", key, kernelError(err, ErrServiceNotFound, nil))
	}
	return nil
}

func (c *linuxClient) ZeroAll() error {
	if err := c.write(cmdZero, nil); err != nil {
		return fmt.Errorf("zeroing all IPVS counters: %w", kernelError(err, nil, nil))
	}
	return nil
}

func (c *linuxClient) Flush() error {
	if err := c.withMoby(func(h mobyHandle) error { return h.Flush() }); err != nil {
		return fmt.Errorf("flushing IPVS: %w", kernelError(err, nil, nil))
	}
	return nil
}

// kernelError maps an errno to lvskit's sentinels: ESRCH to notFound,
// EEXIST to exists, EPERM to ErrPermission; anything else is kept.
func kernelError(err error, notFound, exists error) error {
	switch {
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return ErrPermission
	case notFound != nil && errors.Is(err, unix.ESRCH):
		return notFound
	case exists != nil && errors.Is(err, unix.EEXIST):
		return exists
	}
	return err
}

func toMobyService(s Service) *moby.Service {
	ms := &moby.Service{
		AddressFamily: uint16(s.Family),
		Protocol:      uint16(s.Protocol),
		Port:          s.Port,
		FWMark:        s.FWMark,
		SchedName:     s.Scheduler,
		Flags:         uint32(s.Flags &^ FlagHashed),
		Timeout:       s.Timeout,
		Netmask:       netmaskWire(s.Family, s.NetmaskBits),
		PEName:        s.PersistenceEngine,
	}
	if s.Address.IsValid() {
		ms.Address = net.IP(s.Address.AsSlice())
	} else if s.Family == IPv6 {
		ms.Address = net.IPv6zero
	} else {
		ms.Address = net.IPv4zero.To4()
	}
	return ms
}

func toMobyDestination(r RealServer) *moby.Destination {
	return &moby.Destination{
		Address:         net.IP(r.Address.Unmap().AsSlice()),
		Port:            r.Port,
		Weight:          int(r.Weight),
		ConnectionFlags: uint32(r.Forwarding),
		AddressFamily:   uint16(FamilyOf(r.Address)),
		UpperThreshold:  r.UpperThreshold,
		LowerThreshold:  r.LowerThreshold,
	}
}
