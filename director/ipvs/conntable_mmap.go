package ipvs

import (
	"bytes"
	"cmp"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
)

// aggMapMin is the smallest file Aggregate maps rather than reads: below
// it, mapping costs more than it saves.
const aggMapMin = 4 * aggChunkSize

// aggregateMapped aggregates a regular file by mapping it, which spares
// copying it (a saved table of a million entries is 80 MB): each worker
// takes the next chunk's number and finds the chunk's lines itself. It
// reports false, having read nothing, for a file it does not map:
// /proc files (they have no size), small files, other systems; or, once
// it has read it all, when the file changed size meanwhile, for the
// caller to read it from the start.
func aggregateMapped(f *os.File, file string) (*ConnSummary, bool, error) {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() < aggMapMin {
		return nil, false, nil
	}
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil || st.Size()-off < aggMapMin {
		return nil, false, nil
	}
	mapped, unmap, ok := mapFile(f, st.Size())
	if !ok {
		return nil, false, nil
	}
	defer unmap()
	if aggMappedHook != nil {
		aggMappedHook()
	}
	results, tables, faulted := countMapped(mapped[off:])
	if faulted {
		return nil, false, nil
	}
	// Whatever was appended since it was stat'ed is read too, as reading
	// to the end would: then, or if it changed otherwise, read it all.
	var probe [1]byte
	if n, _ := f.ReadAt(probe[:], st.Size()); n > 0 {
		return nil, false, nil
	}
	if st2, err := f.Stat(); err != nil || st2.Size() != st.Size() || !st2.ModTime().Equal(st.ModTime()) {
		return nil, false, nil
	}
	f.Seek(st.Size(), io.SeekStart) // where reading to the end leaves it
	slices.SortFunc(results, func(a, b aggResult) int { return cmp.Compare(a.seq, b.seq) })
	if err := firstChunkError(file, results); err != nil {
		return nil, true, err
	}
	return summarize(tables), true, nil
}

// countMapped counts the chunks of a mapped file on a worker per CPU (at
// most one per chunk), each taking the next chunk until none is left or
// one before it was malformed. faulted says a page of the file was gone
// (it shrank under the mapping): the counts are then not to be used.
func countMapped(data []byte) (results []aggResult, tables []*countTable, faulted bool) {
	chunks := (len(data) + aggChunkSize - 1) / aggChunkSize
	workers := min(chunks, max(1, runtime.GOMAXPROCS(0)))
	var (
		next     atomic.Int64 // the next chunk to take
		firstBad atomic.Int64 // the lowest chunk with a malformed line
		fault    atomic.Bool  // the file shrank under the mapping
		mu       sync.Mutex
		wg       sync.WaitGroup
	)
	results = make([]aggResult, 0, chunks)
	tables = make([]*countTable, workers)
	firstBad.Store(math.MaxInt64)
	for w := range workers {
		tables[w] = newCountTable()
		wg.Go(func() {
			cache := newGroupCache()
			defer cache.flush(tables[w])
			// A page of the file that is no longer there faults: recover
			// from it, and let the caller read the file instead.
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(interface{ Addr() uintptr }); !ok {
						panic(r)
					}
					fault.Store(true)
				}
			}()
			for {
				seq := int(next.Add(1) - 1)
				if seq >= chunks || int64(seq) > firstBad.Load() || fault.Load() {
					return
				}
				ch := aggChunk{seq: seq, data: data[chunkStart(data, seq):chunkStart(data, seq+1)]}
				res := countChunk(ch, cache, tables[w])
				if (seq+1)%aggReleaseEvery == 0 {
					// Let go of the last few chunks' pages, read by now (or
					// being read: they fault back in).
					releasePages(data[(seq+1-aggReleaseEvery)*aggChunkSize : min(len(data), (seq+1)*aggChunkSize)])
				}
				if res.errMsg != "" {
					lowerTo(&firstBad, int64(seq))
				}
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return results, tables, fault.Load()
}

// aggReleaseEvery is how many chunks of a mapped file are read before
// their pages are let go of: RSS stays at a few of them, where keeping
// the whole file mapped counted all of it, and one madvise (and its TLB
// flush on every CPU) per chunk cost more than it was worth.
const aggReleaseEvery = 8

// aggMappedHook, when set by a test, runs once the file is mapped.
var aggMappedHook func()

// chunkStart returns where chunk seq's lines start: chunk seq holds the
// lines that start in data[seq*aggChunkSize:(seq+1)*aggChunkSize].
func chunkStart(data []byte, seq int) int {
	at := seq * aggChunkSize
	if at == 0 {
		return 0
	}
	if at >= len(data) {
		return len(data)
	}
	i := bytes.IndexByte(data[at-1:], '\n')
	if i < 0 {
		return len(data)
	}
	return at + i
}
