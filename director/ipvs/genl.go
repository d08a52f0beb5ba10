package ipvs

// The IPVS generic-netlink protocol (include/uapi/linux/ip_vs.h): command
// and attribute numbers, and the encoding and decoding of services, real
// servers, stats, daemons and config. Pure functions over bytes, so they are
// tested on any OS; client_linux.go does the I/O.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
)

// genlFamilyName is the generic-netlink family the ip_vs module registers.
const genlFamilyName = "IPVS"

// Commands.
const (
	cmdNewService = 1
	cmdSetService = 2
	cmdDelService = 3
	cmdGetService = 4
	cmdNewDest    = 5
	cmdSetDest    = 6
	cmdDelDest    = 7
	cmdGetDest    = 8
	cmdNewDaemon  = 9
	cmdDelDaemon  = 10
	cmdGetDaemon  = 11
	cmdSetConfig  = 12
	cmdGetConfig  = 13
	cmdGetInfo    = 15
	cmdZero       = 16
	cmdFlush      = 17
)

// Top-level attributes (IPVS_CMD_ATTR_*).
const (
	attrService       = 1
	attrDest          = 2
	attrDaemon        = 3
	attrTimeoutTCP    = 4
	attrTimeoutTCPFin = 5
	attrTimeoutUDP    = 6
)

// Service attributes (IPVS_SVC_ATTR_*).
const (
	svcAF        = 1
	svcProtocol  = 2
	svcAddr      = 3
	svcPort      = 4
	svcFWMark    = 5
	svcSchedName = 6
	svcFlags     = 7
	svcTimeout   = 8
	svcNetmask   = 9
	svcStats     = 10
	svcPEName    = 11
	svcStats64   = 12
)

// Destination attributes (IPVS_DEST_ATTR_*).
const (
	destAddr         = 1
	destPort         = 2
	destFwdMethod    = 3
	destWeight       = 4
	destUThresh      = 5
	destLThresh      = 6
	destActiveConns  = 7
	destInactConns   = 8
	destPersistConns = 9
	destStats        = 10
	destAddrFamily   = 11
	destStats64      = 12
	destTunType      = 13
	destTunPort      = 14
	destTunFlags     = 15
)

// Daemon attributes (IPVS_DAEMON_ATTR_*).
const (
	daemonState      = 1
	daemonMcastIfn   = 2
	daemonSyncID     = 3
	daemonSyncMaxLen = 4
	daemonMcastGroup = 5
	daemonMcastGrp6  = 6
	daemonMcastPort  = 7
	daemonMcastTTL   = 8
)

// Info attributes (IPVS_INFO_ATTR_*).
const (
	infoVersion     = 1
	infoConnTabSize = 2
)

// Stats attributes (IPVS_STATS_ATTR_*): u32 (and u64 bytes) in STATS,
// u64 everywhere in STATS64.
const (
	statsConns    = 1
	statsInPkts   = 2
	statsOutPkts  = 3
	statsInBytes  = 4
	statsOutBytes = 5
	statsCPS      = 6
	statsInPPS    = 7
	statsOutPPS   = 8
	statsInBPS    = 9
	statsOutBPS   = 10
)

// errMalformed marks a kernel reply lvskit could not decode.
var errMalformed = errors.New("malformed IPVS netlink reply")

// addrBytes is the 16-byte union nf_inet_addr the kernel expects.
func addrBytes(a netip.Addr) []byte {
	b := make([]byte, 16)
	if a.Is4() || a.Is4In6() {
		v := a.Unmap().As4()
		copy(b, v[:])
		return b
	}
	v := a.As16()
	copy(b, v[:])
	return b
}

