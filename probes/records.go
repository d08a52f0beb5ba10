package probes

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A record file holds raw ring buffer records as a Tracer read them
// (Options.Record): the header line below, then per record its length
// as a little-endian uint32 and its bytes. Tests decode such files,
// captured from real kernels, instead of hand-written bytes.
const recordsHeader = "lvskit trace records v1\n"

// recordWriter writes a record file; the header goes out before the
// first record.
type recordWriter struct {
	w       io.Writer
	started bool
}

func (rw *recordWriter) write(rec []byte) error {
	if !rw.started {
		if _, err := io.WriteString(rw.w, recordsHeader); err != nil {
			return fmt.Errorf("writing trace records: %w", err)
		}
		rw.started = true
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(rec)))
	if _, err := rw.w.Write(n[:]); err != nil {
		return fmt.Errorf("writing trace records: %w", err)
	}
	if _, err := rw.w.Write(rec); err != nil {
		return fmt.Errorf("writing trace records: %w", err)
	}
	return nil
}

// readRecords reads a record file.
func readRecords(r io.Reader) ([][]byte, error) {
	br := bufio.NewReader(r)
	head := make([]byte, len(recordsHeader))
	if _, err := io.ReadFull(br, head); err != nil || string(head) != recordsHeader {
		return nil, fmt.Errorf("reading trace records: not a record file (want the line %q first)", recordsHeader[:len(recordsHeader)-1])
	}
	var recs [][]byte
	for i := 0; ; i++ {
		var n [4]byte
		if _, err := io.ReadFull(br, n[:]); errors.Is(err, io.EOF) {
			return recs, nil
		} else if err != nil {
			return nil, fmt.Errorf("reading trace records: record %d: %w", i, err)
		}
		size := binary.LittleEndian.Uint32(n[:])
		if size > 1<<16 {
			return nil, fmt.Errorf("reading trace records: record %d: length %d is too large", i, size)
		}
		rec := make([]byte, size)
		if _, err := io.ReadFull(br, rec); err != nil {
			return nil, fmt.Errorf("reading trace records: record %d: %w", i, err)
		}
		recs = append(recs, rec)
	}
}
