// Command conntable generates and aggregates IPVS connection tables for
// bench/conntable.sh.
//
//	conntable -generate 1000000 -o FILE   write a synthetic /proc/net/ip_vs_conn
//	conntable FILE                        aggregate FILE as lvstop does; print a summary
//	conntable -scan FILE                  stream FILE through ScanConnections instead
//	conntable -flood N -dst IP:PORT       send N UDP datagrams from N source address:ports
package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/pprof"

	"github.com/lvskit/lvskit/director/ipvs"
)

type options struct {
	generate   int
	seed       uint64
	output     string
	scan       bool
	cpuprofile string
	flood      int
	dst        string
}

func main() {
	var o options
	flag.IntVar(&o.generate, "generate", 0, "write a synthetic table of this many entries")
	flag.Uint64Var(&o.seed, "seed", 1, "generator seed")
	flag.StringVar(&o.output, "o", "", "output file for -generate (default stdout)")
	flag.BoolVar(&o.scan, "scan", false, "stream through ScanConnections instead of Aggregate")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the run to this file")
	flag.IntVar(&o.flood, "flood", 0, "send this many UDP datagrams to -dst, from distinct sources")
	flag.StringVar(&o.dst, "dst", "10.0.0.100:53", "destination of -flood")
	flag.Parse()
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "conntable:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(o, flag.Args(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "conntable:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(o options, args []string, stdout io.Writer) error {
	if o.generate > 0 {
		return generate(o)
	}
	if o.flood > 0 {
		dst, err := netip.ParseAddrPort(o.dst)
		if err != nil {
			return err
		}
		return flood(o.flood, dst)
	}
	if len(args) != 1 {
		return fmt.Errorf("want one file to read (or -generate N)")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	if o.scan {
		states := map[ipvs.ConnState]int{}
		n := 0
		err := ipvs.ScanConnections(f, func(c *ipvs.Connection) error {
			n++
			states[c.State]++
			return nil
		})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%d entries, %d states\n", n, len(states))
		return err
	}
	s, err := ipvs.Aggregate(f)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%d entries, %d templates, %d groups, %d protocol states\n",
		s.Entries, s.Templates, len(s.Groups), len(s.ByState))
	return err
}

func generate(o options) error {
	if o.output == "" {
		return ipvs.GenerateConnTable(os.Stdout, o.generate, o.seed)
	}
	f, err := os.Create(o.output)
	if err != nil {
		return err
	}
	if err := ipvs.GenerateConnTable(f, o.generate, o.seed); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
