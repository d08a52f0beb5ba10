package tui

import (
	"cmp"
	"container/heap"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/lvskit/lvskit/director/ipvs"
)

// ConnColumn is a column of the connection view, to sort by.
type ConnColumn int

// Connection view columns. ConnByKernel keeps the kernel's order.
const (
	ConnByKernel ConnColumn = iota
	ConnByProto
	ConnByState
	ConnByExpires
	ConnByClient
	ConnByVirtual
	ConnByRealServer
	numConnColumns
)

var connColumnNames = [numConnColumns]string{"kernel order", "PRO", "STATE", "EXPIRES", "CLIENT", "VIRTUAL", "REAL SERVER"}

func (c ConnColumn) String() string {
	if c >= 0 && c < numConnColumns {
		return connColumnNames[c]
	}
	return "?"
}

// MaxSortedRows bounds how deep a sorted connection view reaches: a
// sorted page at offset N keeps N rows in memory. Reverse the order to
// see the other end, or filter.
const MaxSortedRows = 200_000

// ConnQuery asks Collect for one page of the connection table.
type ConnQuery struct {
	Filter ConnFilter
	Sort   ConnColumn
	Desc   bool
	Offset int
	Limit  int // 0: no page
}

// ConnPage is one page of the connection table.
type ConnPage struct {
	Query ConnQuery
	Rows  []ipvs.Connection
	// Matched counts the entries the filter matched; Scanned every entry.
	Matched, Scanned int
	// Offset is where Rows start (the query's, clamped).
	Offset int
}

// ConnFilter selects connection-table entries. Every set field must
// match.
type ConnFilter struct {
	Text     string // as typed, for display
	Client   []addrMatch
	Virtual  []addrMatch
	Real     []addrMatch
	Any      []addrMatch // client, virtual or real server
	States   []ipvs.ConnState
	Protos   []ipvs.Protocol
	Template *bool
}

// addrMatch is an address, an address and port, or a prefix.
type addrMatch struct {
	prefix netip.Prefix
	port   uint16 // 0: any
}

func (m addrMatch) match(ap netip.AddrPort) bool {
	return m.prefix.Contains(ap.Addr().Unmap()) && (m.port == 0 || m.port == ap.Port())
}

func parseAddrMatch(s string) (addrMatch, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		a := ap.Addr().Unmap()
		return addrMatch{prefix: netip.PrefixFrom(a, a.BitLen()), port: ap.Port()}, true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return addrMatch{prefix: netip.PrefixFrom(a, a.BitLen())}, true
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return addrMatch{prefix: p.Masked()}, true
	}
	return addrMatch{}, false
}

// ParseConnFilter parses what a person types after "/" in the
// connection view: terms separated by spaces, all of which must match.
//
//	client=10.0.1.0/24   vip=10.0.0.100:80   rs=10.0.2.11
//	state=SYN_RECV       proto=tcp           tmpl=yes (or no)
//
// A bare address, prefix or address:port matches any of the three
// addresses; a bare state or protocol name matches that. Repeating a key
// matches either value.
func ParseConnFilter(s string) (ConnFilter, error) {
	f := ConnFilter{Text: strings.TrimSpace(s)}
	for _, term := range strings.Fields(s) {
		key, val, hasKey := strings.Cut(term, "=")
		if !hasKey {
			key, val = "", term
		}
		key = strings.ToLower(key)
		switch key {
		case "client", "vip", "virtual", "rs", "real", "dest", "":
			if m, ok := parseAddrMatch(val); ok {
				switch key {
				case "client":
					f.Client = append(f.Client, m)
				case "vip", "virtual":
					f.Virtual = append(f.Virtual, m)
				case "rs", "real", "dest":
					f.Real = append(f.Real, m)
				default:
					f.Any = append(f.Any, m)
				}
				continue
			}
			if key != "" {
				return ConnFilter{}, fmt.Errorf("%s=%s: want an address, address:port or prefix", key, val)
			}
			if st, ok := ipvs.ParseConnState(strings.ToUpper(val)); ok {
				f.States = append(f.States, st)
				continue
			}
			if p, err := ipvs.ParseProtocol(val); err == nil {
				f.Protos = append(f.Protos, p)
				continue
			}
			return ConnFilter{}, fmt.Errorf("%q: not an address, state or protocol; keys are client=, vip=, rs=, state=, proto=, tmpl=", val)
		case "state":
			st, ok := ipvs.ParseConnState(strings.ToUpper(val))
			if !ok {
				return ConnFilter{}, fmt.Errorf("state=%s: unknown state (try SYN_RECV, ESTABLISHED, TIME_WAIT)", val)
			}
			f.States = append(f.States, st)
		case "proto":
			if strings.EqualFold(val, "ip") {
				f.Protos = append(f.Protos, ipvs.ProtoIP)
				continue
			}
			p, err := ipvs.ParseProtocol(val)
			if err != nil {
				return ConnFilter{}, fmt.Errorf("proto=%s: %w", val, err)
			}
			f.Protos = append(f.Protos, p)
		case "tmpl", "template":
			var b bool
			switch strings.ToLower(val) {
			case "yes", "y", "true", "1":
				b = true
			case "no", "n", "false", "0":
			default:
				return ConnFilter{}, fmt.Errorf("tmpl=%s: want yes or no", val)
			}
			f.Template = &b
		default:
			return ConnFilter{}, fmt.Errorf("unknown filter key %q: use client=, vip=, rs=, state=, proto= or tmpl=", key)
		}
	}
	return f, nil
}

