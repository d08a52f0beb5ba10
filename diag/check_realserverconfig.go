package diag

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// checkRealServerHere is check 4 in the full run: it applies only when
// this host holds the VIP on lo, a dummy or a tunnel (a real server).
func checkRealServerHere(ctx context.Context, r *run) outcome {
	if l, ok := r.vipLink(ctx); ok && (l.Loopback() || l.Kind == "dummy" || l.Kind == "ipip") {
		return checkRealServerConfig(ctx, r)
	}
	return notApplicable("run `lvsdiag rs --vip %s` on each real server", r.opts.VIP)
}

// realServerConfigFacts are what check 4 (Real server configuration)
// decides from.
type realServerConfigFacts struct {
	target
	Links []Link
	// Route is the kernel's route to the VIP (nil: not known).
	Route   *Route
	Sysctls sysctlFacts
	// Listeners are the TCP sockets listening on this host, from
	// /proc/net/tcp and tcp6; ListenersRead says either was read.
	Listeners     []netip.AddrPort
	ListenersRead bool
}

func checkRealServerConfig(ctx context.Context, r *run) outcome {
	links, err := r.getLinks(ctx)
	if err != nil {
		return couldNotRun("reading links: %v", err)
	}
	f := realServerConfigFacts{target: r.target(), Links: links}
	if r.env.Net != nil {
		if rt, err := r.env.Net.RouteTo(ctx, r.opts.VIP); err == nil {
			f.Route = &rt
		}
	}
	devs := []string{"all", "default", "lo"}
	for _, l := range links {
		if !slices.Contains(devs, l.Name) {
			devs = append(devs, l.Name)
		}
	}
	f.Sysctls = r.readSysctls(nil, devs, []string{"arp_ignore", "arp_announce", "rp_filter"})
	if r.env.Root != nil && r.opts.Port != 0 {
		for _, name := range []string{"proc/net/tcp", "proc/net/tcp6"} {
			ls, err := readListeners(r.env.Root, name)
			if err != nil {
				continue
			}
			f.ListenersRead = true
			f.Listeners = append(f.Listeners, ls...)
		}
	}
	return realServerConfigFindings(f)
}

// realServerConfigFindings decides check 4 from its facts: the VIP on
// lo as a host address, ARP kept quiet about it, the tunnel (if any)
// able to take packets, and something listening on the port.
func realServerConfigFindings(f realServerConfigFacts) outcome {
	var o outcome
	var holders []Link
	var holderPrefix []netip.Prefix
	for _, l := range f.Links {
		for _, p := range l.Prefixes {
			if p.Addr() == f.VIP {
				holders = append(holders, l)
				holderPrefix = append(holderPrefix, p)
			}
		}
	}
	tunnel := false
	for i, l := range holders {
		o.note("the VIP is on %s (%s) as %s", l.Name, l.Kind, holderPrefix[i])
		tunnel = tunnel || l.Kind == "ipip"
	}
	rsVIPFindings(f, holders, holderPrefix, &o)
	if rt := f.Route; rt != nil {
		if rt.Local {
			o.note("route to the VIP: local (this host accepts packets for it)")
		} else {
			via := "out of " + rt.Interface
			if rt.Gateway.IsValid() {
				via = "via " + rt.Gateway.String() + " on " + rt.Interface
			}
			o.note("route to the VIP: %s (not local: packets for the VIP are forwarded or dropped)", via)
		}
	}
	if f.VIP.Is4() {
		rsARPFindings(f, &o)
	}
	if tunnel {
		rsTunnelFindings(f, holders, &o)
	} else {
		rsRPFilterNotes(f, &o)
	}
	if f.Port != 0 {
		rsListeningFindings(f, &o)
	}
	return o
}

