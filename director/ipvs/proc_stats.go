package ipvs

import (
	"bytes"
	"io"
)

// CPUStats are the counters one CPU holds for IPVS as a whole. Only the
// counters are set: the kernel estimates rates for the total alone.
type CPUStats struct {
	CPU   int
	Stats Stats
}

// PerCPUStats is /proc/net/ip_vs_stats_percpu: the counters of each
// possible CPU, and the total with its rates.
type PerCPUStats struct {
	CPUs  []CPUStats
	Total Stats
}

// ParseStats parses /proc/net/ip_vs_stats: the totals and rates of
// everything IPVS handled in the network namespace.
func ParseStats(r io.Reader) (Stats, error) {
	p, err := parseStatsFile(r, "ip_vs_stats", false)
	return p.Total, err
}

// ReadStats reads root/proc/net/ip_vs_stats. A missing file gives an
// error wrapping ErrIPVSUnavailable and fs.ErrNotExist.
func ReadStats(root string) (Stats, error) {
	p, err := readStatsFile(root, ProcStats, false)
	return p.Total, err
}

// ParseStatsPerCPU parses /proc/net/ip_vs_stats_percpu.
func ParseStatsPerCPU(r io.Reader) (PerCPUStats, error) {
	return parseStatsFile(r, "ip_vs_stats_percpu", true)
}

// ReadStatsPerCPU reads root/proc/net/ip_vs_stats_percpu.
func ReadStatsPerCPU(root string) (PerCPUStats, error) {
	return readStatsFile(root, ProcStatsPerCPU, true)
}

func readStatsFile(root, rel string, perCPU bool) (PerCPUStats, error) {
	f, path, err := openProc(root, rel)
	if err != nil {
		return PerCPUStats{}, err
	}
	defer f.Close()
	p, err := parseStatsFile(f, path, perCPU)
	return p, err
}

// parseStatsFile parses either layout. Both have two header lines, the
// counters (per CPU, then "~" and the total, in the per-CPU file), a
// blank line, a header and the rates:
//
//	  Total Incoming Outgoing         Incoming         Outgoing
//	  Conns  Packets  Packets            Bytes            Bytes
//	      5       50       40             1F40             9C40
//
//	Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s
//	      0        0        0                0                0
func parseStatsFile(r io.Reader, file string, perCPU bool) (PerCPUStats, error) {
	sp := statsParser{file: file, perCPU: perCPU}
	fieldsBuf := make([][]byte, 0, 8)
	lr := newLineReader(r, file, 4<<10)
	for {
		line, ok := lr.next()
		if !ok {
			break
		}
		if err := sp.line(lr.line, line, fields(fieldsBuf, line)); err != nil {
			return sp.p, err
		}
	}
	if lr.err != nil {
		return sp.p, lr.err
	}
	switch {
	case !sp.haveTotal:
		return sp.p, parseErr(file, lr.line+1, "no totals line")
	case !sp.haveRates:
		return sp.p, parseErr(file, lr.line+1, "no rates line")
	}
	return sp.p, nil
}

// statsParser is where parseStatsFile is in the file: the headers, then
// the totals (per CPU, then "~", in ip_vs_stats_percpu), then the rates.
type statsParser struct {
	file       string
	perCPU     bool
	p          PerCPUStats
	haveTotal  bool
	haveRates  bool
	inRates    bool
	lastHeader int // the line number of the last header line
}

// line takes line n, split into fs.
func (sp *statsParser) line(n int, line []byte, fs [][]byte) error {
	switch {
	case len(fs) == 0:
		return nil
	case string(fs[0]) == "Total" || string(fs[0]) == "Conns" || string(fs[0]) == "CPU":
		sp.lastHeader = n
		return nil
	case string(fs[0]) == "Conns/s":
		if !sp.haveTotal {
			return parseErr(sp.file, n, "rates header before the totals")
		}
		sp.inRates = true
		sp.lastHeader = n
		return nil
	}
	if sp.lastHeader == 0 {
		return parseErr(sp.file, n, "counters before the column headers")
	}
	switch {
	case sp.inRates:
		if sp.haveRates {
			return connLineErr(sp.file, n, "unexpected line after the rates", line)
		}
		v, err := sp.counters(n, fs)
		if err != nil {
			return err
		}
		t := &sp.p.Total
		t.CPS, t.PPSIn, t.PPSOut, t.BPSIn, t.BPSOut = v[0], v[1], v[2], v[3], v[4]
		sp.haveRates = true
	case sp.haveTotal:
		return connLineErr(sp.file, n, "unexpected line after the totals", line)
	case sp.perCPU && string(fs[0]) != "~":
		cpu, ok := parseHex(fs[0])
		if !ok || cpu > 1<<20 {
			return connLineErr(sp.file, n, "bad CPU number", fs[0])
		}
		v, err := sp.counters(n, fs[1:])
		if err != nil {
			return err
		}
		c := CPUStats{CPU: int(cpu)}
		setCounters(&c.Stats, v)
		sp.p.CPUs = append(sp.p.CPUs, c)
	default: // the totals: "~" and its counters per CPU, or the counters alone
		if sp.perCPU {
			fs = fs[1:]
		}
		v, err := sp.counters(n, fs)
		if err != nil {
			return err
		}
		setCounters(&sp.p.Total, v)
		sp.haveTotal = true
	}
	return nil
}

func (sp *statsParser) counters(n int, fs [][]byte) ([5]uint64, error) {
	v, msg, bad := parseHexCounters(fs)
	if msg != "" {
		return v, connLineErr(sp.file, n, msg, bad)
	}
	return v, nil
}

func setCounters(s *Stats, v [5]uint64) {
	s.Conns, s.PacketsIn, s.PacketsOut, s.BytesIn, s.BytesOut = v[0], v[1], v[2], v[3], v[4]
}

// parseHexCounters parses the five "%8LX %8LX %8LX %16LX %16LX" columns.
func parseHexCounters(fs [][]byte) ([5]uint64, string, []byte) {
	var v [5]uint64
	if len(fs) != 5 {
		return v, "want 5 hex counters, have " + uitoa(uint64(len(fs))), bytes.Join(fs, []byte(" "))
	}
	for i, f := range fs {
		x, ok := parseHex(f)
		if !ok {
			return v, "bad hex counter", f
		}
		v[i] = x
	}
	return v, "", nil
}