func anyMatch(ms []addrMatch, ap netip.AddrPort) bool {
	for _, m := range ms {
		if m.match(ap) {
			return true
		}
	}
	return false
}

// Match reports whether the entry passes the filter.
func (f *ConnFilter) Match(c *ipvs.Connection) bool {
	if len(f.Client) > 0 && !anyMatch(f.Client, c.Client) {
		return false
	}
	if len(f.Virtual) > 0 && !anyMatch(f.Virtual, c.Virtual) {
		return false
	}
	if len(f.Real) > 0 && !anyMatch(f.Real, c.RealServer) {
		return false
	}
	if len(f.Any) > 0 && !anyMatch(f.Any, c.Client) && !anyMatch(f.Any, c.Virtual) && !anyMatch(f.Any, c.RealServer) {
		return false
	}
	if len(f.States) > 0 && !slices.Contains(f.States, c.State) {
		return false
	}
	if len(f.Protos) > 0 && !slices.Contains(f.Protos, c.Protocol) {
		return false
	}
	if f.Template != nil && *f.Template != c.Template {
		return false
	}
	return true
}

func compareAddrPort(a, b netip.AddrPort) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Port(), b.Port())
}

// compareConns orders two entries by a column, then by client, virtual
// and real server so that the order is total.
func compareConns(col ConnColumn, a, b *ipvs.Connection) int {
	var c int
	switch col {
	case ConnByProto:
		c = cmp.Compare(ipvs.ProcProtocolName(a.Protocol), ipvs.ProcProtocolName(b.Protocol))
	case ConnByState:
		c = cmp.Compare(a.State.String(), b.State.String())
	case ConnByExpires:
		c = cmp.Compare(a.Expires, b.Expires)
	case ConnByVirtual:
		c = compareAddrPort(a.Virtual, b.Virtual)
		if c == 0 {
			c = cmp.Compare(a.FWMark, b.FWMark)
		}
	case ConnByRealServer:
		c = compareAddrPort(a.RealServer, b.RealServer)
	}
	if c != 0 {
		return c
	}
	if c = compareAddrPort(a.Client, b.Client); c != 0 {
		return c
	}
	if c = compareAddrPort(a.Virtual, b.Virtual); c != 0 {
		return c
	}
	if c = compareAddrPort(a.RealServer, b.RealServer); c != 0 {
		return c
	}
	return cmp.Compare(a.Protocol, b.Protocol)
}

// connHeap keeps the k first entries in the wanted order: its top is the
// last of them, evicted when a better one comes.
type connHeap struct {
	rows []ipvs.Connection
	less func(a, b *ipvs.Connection) bool // a before b in the view
}

func (h *connHeap) Len() int           { return len(h.rows) }
func (h *connHeap) Less(i, j int) bool { return h.less(&h.rows[j], &h.rows[i]) }
func (h *connHeap) Swap(i, j int)      { h.rows[i], h.rows[j] = h.rows[j], h.rows[i] }
func (h *connHeap) Push(x any)         { h.rows = append(h.rows, x.(ipvs.Connection)) }
func (h *connHeap) Pop() any {
	x := h.rows[len(h.rows)-1]
	h.rows = h.rows[:len(h.rows)-1]
	return x
}

// QueryConns reads /proc/net/ip_vs_conn from r and returns the page q
// asks for. It holds the page (and, sorted, the rows before it: at most
// MaxSortedRows), never the whole table.
func QueryConns(r io.Reader, q ConnQuery) (*ConnPage, error) {
	p := &ConnPage{Query: q, Offset: max(0, q.Offset)}
	if q.Limit <= 0 {
		return p, nil
	}
	if q.Sort == ConnByKernel {
		err := ipvs.ScanConnections(r, func(c *ipvs.Connection) error {
			p.Scanned++
			if !q.Filter.Match(c) {
				return nil
			}
			p.Matched++
			if p.Matched > p.Offset && len(p.Rows) < q.Limit {
				p.Rows = append(p.Rows, *c)
			}
			return nil
		})
		p.clampKernelOrder()
		return p, err
	}

	keep := min(p.Offset+q.Limit, MaxSortedRows)
	before := func(a, b *ipvs.Connection) bool {
		c := compareConns(q.Sort, a, b)
		if q.Desc {
			return c > 0
		}
		return c < 0
	}
	h := &connHeap{less: before}
	err := ipvs.ScanConnections(r, func(c *ipvs.Connection) error {
		p.Scanned++
		if !q.Filter.Match(c) {
			return nil
		}
		p.Matched++
		switch {
		case len(h.rows) < keep:
			heap.Push(h, *c)
		case before(c, &h.rows[0]):
			h.rows[0] = *c
			heap.Fix(h, 0)
		}
		return nil
	})
	if err != nil {
		return p, err
	}
	slices.SortFunc(h.rows, func(a, b ipvs.Connection) int {
		if before(&a, &b) {
			return -1
		}
		if before(&b, &a) {
			return 1
		}
		return 0
	})
	if p.Offset >= len(h.rows) {
		p.Offset = max(0, len(h.rows)-q.Limit)
	}
	p.Rows = h.rows[p.Offset:min(len(h.rows), p.Offset+q.Limit)]
	return p, nil
}

// clampKernelOrder moves a page past the end back to the last page: the
// table shrank while the view was scrolled down.
func (p *ConnPage) clampKernelOrder() {
	if len(p.Rows) > 0 || p.Offset == 0 || p.Matched == 0 {
		return
	}
	p.Offset = max(0, p.Matched-p.Query.Limit)
	// the rows are gone: the next query, at the clamped offset, fetches them
}