// outward are the links ARP requests for the VIP can arrive on.
func outward(links []Link) []Link {
	var out []Link
	for _, l := range links {
		if l.Loopback() || !l.Up || l.Kind == "dummy" || l.Kind == "ipip" {
			continue
		}
		for _, p := range l.Prefixes {
			if p.Addr().Is4() {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

func rsVIPFindings(f realServerConfigFacts, holders []Link, prefixes []netip.Prefix, o *outcome) {
	vip := f.VIP
	full := vip.BitLen()
	if len(holders) == 0 {
		o.add(Finding{ID: "rs-vip-missing", Severity: Critical, Subject: "VIP " + vip.String() + " on this real server",
			Evidence: []string{"no link holds the VIP", "a direct-routing real server drops packets for an address it does not have: the clients IPVS sends here time out"},
			Fix: fmt.Sprintf("ip addr add %s/%d dev lo\nand make it permanent (/etc/network/interfaces, systemd-networkd or netplan: an address on lo)",
				vip, full)})
		return
	}
	for i, l := range holders {
		p := prefixes[i]
		switch {
		case !l.Loopback() && l.Kind != "dummy" && l.Kind != "ipip":
			o.add(Finding{ID: "rs-vip-on-interface", Severity: Critical, Subject: fmt.Sprintf("VIP %s on %s", vip, l.Name),
				Evidence: []string{fmt.Sprintf("the VIP is on %s, a link to the LAN, as %s", l.Name, p), "this real server answers ARP for the VIP and takes clients away from the director"},
				Fix:      fmt.Sprintf("ip addr del %s dev %s\nip addr add %s/%d dev lo", p, l.Name, vip, full)})
		case p.Bits() != full:
			o.add(Finding{ID: "rs-vip-prefix", Severity: Critical, Subject: fmt.Sprintf("VIP %s on %s", vip, l.Name),
				Evidence: []string{fmt.Sprintf("the VIP is on %s as %s, not /%d", l.Name, p, full),
					fmt.Sprintf("the kernel treats all of %s as local: this host stops talking to the other hosts of that network (clients, the director, its gateway)", p.Masked())},
				Fix: fmt.Sprintf("ip addr del %s dev %s\nip addr add %s/%d dev %s   # on lo the netmask is 255.255.255.255", p, l.Name, vip, full, l.Name)})
		}
	}
}

// rsARPFindings checks arp_ignore and arp_announce on each outward link. The
// kernel uses the larger of net.ipv4.conf.all and the link's value.
func rsARPFindings(f realServerConfigFacts, o *outcome) {
	type knob struct {
		name   string
		want   int
		sev    Severity
		id     string
		reason string
	}
	knobs := []knob{
		{"arp_ignore", 1, Critical, "rs-arp-ignore", "this real server answers ARP requests for the VIP (on lo) from its LAN link: clients and the router may send VIP traffic here, bypassing the director"},
		{"arp_announce", 2, Warning, "rs-arp-announce", "this real server may use the VIP as the source of its own ARP requests, teaching the LAN that the VIP is at its MAC"},
	}
	out := outward(f.Links)
	for _, k := range knobs {
		all, errAll := f.Sysctls.conf("all", k.name)
		if errAll != nil {
			o.note("net.ipv4.conf.all.%s: %v", k.name, errAll)
			continue
		}
		for _, l := range out {
			dev, err := f.Sysctls.conf(l.Name, k.name)
			if err != nil {
				continue
			}
			eff := max(all, dev)
			o.note("%s on %s: all = %d, %s = %d, effective %d", k.name, l.Name, all, l.Name, dev, eff)
			if eff >= k.want {
				continue
			}
			ev := []string{
				fmt.Sprintf("net.ipv4.conf.all.%s = %d", k.name, all),
				fmt.Sprintf("net.ipv4.conf.%s.%s = %d", l.Name, k.name, dev),
				fmt.Sprintf("the kernel uses the larger of the two: %d, below %d", eff, k.want),
				k.reason,
			}
			for _, other := range []string{"default", "lo"} {
				if n, err := f.Sysctls.conf(other, k.name); err == nil && n >= k.want {
					why := "it applies only to links created after it was set"
					if other == "lo" {
						why = "ARP requests arrive on " + l.Name + ", not on lo"
					}
					ev = append(ev, fmt.Sprintf("net.ipv4.conf.%s.%s = %d does not help: %s", other, k.name, n, why))
				}
			}
			o.add(Finding{ID: k.id, Severity: k.sev, Subject: fmt.Sprintf("%s on %s", k.name, l.Name), Evidence: ev,
				Fix: fmt.Sprintf(`sysctl -w net.ipv4.conf.all.%[1]s=%[2]d net.ipv4.conf.%[3]s.%[1]s=%[2]d
cat >> /etc/sysctl.d/90-lvs.conf <<'EOF'
net.ipv4.conf.all.%[1]s = %[2]d
net.ipv4.conf.%[3]s.%[1]s = %[2]d
EOF`, k.name, k.want, l.Name)})
		}
	}
}

func rsRPFilterNotes(f realServerConfigFacts, o *outcome) {
	all, err := f.Sysctls.conf("all", "rp_filter")
	if err != nil {
		return
	}
	for _, l := range outward(f.Links) {
		if dev, err := f.Sysctls.conf(l.Name, "rp_filter"); err == nil {
			o.note("rp_filter on %s: all = %d, %s = %d, effective %d (1 strict, 2 loose)", l.Name, all, l.Name, dev, max(all, dev))
		}
	}
}

func rsTunnelFindings(f realServerConfigFacts, holders []Link, o *outcome) {
	all, _ := f.Sysctls.conf("all", "rp_filter")
	for _, l := range holders {
		if l.Kind != "ipip" {
			continue
		}
		if !l.Up {
			o.add(Finding{ID: "rs-tunnel-down", Severity: Critical, Subject: "tunnel " + l.Name,
				Evidence: []string{l.Name + " holds the VIP but is down: IPIP packets from the director are dropped"},
				Fix:      "ip link set " + l.Name + " up"})
		}
		dev, err := f.Sysctls.conf(l.Name, "rp_filter")
		if err != nil {
			continue
		}
		if eff := max(all, dev); eff != 0 {
			o.add(Finding{ID: "rs-tunnel-rp-filter", Severity: Critical, Subject: "rp_filter on " + l.Name,
				Evidence: []string{fmt.Sprintf("net.ipv4.conf.all.rp_filter = %d", all), fmt.Sprintf("net.ipv4.conf.%s.rp_filter = %d", l.Name, dev),
					"packets decapsulated on the tunnel come from clients this host routes via another link: reverse-path filtering drops them"},
				Fix: fmt.Sprintf("sysctl -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.%s.rp_filter=0\n(the kernel uses the larger of all and the link's value)", l.Name)})
		}
	}
}

// rsListeningFindings looks for a TCP listener that takes VIP:port.
func rsListeningFindings(f realServerConfigFacts, o *outcome) {
	found := false
	for _, l := range f.Listeners {
		if l.Port() != f.Port {
			continue
		}
		a := l.Addr()
		if a.IsUnspecified() || a.Unmap() == f.VIP {
			found = true
			o.note("listening on %s", l)
		}
	}
	if !f.ListenersRead || found {
		return
	}
	o.add(Finding{ID: "rs-not-listening", Severity: Critical, Subject: fmt.Sprintf("port %d on this real server", f.Port),
		Evidence: []string{fmt.Sprintf("nothing listens on %s or on every address (0.0.0.0 or [::]) port %d", f.VIP, f.Port)},
		Fix:      fmt.Sprintf("Start the service, listening on every address or on the VIP:\n  ss -ltnp | grep -w %d\n  (nginx: listen %d; not listen <this host's address>:%d)", f.Port, f.Port, f.Port)})
}

// readListeners parses the LISTEN sockets of /proc/net/tcp(6).
func readListeners(root fs.FS, name string) ([]netip.AddrPort, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []netip.AddrPort
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "0A" {
			continue
		}
		if ap, ok := parseProcSocket(fields[1]); ok {
			out = append(out, ap)
		}
	}
	return out, sc.Err()
}

// parseProcSocket parses "0100007F:0050" (IPv4, host byte order per
// 32-bit word, little-endian here) or its 32-hex-digit IPv6 form.
func parseProcSocket(s string) (netip.AddrPort, bool) {
	addrHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	b, err := hex.DecodeString(addrHex)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.AddrPort{}, false
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a, uint16(port)), true
}
