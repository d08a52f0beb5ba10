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
	var (
		p          PerCPUStats
		haveTotal  bool
		haveRates  bool
		inRates    bool
		fieldsBuf  = make([][]byte, 0, 8)
		lr         = newLineReader(r, file, 4<<10)
		lastHeader int
	)
	for {
		line, ok := lr.next()
		if !ok {
			break
		}
		n := lr.line
		fs := fields(fieldsBuf, line)
		switch {
		case len(fs) == 0:
			continue
		case string(fs[0]) == "Total" || string(fs[0]) == "Conns" || string(fs[0]) == "CPU":
			lastHeader = n
			continue
		case string(fs[0]) == "Conns/s":
			if !haveTotal {
				return p, parseErr(file, n, "rates header before the totals")
			}
			inRates = true
			lastHeader = n
			continue
		}
		if lastHeader == 0 {
			return p, parseErr(file, n, "counters before the column headers")
		}
		switch {
		case inRates:
			if haveRates {
				return p, connLineErr(file, n, "unexpected line after the rates", line)
			}
			v, msg, bad := parseHexCounters(fs)
			if msg != "" {
				return p, connLineErr(file, n, msg, bad)
			}
			p.Total.CPS, p.Total.PPSIn, p.Total.PPSOut, p.Total.BPSIn, p.Total.BPSOut = v[0], v[1], v[2], v[3], v[4]
			haveRates = true
		case haveTotal:
			return p, connLineErr(file, n, "unexpected line after the totals", line)
		case perCPU && string(fs[0]) == "~":
			v, msg, bad := parseHexCounters(fs[1:])
			if msg != "" {
				return p, connLineErr(file, n, msg, bad)
			}
			setCounters(&p.Total, v)
			haveTotal = true
		case perCPU:
			cpu, ok := parseHex(fs[0])
			if !ok || cpu > 1<<20 {
				return p, connLineErr(file, n, "bad CPU number", fs[0])
			}
			v, msg, bad := parseHexCounters(fs[1:])
			if msg != "" {
				return p, connLineErr(file, n, msg, bad)
			}
			c := CPUStats{CPU: int(cpu)}
			setCounters(&c.Stats, v)
			p.CPUs = append(p.CPUs, c)
		default:
			v, msg, bad := parseHexCounters(fs)
			if msg != "" {
				return p, connLineErr(file, n, msg, bad)
			}
			setCounters(&p.Total, v)
			haveTotal = true
		}
	}
	if lr.err != nil {
		return p, lr.err
	}
	switch {
	case !haveTotal:
		return p, parseErr(file, lr.line+1, "no totals line")
	case !haveRates:
		return p, parseErr(file, lr.line+1, "no rates line")
	}
	return p, nil
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