func genlAddr(f Family, b []byte) (netip.Addr, error) {
	switch {
	case f == IPv4 && len(b) >= 4:
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case f == IPv6 && len(b) >= 16:
		return netip.AddrFrom16([16]byte(b[:16])), nil
	}
	return netip.Addr{}, fmt.Errorf("%w: %d-byte address for family %v", errMalformed, len(b), f)
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// netmaskWire is the value of IPVS_SVC_ATTR_NETMASK: for IPv4 a netmask in
// network byte order, for IPv6 a prefix length. Zero bits mean a full mask.
func netmaskWire(f Family, bits uint8) uint32 {
	if f == IPv6 {
		if bits == 0 || bits > 128 {
			return 128
		}
		return uint32(bits)
	}
	if bits == 0 || bits > 32 {
		bits = 32
	}
	mask := ^uint32(0) << (32 - uint32(bits))
	return binary.NativeEndian.Uint32(binary.BigEndian.AppendUint32(nil, mask))
}

func netmaskBits(f Family, wire uint32) uint8 {
	if f == IPv6 {
		return uint8(min(wire, 128))
	}
	mask := binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, wire))
	n := uint8(0)
	for mask&0x80000000 != 0 {
		n++
		mask <<= 1
	}
	return n
}

// encodeServiceKey writes the attributes that identify a service.
func encodeServiceKey(ae *netlink.AttributeEncoder, k ServiceKey) {
	ae.Uint16(svcAF, uint16(k.Family))
	if k.IsFWMark() {
		ae.Uint32(svcFWMark, k.FWMark)
		return
	}
	ae.Uint16(svcProtocol, uint16(k.Protocol))
	ae.Bytes(svcAddr, addrBytes(k.Address))
	ae.Bytes(svcPort, be16(k.Port))
}

// encodeService writes a whole service, as NEW_SERVICE and SET_SERVICE need.
func encodeService(ae *netlink.AttributeEncoder, s Service) {
	encodeServiceKey(ae, s.ServiceKey)
	ae.String(svcSchedName, s.Scheduler)
	if s.PersistenceEngine != "" {
		ae.String(svcPEName, s.PersistenceEngine)
	}
	flags := make([]byte, 8)
	binary.NativeEndian.PutUint32(flags[0:], uint32(s.Flags&^FlagHashed))
	binary.NativeEndian.PutUint32(flags[4:], ^uint32(0))
	ae.Bytes(svcFlags, flags)
	ae.Uint32(svcTimeout, s.Timeout)
	ae.Uint32(svcNetmask, netmaskWire(s.Family, s.NetmaskBits))
}

// encodeRealServer writes a destination; the tunnel attributes only for
// tunnels that need them, so kernels before 5.2 accept plain IPIP.
func encodeRealServer(ae *netlink.AttributeEncoder, r RealServer) {
	ae.Bytes(destAddr, addrBytes(r.Address))
	ae.Bytes(destPort, be16(r.Port))
	ae.Uint16(destAddrFamily, uint16(FamilyOf(r.Address)))
	ae.Uint32(destFwdMethod, uint32(r.Forwarding))
	ae.Uint32(destWeight, uint32(r.Weight))
	ae.Uint32(destUThresh, r.UpperThreshold)
	ae.Uint32(destLThresh, r.LowerThreshold)
	if r.Forwarding == Tunnel && (r.TunnelType != TunnelIPIP || r.TunnelPort != 0 || r.TunnelFlags != 0) {
		ae.Uint8(destTunType, uint8(r.TunnelType))
		ae.Bytes(destTunPort, be16(r.TunnelPort))
		ae.Uint16(destTunFlags, uint16(r.TunnelFlags))
	}
}

// decodeStats reads a STATS or STATS64 nest; wide says which.
func decodeStats(ad *netlink.AttributeDecoder, wide bool, st *Stats) {
	ad.Nested(func(nad *netlink.AttributeDecoder) error {
		for nad.Next() {
			var v uint64
			switch {
			case wide:
				if len(nad.Bytes()) != 8 {
					continue // IPVS_STATS_ATTR_PAD and anything new
				}
				v = nad.Uint64()
			case nad.Type() == statsInBytes || nad.Type() == statsOutBytes:
				v = nad.Uint64()
			default:
				v = uint64(nad.Uint32())
			}
			switch nad.Type() {
			case statsConns:
				st.Conns = v
			case statsInPkts:
				st.PacketsIn = v
			case statsOutPkts:
				st.PacketsOut = v
			case statsInBytes:
				st.BytesIn = v
			case statsOutBytes:
				st.BytesOut = v
			case statsCPS:
				st.CPS = v
			case statsInPPS:
				st.PPSIn = v
			case statsOutPPS:
				st.PPSOut = v
			case statsInBPS:
				st.BPSIn = v
			case statsOutBPS:
				st.BPSOut = v
			}
		}
		return nil
	})
}

