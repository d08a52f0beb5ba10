package probes

import (
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPipelineRecorded is lvsdiag trace's user-space work per
// event, end to end: the records captured for the DR service on 6.12,
// replayed as many packets one after another, decoded, joined into
// paths and written as JSON lines (what --output json does for every
// traced packet).
func BenchmarkPipelineRecorded(b *testing.B) {
	jw := NewJSONWriter(io.Discard) // as lvsdiag trace --output json keeps one
	pipelineRecorded(b, jw.WritePath)
}

// BenchmarkPipelineRecordedText is BenchmarkPipelineRecorded with the
// paths written as lvsdiag trace's default text output.
func BenchmarkPipelineRecordedText(b *testing.B) {
	tw := NewTextWriter(io.Discard, TextOptions{Location: time.UTC}) // as lvsdiag trace keeps one
	pipelineRecorded(b, tw.WritePath)
}

func pipelineRecorded(b *testing.B, write func(Path) error) {
	recs := records(b, "6.12", "dr")
	d := fixtureDecoder(b, "6.12")
	g := NewGrouper(GrouperOptions{})
	paths := 0
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for i := 0; b.Loop(); i++ {
		for _, r := range recs {
			e, err := d.decode(r)
			if err != nil {
				b.Fatal(err)
			}
			// Each replay is other packets, an hour later.
			e.SKB += uint64(i) << 32
			e.Hop.At += time.Duration(i) * time.Hour
			e.Entry.At += time.Duration(i) * time.Hour
			for _, p := range g.Add(e) {
				if err := write(p); err != nil {
					b.Fatal(err)
				}
				g.Recycle(p) // as Collect does for lvsdiag trace (ReuseHops)
				paths++
			}
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "events/s")
	// The process's CPU time per event (the collector's included): on a
	// host shared with VMs, events/s measures the load as much as the
	// code.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N*len(recs)), "cpu-ns/event")
	if paths == 0 {
		b.Fatal("no paths")
	}
}

// replaySource hands out recorded events again and again, each replay
// other packets an hour later, until it has handed out n.
type replaySource struct {
	evs  []Event
	n, i int
}

var errReplayDone = errors.New("replay done")

func (s *replaySource) Read() (Event, error) {
	if s.i >= s.n {
		return Event{}, errReplayDone
	}
	round, k := s.i/len(s.evs), s.i%len(s.evs)
	s.i++
	e := s.evs[k]
	e.SKB += uint64(round) << 32
	if e.PrevSKB != 0 { // tunnel mode's replaced skb, of the same replay
		e.PrevSKB += uint64(round) << 32
	}
	e.Hop.At += time.Duration(round) * time.Hour
	e.Entry.At += time.Duration(round) * time.Hour
	return e, nil
}

// Buffered: a replay always has its next event at hand, as a tracer's
// ring buffer does under load.
func (s *replaySource) Buffered() bool { return s.i < s.n }

func (s *replaySource) Lost() uint64     { return 0 }
func (s *replaySource) Unseen() []string { return nil }
func (s *replaySource) Close() error     { return nil }

// BenchmarkCollectRecorded is BenchmarkPipelineRecorded's work after
// decoding, through Collect as lvsdiag trace runs it: events handed
// from the reading goroutine to the grouping one, paths written as JSON
// lines. Its figure less the pipeline's is the hand-over's cost. The
// replay says it has more buffered, as a busy tracer does, so events are
// handed over in batches.
func BenchmarkCollectRecorded(b *testing.B) {
	evs := recordedEvents(b)
	jw := NewJSONWriter(io.Discard)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	src := &replaySource{evs: evs, n: b.N}
	sum, err := Collect(context.Background(), src, CollectOptions{ReuseHops: true}, jw.WritePath) // as lvsdiag trace
	if !errors.Is(err, errReplayDone) {
		b.Fatalf("collecting %d events: %v, want the replay's end", b.N, err)
	}
	if b.N > 100 && sum.Packets == 0 {
		b.Fatalf("collecting %d events: no paths", b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// Both goroutines' CPU: a hand-over per event keeps waking them.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/event")
}

// recordedEvents are the records captured for the DR service on 6.12,
// decoded.
func recordedEvents(b *testing.B) []Event {
	d := fixtureDecoder(b, "6.12")
	var evs []Event
	for _, r := range records(b, "6.12", "dr") {
		e, err := d.decode(r)
		if err != nil {
			b.Fatal(err)
		}
		evs = append(evs, e)
	}
	return evs
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWriteRecordedJSON is the JSON writer's part of
// BenchmarkPipelineRecorded alone: the recorded DR paths of 6.12,
// replayed 20 times (each replay other packets an hour later), written
// as JSON lines by one JSONWriter, as lvsdiag trace --output json keeps.
func BenchmarkWriteRecordedJSON(b *testing.B) {
	var n byteCounter
	jw := NewJSONWriter(&n)
	writeRecorded(b, jw.WritePath, &n)
}

// BenchmarkWriteRecordedText is BenchmarkWriteRecordedJSON with
// lvsdiag trace's default text output.
func BenchmarkWriteRecordedText(b *testing.B) {
	var n byteCounter
	tw := NewTextWriter(&n, TextOptions{Location: time.UTC})
	writeRecorded(b, tw.WritePath, &n)
}

// byteCounter is an io.Writer that counts what it is given.
type byteCounter int64

func (c *byteCounter) Write(p []byte) (int, error) {
	*c += byteCounter(len(p))
	return len(p), nil
}

func writeRecorded(b *testing.B, write func(Path) error, written *byteCounter) {
	evs := recordedEvents(b)
	src := &replaySource{evs: evs, n: 20 * len(evs)}
	g := NewGrouper(GrouperOptions{})
	var paths []Path
	for {
		e, err := src.Read()
		if err != nil {
			break
		}
		paths = append(paths, g.Add(e)...)
	}
	paths = append(paths, g.Close()...)
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		for _, p := range paths {
			if err := write(p); err != nil {
				b.Fatal(err)
			}
		}
	}
	// CPU time, not the elapsed time: the host is shared with VMs.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N*len(paths)), "cpu-ns/path")
	// What a packet costs the output (a pipe or a terminal) in bytes.
	b.ReportMetric(float64(*written)/float64(b.N*len(paths)), "B/path")
}
