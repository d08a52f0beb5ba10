// Network tier: lvsd running the config `lvsd import-keepalived` made
// from a keepalived.conf, paired with Debian's keepalived running that
// keepalived.conf on the other director.

package director_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvskit/lvskit/internal/lab"
)

// importedPeerConfigs are keepalived.confs of a director pair, as a
// function of this director's address, its peer's and its priority.
var importedPeerConfigs = map[string]func(self, peer netip.Addr, priority int) string{
	// A password longer than keepalived's 8 characters: both sides use
	// its first 8.
	"v2-password": func(self, peer netip.Addr, priority int) string {
		return fmt.Sprintf(`vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 71
    priority %d
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass longpassword
    }
    virtual_ipaddress {
        10.78.0.100/24
    }
}
`, priority)
	},
	"v3-unicast": func(self, peer netip.Addr, priority int) string {
		return fmt.Sprintf(`global_defs {
    vrrp_version 3
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 72
    priority %d
    advert_int 1
    unicast_src_ip %s
    unicast_peer {
        %s
    }
    virtual_ipaddress {
        10.78.0.100
    }
}
`, priority, self, peer)
	},
	"sync-group": func(self, peer netip.Addr, priority int) string {
		inst := func(name string, vrid int, vip string) string {
			return fmt.Sprintf(`vrrp_instance %s {
    interface eth0
    virtual_router_id %d
    priority %d
    advert_int 1
    virtual_ipaddress {
        %s
    }
}
`, name, vrid, priority, vip)
		}
		return `vrrp_sync_group G1 {
    group {
        VI_a
        VI_b
    }
}
` + inst("VI_a", 73, "10.78.0.100") + inst("VI_b", 74, "10.78.0.101")
	},
}

// TestLabVRRPImportedKeepalivedPeer: keepalived (priority 150) runs a
// keepalived.conf on one director, lvsd (100) the import of the same
// keepalived.conf on the other. lvsd stays backup while keepalived is
// master; when keepalived is killed lvsd takes every instance and its
// addresses; when keepalived comes back it preempts and lvsd returns to
// backup and drops the addresses.
func TestLabVRRPImportedKeepalivedPeer(t *testing.T) {
	requireRoot(t)
	requireKeepalived(t)
	bin := lvsdBinary(t)
	for name, conf := range importedPeerConfigs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			l := lab.New(t, lab.Options{Subnet: netip.MustParsePrefix("10.78.0.0/24")})
			la, kb := l.AddHost("lvsd", "10.78.0.11/24"), l.AddHost("keepalived", "10.78.0.12/24")

			d := startImportedLVSD(ctx, t, bin, la, conf(la.Addr(), kb.Addr(), 100))
			instances := strings.Count(conf(la.Addr(), kb.Addr(), 100), "vrrp_instance ")
			kconf := conf(kb.Addr(), la.Addr(), 150)
			ka := startKeepalivedPeer(ctx, t, kb, kconf)
			if _, err := ka.WaitForOutput(ctx, "Entering MASTER STATE"); err != nil {
				t.Fatal(err)
			}
			allIn := func(state string) func() bool {
				return func() bool {
					st, ok := d.status(ctx)
					if !ok || len(st.VRRP) != instances {
						return false
					}
					for _, v := range st.VRRP {
						if v.State != state {
							return false
						}
					}
					return true
				}
			}
			pollUntil(ctx, t, 15*time.Second, "lvsd backup beside keepalived", allIn("backup"))
			// Hold for more than Master_Down_Interval (3 adverts and the
			// skew): lvsd accepts keepalived's adverts and stays backup.
			time.Sleep(4 * time.Second) // proving that nothing changes, for a protocol interval
			if !allIn("backup")() {
				st, _ := d.status(ctx)
				t.Fatalf("lvsd left backup beside keepalived: %+v\nlvsd:\n%s", st.VRRP, d.proc.Output())
			}

			killGroupNow(t, ka)
			pollUntil(ctx, t, 15*time.Second, "lvsd master after keepalived died", allIn("master"))
			pollUntil(ctx, t, 5*time.Second, "the VIP on lvsd's director", func() bool { return d.holdsVIP(ctx, t) })

			ka = startKeepalivedPeer(ctx, t, kb, kconf)
			if _, err := ka.WaitForOutput(ctx, "Entering MASTER STATE"); err != nil {
				t.Fatalf("keepalived did not take over again: %v", err)
			}
			pollUntil(ctx, t, 15*time.Second, "lvsd backup again", allIn("backup"))
			pollUntil(ctx, t, 5*time.Second, "the VIP gone from lvsd's director", func() bool { return !d.holdsVIP(ctx, t) })
		})
	}
}

// startImportedLVSD imports conf with the lvsd binary (exit 0: the same
// behaviour) and runs lvsd with the result, its status API on a unix
// socket.
func startImportedLVSD(ctx context.Context, t *testing.T, bin string, h *lab.Host, conf string) *vrrpDirector {
	t.Helper()
	dir := t.TempDir()
	kpath := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(kpath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "import-keepalived", "--skip-script-checks", kpath)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	y, err := cmd.Output()
	if err != nil {
		t.Fatalf("import-keepalived: %v\n%s", err, stderr.String())
	}
	d := &vrrpDirector{host: h, sock: filepath.Join(dir, "status.sock"), config: filepath.Join(dir, "lvsd.yaml")}
	head := fmt.Sprintf("lvsd:\n  state_dir: %s\n  status_listen: unix:%s\n  metrics_listen: \"\"\n", filepath.Join(dir, "state"), d.sock)
	if err := os.WriteFile(d.config, append([]byte(head), y...), 0o600); err != nil {
		t.Fatal(err)
	}
	d.proc = h.Start(ctx, bin, "--config", d.config, "--log-level", "debug")
	return d
}
