package ipvs

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// ConnGroup is what Aggregate counts connection-table entries by: the
// service, the real server and the state.
//
// Service is built from the entry: protocol, virtual address and port
// (the connection table does not say which fwmark service an ordinary
// entry belongs to), or the family and mark of a fwmark template.
type ConnGroup struct {
	Service    ServiceKey
	RealServer RealServerKey
	State      ConnState
	Template   bool
}

// ProtocolState is what Aggregate counts entries by across services.
type ProtocolState struct {
	Protocol Protocol
	State    ConnState
	Template bool
}

// ConnSummary counts the entries of a connection table.
type ConnSummary struct {
	Entries   int // every entry, templates included
	Templates int
	Groups    map[ConnGroup]int
	ByState   map[ProtocolState]int
}

// NewConnSummary returns an empty summary.
func NewConnSummary() *ConnSummary {
	return &ConnSummary{Groups: map[ConnGroup]int{}, ByState: map[ProtocolState]int{}}
}

// Add counts one entry.
func (s *ConnSummary) Add(c *Connection) {
	s.Entries++
	if c.Template {
		s.Templates++
	}
	s.Groups[groupOf(c)]++
	s.ByState[ProtocolState{Protocol: c.Protocol, State: c.State, Template: c.Template}]++
}

func groupOf(c *Connection) ConnGroup {
	g := ConnGroup{
		RealServer: RealServerKey{Address: c.RealServer.Addr(), Port: c.RealServer.Port()},
		State:      c.State,
		Template:   c.Template,
	}
	fam := FamilyOf(c.Client.Addr())
	if c.FWMark != 0 {
		g.Service = ServiceKey{Family: fam, FWMark: c.FWMark}
	} else {
		g.Service = ServiceKey{Family: fam, Protocol: c.Protocol, Address: c.Virtual.Addr(), Port: c.Virtual.Port()}
	}
	return g
}

// ConnGroupCount is one row of SortedGroups.
type ConnGroupCount struct {
	ConnGroup
	Count int
}

