package diag

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/netip"
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

func checkRealServerConfig(ctx context.Context, r *run) outcome {
	links, err := r.getLinks(ctx)
	if err != nil {
		return couldNotRun("reading links: %v", err)
	}
	var o outcome
	vip := r.opts.VIP
	var holders []Link
	var holderPrefix []netip.Prefix
	for _, l := range links {
		for _, p := range l.Prefixes {
			if p.Addr() == vip {
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
	r.rsVIP(holders, holderPrefix, &o)
	if r.env.Net != nil {
		if rt, err := r.env.Net.RouteTo(ctx, vip); err == nil {
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
	}
	if vip.Is4() {
		r.rsARP(links, &o)
	}
	if tunnel {
		r.rsTunnel(holders, &o)
	} else {
		r.rsRPFilter(links, &o)
	}
	if r.opts.Port != 0 {
		r.rsListening(&o)
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

func (r *run) rsVIP(holders []Link, prefixes []netip.Prefix, o *outcome) {
	vip := r.opts.VIP
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

// rsARP checks arp_ignore and arp_announce on each outward link. The
// kernel uses the larger of net.ipv4.conf.all and the link's value.
func (r *run) rsARP(links []Link, o *outcome) {
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
	out := outward(links)
	for _, k := range knobs {
		all, errAll := r.readIfSysctl("all", k.name)
		if errAll != nil {
			o.note("net.ipv4.conf.all.%s: %v", k.name, errAll)
			continue
		}
		for _, l := range out {
			dev, err := r.readIfSysctl(l.Name, k.name)
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
				if n, err := r.readIfSysctl(other, k.name); err == nil && n >= k.want {
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

func (r *run) rsRPFilter(links []Link, o *outcome) {
	all, err := r.readIfSysctl("all", "rp_filter")
	if err != nil {
		return
	}
	for _, l := range outward(links) {
		if dev, err := r.readIfSysctl(l.Name, "rp_filter"); err == nil {
			o.note("rp_filter on %s: all = %d, %s = %d, effective %d (1 strict, 2 loose)", l.Name, all, l.Name, dev, max(all, dev))
		}
	}
}

func (r *run) rsTunnel(holders []Link, o *outcome) {
	all, _ := r.readIfSysctl("all", "rp_filter")
	for _, l := range holders {
		if l.Kind != "ipip" {
			continue
		}
		if !l.Up {
			o.add(Finding{ID: "rs-tunnel-down", Severity: Critical, Subject: "tunnel " + l.Name,
				Evidence: []string{l.Name + " holds the VIP but is down: IPIP packets from the director are dropped"},
				Fix:      "ip link set " + l.Name + " up"})
		}
		dev, err := r.readIfSysctl(l.Name, "rp_filter")
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

// rsListening looks for a TCP listener that takes VIP:port in
// /proc/net/tcp and tcp6.
func (r *run) rsListening(o *outcome) {
	if r.env.Root == nil {
		return
	}
	found, read := false, false
	for _, f := range []string{"proc/net/tcp", "proc/net/tcp6"} {
		ls, err := readListeners(r.env.Root, f)
		if err != nil {
			continue
		}
		read = true
		for _, l := range ls {
			if l.Port() != r.opts.Port {
				continue
			}
			a := l.Addr()
			if a.IsUnspecified() || a.Unmap() == r.opts.VIP {
				found = true
				o.note("listening on %s", l)
			}
		}
	}
	if !read || found {
		return
	}
	o.add(Finding{ID: "rs-not-listening", Severity: Critical, Subject: fmt.Sprintf("port %d on this real server", r.opts.Port),
		Evidence: []string{fmt.Sprintf("nothing listens on %s or on every address (0.0.0.0 or [::]) port %d", r.opts.VIP, r.opts.Port)},
		Fix:      fmt.Sprintf("Start the service, listening on every address or on the VIP:\n  ss -ltnp | grep -w %d\n  (nginx: listen %d; not listen <this host's address>:%d)", r.opts.Port, r.opts.Port, r.opts.Port)})
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
