// Command lvsdiag runs the LVS on-call checklist and traces packets through
// the kernel's IPVS path.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/lvskit/lvskit/internal/buildinfo"
)

const usage = `lvsdiag: the LVS on-call checklist

Usage:
  lvsdiag --vip ADDR [--port N] [--host NAME] [--lvsd URL] [--config FILE]
          [--interface IF] [--timeout D] [--output text|json|markdown]
          [--fail-on info|warning|critical] [--trace]
  lvsdiag rs --vip ADDR [--port N]        run on a real server
  lvsdiag vrrp --interface IF [--duration 5s] [--config FILE]
  lvsdiag trace --vip ADDR [--port N] [--client ADDR|PREFIX] [--rs ADDR]
          [--proto tcp|udp|sctp] [--netns NAME|INODE] [--interface IF]
          [--count N] [--duration D] [--backend auto|fentry|kprobe|kprobe-multi]
          [--output text|json]            each packet's path through IPVS (eBPF)
  lvsdiag drill --vip ADDR --lvsd SOCKET [--lvsd ADDR ...] [--kind vrrp|bgp]
          [--hold 60s] [--observe 5s] [--long 8] [--interface IF]
          [--output text|json|markdown]   hand the VIP over on purpose, measure it

lvsdiag --help, lvsdiag run --help, lvsdiag rs --help, lvsdiag vrrp --help,
lvsdiag trace --help and lvsdiag drill --help list every flag;
lvsdiag --version prints the version.
Exit status: 0 clean, 1 findings at or above --fail-on, 2 could not run.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "vrrp":
			return runVRRP(args[1:], stdout, stderr)
		case "rs":
			return runChecklist("rs", args[1:], stdout, stderr)
		case "run":
			return runChecklist("run", args[1:], stdout, stderr)
		case "trace":
			return runTrace(args[1:], stdout, stderr)
		case "drill":
			return runDrill(args[1:], stdout, stderr)
		case "version", "-version", "--version":
			fmt.Fprintln(stdout, buildinfo.String("lvsdiag"))
			return 0
		case "help", "-h", "-help", "--help":
			fmt.Fprint(stdout, usage)
			return 0
		}
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	return runChecklist("run", args, stdout, stderr)
}
