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

Not built yet: the checks arrive with the lvsdiag and VRRP issues; this
binary only prints this text.
`

func main() {
	fmt.Fprint(os.Stderr, usage)
	os.Exit(2)
}
