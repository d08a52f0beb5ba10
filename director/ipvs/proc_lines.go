package ipvs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// lineReader hands out the lines of a reader as slices of its own buffer,
// valid until the next call. Unlike bufio.Scanner it reports a too-long
// line with its number.
type lineReader struct {
	r          io.Reader
	file       string
	buf        []byte
	start, end int
	line       int // number of the line last returned
	eof        bool
	err        error
}

func newLineReader(r io.Reader, file string, size int) *lineReader {
	return &lineReader{r: r, file: file, buf: make([]byte, size)}
}

// next returns the next line without its newline, or false at the end
// of input or on an error (see lr.err).
func (lr *lineReader) next() ([]byte, bool) {
	for {
		if i := bytes.IndexByte(lr.buf[lr.start:lr.end], '\n'); i >= 0 {
			if i > maxProcLineLength {
				lr.err = parseErr(lr.file, lr.line+1, "line longer than %d bytes", maxProcLineLength)
				return nil, false
			}
			l := lr.buf[lr.start : lr.start+i]
			lr.start += i + 1
			lr.line++
			return trimCR(l), true
		}
		if lr.eof || lr.err != nil {
			if lr.start < lr.end && lr.err == nil {
				if lr.end-lr.start > maxProcLineLength {
					lr.err = parseErr(lr.file, lr.line+1, "line longer than %d bytes", maxProcLineLength)
					return nil, false
				}
				l := lr.buf[lr.start:lr.end]
				lr.start = lr.end
				lr.line++
				return trimCR(l), true
			}
			return nil, false
		}
		lr.fill()
	}
}

func (lr *lineReader) fill() {
	if lr.start > 0 {
		n := copy(lr.buf, lr.buf[lr.start:lr.end])
		lr.start, lr.end = 0, n
	}
	if lr.end == len(lr.buf) {
		if len(lr.buf) >= maxProcLineLength {
			lr.err = parseErr(lr.file, lr.line+1, "line longer than %d bytes", maxProcLineLength)
			return
		}
		nb := make([]byte, min(2*len(lr.buf), maxProcLineLength))
		copy(nb, lr.buf[:lr.end])
		lr.buf = nb
	}
	n, err := lr.r.Read(lr.buf[lr.end:])
	lr.end += n
	if err != nil {
		if errors.Is(err, io.EOF) {
			lr.eof = true
		} else {
			lr.err = fmt.Errorf("reading %s after line %d: %w", lr.file, lr.line, err)
		}
	}
}
