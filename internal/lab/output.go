package lab

import (
	"bytes"
	"context"
	"strings"
	"sync"
)

// outputBuffer collects what a background process writes and lets
// waiters block until a given text appears, without polling: every
// Write closes the current notification channel and opens a new one.
type outputBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newOutputBuffer() *outputBuffer {
	return &outputBuffer{changed: make(chan struct{})}
}

// Write appends p and wakes every waiter.
func (b *outputBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, err
}

// String returns everything written so far.
func (b *outputBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor blocks until the output holds a line containing substr and
// returns that line. It gives up when ctx is done or when done is
// closed (the writer has finished) without the text having appeared.
func (b *outputBuffer) waitFor(ctx context.Context, substr string, done <-chan struct{}) (string, bool) {
	for {
		b.mu.Lock()
		line, found := findLine(b.buf.String(), substr)
		changed := b.changed
		b.mu.Unlock()
		if found {
			return line, true
		}
		select {
		case <-changed:
		case <-done:
			// The writer is finished: one last look, since the final
			// write and done may have raced.
			return findLine(b.String(), substr)
		case <-ctx.Done():
			return "", false
		}
	}
}

// findLine returns the first complete or trailing line of s that
// contains substr.
func findLine(s, substr string) (string, bool) {
	for line := range strings.Lines(s) {
		if strings.Contains(line, substr) {
			return strings.TrimRight(line, "\r\n"), true
		}
	}
	return "", false
}
