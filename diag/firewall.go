package diag

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
)

// CommandFirewall reads the rules with `nft list ruleset` and
// `iptables-save` (and ip6tables-save); a missing tool gives no text.
type CommandFirewall struct{}

// Rules implements Firewall.
func (CommandFirewall) Rules(ctx context.Context) (FirewallRules, error) {
	var fr FirewallRules
	var errs []error
	run := func(name string, args ...string) string {
		if _, err := exec.LookPath(name); err != nil {
			return ""
		}
		var out, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String())))
		}
		return out.String()
	}
	fr.NFT = run("nft", "list", "ruleset")
	fr.IPTables = run("iptables-save") + run("ip6tables-save")
	if fr.NFT == "" && fr.IPTables == "" && len(errs) > 0 {
		return fr, errors.Join(errs...)
	}
	return fr, nil
}

// VRRPDrop is a firewall rule that drops VRRP.
type VRRPDrop struct {
	// Where is "nft table inet filter chain input" or "iptables filter INPUT".
	Where string
	Rule  string
	// Policy is set when it is a chain's drop policy that no rule lets
	// VRRP through.
	Policy bool
}

var (
	nftVRRP     = regexp.MustCompile(`\b(ip protocol|ip6 nexthdr|meta l4proto|meta nfproto ipv4 meta l4proto)\s+(vrrp|112)\b`)
	nftVerdict  = regexp.MustCompile(`\b(drop|reject)\b`)
	nftAccept   = regexp.MustCompile(`\baccept\b`)
	nftTable    = regexp.MustCompile(`^table\s+(\S+)\s+(\S+)`)
	nftChain    = regexp.MustCompile(`^chain\s+(\S+)`)
	nftHook     = regexp.MustCompile(`type filter hook input .*policy drop`)
	iptVRRP     = regexp.MustCompile(`-p\s+(vrrp|112)\b`)
	iptDrop     = regexp.MustCompile(`-j\s+(DROP|REJECT)\b`)
	iptAccept   = regexp.MustCompile(`-j\s+ACCEPT\b`)
	iptPolicyRE = regexp.MustCompile(`^:(INPUT)\s+DROP\b`)
)

// FindVRRPDrops finds the rules that drop VRRP (IP protocol 112) on
// input: explicit drop or reject rules, and input chains whose policy is
// drop with no rule accepting VRRP.
func FindVRRPDrops(fr FirewallRules) []VRRPDrop {
	var out []VRRPDrop
	var table, chain string
	dropPolicy := false
	accepted := false
	flushChain := func() {
		if dropPolicy && !accepted {
			out = append(out, VRRPDrop{Where: "nft " + table + " chain " + chain, Rule: "policy drop", Policy: true})
		}
		dropPolicy, accepted = false, false
	}
	for line := range strings.Lines(fr.NFT) {
		l := strings.TrimSpace(line)
		switch {
		case nftTable.MatchString(l):
			m := nftTable.FindStringSubmatch(l)
			table = "table " + m[1] + " " + m[2]
		case nftChain.MatchString(l):
			flushChain()
			chain = nftChain.FindStringSubmatch(l)[1]
		case nftHook.MatchString(l):
			dropPolicy = true
		case nftVRRP.MatchString(l) && !strings.Contains(l, "!="):
			if nftVerdict.MatchString(l) {
				out = append(out, VRRPDrop{Where: "nft " + table + " chain " + chain, Rule: l})
			} else if nftAccept.MatchString(l) {
				accepted = true
			}
		case l == "}":
			// the end of a chain or a table
		}
	}
	flushChain()

	table = ""
	dropPolicy, accepted = false, false
	for line := range strings.Lines(fr.IPTables) {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(l, "*"):
			table = strings.TrimPrefix(l, "*")
		case iptPolicyRE.MatchString(l) && table == "filter":
			dropPolicy = true
		case strings.HasPrefix(l, "-A INPUT") && iptVRRP.MatchString(l) && !strings.Contains(l, "! -p"):
			if iptDrop.MatchString(l) {
				out = append(out, VRRPDrop{Where: "iptables " + table + " INPUT", Rule: l})
			} else if iptAccept.MatchString(l) {
				accepted = true
			}
		case l == "COMMIT":
			if table == "filter" && dropPolicy && !accepted {
				out = append(out, VRRPDrop{Where: "iptables filter INPUT", Rule: ":INPUT DROP", Policy: true})
			}
			dropPolicy, accepted = false, false
		}
	}
	return out
}

// vrrpDropFinding is the finding for a firewall rule (or policy) that
// drops VRRP on a director.
func vrrpDropFinding(d VRRPDrop) Finding {
	ev := []string{fmt.Sprintf("%s: %s", d.Where, d.Rule)}
	fix := ""
	if d.Policy {
		ev = append(ev, "the input policy is drop and no rule accepts VRRP (protocol 112)")
	} else {
		ev = append(ev, "this director does not hear its peer's adverts: it becomes master too (split brain), or never hands the VIP back")
	}
	if strings.HasPrefix(d.Where, "nft") {
		fields := strings.Fields(d.Where) // nft table FAMILY NAME chain CHAIN
		fam, tbl, ch := "inet", "filter", "input"
		if len(fields) >= 6 {
			fam, tbl, ch = fields[2], fields[3], fields[5]
		}
		fix = fmt.Sprintf(`Let VRRP in before the rule that drops it:
  nft insert rule %s %s %s ip protocol vrrp accept
Find and delete the dropping rule by its handle:
  nft -a list chain %s %s %s | grep -i -e vrrp -e 112
  nft delete rule %s %s %s handle HANDLE`, fam, tbl, ch, fam, tbl, ch, fam, tbl, ch)
	} else {
		fix = "Let VRRP in before the rule that drops it:\n  iptables -I INPUT -p vrrp -j ACCEPT\nand make it permanent where the rules are saved (/etc/iptables/rules.v4)."
	}
	return Finding{ID: "director-firewall-drops-vrrp", Severity: Critical, Subject: "firewall: " + d.Where,
		Evidence: ev, Fix: fix}
}
