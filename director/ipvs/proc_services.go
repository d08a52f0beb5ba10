package ipvs

import (
	"bytes"
	"io"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
)

// ServiceTable is what /proc/net/ip_vs shows: the IPVS version, the
// connection table size, and every virtual service with its real servers.
//
// The file lacks much of what netlink gives (counters, thresholds,
// scheduler flags, the persistence engine, the family of a fwmark
// service); the fields it lacks are left zero. A fwmark service's Family
// is taken from its first real server (IPv4 when it has none).
type ServiceTable struct {
	Info     Info
	Services []ServiceEntry
}

// ServiceEntry is a virtual service and its real servers, in the
// kernel's order.
//
// The kernel prints the persistence timeout in jiffies, and the tick
// rate (CONFIG_HZ) is not in /proc: TimeoutJiffies keeps the value as
// printed, and Service.Timeout is it divided by ProcHZ. Where seconds
// matter on a kernel with another HZ, divide TimeoutJiffies by that HZ
// or ask netlink (Client.Services), which gives seconds.
type ServiceEntry struct {
	Service
	TimeoutJiffies uint32
	RealServers    []RealServer

	mask uint32 // the persistence netmask as printed, until the family is known
}

// ProcHZ is the tick rate ServiceTable assumes to turn the persistence
// timeout into seconds: CONFIG_HZ of Debian's and Ubuntu's kernels.
const ProcHZ = 250

// ParseServiceTable parses /proc/net/ip_vs.
func ParseServiceTable(r io.Reader) (ServiceTable, error) {
	return parseServiceTable(r, "ip_vs")
}

// ReadServiceTable reads root/proc/net/ip_vs. A missing file gives an
// error wrapping ErrIPVSUnavailable and fs.ErrNotExist.
func ReadServiceTable(root string) (ServiceTable, error) {
	f, path, err := openProc(root, ProcIPVS)
	if err != nil {
		return ServiceTable{}, err
	}
	defer f.Close()
	t, err := parseServiceTable(f, path)
	return t, err
}

func parseServiceTable(r io.Reader, file string) (ServiceTable, error) {
	var t ServiceTable
	var svcLines []int // the line of each service, for errors found at the end
	lr := newLineReader(r, file, 16<<10)
	var fs [][]byte
	fsBuf := make([][]byte, 0, 16)
	for {
		line, ok := lr.next()
		if !ok {
			if lr.err != nil {
				return t, lr.err
			}
			if lr.line == 0 {
				return t, parseErr(file, 1, "empty file: want the \"IP Virtual Server version\" line")
			}
			if msg, i := finishServices(t.Services); msg != "" {
				return t, parseErr(file, svcLines[i], "%s", msg)
			}
			return t, nil
		}
		n := lr.line
		switch {
		case n == 1:
			info, msg := parseVersionLine(line)
			if msg != "" {
				return t, parseErr(file, n, "%s in %s", msg, quote(line))
			}
			t.Info = info
		case n <= 3 && (bytes.HasPrefix(line, []byte("Prot ")) || bytes.HasPrefix(line, []byte("  -> RemoteAddress"))):
			// column headers
		case len(bytes.TrimSpace(line)) == 0:
		case bytes.HasPrefix(line, []byte("  -> ")):
			if len(t.Services) == 0 {
				return t, parseErr(file, n, "real server before any service")
			}
			fs = fields(fsBuf, line[5:])
			rs, msg, bad := parseRealServerLine(fs)
			if msg != "" {
				return t, connLineErr(file, n, msg, bad)
			}
			last := &t.Services[len(t.Services)-1]
			last.RealServers = append(last.RealServers, rs)
		default:
			fs = fields(fsBuf, line)
			svc, msg, bad := parseServiceLine(fs)
			if msg != "" {
				return t, connLineErr(file, n, msg, bad)
			}
			svcLines = append(svcLines, n)
			t.Services = append(t.Services, svc)
		}
	}
}

