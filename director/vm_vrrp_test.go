//go:build vmtest

package director_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/internal/lab"
)

// The connection sync daemon follows the VRRP instance it names: backup
// at start, master once the instance is, and backup again when a peer of
// higher priority takes over, as `ipvsadm -L --daemon` shows in each
// director's namespace.
func TestVMLvsdSyncDaemonFollowsVRRP(t *testing.T) {
	bin := lvsdBinary(t)
	l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.81.0.0/24")})
	hosts := []*lab.Host{l.AddHost("lvs1", "10.81.0.11/24"), l.AddHost("lvs2", "10.81.0.12/24")}
	start := func(h *lab.Host, priority int) *lab.Process {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "lvsd.yaml")
		body := fmt.Sprintf(`lvsd:
  state_dir: %s
  status_listen: ""
  metrics_listen: ""
ipvs:
  sync_daemon: {interface: %s, vrrp_instance: VI_sync, sync_id: 81}
vrrp:
  instances:
    - name: VI_sync
      interface: %s
      virtual_router_id: 81
      priority: %d
      advert_interval: 100ms
      virtual_addresses: [10.81.0.100]
`, filepath.Join(dir, "state"), lab.HostInterface, lab.HostInterface, priority)
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return h.Start(context.Background(), bin, "--config", cfg, "--log-level", "debug")
	}
	daemons := func(h *lab.Host) string { return run(t, h, "ipvsadm", "-L", "--daemon") }
	only := func(h *lab.Host, role string) func() bool {
		other := map[string]string{"master": "backup", "backup": "master"}[role]
		return func() bool {
			out := daemons(h)
			return strings.Contains(out, role+" sync daemon (mcast="+lab.HostInterface+", syncid=81") && !strings.Contains(out, other+" sync daemon")
		}
	}
	p1 := start(hosts[0], 100)
	waitFor(t, 30*time.Second, "lvs1's sync daemon to become master with its instance", only(hosts[0], "master"))
	if !strings.Contains(p1.Output(), "sync daemon switched") {
		t.Errorf("lvs1 did not log the switch:\n%s", p1.Output())
	}
	// A peer of higher priority preempts: lvs1's daemon goes back to
	// backup, lvs2's is master.
	start(hosts[1], 200)
	waitFor(t, 30*time.Second, "lvs2's sync daemon master", only(hosts[1], "master"))
	waitFor(t, 30*time.Second, "lvs1's sync daemon back to backup", only(hosts[0], "backup"))
}
