// Command lvsdiag runs the LVS on-call checklist and traces packets through
// the kernel's IPVS path.
package main

import (
	"fmt"
	"os"
)

const usage = `lvsdiag: the LVS on-call checklist

Usage:
  lvsdiag --vip ADDR [--port N] [--output text|json|markdown]
  lvsdiag rs --vip ADDR               run on a real server
  lvsdiag vrrp --interface IF --duration 5s
  lvsdiag trace --vip ADDR [--backend auto|kprobe|kprobe-multi|fentry|tp_btf]

Built so far: vrrp. The other checks arrive with the lvsdiag issue.
`

func main() {
	if len(os.Args) > 1 && os.Args[1] == "vrrp" {
		os.Exit(runVRRP(os.Args[2:], os.Stdout, os.Stderr))
	}
	fmt.Fprint(os.Stderr, usage)
	os.Exit(2)
}