// parseVersionLine parses "IP Virtual Server version 1.2.1 (size=4096)".
func parseVersionLine(line []byte) (Info, string) {
	const prefix = "IP Virtual Server version "
	s, ok := strings.CutPrefix(string(line), prefix)
	if !ok {
		return Info{}, "want \"IP Virtual Server version X.Y.Z (size=N)\""
	}
	ver, size, ok := strings.Cut(s, " (size=")
	if !ok || !strings.HasSuffix(size, ")") {
		return Info{}, "want \"(size=N)\" after the version"
	}
	parts := strings.Split(ver, ".")
	if len(parts) != 3 {
		return Info{}, "want a version X.Y.Z"
	}
	var v uint32
	for _, p := range parts {
		n, ok := parseDec([]byte(p))
		if !ok || n > 255 {
			return Info{}, "bad version number"
		}
		v = v<<8 | uint32(n)
	}
	sz, ok := parseDec([]byte(strings.TrimSuffix(size, ")")))
	if !ok || sz > 1<<32-1 {
		return Info{}, "bad connection table size"
	}
	return Info{Version: Version(v), ConnTableSize: uint32(sz)}, ""
}

// parseServiceLine parses a service line:
//
//	TCP  0A000064:0050 rr [ops] [persistent 300 FFFFFFFF]
//	UDP  [2001:0db8:0000:0000:0000:0000:0000:0001]:0035 wlc [persistent ...]
//	FWM  00000001 sh [ops] [persistent ...]
func parseServiceLine(fs [][]byte) (ServiceEntry, string, []byte) {
	var svc ServiceEntry
	if len(fs) < 3 {
		return svc, "want protocol, address and scheduler", nil
	}
	if string(fs[0]) == "FWM" {
		mark, ok := parseHexN(fs[1], 8)
		if !ok || mark == 0 {
			return svc, "bad firewall mark", fs[1]
		}
		svc.ServiceKey = ServiceKey{Family: IPv4, FWMark: uint32(mark)}
	} else {
		proto, ok := procProtocol(fs[0])
		if !ok || (proto != TCP && proto != UDP && proto != SCTP) {
			return svc, "unknown service protocol", fs[0]
		}
		ap, ok := parseProcAddrPort(fs[1])
		if !ok {
			return svc, "bad virtual address:port", fs[1]
		}
		a := ap.Addr()
		svc.ServiceKey = ServiceKey{Family: FamilyOf(a), Protocol: proto, Address: a, Port: ap.Port()}
	}
	if !validSchedulerName(fs[2]) {
		return svc, "bad scheduler name", fs[2]
	}
	svc.Scheduler = string(fs[2])
	rest := fs[3:]
	for len(rest) > 0 {
		switch string(rest[0]) {
		case "ops":
			svc.Flags |= FlagOnePacket
			rest = rest[1:]
		case "persistent":
			if len(rest) < 3 {
				return svc, "want \"persistent TIMEOUT NETMASK\"", rest[0]
			}
			jiffies, ok := parseDec(rest[1])
			if !ok || jiffies > 1<<31-1 {
				return svc, "bad persistence timeout", rest[1]
			}
			mask, ok := parseHexN(rest[2], 8)
			if !ok {
				return svc, "bad persistence netmask", rest[2]
			}
			if !svc.IsFWMark() { // else when its family is known
				if _, ok := persistenceBits(svc.Family, uint32(mask)); !ok {
					return svc, "persistence netmask is not a prefix", rest[2]
				}
			}
			svc.Flags |= FlagPersistent
			svc.TimeoutJiffies = uint32(jiffies)
			svc.Timeout = uint32(jiffies / ProcHZ)
			svc.mask = uint32(mask)
			rest = rest[3:]
		default:
			return svc, "unexpected service flag", rest[0]
		}
	}
	return svc, "", nil
}