// decodeService reads the IPVS_CMD_ATTR_SERVICE nest of a reply. STATS64 is
// preferred over STATS when the kernel sends both (Linux 4.1+).
func decodeService(b []byte) (Service, error) {
	var (
		s                   Service
		rawAddr             []byte
		netmask             uint32
		haveStats64, haveAF bool
	)
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return s, fmt.Errorf("%w: %v", errMalformed, err)
	}
	for ad.Next() {
		if ad.Type() != attrService {
			continue
		}
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			for nad.Next() {
				switch nad.Type() {
				case svcAF:
					s.Family, haveAF = Family(nad.Uint16()), true
				case svcProtocol:
					s.Protocol = Protocol(nad.Uint16())
				case svcAddr:
					rawAddr = nad.Bytes()
				case svcPort:
					if p := nad.Bytes(); len(p) == 2 {
						s.Port = binary.BigEndian.Uint16(p)
					}
				case svcFWMark:
					s.FWMark = nad.Uint32()
				case svcSchedName:
					s.Scheduler = nad.String()
				case svcFlags:
					if f := nad.Bytes(); len(f) >= 4 {
						s.Flags = ServiceFlags(binary.NativeEndian.Uint32(f)) &^ FlagHashed
					}
				case svcTimeout:
					s.Timeout = nad.Uint32()
				case svcNetmask:
					netmask = nad.Uint32()
				case svcPEName:
					s.PersistenceEngine = nad.String()
				case svcStats:
					if !haveStats64 {
						decodeStats(nad, false, &s.Stats)
					}
				case svcStats64:
					haveStats64 = true
					s.Stats = Stats{}
					decodeStats(nad, true, &s.Stats)
				}
			}
			return nil
		})
	}
	if err := ad.Err(); err != nil {
		return s, fmt.Errorf("%w: service: %v", errMalformed, err)
	}
	if !haveAF {
		return s, fmt.Errorf("%w: service without address family", errMalformed)
	}
	s.NetmaskBits = netmaskBits(s.Family, netmask)
	if s.FWMark != 0 {
		s.Protocol, s.Port = 0, 0
		return s, nil
	}
	s.Address, err = genlAddr(s.Family, rawAddr)
	return s, err
}

// decodeRealServer reads the IPVS_CMD_ATTR_DEST nest of a reply. A real
// server's family defaults to its service's (kernels before 4.14 do not
// send IPVS_DEST_ATTR_ADDR_FAMILY).
func decodeRealServer(b []byte, svcFamily Family) (RealServer, error) {
	var (
		r           RealServer
		rawAddr     []byte
		af          = svcFamily
		haveStats64 bool
	)
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return r, fmt.Errorf("%w: %v", errMalformed, err)
	}
	for ad.Next() {
		if ad.Type() != attrDest {
			continue
		}
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			for nad.Next() {
				switch nad.Type() {
				case destAddr:
					rawAddr = nad.Bytes()
				case destPort:
					if p := nad.Bytes(); len(p) == 2 {
						r.Port = binary.BigEndian.Uint16(p)
					}
				case destFwdMethod:
					r.Forwarding = Forwarding(nad.Uint32() & 0x7)
				case destWeight:
					r.Weight = int32(nad.Uint32())
				case destUThresh:
					r.UpperThreshold = nad.Uint32()
				case destLThresh:
					r.LowerThreshold = nad.Uint32()
				case destActiveConns:
					r.ActiveConns = nad.Uint32()
				case destInactConns:
					r.InactiveConns = nad.Uint32()
				case destPersistConns:
					r.PersistentConns = nad.Uint32()
				case destAddrFamily:
					af = Family(nad.Uint16())
				case destTunType:
					r.TunnelType = TunnelType(nad.Uint8())
				case destTunPort:
					if p := nad.Bytes(); len(p) == 2 {
						r.TunnelPort = binary.BigEndian.Uint16(p)
					}
				case destTunFlags:
					r.TunnelFlags = TunnelFlags(nad.Uint16())
				case destStats:
					if !haveStats64 {
						decodeStats(nad, false, &r.Stats)
					}
				case destStats64:
					haveStats64 = true
					r.Stats = Stats{}
					decodeStats(nad, true, &r.Stats)
				}
			}
			return nil
		})
	}
	if err := ad.Err(); err != nil {
		return r, fmt.Errorf("%w: real server: %v", errMalformed, err)
	}
	r.Address, err = genlAddr(af, rawAddr)
	return r, err
}

