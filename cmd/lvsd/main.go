// Command lvsd is the lvskit director daemon: it turns a declarative config
// into IPVS rules, health-checks real servers and fails over with VRRP.
package main

import (
	"fmt"
	"os"
)

const usage = `lvsd: the lvskit director daemon

Usage:
  lvsd --config FILE                  run the director
  lvsd check --config FILE            validate a config, print every error
  lvsd plan --config FILE             print the IPVS operations a config needs
  lvsd import-keepalived FILE         convert a keepalived.conf to lvsd config

Not built yet: the director arrives with the lvsd issue; this binary only
prints this text.
`

func main() {
	fmt.Fprint(os.Stderr, usage)
	os.Exit(2)
}
