#!/bin/sh
# capture.sh regenerates testdata/golden/*.hex: real VRRP adverts sent by
# the keepalived on this host (Debian's package), captured with tcpdump.
#
# It builds two network namespaces joined by a veth pair, runs keepalived in
# the first with its own config, pid files and no fork, captures in the
# second, stops keepalived (so each instance sends its priority-0 advert) and
# extracts the VRRP payloads with pcap2golden.go. It never touches
# /etc/keepalived or the root namespace's interfaces.
#
# Needs root, iproute2, keepalived, tcpdump and Go. Usage, from anywhere:
#	sudo director/vrrp/testdata/capture.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/lvskit-vrrp-capture.XXXXXX)
nsa=lvskit-vrrp-a-$$
nsb=lvskit-vrrp-b-$$
kpid=
tpid=

cleanup() {
	[ -n "$kpid" ] && kill "$kpid" 2>/dev/null || true
	[ -n "$tpid" ] && kill "$tpid" 2>/dev/null || true
	wait 2>/dev/null || true
	ip netns del "$nsa" 2>/dev/null || true
	ip netns del "$nsb" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

for tool in ip keepalived tcpdump go; do
	command -v "$tool" >/dev/null || { echo "capture.sh: $tool not found" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "capture.sh: needs root (network namespaces, raw sockets)" >&2; exit 2; }

ip netns add "$nsa"
ip netns add "$nsb"
for ns in "$nsa" "$nsb"; do
	# No duplicate address detection: link-local addresses usable at once.
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
	ip -n "$ns" link set lo up
done
ip -n "$nsa" link add veth-a type veth peer name veth-b netns "$nsb"
ip -n "$nsa" link set veth-a address 02:00:5e:81:00:01
ip -n "$nsb" link set veth-b address 02:00:5e:81:00:02
ip -n "$nsa" addr add 10.81.0.1/24 dev veth-a
ip -n "$nsb" addr add 10.81.0.2/24 dev veth-b
ip -n "$nsa" link set veth-a up
ip -n "$nsb" link set veth-b up

# One keepalived, four instances: the cases lvsd must interoperate with.
cat >"$work/keepalived.conf" <<'EOF'
global_defs {
	router_id lvskit-capture
}
vrrp_instance V2_NOAUTH {
	state MASTER
	interface veth-a
	version 2
	virtual_router_id 51
	priority 150
	advert_int 1
	virtual_ipaddress {
		192.0.2.10/32 dev veth-a
		192.0.2.11/32 dev veth-a
		192.0.2.12/32 dev veth-a
	}
}
vrrp_instance V2_PASS {
	state MASTER
	interface veth-a
	version 2
	virtual_router_id 52
	priority 100
	advert_int 2
	authentication {
		auth_type PASS
		auth_pass lvskit
	}
	virtual_ipaddress {
		198.51.100.20/32 dev veth-a
		198.51.100.21/32 dev veth-a
	}
}
vrrp_instance V3_IPV4 {
	state MASTER
	interface veth-a
	version 3
	virtual_router_id 53
	priority 200
	advert_int 0.5
	virtual_ipaddress {
		203.0.113.30/32 dev veth-a
		203.0.113.31/32 dev veth-a
		203.0.113.32/32 dev veth-a
		203.0.113.33/32 dev veth-a
	}
}
vrrp_instance V3_IPV6 {
	state MASTER
	interface veth-a
	version 3
	virtual_router_id 54
	priority 120
	advert_int 1
	virtual_ipaddress {
		fe80::54:1/64 dev veth-a
		2001:db8:81::40/128 dev veth-a
		2001:db8:81::41/128 dev veth-a
	}
}
EOF

ip netns exec "$nsb" tcpdump -i veth-b -U -w "$work/vrrp.pcap" 'ip proto 112 or ip6 proto 112' \
	>"$work/tcpdump.log" 2>&1 &
tpid=$!
sleep 1
ip netns exec "$nsa" keepalived --vrrp --dont-fork --log-console --log-detail \
	-f "$work/keepalived.conf" -p "$work/keepalived.pid" -r "$work/vrrp.pid" -c "$work/checkers.pid" \
	>"$work/keepalived.log" 2>&1 &
kpid=$!
# keepalived starts every instance in BACKUP; the slowest (advert_int 2)
# becomes master after 3 x 2 s + skew, then sends a few adverts.
sleep 11
kill -TERM "$kpid"
wait "$kpid" || true
kpid=
sleep 1
kill -INT "$tpid"
wait "$tpid" || true
tpid=

if [ -n "${KEEP_LOG:-}" ]; then cp "$work/keepalived.log" "$KEEP_LOG"; fi

version=$(keepalived --version 2>&1 | head -n1)
pkg=$(dpkg-query -W -f '${Version}' keepalived 2>/dev/null || echo unknown)
mkdir -p "$here/golden"
(cd "$here" && go run pcap2golden.go -pcap "$work/vrrp.pcap" -out golden \
	-source "$version (Debian package $pkg) on veth-a in a network namespace" \
	-label '51=v2-ipv4-noauth=version 2, vrid 51, priority 150, advert_int 1, no authentication, VIPs 192.0.2.10-12' \
	-label '52=v2-ipv4-pass=version 2, vrid 52, priority 100, advert_int 2, auth_type PASS auth_pass "lvskit", VIPs 198.51.100.20-21' \
	-label '53=v3-ipv4=version 3, vrid 53, priority 200, advert_int 0.5, VIPs 203.0.113.30-33' \
	-label '54=v3-ipv6=version 3, vrid 54, priority 120, advert_int 1, VIPs fe80::54:1 2001:db8:81::40-41')
echo "capture.sh: wrote $(ls "$here/golden" | wc -l) files to $here/golden"