func encodeDaemon(ae *netlink.AttributeEncoder, d SyncDaemon) {
	ae.Uint32(daemonState, uint32(d.Role))
	ae.String(daemonMcastIfn, d.Interface)
	ae.Uint32(daemonSyncID, uint32(d.SyncID))
	if d.MaxSyncLen != 0 {
		ae.Uint16(daemonSyncMaxLen, d.MaxSyncLen)
	}
	if d.MulticastAddr.IsValid() {
		if d.MulticastAddr.Is4() {
			a := d.MulticastAddr.As4()
			ae.Bytes(daemonMcastGroup, a[:])
		} else {
			a := d.MulticastAddr.As16()
			ae.Bytes(daemonMcastGrp6, a[:])
		}
	}
	if d.MulticastPort != 0 {
		ae.Uint16(daemonMcastPort, d.MulticastPort)
	}
	if d.MulticastTTL != 0 {
		ae.Uint8(daemonMcastTTL, d.MulticastTTL)
	}
}

func decodeDaemon(b []byte) (SyncDaemon, error) {
	var d SyncDaemon
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return d, fmt.Errorf("%w: %v", errMalformed, err)
	}
	for ad.Next() {
		if ad.Type() != attrDaemon {
			continue
		}
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			for nad.Next() {
				switch nad.Type() {
				case daemonState:
					d.Role = SyncRole(nad.Uint32())
				case daemonMcastIfn:
					d.Interface = nad.String()
				case daemonSyncID:
					d.SyncID = uint8(nad.Uint32())
				case daemonSyncMaxLen:
					d.MaxSyncLen = nad.Uint16()
				case daemonMcastGroup:
					if a := nad.Bytes(); len(a) == 4 {
						d.MulticastAddr = netip.AddrFrom4([4]byte(a))
					}
				case daemonMcastGrp6:
					if a := nad.Bytes(); len(a) == 16 {
						d.MulticastAddr = netip.AddrFrom16([16]byte(a))
					}
				case daemonMcastPort:
					d.MulticastPort = nad.Uint16()
				case daemonMcastTTL:
					d.MulticastTTL = nad.Uint8()
				}
			}
			return nil
		})
	}
	if err := ad.Err(); err != nil {
		return d, fmt.Errorf("%w: sync daemon: %v", errMalformed, err)
	}
	return d, nil
}

func decodeInfo(b []byte) (Info, error) {
	var in Info
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return in, fmt.Errorf("%w: %v", errMalformed, err)
	}
	for ad.Next() {
		switch ad.Type() {
		case infoVersion:
			in.Version = Version(ad.Uint32())
		case infoConnTabSize:
			in.ConnTableSize = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return in, fmt.Errorf("%w: info: %v", errMalformed, err)
	}
	return in, nil
}

func decodeTimeouts(b []byte) (Timeouts, error) {
	var t Timeouts
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return t, fmt.Errorf("%w: %v", errMalformed, err)
	}
	for ad.Next() {
		switch ad.Type() {
		case attrTimeoutTCP:
			t.TCP = ad.Uint32()
		case attrTimeoutTCPFin:
			t.TCPFin = ad.Uint32()
		case attrTimeoutUDP:
			t.UDP = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return t, fmt.Errorf("%w: timeouts: %v", errMalformed, err)
	}
	return t, nil
}

func encodeTimeouts(ae *netlink.AttributeEncoder, t Timeouts) {
	if t.TCP != 0 {
		ae.Uint32(attrTimeoutTCP, t.TCP)
	}
	if t.TCPFin != 0 {
		ae.Uint32(attrTimeoutTCPFin, t.TCPFin)
	}
	if t.UDP != 0 {
		ae.Uint32(attrTimeoutUDP, t.UDP)
	}
}
