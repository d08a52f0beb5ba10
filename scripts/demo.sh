#!/usr/bin/env bash
# demo.sh: lvskit end to end, in the test VM (real IPVS): two directors
# running lvsd share a VIP with VRRP, two direct-routing real servers
# serve it, a client fetches it; then lvstop and lvsdiag look at it, the
# master is killed, and the client keeps being served by the backup.
#
#   make demo            (= scripts/demo.sh: prepares the VM kit, builds,
#                         boots the VM and runs the demo there, ~1 minute)
#
# Inside the VM every host is a network namespace on one bridge:
#   client 10.90.0.2   lvs1 10.90.0.11 (priority 150)   lvs2 10.90.0.12 (100)
#   rs1 10.90.0.21     rs2 10.90.0.22                    VIP 10.90.0.100:80
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo"

if [[ ${1:-} != --inner ]]; then
	make -s vm-kit build
	exec env LVSKIT_VM_TIMEOUT=10m scripts/vm/run bash scripts/demo.sh --inner
fi

run=/run/lvskit-demo
vip=10.90.0.100
hosts=(client lvs1 lvs2 rs1 rs2)
declare -A addr=([client]=10.90.0.2 [lvs1]=10.90.0.11 [lvs2]=10.90.0.12 [rs1]=10.90.0.21 [rs2]=10.90.0.22)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }
ns() { ip netns exec "$@"; }

# wait_for DESC SECONDS CMD...: poll CMD every 0.2 s until it succeeds.
wait_for() {
	local what=$1 limit=$2 i
	shift 2
	for ((i = 0; i < limit * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "demo: timed out waiting for $what" >&2
	for h in lvs1 lvs2; do [[ -f $run/$h/lvsd.log ]] && { echo "--- $h's lvsd log" >&2; tail -20 "$run/$h/lvsd.log" >&2; }; done
	exit 1
}

cleanup() {
	pkill -f "$run/" 2>/dev/null || true
	for h in "${hosts[@]}" sw; do ip netns del "demo-$h" 2>/dev/null || true; done
}
trap cleanup EXIT

say "building the lab: a bridge and five hosts as network namespaces"
mkdir -p "$run"
ip netns add demo-sw
ns demo-sw ip link add br0 type bridge
ns demo-sw ip link set br0 up
for h in "${hosts[@]}"; do
	ip netns add "demo-$h"
	ip link add eth0 netns "demo-$h" type veth peer name "p-$h" netns demo-sw
	ns demo-sw ip link set "p-$h" master br0 up
	ns "demo-$h" ip addr add "${addr[$h]}/24" dev eth0
	ns "demo-$h" ip link set eth0 up
	ns "demo-$h" ip link set lo up
done

say "real servers: the VIP on lo as /32, ARP for it suppressed, a web server"
for h in rs1 rs2; do
	ns "demo-$h" ip addr add "$vip/32" dev lo
	ns "demo-$h" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
	mkdir -p "$run/$h/www"
	# The same site on both (lvsdiag compares them), and a page that
	# names the server, to watch the scheduler.
	echo "hello from the lvskit demo" >"$run/$h/www/index.html"
	echo "served by $h" >"$run/$h/www/whoami.html"
	ns "demo-$h" busybox httpd -p 80 -h "$run/$h/www"
done

say "directors: lvsd with a VRRP instance and a direct-routing service"
for h in lvs1 lvs2; do
	# A direct-routing director must not send ICMP redirects.
	for k in all default eth0; do ns "demo-$h" sysctl -qw "net.ipv4.conf.$k.send_redirects=0"; done
	prio=150
	[[ $h == lvs2 ]] && prio=100
	mkdir -p "$run/$h"
	cat >"$run/$h/lvsd.yaml" <<-EOF
		lvsd:
		  state_dir: $run/$h/state
		  status_listen: ${addr[$h]}:9120
		  metrics_listen: ""
		ipvs:
		  expire_nodest_conn: true
		  expire_quiescent_template: true
		vrrp:
		  instances:
		    - name: VI_demo
		      interface: eth0
		      virtual_router_id: 90
		      priority: $prio
		      advert_interval: 200ms
		      virtual_addresses: [$vip]
		virtual_services:
		  - name: web
		    address: $vip
		    port: 80
		    scheduler: rr
		    forwarding: direct_route
		    health_check: {type: http, path: /, interval: 1s, timeout: 500ms, rise: 1, fall: 2}
		    real_servers: [{address: ${addr[rs1]}}, {address: ${addr[rs2]}}]
	EOF
	bin/lvsd check --config "$run/$h/lvsd.yaml" 2>/dev/null
	ns "demo-$h" setsid bin/lvsd --config "$run/$h/lvsd.yaml" >"$run/$h/lvsd.log" 2>&1 &
done
status() { ns "demo-$1" curl -s --max-time 2 "http://${addr[$1]}:9120/status"; }
vrrp_state() { status "$1" | grep -q "\"state\":\"$2\""; }
wait_for "lvs1 to become master" 20 vrrp_state lvs1 master
wait_for "lvs2 to be backup" 5 vrrp_state lvs2 backup
both_up() { [[ $(status lvs1 | grep -o '"health":"up"' | wc -l) == 2 ]]; }
wait_for "both real servers up on lvs1" 20 both_up

say "lvs1 is master and holds the VIP; its IPVS table"
show "ip -br addr show dev eth0   # on lvs1"
ns demo-lvs1 ip -br addr show dev eth0
show "ipvsadm -Ln                 # on lvs1"
ns demo-lvs1 ipvsadm -Ln

say "the client fetches the VIP six times (rr: rs1, rs2, rs1, ...)"
for i in 1 2 3 4 5 6; do
	show "curl -s http://$vip/whoami.html"
	ns demo-client curl -s --max-time 2 "http://$vip/whoami.html"
done

say "lvstop --once on lvs1 (the live TUI's batch mode)"
show "lvstop --once --lvsd http://${addr[lvs1]}:9120"
ns demo-lvs1 bin/lvstop --once --lvsd "http://${addr[lvs1]}:9120" || true

say "lvsdiag from the client: the on-call checklist"
show "lvsdiag --vip $vip --lvsd http://${addr[lvs1]}:9120"
ns demo-client bin/lvsdiag --vip "$vip" --lvsd "http://${addr[lvs1]}:9120" --colour never && echo "(exit 0: nothing wrong)" || true

say "kill -9 lvsd on lvs1: lvs2 takes the VIP and announces it"
pkill -9 -f "$run/lvs1/lvsd.yaml"
wait_for "lvs2 to become master" 10 vrrp_state lvs2 master
show "curl -s http://${addr[lvs2]}:9120/status | grep -o '\"reason\":\"[^\"]*\"'   # why lvs2 took over"
status lvs2 | grep -o '"reason":"[^"]*"' | head -1
for i in 1 2 3 4; do
	show "curl -s http://$vip/whoami.html"
	ns demo-client curl -s --max-time 2 "http://$vip/whoami.html"
done

say "done: the lab vanishes with the VM"
