package lab

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Capture is a running tcpdump. It writes a pcap file and prints one
// line per packet (-nn -e: numeric, with MAC addresses), which a test can
// wait for.
type Capture struct {
	proc  *Process
	path  string
	lines *outputBuffer
}

// Capture runs tcpdump on the bridge, in the switch namespace, so it
// sees every frame between the lab's hosts. filter is a pcap filter
// expression ("arp", "tcp port 80"); empty captures everything. It
// returns once tcpdump is capturing; teardown stops it.
func (l *Lab) Capture(filter string) *Capture {
	l.t.Helper()
	return l.sw.Capture(BridgeName, filter)
}

// Capture runs tcpdump on a link of this host; see Lab.Capture.
func (h *Host) Capture(dev, filter string) *Capture {
	t := h.lab.t
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatalf("lab: capturing on %s of %s: %v (install Debian's tcpdump package)", dev, h.Name, err)
	}
	c := &Capture{
		path:  filepath.Join(t.TempDir(), h.Name+"-"+dev+".pcap"),
		lines: newOutputBuffer(),
	}
	args := []string{
		"-i", dev, "-nn", "-e", "-l", "-U", "--immediate-mode",
		"-Z", "root", // keep root: the pcap file is in a root-only temp dir
		"-w", c.path, "--print",
	}
	if filter != "" {
		args = append(args, filter)
	}
	p, err := h.start(context.Background(), c.lines, "tcpdump", args...)
	if err != nil {
		t.Fatalf("lab: capturing on %s of %s: %v", dev, h.Name, err)
	}
	c.proc = p
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := p.WaitForOutput(ctx, "listening on "+dev); err != nil {
		t.Fatalf("lab: capturing on %s of %s: %v", dev, h.Name, err)
	}
	return c
}

// WaitFor blocks until a captured packet's line contains substr (for
// example "Reply 10.77.0.100 is-at") and returns that line.
func (c *Capture) WaitFor(ctx context.Context, substr string) (string, error) {
	line, ok := c.lines.waitFor(ctx, substr, c.proc.Done())
	if ok {
		return line, nil
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("waiting for a packet matching %q on %s: %w; captured:\n%s", substr, c.proc.host.Name, err, c.lines.String())
	}
	return "", fmt.Errorf("waiting for a packet matching %q on %s: tcpdump exited (%v); output:\n%s", substr, c.proc.host.Name, c.proc.Err(), c.proc.Output())
}

// Lines returns the lines of the packets captured so far.
func (c *Capture) Lines() []string {
	s := strings.TrimRight(c.lines.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Path is the pcap file tcpdump writes (in a t.TempDir()).
func (c *Capture) Path() string { return c.path }

// Stop ends tcpdump (SIGTERM: it flushes the file) and waits for it.
func (c *Capture) Stop() error { return c.proc.Stop() }
