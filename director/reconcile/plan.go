package reconcile

import (
	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/ipvs"
)

// DesiredTable expands a config with every real server taken as up: what
// lvsd installs before its first health results.
func DesiredTable(cfg *config.Config) Table {
	t := Table{}
	allUp := func(ipvs.RealServerKey) bool { return true }
	for _, ds := range cfg.Desired() {
		t[ds.Service.ServiceKey] = Expand(ds, allUp)
	}
	return t
}
