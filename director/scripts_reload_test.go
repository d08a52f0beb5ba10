package director

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/scripts"
	"github.com/lvskit/lvskit/director/scripts/scriptstest"
)

// TestReloadRefusesScriptsOthersCanChange: a reload whose quorum command
// sits in a world-writable directory is refused with the place and the
// reason, and the running config keeps serving with its own command,
// which runs as the script user resolved at load.
func TestReloadRefusesScriptsOthersCanChange(t *testing.T) {
	h := scriptstest.New()
	h.AddUser(scripts.Account{Name: "lvsd_script", UID: 998, GID: 998, Groups: []uint32{998}}).AddGroup("lvsd_script", 998)
	h.Dir("/usr/local/libexec/lvsd", 0o755, 0, 0).File("/usr/local/libexec/lvsd/notify", 0o755, 0, 0)
	h.Dir("/srv/shared", 0o777, 0, 0).File("/srv/shared/notify", 0o755, 0, 0)
	conf := func(cmd string) string {
		return `virtual_services:
  - address: 192.168.0.100
    port: 80
    quorum: {weight: 1, up_command: [` + cmd + `, up]}
    real_servers:
      - address: 10.0.0.1
`
	}
	var mu sync.Mutex // the commands run on goroutines of their own
	var ran []scripts.Program
	s := startStepped(t, conf("/usr/local/libexec/lvsd/notify"), DaemonOptions{
		Load: config.LoadOptions{Scripts: h},
		RunCommand: func(_ context.Context, p scripts.Program) error {
			mu.Lock()
			defer mu.Unlock()
			ran = append(ran, p)
			return nil
		},
	})
	d, path := s.Daemon, s.path
	s.cmds.Wait() // the start's up command (quorum reached)
	mu.Lock()
	if len(ran) != 1 {
		t.Fatalf("the start ran %d commands, want the up command", len(ran))
	}
	if p := ran[0]; p.Path != "/usr/local/libexec/lvsd/notify" || p.User.String() != "lvsd_script:lvsd_script" || p.User.UID != 998 {
		t.Errorf("ran %s as %s", p.Path, p.User)
	}
	mu.Unlock()

	err := s.reload(conf("/srv/shared/notify"))
	want := path + ":4:37: up_command: others can change what lvsd runs as user lvsd_script: /srv/shared/notify: /srv/shared is writable by every user (mode 0777)"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("reload: %v\nwant %s...", err, want)
	}
	if st := d.Status(); !strings.HasPrefix(st.LastReloadError, want) {
		t.Errorf("status last reload error %q", st.LastReloadError)
	}
	p := d.snapshot().cfg.VirtualServices[0].Quorum.Run(true)
	if p.Path != "/usr/local/libexec/lvsd/notify" {
		t.Errorf("after the refused reload the quorum command is %s", p.Path)
	}
}