// persistenceBits turns the printed netmask into a prefix length. An
// IPv4 service prints its mask; an IPv6 service keeps a prefix length in
// the same field, which ntohl() byte-swaps on a little-endian machine
// (a /64 prints as 40000000).
func persistenceBits(f Family, mask uint32) (uint8, bool) {
	if f == IPv6 {
		for _, v := range []uint32{bits.ReverseBytes32(mask), mask} {
			if v >= 1 && v <= 128 {
				return uint8(v), true
			}
		}
		return 0, false
	}
	ones := bits.LeadingZeros32(^mask)
	if mask<<ones != 0 {
		return 0, false
	}
	return uint8(ones), true
}

func validSchedulerName(b []byte) bool {
	if len(b) == 0 || len(b) > 16 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parseRealServerLine parses the fields after "  -> ":
//
//	0A00020B:0050      Masq    1      0          0
func parseRealServerLine(fs [][]byte) (RealServer, string, []byte) {
	var rs RealServer
	if len(fs) != 5 {
		return rs, "want address:port, forwarding, weight, active and inactive connections", nil
	}
	ap, ok := parseProcAddrPort(fs[0])
	if !ok {
		return rs, "bad real server address:port", fs[0]
	}
	rs.Address, rs.Port = ap.Addr(), ap.Port()
	switch string(fs[1]) {
	case "Masq":
		rs.Forwarding = Masquerade
	case "Local":
		rs.Forwarding = Local
	case "Tunnel":
		rs.Forwarding = Tunnel
	case "Route":
		rs.Forwarding = DirectRoute
	case "Bypass":
		rs.Forwarding = Bypass
	default:
		return rs, "unknown forwarding method", fs[1]
	}
	w, ok := parseInt(fs[2])
	if !ok || w < -1<<31 || w > 1<<31-1 {
		return rs, "bad weight", fs[2]
	}
	rs.Weight = int32(w)
	active, ok := parseInt(fs[3])
	if !ok || active < -1<<31 || active > 1<<32-1 {
		return rs, "bad active connection count", fs[3]
	}
	inactive, ok := parseInt(fs[4])
	if !ok || inactive < -1<<31 || inactive > 1<<32-1 {
		return rs, "bad inactive connection count", fs[4]
	}
	// The kernel prints the atomic counters with %d; a transiently
	// negative count reads as zero.
	rs.ActiveConns = uint32(max(active, 0))
	rs.InactiveConns = uint32(max(inactive, 0))
	return rs, "", nil
}

// parseProcAddrPort parses "0A000064:0050" or "[%pI6]:0050".
func parseProcAddrPort(b []byte) (netip.AddrPort, bool) {
	if len(b) > 0 && b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 0 || end+1 >= len(b) || b[end+1] != ':' {
			return netip.AddrPort{}, false
		}
		a, ok := parseAddr6(b[1:end])
		if !ok {
			return netip.AddrPort{}, false
		}
		p, ok := parseHexN(b[end+2:], 4)
		return netip.AddrPortFrom(a, uint16(p)), ok
	}
	if len(b) != 13 || b[8] != ':' {
		return netip.AddrPort{}, false
	}
	a, ok := parseHexAddr4(b[:8])
	if !ok {
		return netip.AddrPort{}, false
	}
	p, ok := parseHexN(b[9:], 4)
	return netip.AddrPortFrom(a, uint16(p)), ok
}

// finishServices sets what needs the whole service: a fwmark service's
// family, guessed from its real servers (the file does not print it),
// and the persistence prefix, which depends on the family. It returns a
// message and the index of a bad service.
func finishServices(svcs []ServiceEntry) (string, int) {
	for i := range svcs {
		s := &svcs[i]
		if s.IsFWMark() && len(s.RealServers) > 0 {
			s.Family = FamilyOf(s.RealServers[0].Address)
		}
		if s.Persistent() {
			n, ok := persistenceBits(s.Family, s.mask)
			if !ok {
				return "persistence netmask " + strings.ToUpper(strconv.FormatUint(uint64(s.mask), 16)) +
					" is not a prefix for " + s.Family.String(), i
			}
			s.NetmaskBits = n
		}
	}
	return "", 0
}
