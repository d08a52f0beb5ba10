package diag

import (
	"fmt"
	"strings"

	"github.com/lvskit/lvskit/director/config"
)

// scriptFindings reports, from lvsd's config as Load resolved it with
// the audit on, the commands lvsd would refuse (others could change
// them: whoever can gets root) and those that run as root only because
// no script user exists. A command marked script_user: root is
// deliberate and not reported.
func scriptFindings(cfg *config.Config) []Finding {
	var out []Finding
	var asRoot []string
	for _, s := range cfg.Scripts {
		switch {
		case s.Problem != "":
			f := Finding{ID: "lvsd-script-insecure", Severity: Critical, Subject: s.What,
				Evidence: []string{s.At + ": " + strings.Join(s.Program.Args, " "), s.Problem},
				Fix:      "Make the program and every directory above it (and behind its links) root's and writable only by root; the problem above names the change. lvsd refuses this config at its next start or reload."}
			if cfg.LVSD.InsecureScripts {
				f.Evidence = append(f.Evidence, "lvsd.insecure_scripts: true runs it anyway")
				f.Fix = "Fix the ownership and modes named above, then remove lvsd.insecure_scripts."
			}
			out = append(out, f)
		case s.AsRoot && s.User == "":
			asRoot = append(asRoot, fmt.Sprintf("%s: %s: %s", s.At, s.What, strings.Join(s.Program.Args, " ")))
		}
	}
	if len(asRoot) > 0 {
		out = append(out, Finding{ID: "lvsd-script-root", Severity: Warning, Subject: fmt.Sprintf("%d command%s in lvsd's config", len(asRoot), plural(len(asRoot))),
			Evidence: append([]string{"these run as root: no lvsd.script_user is set and no " + config.DefaultScriptUser + " user exists"}, asRoot...),
			Fix: "useradd --system --no-create-home --shell /usr/sbin/nologin " + config.DefaultScriptUser + "; systemctl reload lvsd\n" +
				"(or set lvsd.script_user; mark a command that must be root with script_user: root)"})
	}
	return out
}
