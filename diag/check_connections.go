package diag

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/lvskit/lvskit/director/ipvs"
)

// connectionsFacts are what check 8 (Connection table) decides from.
type connectionsFacts struct {
	target
	View  *directorView
	Conns *ipvs.ConnSummary
}

func checkConnections(ctx context.Context, r *run) outcome {
	if r.env.Root == nil {
		return couldNotRun("no file system to read the connection table from")
	}
	conns, err := readConnSummary(r.env.Root)
	if err != nil {
		return couldNotRun("the IPVS connection table is not readable here (%s): run lvsdiag on the director", shortErr(err))
	}
	return connectionsFindings(connectionsFacts{target: r.target(), View: r.getDirector(ctx), Conns: conns})
}

// readConnSummary counts proc/net/ip_vs_conn under root.
func readConnSummary(root fs.FS) (*ipvs.ConnSummary, error) {
	f, err := root.Open("proc/net/ip_vs_conn")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ipvs.Aggregate(f)
}

type rsConnCounts struct {
	synRecv, established, other, templates int
}

// connsPerRealServer counts the VIP's entries by real server ("addr:port"),
// in the table's order.
func connsPerRealServer(f connectionsFacts) (map[string]*rsConnCounts, []string) {
	ours := map[string]bool{}
	for _, rs := range f.View.RealServers {
		ours[rs.Address.String()] = true
	}
	per := map[string]*rsConnCounts{}
	var order []string
	for _, g := range f.Conns.SortedGroups() {
		key := g.RealServer.String()
		if g.Service.IsFWMark() {
			if !ours[key] {
				continue
			}
		} else if !f.matchesVIP(g.Service.Address, g.Service.Port) {
			continue
		}
		if per[key] == nil {
			per[key] = &rsConnCounts{}
			order = append(order, key)
		}
		c := per[key]
		switch {
		case g.Template:
			c.templates += g.Count
		case g.State == ipvs.StateSynRecv:
			c.synRecv += g.Count
		case g.State == ipvs.StateEstablished:
			c.established += g.Count
		default:
			c.other += g.Count
		}
	}
	return per, order
}

// connectionsFindings decides check 8 from its facts.
func connectionsFindings(f connectionsFacts) outcome {
	var o outcome
	v := f.View
	per, order := connsPerRealServer(f)
	o.note("%d entries in the connection table, %d for %s", f.Conns.Entries, sumEntries(per), f.vipPort())
	weights := map[string]rsView{}
	for _, rs := range v.RealServers {
		weights[rs.Address.String()] = rs
	}
	totalSyn := 0
	for _, k := range order {
		totalSyn += per[k].synRecv
	}
	for _, k := range order {
		c := per[k]
		o.note("%s: %d ESTABLISHED, %d SYN_RECV, %d other, %d persistence templates", k, c.established, c.synRecv, c.other, c.templates)
		conns := c.synRecv + c.established + c.other
		if c.synRecv >= 5 && c.synRecv*2 >= conns && c.synRecv*2 > totalSyn {
			o.add(Finding{ID: "conn-syn-recv", Severity: Critical, Subject: "real server " + k,
				Evidence: []string{fmt.Sprintf("%d of its %d connections are in SYN_RECV (of %d SYN_RECV for the VIP)", c.synRecv, conns, totalSyn),
					"the director saw the clients' SYNs but never their ACKs: the real server does not answer them (direct routing: the VIP is missing on it, it answers from the wrong address, or its replies do not reach the clients)"},
				Fix: fmt.Sprintf("On %s: lvsdiag rs --vip %s --port %d\nFrom the director: curl -sv --connect-to ::%s http://%s/", strings.Split(k, ":")[0], f.VIP, f.Port, k, f.Host)})
		}
		rs, known := weights[k]
		if !known {
			if c.templates > 0 && v.haveAny() {
				o.add(Finding{ID: "conn-template-dead", Severity: Warning, Subject: "real server " + k,
					Evidence: []string{fmt.Sprintf("%d persistence templates pin clients to %s, which is no longer a real server of %s", c.templates, k, f.vipPort())},
					Fix:      templateFix()})
			}
			continue
		}
		if rs.Weight == 0 && c.established > 0 {
			o.add(Finding{ID: "conn-quiesced-active", Severity: Info, Subject: "real server " + k,
				Evidence: []string{fmt.Sprintf("weight 0 (quiesced) with %d established connections: they drain on their own, new ones go elsewhere", c.established)},
				Fix:      "Nothing to do to drain it. To cut them now: ipvsadm -d " + ipvsadmService(rs.Service) + " -r " + k + " (with net.ipv4.vs.expire_nodest_conn=1)"})
		}
		if (rs.Weight <= 0 || rs.Health == "down") && c.templates > 0 {
			o.add(Finding{ID: "conn-template-dead", Severity: Warning, Subject: "real server " + k,
				Evidence: []string{fmt.Sprintf("%d persistence templates pin clients to %s, which is %s", c.templates, k, deadWhy(rs))},
				Fix:      templateFix()})
		}
	}
	return o
}

func deadWhy(rs rsView) string {
	switch {
	case rs.Health == "down":
		return "down (" + rs.Why + ")"
	case rs.Weight < 0:
		return "removed"
	}
	return "quiesced (weight 0)"
}

func templateFix() string {
	return `Let templates of quiesced servers expire at their next use:
  sysctl -w net.ipv4.vs.expire_quiescent_template=1
Clients stay pinned until their template's timeout otherwise (ipvsadm -Lnc
shows it); to move them all now, remove and re-add the real server.`
}

func sumEntries(m map[string]*rsConnCounts) int {
	n := 0
	for _, c := range m {
		n += c.synRecv + c.established + c.other + c.templates
	}
	return n
}