// SortedGroups returns the groups ordered by service, real server,
// templates last, then state.
func (s *ConnSummary) SortedGroups() []ConnGroupCount {
	out := make([]ConnGroupCount, 0, len(s.Groups))
	for g, n := range s.Groups {
		out = append(out, ConnGroupCount{ConnGroup: g, Count: n})
	}
	slices.SortFunc(out, func(a, b ConnGroupCount) int {
		if a.Service != b.Service {
			if a.Service.Less(b.Service) {
				return -1
			}
			return 1
		}
		if c := a.RealServer.Address.Compare(b.RealServer.Address); c != 0 {
			return c
		}
		if c := cmp.Compare(a.RealServer.Port, b.RealServer.Port); c != 0 {
			return c
		}
		if a.Template != b.Template {
			if a.Template {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.State, b.State)
	})
	return out
}

// Aggregate reads /proc/net/ip_vs_conn from r and counts its entries per
// (service, real server, state) and per (protocol, state). It keeps only
// the counts and a few 1 MiB chunks of input, whatever the size of the
// table, and parses the chunks on every CPU. When r is a regular file of
// a few MiB or more (a saved table), it maps the file instead of reading
// it, and lets go of the pages it has parsed as it goes.
func Aggregate(r io.Reader) (*ConnSummary, error) {
	return aggregate(r, "ip_vs_conn")
}

// AggregateFile aggregates root/proc/net/ip_vs_conn.
func AggregateFile(root string) (*ConnSummary, error) {
	f, path, err := openProc(root, ProcConn)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := aggregate(f, path)
	return s, err
}

// aggKey is a ConnGroup before it is built: raw addresses and the rest
// packed in a word, so that hashing and comparing it is cheap.
type aggKey struct {
	vhi, vlo, dhi, dlo uint64
	meta               uint64 // vport<<48 | dport<<32 | proto<<16 | state<<8 | aggFlags
}

const (
	aggVirtual6 = 1 << iota // the virtual (and client) address is IPv6
	aggReal6                // the real server's address is IPv6
	aggTemplate
)

func (rc *rawConn) aggKey() aggKey {
	meta := uint64(rc.vport)<<48 | uint64(rc.dport)<<32 | uint64(rc.proto)<<16 | uint64(rc.state)<<8
	if rc.vaddr.v6 {
		meta |= aggVirtual6
	}
	if rc.daddr.v6 {
		meta |= aggReal6
	}
	if rc.template() {
		meta |= aggTemplate
	}
	return aggKey{vhi: rc.vaddr.hi, vlo: rc.vaddr.lo, dhi: rc.daddr.hi, dlo: rc.daddr.lo, meta: meta}
}

func (k aggKey) proto() Protocol  { return Protocol(k.meta >> 16) }
func (k aggKey) state() ConnState { return ConnState(k.meta >> 8) }
func (k aggKey) template() bool   { return k.meta&aggTemplate != 0 }

func (k aggKey) group() ConnGroup {
	vaddr := rawAddr{hi: k.vhi, lo: k.vlo, v6: k.meta&aggVirtual6 != 0}
	daddr := rawAddr{hi: k.dhi, lo: k.dlo, v6: k.meta&aggReal6 != 0}
	vport := uint16(k.meta >> 48)
	rc := rawConn{vaddr: vaddr, vport: vport, proto: k.proto(), state: k.state(), cport: 1}
	if k.template() {
		rc.cport = 0
	}
	g := ConnGroup{
		RealServer: RealServerKey{Address: daddr.addr(), Port: uint16(k.meta >> 32)},
		State:      k.state(),
		Template:   k.template(),
	}
	fam := IPv4
	if vaddr.v6 {
		fam = IPv6
	}
	if mark := rc.fwmark(); mark != 0 {
		g.Service = ServiceKey{Family: fam, FWMark: mark}
	} else {
		g.Service = ServiceKey{Family: fam, Protocol: k.proto(), Address: vaddr.addr(), Port: vport}
	}
	return g
}

// countTable counts aggKeys: open addressing with linear probing. A
// table has a few thousand groups at most, so it stays in cache; this
// is several times cheaper per line than a Go map with a struct key.
type countTable struct {
	keys   []aggKey
	counts []int // 0: empty slot
	n      int
}

func newCountTable() *countTable {
	return &countTable{keys: make([]aggKey, 64), counts: make([]int, 64)}
}

func (k *aggKey) hash() uint64 {
	const m = 0x9e3779b97f4a7c15
	h := (k.vlo ^ k.vhi*m) * m
	h = (h ^ k.dlo ^ k.dhi*m) * m
	h = (h ^ k.meta) * m
	return h ^ h>>29
}

func (t *countTable) add(k *aggKey, n int) {
	mask := uint64(len(t.keys) - 1)
	for i := k.hash() & mask; ; i = (i + 1) & mask {
		if t.counts[i] == 0 {
			t.keys[i], t.counts[i] = *k, n
			t.n++
			if 2*t.n > len(t.keys) {
				t.grow()
			}
			return
		}
		if t.keys[i] == *k {
			t.counts[i] += n
			return
		}
	}
}

// reserve makes room for n more keys at once, where adding them would
// grow the table step by step, each step a fresh allocation.
func (t *countTable) reserve(n int) {
	size := len(t.keys)
	for 2*(t.n+n) > size {
		size *= 2
	}
	if size != len(t.keys) {
		t.resize(size)
	}
}

func (t *countTable) grow() { t.resize(2 * len(t.keys)) }

func (t *countTable) resize(size int) {
	old, oldCounts := t.keys, t.counts
	t.keys, t.counts, t.n = make([]aggKey, size), make([]int, size), 0
	for i, n := range oldCounts {
		if n != 0 {
			t.add(&old[i], n)
		}
	}
}

const aggChunkSize = 1 << 20

// aggChunk is a run of whole lines and where it sits in the input.
type aggChunk struct {
	seq  int
	data []byte
	buf  *[]byte // returned to the pool when parsed
}

// aggResult is what a worker found in one chunk.
type aggResult struct {
	seq    int
	lines  int    // lines in the chunk, or up to the bad one
	errMsg string // a malformed line, at lines
	errBad []byte
}

// chunkPool holds the 1 MiB buffers of chunks, across calls.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, aggChunkSize); return &b }}

func aggregate(r io.Reader, file string) (*ConnSummary, error) {
	if f, ok := r.(*os.File); ok {
		if s, ok, err := aggregateMapped(f, file); ok {
			return s, err
		}
	}
	cr := chunkReader{r: r, file: file}
	first, ok, err := cr.next()
	if err != nil || !ok {
		if err != nil {
			return nil, err
		}
		return NewConnSummary(), nil
	}
	if cr.eof {
		return aggregateOneChunk(first, file)
	}
	return aggregateChunks(&cr, first, file)
}

// aggregateOneChunk counts a table read in one chunk, as a live table
// mostly is: no goroutines.
func aggregateOneChunk(first aggChunk, file string) (*ConnSummary, error) {
	t, cache := newCountTable(), newGroupCache()
	res := countChunk(first, cache, t)
	chunkPool.Put(first.buf)
	cache.flush(t)
	if err := firstChunkError(file, []aggResult{res}); err != nil {
		return nil, err
	}
	return summarize([]*countTable{t}), nil
}

// aggregateChunks counts the chunks of cr, first the first, on a worker
// per CPU while they are read.
func aggregateChunks(cr *chunkReader, first aggChunk, file string) (*ConnSummary, error) {
	workers := max(1, runtime.GOMAXPROCS(0))
	chunks := make(chan aggChunk, workers)
	results := make(chan aggResult, workers)
	// firstBad is the lowest chunk with a malformed line: later chunks
	// need not be parsed, earlier ones must be, to find the first error.
	var firstBad atomic.Int64
	firstBad.Store(math.MaxInt64)

	tables := make([]*countTable, workers)
	var wg sync.WaitGroup
	for w := range workers {
		tables[w] = newCountTable()
		wg.Go(func() {
			cache := newGroupCache()
			defer cache.flush(tables[w])
			for ch := range chunks {
				if int64(ch.seq) < firstBad.Load() {
					res := countChunk(ch, cache, tables[w])
					if res.errMsg != "" {
						lowerTo(&firstBad, int64(ch.seq))
					}
					results <- res
				}
				chunkPool.Put(ch.buf)
			}
		})
	}

	// Collect results while the input is read.
	var (
		collected []aggResult
		collectWG sync.WaitGroup
	)
	collectWG.Go(func() {
		for res := range results {
			collected = append(collected, res)
		}
	})

	var readErr error
	ok := true
	for ch := first; ok; ch, ok, readErr = cr.next() {
		if int64(ch.seq) > firstBad.Load() {
			chunkPool.Put(ch.buf)
			break
		}
		chunks <- ch
	}
	close(chunks)
	wg.Wait()
	close(results)
	collectWG.Wait()
	if readErr != nil {
		return nil, readErr
	}
	if err := firstChunkError(file, collected); err != nil {
		return nil, err
	}
	return summarize(tables), nil
}

// summarize builds the summary from the workers' counts. It merges them
// first, so that each group is built and hashed into the map once.
func summarize(tables []*countTable) *ConnSummary {
	all := tables[0]
	for _, t := range tables[1:] {
		// Workers mostly see the same groups: no reserve(t.n) here, which
		// would double a table that needs no more room.
		for i, n := range t.counts {
			if n != 0 {
				all.add(&t.keys[i], n)
			}
		}
	}
	s := &ConnSummary{Groups: make(map[ConnGroup]int, all.n), ByState: map[ProtocolState]int{}}
	for i, n := range all.counts {
		if n == 0 {
			continue
		}
		k := &all.keys[i]
		s.Groups[k.group()] += n
		s.ByState[ProtocolState{Protocol: k.proto(), State: k.state(), Template: k.template()}] += n
		s.Entries += n
		if k.template() {
			s.Templates += n
		}
	}
	return s
}

// chunkReader reads r into pooled buffers and cuts them after the last
// newline: each chunk holds whole lines.
type chunkReader struct {
	r     io.Reader
	file  string
	carry []byte // the start of a line cut by the last chunk
	seq   int
	eof   bool
}

// next returns the next chunk, or false at the end of the input.
func (cr *chunkReader) next() (aggChunk, bool, error) {
	for !cr.eof {
		bp := chunkPool.Get().(*[]byte)
		buf := *bp
		n := copy(buf, cr.carry)
		m, err := io.ReadFull(cr.r, buf[n:])
		m += n
		cr.eof = errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !cr.eof {
			chunkPool.Put(bp)
			return aggChunk{}, false, fmt.Errorf("reading %s: %w", cr.file, err)
		}
		end := m
		if !cr.eof {
			end = bytes.LastIndexByte(buf[:m], '\n') + 1
			if end == 0 {
				chunkPool.Put(bp)
				return aggChunk{}, false, fmt.Errorf("reading %s: a line is longer than %d bytes", cr.file, len(buf))
			}
		}
		cr.carry = append(cr.carry[:0], buf[end:m]...)
		if end == 0 {
			chunkPool.Put(bp)
			continue
		}
		ch := aggChunk{seq: cr.seq, data: buf[:end], buf: bp}
		cr.seq++
		return ch, true, nil
	}
	return aggChunk{}, false, nil
}

// countChunk parses the lines of one chunk into counts.
func countChunk(ch aggChunk, cache *groupCache, counts *countTable) aggResult {
	var rc rawConn
	data := ch.data
	res := aggResult{seq: ch.seq}
	if ch.seq == 0 && len(data) > 0 { // the header, or the first entry
		i := bytes.IndexByte(data, '\n') + 1
		if i == 0 {
			i = len(data)
		}
		if !countLine(data[:i], &res, ch.seq, cache, counts, &rc) {
			return res
		}
		data = data[i:]
	}
	for len(data) > 0 {
		if n, lines := cache.fixed.countRun(data, &rc, math.MaxInt); lines > 0 {
			data = data[n:]
			res.lines += lines
			continue
		}
		i := bytes.IndexByte(data, '\n') + 1
		if i == 0 {
			i = len(data)
		}
		if !countLine(data[:i], &res, ch.seq, cache, counts, &rc) {
			return res
		}
		data = data[i:]
	}
	return res
}

// countLine counts one line, with or without its newline, the general
// way; it reports false, with the error in res, if the line is malformed.
func countLine(line []byte, res *aggResult, seq int, cache *groupCache, counts *countTable, rc *rawConn) bool {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	res.lines++
	line = trimCR(line)
	if skipConnLine(line, res.lines+seq) { // the header is line 1 of chunk 0
		return true
	}
	if len(line) > maxProcLineLength {
		res.errMsg = fmt.Sprintf("line longer than %d bytes", maxProcLineLength)
		return false
	}
	if cache.countLine(line, rc) {
		return true
	}
	if msg, bad := rc.parse(line, formatConn, false); msg != "" {
		res.errMsg = msg
		res.errBad = bytes.Clone(bad)
		return false
	}
	k := rc.aggKey()
	counts.add(&k, 1)
	return true
}

// lowerTo stores v in x if it is lower than x's value.
func lowerTo(x *atomic.Int64, v int64) {
	for {
		old := x.Load()
		if v >= old || x.CompareAndSwap(old, v) {
			return
		}
	}
}

// firstChunkError turns the earliest malformed line into a ParseError
// with its line number in the whole input. Every chunk before the first
// bad one was parsed, so their line counts are all there.
func firstChunkError(file string, results []aggResult) error {
	slices.SortFunc(results, func(a, b aggResult) int { return cmp.Compare(a.seq, b.seq) })
	line := 0
	for i, res := range results {
		if res.seq != i {
			return fmt.Errorf("aggregating %s: chunk %d was not parsed", file, i) // a bug
		}
		line += res.lines
		if res.errMsg != "" {
			if res.errBad == nil {
				return parseErr(file, line, "%s", res.errMsg)
			}
			return connLineErr(file, line, res.errMsg, res.errBad)
		}
	}
	return nil
}
