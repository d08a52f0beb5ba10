package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/lvskit/lvskit/director/ipvs"
)

// Source produces snapshots of a director.
type Source interface {
	// Collect takes one snapshot; q says which page of the connection
	// table to include (none when q.Limit is 0). Collect must be safe to
	// call from a goroutine other than the UI's, one call at a time.
	Collect(ctx context.Context, q ConnQuery) (*Snapshot, error)
	// OpenConnTable opens the raw /proc/net/ip_vs_conn, for saving a
	// snapshot; fs.ErrNotExist when the source has no table.
	OpenConnTable() (io.ReadCloser, error)
	// String names the source for the header: "kernel", a directory, a URL.
	String() string
}

// ProcFiles finds the IPVS files of a /proc tree. Dir is either a root
// that holds proc/net/ip_vs* (what the save key writes, and "/" for the
// running system) or a proc directory itself (holding net/ip_vs*).
type ProcFiles struct {
	Dir string
}

func (p ProcFiles) path(name string) string {
	if _, err := os.Stat(filepath.Join(p.Dir, "net", "ip_vs")); err == nil {
		return filepath.Join(p.Dir, "net", name)
	}
	// The files copied flat into a directory (cp /proc/net/ip_vs* DIR).
	if _, err := os.Stat(filepath.Join(p.Dir, "ip_vs")); err == nil {
		return filepath.Join(p.Dir, name)
	}
	return filepath.Join(p.Dir, "proc", "net", name)
}

// Open opens one of the files, by base name ("ip_vs_conn"). A missing
// file wraps ErrIPVSUnavailable and fs.ErrNotExist, as ipvs's readers do.
func (p ProcFiles) Open(name string) (*os.File, string, error) {
	path := p.path(name)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, path, fmt.Errorf("%w: %w", ipvs.ErrIPVSUnavailable, err)
		}
		return nil, path, fmt.Errorf("reading IPVS state: %w", err)
	}
	return f, path, nil
}

func (p ProcFiles) serviceTable() (ipvs.ServiceTable, error) {
	f, path, err := p.Open("ip_vs")
	if err != nil {
		return ipvs.ServiceTable{}, err
	}
	defer f.Close()
	t, err := ipvs.ParseServiceTable(f)
	if err != nil {
		return t, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func (p ProcFiles) stats() (ipvs.Stats, error) {
	f, path, err := p.Open("ip_vs_stats")
	if err != nil {
		return ipvs.Stats{}, err
	}
	defer f.Close()
	st, err := ipvs.ParseStats(f)
	if err != nil {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// conns aggregates the connection table and, when q asks, pages it.
func (p ProcFiles) conns(s *Snapshot, q ConnQuery) error {
	f, path, err := p.Open("ip_vs_conn")
	if err != nil {
		return err
	}
	defer f.Close()
	sum, err := ipvs.Aggregate(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	attachConnSummary(s, sum)
	if q.Limit == 0 {
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		// /proc files seek back to the start; a pipe would not.
		f.Close()
		if f, path, err = p.Open("ip_vs_conn"); err != nil {
			return err
		}
		defer f.Close()
	}
	page, err := QueryConns(f, q)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	s.Conns = page
	return nil
}

// ProcSource replays a saved /proc tree: the services of
// /proc/net/ip_vs (which has no counters), the totals of ip_vs_stats and
// the connection table. Each Collect reads the files again, so a tree
// being rewritten shows its changes.
type ProcSource struct {
	Files ProcFiles
	Clock func() time.Time
}

// NewProcSource replays the tree at dir, and checks that it holds the
// IPVS files.
func NewProcSource(dir string) (*ProcSource, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("--proc %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("--proc %s: not a directory: give the directory that holds proc/net/ip_vs (or net/ip_vs, or the ip_vs* files themselves)", dir)
	}
	p := ProcFiles{Dir: dir}
	if _, err := os.Stat(p.path("ip_vs")); err != nil {
		return nil, fmt.Errorf("--proc %s: no IPVS files in it (looked for %s): give the directory that holds proc/net/ip_vs (or net/ip_vs, or the ip_vs* files themselves)", dir, p.path("ip_vs"))
	}
	return &ProcSource{Files: p, Clock: time.Now}, nil
}

func (p *ProcSource) String() string { return p.Files.Dir + " (saved /proc tree)" }

// OpenConnTable opens the tree's ip_vs_conn.
func (p *ProcSource) OpenConnTable() (io.ReadCloser, error) {
	f, _, err := p.Files.Open("ip_vs_conn")
	return f, err
}

// Collect reads the tree.
func (p *ProcSource) Collect(ctx context.Context, q ConnQuery) (*Snapshot, error) {
	s := &Snapshot{Taken: p.Clock(), Source: p.String()}
	t, err := p.Files.serviceTable()
	if err != nil {
		return nil, err
	}
	s.Info, s.HaveInfo = t.Info, true
	for _, e := range t.Services {
		svc := Service{Service: e.Service}
		for _, r := range e.RealServers {
			svc.RealServers = append(svc.RealServers, RealServer{RealServer: r})
		}
		s.Services = append(s.Services, svc)
	}
	sortServices(s.Services)
	if r, err := readSavedReport(p.Files.Dir); err == nil {
		mergeSavedReport(s, r)
	} else if !errors.Is(err, fs.ErrNotExist) {
		s.Warnings = append(s.Warnings, err.Error())
	}
	if st, err := p.Files.stats(); err == nil {
		s.Totals, s.HaveTotals = st, true
	} else {
		s.Warnings = append(s.Warnings, err.Error())
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := p.Files.conns(s, q); err != nil {
		s.Warnings = append(s.Warnings, err.Error())
	}
	return s, nil
}

// KernelSource reads the running kernel: services, real servers,
// counters and rates over netlink (Client), totals and the connection
// table from /proc.
type KernelSource struct {
	Client   ipvs.Client
	Proc     ProcFiles // Dir "/" on a live system
	Director string    // host name for the header
	Clock    func() time.Time
}

func (k *KernelSource) String() string { return "kernel" }

// OpenConnTable opens /proc/net/ip_vs_conn.
func (k *KernelSource) OpenConnTable() (io.ReadCloser, error) {
	f, _, err := k.Proc.Open("ip_vs_conn")
	return f, err
}

// Collect reads the kernel.
func (k *KernelSource) Collect(ctx context.Context, q ConnQuery) (*Snapshot, error) {
	s := &Snapshot{Taken: k.Clock(), Source: k.String(), Director: k.Director}
	info, err := k.Client.Info()
	if err != nil {
		return nil, fmt.Errorf("reading IPVS info: %w", err)
	}
	s.Info, s.HaveInfo = info, true
	svcs, err := k.Client.Services()
	if err != nil {
		return nil, fmt.Errorf("listing virtual services: %w", err)
	}
	for _, v := range svcs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rss, err := k.Client.RealServers(v.ServiceKey)
		if errors.Is(err, ipvs.ErrServiceNotFound) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("listing real servers of %v: %w", v.ServiceKey, err)
		}
		svc := Service{Service: v, HasCounters: true}
		for _, r := range rss {
			svc.RealServers = append(svc.RealServers, RealServer{RealServer: r})
		}
		s.Services = append(s.Services, svc)
	}
	sortServices(s.Services)
	if st, err := k.Proc.stats(); err == nil {
		s.Totals, s.HaveTotals = st, true
	} else {
		s.Warnings = append(s.Warnings, err.Error())
	}
	if err := k.Proc.conns(s, q); err != nil {
		s.Warnings = append(s.Warnings, err.Error())
	}
	return s, nil
}
