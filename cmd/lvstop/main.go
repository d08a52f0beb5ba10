// Command lvstop is a live terminal view of IPVS: virtual services, real
// servers, rates and the connection table.
package main

import (
	"fmt"
	"os"
)

const usage = `lvstop: a live view of IPVS

Usage:
  lvstop                              watch the local kernel
  lvstop --lvsd URL                   watch a remote lvsd's status API
  lvstop --proc DIR                   replay a saved /proc tree
  lvstop --once --output text|json    print one snapshot

Not built yet: the TUI arrives with the lvstop issue; this binary only
prints this text.
`

func main() {
	fmt.Fprint(os.Stderr, usage)
	os.Exit(2)
}
