package tui

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/lvskit/lvskit/director/ipvs"
)

// SaveOptions say where Save writes.
type SaveOptions struct {
	// Dir is the existing directory the tree is created in.
	Dir string
	// Name is the new directory's name; default
	// lvstop-DIRECTOR-20060102T150405Z.
	Name string
}

// Save writes a frame as a /proc tree that lvstop --proc replays:
// NAME/proc/net/ip_vs (services and real servers, in the kernel's
// format), ip_vs_stats, ip_vs_conn (copied from conns, read now: the
// table as it is at save time) and NAME/lvstop.json (the --output json
// report, with the counters, health and VRRP state /proc cannot hold).
//
// It creates a new directory (mode 0700) and files (mode 0600) with
// O_EXCL, under an os.Root so nothing is written through a symlink or
// outside Dir, and refuses to reuse a name. It returns the new
// directory's path.
func Save(f *Frame, conns io.Reader, opts SaveOptions) (string, error) {
	name := opts.Name
	if name == "" {
		host := f.Snap.Director
		if host == "" {
			host = "director"
		}
		name = "lvstop-" + safeName(host) + "-" + f.Snap.Taken.UTC().Format("20060102T150405Z")
	}
	if name != path.Base(name) || name == "." || name == ".." {
		return "", fmt.Errorf("saving a snapshot: %q is not a plain directory name", name)
	}
	root, err := os.OpenRoot(opts.Dir)
	if err != nil {
		return "", fmt.Errorf("saving a snapshot: %w", err)
	}
	defer root.Close()
	full := path.Join(opts.Dir, name)
	if abs, err := filepath.Abs(full); err == nil {
		full = abs // the message tells a person where to look
	}
	for _, d := range []string{name, name + "/proc", name + "/proc/net"} {
		if err := root.Mkdir(d, 0o700); err != nil {
			return "", fmt.Errorf("saving a snapshot to %s: %w", full, err)
		}
	}
	write := func(rel string, fill func(w *bufio.Writer) error) error {
		file, err := root.OpenFile(name+"/"+rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
		if err != nil {
			return fmt.Errorf("saving a snapshot: %w", err)
		}
		w := bufio.NewWriterSize(file, 64<<10)
		err = fill(w)
		if err == nil {
			err = w.Flush()
		}
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("saving a snapshot: writing %s: %w", path.Join(full, rel), err)
		}
		return nil
	}
	if err := write("proc/net/ip_vs", func(w *bufio.Writer) error { return WriteProcServices(w, f.Snap) }); err != nil {
		return "", err
	}
	if f.Snap.HaveTotals || hasCounters(f.Snap) {
		if err := write("proc/net/ip_vs_stats", func(w *bufio.Writer) error { return WriteProcStats(w, f.Totals) }); err != nil {
			return "", err
		}
	}
	if conns != nil {
		if err := write("proc/net/ip_vs_conn", func(w *bufio.Writer) error { _, err := io.Copy(w, conns); return err }); err != nil {
			return "", err
		}
	}
	if err := write("lvstop.json", func(w *bufio.Writer) error { return WriteJSON(w, f) }); err != nil {
		return "", err
	}
	return full, nil
}

// safeName keeps letters, digits, dots and dashes of a host name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// WriteProcServices writes the snapshot's services as /proc/net/ip_vs
// does, through ipvs.WriteServiceTable (the one writer of that format):
// hex addresses and ports, the persistence timeout in jiffies at
// ipvs.ProcHZ.
func WriteProcServices(w io.Writer, s *Snapshot) error {
	t := ipvs.ServiceTable{Info: s.Info, Services: make([]ipvs.ServiceEntry, len(s.Services))}
	if !s.HaveInfo {
		t.Info = ipvs.Info{Version: 0x010201, ConnTableSize: 4096}
	}
	for i := range s.Services {
		svc := &s.Services[i]
		e := &t.Services[i]
		e.Service = svc.Service
		e.RealServers = make([]ipvs.RealServer, len(svc.RealServers))
		for j := range svc.RealServers {
			e.RealServers[j] = svc.RealServers[j].RealServer
		}
	}
	return ipvs.WriteServiceTable(w, t)
}

// WriteProcStats writes totals as /proc/net/ip_vs_stats does.
func WriteProcStats(w io.Writer, t ipvs.Stats) error {
	_, err := fmt.Fprintf(w, "   Total Incoming Outgoing         Incoming         Outgoing\n"+
		"   Conns  Packets  Packets            Bytes            Bytes\n"+
		"%8X %8X %8X %16X %16X\n\n"+
		" Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n"+
		"%8X %8X %8X %16X %16X\n",
		t.Conns, t.PacketsIn, t.PacketsOut, t.BytesIn, t.BytesOut,
		t.CPS, t.PPSIn, t.PPSOut, t.BPSIn, t.BPSOut)
	return err
}

// readSavedReport reads the lvstop.json a saved tree may hold, to put
// back what /proc cannot hold; fs.ErrNotExist when it has none.
func readSavedReport(dir string) (Report, error) {
	var r Report
	b, err := os.ReadFile(path.Join(dir, "lvstop.json"))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path.Join(dir, "lvstop.json"), err)
	}
	return r, nil
}

// mergeSavedReport puts back what a saved tree's lvstop.json holds and
// /proc cannot: counters and rates, lvsd's names and health, VRRP.
func mergeSavedReport(s *Snapshot, r Report) {
	if s.Director == "" {
		s.Director = r.Director
	}
	s.VRRP = r.VRRP
	s.BGP = r.BGP
	for _, rs := range r.Services {
		key, err := ipvs.ParseServiceKey(rs.Key)
		if err != nil {
			continue
		}
		svc := s.FindService(key)
		if svc == nil {
			continue
		}
		svc.Name = rs.Name
		if rs.Stats != nil {
			svc.Stats, svc.HasCounters = rs.Stats.stats(), true
		}
		for _, rr := range rs.RealServers {
			for i := range svc.RealServers {
				r := &svc.RealServers[i]
				if r.Address.String() != rr.Address || r.Port != rr.Port {
					continue
				}
				if rr.Stats != nil {
					r.Stats = rr.Stats.stats()
				}
				r.PersistentConns = rr.PersistentConns
				r.Health, r.Why = rr.Health, rr.Why
				if rr.Health != "" {
					s.HaveHealth = true
				}
			}
		}
	}
}

func (r *ReportStats) stats() ipvs.Stats {
	return ipvs.Stats{Conns: r.Conns, PacketsIn: r.PacketsIn, PacketsOut: r.PacketsOut, BytesIn: r.BytesIn, BytesOut: r.BytesOut,
		CPS: r.CPS, PPSIn: r.PPSIn, PPSOut: r.PPSOut, BPSIn: r.BPSIn, BPSOut: r.BPSOut}
}
