package diag

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lvskit/lvskit/director/config"
	"github.com/lvskit/lvskit/director/scripts"
	"github.com/lvskit/lvskit/director/scripts/scriptstest"
)

func TestScriptFindings(t *testing.T) {
	h := scriptstest.New()
	h.Dir("/usr/local/libexec/lvsd", 0o755, 0, 0).File("/usr/local/libexec/lvsd/chk", 0o755, 0, 0)
	h.Dir("/tmp", fs.ModeSticky|0o777, 0, 0).File("/tmp/chk", 0o755, 0, 0)
	conf := `vrrp:
  scripts:
    - {name: safe, command: [/usr/local/libexec/lvsd/chk]}
    - {name: in_tmp, command: [/tmp/chk]}
    - {name: must_be_root, command: [/usr/local/libexec/lvsd/chk], script_user: root}
`
	cfg, err := config.Parse("lvsd.yaml", []byte(conf), config.LoadOptions{FS: fstest.MapFS{}, Scripts: h, AuditScripts: true})
	if err != nil {
		t.Fatal(err)
	}
	fs := scriptFindings(cfg)
	if len(fs) != 2 {
		t.Fatalf("findings %+v", fs)
	}
	if f := fs[0]; f.ID != "lvsd-script-insecure" || f.Severity != Critical || f.Subject != "vrrp script in_tmp" ||
		f.Evidence[0] != "lvsd.yaml:4:31: /tmp/chk" || !strings.HasPrefix(f.Evidence[1], "/tmp/chk: /tmp is writable by every user (mode 1777") {
		t.Errorf("insecure finding %+v", f)
	}
	// safe runs as root by default; must_be_root says so itself.
	if f := fs[1]; f.ID != "lvsd-script-root" || f.Severity != Warning || len(f.Evidence) != 2 ||
		f.Evidence[1] != "lvsd.yaml:3:29: vrrp script safe: /usr/local/libexec/lvsd/chk" || !strings.Contains(f.Fix, "useradd --system") {
		t.Errorf("root finding %+v", f)
	}

	// With a script user, and the insecure script gone: nothing to say.
	h.AddUser(scripts.Account{Name: config.DefaultScriptUser, UID: 998, GID: 998, Groups: []uint32{998}})
	cfg, err = config.Parse("lvsd.yaml", []byte(strings.Replace(conf, "[/tmp/chk]", "[/usr/local/libexec/lvsd/chk]", 1)), config.LoadOptions{FS: fstest.MapFS{}, Scripts: h, AuditScripts: true})
	if err != nil {
		t.Fatal(err)
	}
	if fs := scriptFindings(cfg); len(fs) != 0 {
		t.Errorf("findings %+v", fs)
	}
}
