#!/usr/bin/env bash
# capture-proc-fixtures.sh: capture /proc/net/ip_vs* from a real kernel for
# director/ipvs's tests.
#
#   scripts/capture-proc-fixtures.sh [OUTDIR]
#       On the host: boots the test VM (scripts/vm/run) and runs itself there,
#       then unpacks what the guest printed into OUTDIR
#       (default director/ipvs/testdata/proc), one directory per scenario.
#   scripts/vm/run bash scripts/capture-proc-fixtures.sh --guest
#       In the VM (LVSKIT_IN_VM=1 also selects this): builds the lab, drives
#       traffic and prints the captures to stdout as a base64 tar between
#       marker lines (the VM cannot write to the host's disk).
#
# The lab, all in network namespaces of the VM:
#   cl (client) --veth-- lb (director) --bridge br0-- rs1 rs2 rs3
#   lb2 (a backup director) --veth-- lb, running the backup sync daemon.
# Addresses (IPv6 in parentheses):
#   cl   10.0.1.1/24 and 10.0.9.1/24 (fd00:1::1)    via lb 10.0.1.254 (fd00:1::254)
#   lb   VIPs on dummy vip0: 10.0.0.100-111, 10.0.0.120-133 (fd00::100-107)
#        br0 10.0.2.254/24 (fd00:2::254), sync0 10.0.3.1/24
#   rsN  10.0.2.1N/24 (fd00:2::1N), default via lb; VIPs of the direct-route
#        service on lo and of the tunnel service on tunl0
#   lb2  10.0.3.2/24
# Services (ipvsadm in lb) and the traffic sent to them are listed in
# add_services and drive_traffic below; director/ipvs/proc_capture_test.go
# asserts the parsed files against the same list.
#
# Scenarios written: empty/ (IPVS loaded, no services), lab/ (every kind of
# service with live, closing and closed connections), backup/ (lb2: entries
# learnt from the sync daemon). Each has ip_vs, ip_vs_conn, ip_vs_conn_sync,
# ip_vs_stats, ip_vs_stats_percpu, ipvsadm-Ln.txt (ipvsadm -Ln),
# ipvsadm-Lnc.txt (ipvsadm -Lnc run on the same snapshot of ip_vs_conn) and
# KERNEL (uname -r).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
begin_marker='-----BEGIN LVSKIT PROC FIXTURES-----'
end_marker='-----END LVSKIT PROC FIXTURES-----'

log() { printf 'capture: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

host_main() {
	local out=${1:-$repo/director/ipvs/testdata/proc} raw tmp
	raw=$(mktemp)
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064 # expand now
	trap "rm -rf '$raw' '$tmp'" EXIT
	log "booting the VM (this takes a minute or two under TCG)"
	"$repo/scripts/vm/run" bash "$repo/scripts/capture-proc-fixtures.sh" --guest >"$raw"
	sed -n "/^$begin_marker\$/,/^$end_marker\$/p" "$raw" | sed '1d;$d' | base64 -d | tar -xz -C "$tmp"
	[[ -f $tmp/lab/ip_vs_conn ]] || die "the guest printed no captures"
	mkdir -p "$out"
	local d
	for d in "$tmp"/*/; do
		d=$(basename "$d")
		rm -rf "${out:?}/$d"
		cp -r "$tmp/$d" "$out/$d"
		log "wrote $out/$d: $(wc -l <"$out/$d/ip_vs_conn") lines of ip_vs_conn"
	done
}

# ---- guest ----------------------------------------------------------------

py=/usr/bin/python3
[[ -x $py ]] || py=python3
work=

nsx() { # nsx NS CMD...: run CMD in network namespace NS
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

write_agent() {
	cat >"$work/agent.py" <<'EOF'
# Servers and clients for the capture lab. Not a test: it makes traffic.
import os, select, socket, struct, sys, threading, time

SCTP = getattr(socket, "IPPROTO_SCTP", 132)

kept = []  # half-open sockets the server holds (a dropped socket object closes)

def serve_stream(sock):
    def handle(c):
        keep = False
        buf = b""
        while True:
            try:
                data = c.recv(4096)
            except OSError:
                return
            if not data:
                # Peer closed: close too unless told to hold the half-open socket.
                if keep:
                    kept.append(c)
                else:
                    c.close()
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line == b"SCLOSE":
                    c.sendall(b"OK\n")
                    c.close()
                    return
                if line == b"NOCLOSE":
                    keep = True
                c.sendall(b"OK\n")
    while True:
        c, _ = sock.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()

def serve_udp(sock):
    while True:
        data, peer = sock.recvfrom(4096)
        sock.sendto(b"OK " + data, peer)

def listen(kind, port, family):
    addr = "::" if family == socket.AF_INET6 else "0.0.0.0"
    if kind == "udp":
        s = socket.socket(family, socket.SOCK_DGRAM)
    elif kind == "sctp":
        s = socket.socket(family, socket.SOCK_STREAM, SCTP)
    else:
        s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((addr, port))
    if kind == "udp":
        threading.Thread(target=serve_udp, args=(s,), daemon=True).start()
    else:
        s.listen(128)
        threading.Thread(target=serve_stream, args=(s,), daemon=True).start()

def server(specs):
    # specs: tcp:80 udp:53 sctp:3868 ...
    for spec in specs:
        kind, port = spec.split(":")
        listen(kind, int(port), socket.AF_INET6)
    print("listening", flush=True)
    threading.Event().wait()  # until the script ends

held = []

def stream(kind, dst, port, src=None, how="hold"):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    proto = SCTP if kind == "sctp" else 0
    s = socket.socket(fam, socket.SOCK_STREAM, proto)
    if src:
        s.bind((src, 0))
    s.settimeout(10)
    s.connect((dst, port))
    f = s.makefile("rb")
    def cmd(line):
        s.sendall(line + b"\n")
        if f.readline() != b"OK\n":
            raise RuntimeError("no OK from %s:%d" % (dst, port))
    if how == "hold":            # stays ESTABLISHED
        cmd(b"HOLD")
        held.append((s, f))
    elif how == "close":         # both sides close: TIME_WAIT
        cmd(b"HOLD")
        f.close()
        s.close()
    elif how == "halfclose":     # client FIN, server holds: CLOSE_WAIT (NAT)
        cmd(b"NOCLOSE")
        s.shutdown(socket.SHUT_WR)
        held.append((s, f))
    elif how == "serverclose":   # server FIN, client holds: FIN_WAIT (NAT)
        cmd(b"SCLOSE")
        f.read()
        held.append((s, f))
    elif how == "reset":         # client RST: CLOSE
        cmd(b"HOLD")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        f.close()
        s.close()
    else:
        raise ValueError(how)

def pending(dst, port):
    # A SYN nobody answers: SYN_RECV on the director.
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect((dst, port))
    except BlockingIOError:
        pass
    held.append((s, None))

def datagram(dst, port, payload=b"ping", src_port=0):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", src_port))
    s.settimeout(5)
    s.sendto(payload, (dst, port))
    if port != 5061:  # one-packet scheduling still answers; read it anyway
        s.recvfrom(4096)
    else:
        try:
            s.recvfrom(4096)
        except socket.timeout:
            pass
    held.append((s, None))

def sip(dst, port, call_id):
    msg = ("OPTIONS sip:lvs@%s SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 10.0.1.1:5060;branch=z9hG4bK776asdhds\r\n"
           "From: <sip:client@10.0.1.1>;tag=1928301774\r\n"
           "To: <sip:lvs@%s>\r\n"
           "Call-ID: %s\r\n"
           "CSeq: 1 OPTIONS\r\n"
           "Content-Length: 0\r\n\r\n") % (dst, dst, call_id)
    datagram(dst, port, msg.encode(), src_port=5060)

def client(actions):
    for a in actions:
        exec(a, globals())
    print("ready", flush=True)
    threading.Event().wait()  # hold the sockets until the script ends

if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2:])
    else:
        with open(sys.argv[2]) as f:
            client([l for l in f.read().splitlines() if l.strip()])
EOF
}

setup_lab() {
	local ns
	for ns in cl lb lb2 rs1 rs2 rs3; do
		ip netns add "$ns"
		nsx "$ns" ip link set lo up
		nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	done

	# client <-> director
	ip link add cl0 netns cl type veth peer name lb0 netns lb
	nsx cl ip link set cl0 up
	nsx cl ip addr add 10.0.1.1/24 dev cl0
	nsx cl ip addr add 10.0.9.1/24 dev cl0
	nsx cl ip addr add fd00:1::1/64 dev cl0 nodad
	nsx cl ip route add default via 10.0.1.254
	nsx cl ip -6 route add default via fd00:1::254
	nsx lb ip link set lb0 up
	nsx lb ip addr add 10.0.1.254/24 dev lb0
	nsx lb ip addr add fd00:1::254/64 dev lb0 nodad
	nsx lb ip route add 10.0.9.0/24 via 10.0.1.1

	# director: forwarding, VIPs, the real servers' bridge
	nsx lb sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
		net.ipv4.conf.all.accept_local=1 net.ipv4.conf.default.accept_local=1
	nsx lb ip link add vip0 type dummy
	nsx lb ip link set vip0 up
	local i
	for i in $(seq 100 111) $(seq 120 133); do
		nsx lb ip addr add "10.0.0.$i/32" dev vip0
	done
	for i in $(seq 100 107); do
		nsx lb ip addr add "fd00::$i/128" dev vip0 nodad
	done
	nsx lb ip link add br0 type bridge
	nsx lb ip link set br0 up
	nsx lb ip addr add 10.0.2.254/24 dev br0
	nsx lb ip addr add fd00:2::254/64 dev br0 nodad
	nsx lb sysctl -qw net.ipv4.conf.br0.accept_local=1 net.ipv4.conf.br0.rp_filter=0

	for i in 1 2 3; do
		ns=rs$i
		ip link add eth0 netns "$ns" type veth peer name "rs$i" netns lb
		nsx lb ip link set "rs$i" master br0 up
		nsx "$ns" ip link set eth0 up
		nsx "$ns" ip addr add "10.0.2.1$i/24" dev eth0
		nsx "$ns" ip addr add "fd00:2::1$i/64" dev eth0 nodad
		nsx "$ns" ip route add default via 10.0.2.254
		nsx "$ns" ip -6 route add default via fd00:2::254
		nsx "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
			net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
		# direct routing: the VIP on lo; tunnelling: the VIP on tunl0
		nsx "$ns" ip addr add 10.0.0.101/32 dev lo
		nsx "$ns" ip link set tunl0 up
		nsx "$ns" ip addr add 10.0.0.102/32 dev tunl0
		nsx "$ns" sysctl -qw net.ipv4.conf.tunl0.rp_filter=0
	done

	# backup director for the sync daemon
	ip link add sync0 netns lb type veth peer name sync0 netns lb2
	nsx lb ip link set sync0 up
	nsx lb ip addr add 10.0.3.1/24 dev sync0
	nsx lb2 ip link set sync0 up
	nsx lb2 ip addr add 10.0.3.2/24 dev sync0

	# fwmark services: mark in prerouting
	nsx lb nft -f - <<'EOF'
table inet lvs {
	chain pre {
		type filter hook prerouting priority -150;
		ip daddr 10.0.0.107 tcp dport 8000 meta mark set 1
		ip6 daddr fd00::107 tcp dport 8000 meta mark set 2
	}
}
EOF
}

add_services() {
	local a="nsx lb ipvsadm"
	# NAT, round robin, weights 1 and 2
	$a -A -t 10.0.0.100:80 -s rr
	$a -a -t 10.0.0.100:80 -r 10.0.2.11:80 -m -w 1
	$a -a -t 10.0.0.100:80 -r 10.0.2.12:80 -m -w 2
	# direct routing, weighted least connections
	$a -A -t 10.0.0.101:80 -s wlc
	$a -a -t 10.0.0.101:80 -r 10.0.2.11:80 -g -w 3
	$a -a -t 10.0.0.101:80 -r 10.0.2.12:80 -g -w 1
	# tunnelling, source hashing with the sh-port flag
	$a -A -t 10.0.0.102:80 -s sh -b sh-port
	$a -a -t 10.0.0.102:80 -r 10.0.2.13:80 -i -w 1
	# persistence 300 s per /24, weighted round robin; rs2 quiesced
	$a -A -t 10.0.0.103:443 -s wrr -p 300 -M 255.255.255.0
	$a -a -t 10.0.0.103:443 -r 10.0.2.11:443 -m -w 5
	$a -a -t 10.0.0.103:443 -r 10.0.2.12:443 -m -w 0
	# UDP, least connections
	$a -A -u 10.0.0.104:53 -s lc
	$a -a -u 10.0.0.104:53 -r 10.0.2.11:53 -m -w 1
	$a -a -u 10.0.0.104:53 -r 10.0.2.12:53 -m -w 1
	# UDP one-packet scheduling
	$a -A -u 10.0.0.105:5061 -s rr -o
	$a -a -u 10.0.0.105:5061 -r 10.0.2.11:5061 -m -w 1
	# SCTP
	$a -A --sctp-service 10.0.0.106:3868 -s rr
	$a -a --sctp-service 10.0.0.106:3868 -r 10.0.2.11:3868 -m -w 1
	$a -a --sctp-service 10.0.0.106:3868 -r 10.0.2.12:3868 -m -w 1
	# fwmark 1 with persistence 60 s
	$a -A -f 1 -s rr -p 60
	$a -a -f 1 -r 10.0.2.11:8000 -m -w 1
	# local delivery (a real server on the director itself)
	$a -A -t 10.0.0.108:8081 -s lc
	$a -a -t 10.0.0.108:8081 -r 10.0.2.254:8081 -m -w 1
	# SIP persistence engine
	$a -A -u 10.0.0.110:5060 -s rr -p 60 --pe sip
	$a -a -u 10.0.0.110:5060 -r 10.0.2.11:5060 -m -w 1
	# a real server that never answers: SYN_RECV
	$a -A -t 10.0.0.111:80 -s rr
	$a -a -t 10.0.0.111:80 -r 10.0.2.99:80 -m -w 1
	# IPv6: NAT round robin; persistence per /64; UDP; fwmark 2
	$a -A -t '[fd00::100]:80' -s rr
	$a -a -t '[fd00::100]:80' -r '[fd00:2::11]:80' -m -w 1
	$a -a -t '[fd00::100]:80' -r '[fd00:2::12]:80' -m -w 1
	$a -A -t '[fd00::101]:443' -s wlc -p 120 -M 64
	$a -a -t '[fd00::101]:443' -r '[fd00:2::11]:443' -m -w 2
	$a -A -u '[fd00::102]:53' -s lc
	$a -a -u '[fd00::102]:53' -r '[fd00:2::12]:53' -m -w 1
	$a -A -f 2 -6 -s rr -p 90
	$a -a -f 2 -6 -r '[fd00:2::13]:8000' -m -w 1
	# every scheduler, without traffic: 10.0.0.120 + index
	local i=120 s
	for s in rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos; do
		$a -A -t "10.0.0.$i:80" -s "$s"
		$a -a -t "10.0.0.$i:80" -r 10.0.2.13:80 -m -w 1
		i=$((i + 1))
	done
}

start_servers() {
	local ns
	mkfifo "$work/ready"
	for ns in rs1 rs2 rs3; do
		nsx "$ns" "$py" "$work/agent.py" server tcp:80 tcp:443 tcp:8000 udp:53 udp:5060 udp:5061 sctp:3868 \
			</dev/null >"$work/ready" 2>"$work/$ns.log" &
	done
	nsx lb "$py" "$work/agent.py" server tcp:8081 </dev/null >"$work/ready" 2>"$work/lb.log" &
	local n=0 line
	exec 8<"$work/ready"
	while ((n < 4)) && read -r -t 120 -u 8 line; do
		[[ $line == listening ]] && n=$((n + 1))
	done
	exec 8<&-
	((n == 4)) || {
		cat "$work"/*.log >&2
		die "the servers did not start"
	}
	log "servers listening"
}

drive_traffic() {
	local actions=(
		# NAT: 3 held, 2 closed, half-closed, server-closed, reset
		"stream('tcp','10.0.0.100',80)" "stream('tcp','10.0.0.100',80)" "stream('tcp','10.0.0.100',80)"
		"stream('tcp','10.0.0.100',80,how='close')" "stream('tcp','10.0.0.100',80,how='close')"
		"stream('tcp','10.0.0.100',80,how='halfclose')" "stream('tcp','10.0.0.100',80,how='serverclose')"
		# direct routing and tunnel
		"stream('tcp','10.0.0.101',80)" "stream('tcp','10.0.0.101',80)"
		"stream('tcp','10.0.0.101',80,how='close')" "stream('tcp','10.0.0.101',80,how='halfclose')"
		"stream('tcp','10.0.0.102',80)" "stream('tcp','10.0.0.102',80,how='close')"
		# persistence from two client networks
		"stream('tcp','10.0.0.103',443,src='10.0.1.1')" "stream('tcp','10.0.0.103',443,src='10.0.1.1')"
		"stream('tcp','10.0.0.103',443,src='10.0.9.1')" "stream('tcp','10.0.0.103',443,src='10.0.9.1',how='close')"
		# UDP, one-packet UDP, SCTP
		"datagram('10.0.0.104',53)" "datagram('10.0.0.104',53)" "datagram('10.0.0.104',53)"
		"datagram('10.0.0.105',5061)"
		"stream('sctp','10.0.0.106',3868)" "stream('sctp','10.0.0.106',3868)"
		"stream('sctp','10.0.0.106',3868,how='close')"
		# fwmark, local, SIP, unanswered
		"stream('tcp','10.0.0.107',8000)" "stream('tcp','10.0.0.107',8000,how='close')"
		"stream('tcp','10.0.0.108',8081)"
		"sip('10.0.0.110',5060,'a84b4c76e66710@pc33.example.com')"
		"pending('10.0.0.111',80)"
		# IPv6
		"stream('tcp','fd00::100',80)" "stream('tcp','fd00::100',80)" "stream('tcp','fd00::100',80,how='close')"
		"stream('tcp','fd00::101',443)"
		"datagram('fd00::102',53)" "datagram('fd00::102',53)"
		"stream('tcp','fd00::107',8000)"
		# last: CLOSE lasts 10 s
		"stream('tcp','10.0.0.100',80,how='reset')"
	)
	printf '%s\n' "${actions[@]}" >"$work/actions"
	mkfifo "$work/client"
	nsx cl "$py" "$work/agent.py" client "$work/actions" </dev/null >"$work/client" 2>"$work/client.log" &
	local line=
	read -r -t 300 line <"$work/client" || true
	[[ $line == ready ]] || {
		cat "$work/client.log" >&2
		die "the client failed"
	}
	log "traffic sent"
}

# wait_for_states waits (at most 20 s) until lb's table shows the states the
# traffic should leave; the FIN handshakes finish a little after the client.
wait_for_states() {
	local want=(ESTABLISHED TIME_WAIT FIN_WAIT CLOSE_WAIT CLOSE SYN_RECV UDP) s missing table
	local deadline=$((SECONDS + 20))
	while :; do
		table=$(nsx lb cat /proc/net/ip_vs_conn)
		missing=
		for s in "${want[@]}"; do
			[[ $table == *" $s "* ]] || missing+=" $s"
		done
		[[ -z $missing ]] && return 0
		((SECONDS < deadline)) || break
		sleep 0.5
	done
	log "still missing after 20 s:$missing (capturing anyway)"
}

# snapshot NS DIR: copy the files, then run ipvsadm -Lnc on the same copy of
# ip_vs_conn (a tmpfs over /proc in a private mount namespace).
snapshot() {
	local ns=$1 dir=$work/out/$2 f
	mkdir -p "$dir"
	for f in ip_vs ip_vs_conn ip_vs_conn_sync ip_vs_stats ip_vs_stats_percpu; do
		nsx "$ns" cat "/proc/net/$f" >"$dir/$f"
	done
	nsx "$ns" ipvsadm -Ln >"$dir/ipvsadm-Ln.txt"
	nsx "$ns" unshare -m sh -c '
		mount -t tmpfs none /proc && mkdir /proc/net && cp "$1" /proc/net/ip_vs_conn && ipvsadm -Lnc
	' sh "$dir/ip_vs_conn" >"$dir/ipvsadm-Lnc.txt"
	uname -r >"$dir/KERNEL"
	log "captured $2: $(($(wc -l <"$dir/ip_vs_conn") - 1)) connections"
}

guest_main() {
	[[ $(id -u) == 0 ]] || die "the guest side needs root"
	[[ -e /proc/net/ip_vs ]] || modprobe ip_vs || die "no IPVS in this kernel"
	modprobe sctp || log "no sctp module: SCTP traffic will fail"
	work=$(mktemp -d)
	# shellcheck disable=SC2064 # expand now
	trap "kill \$(jobs -p) 2>/dev/null; rm -rf '$work'" EXIT
	write_agent
	setup_lab
	snapshot lb empty
	add_services
	nsx lb ipvsadm --start-daemon master --mcast-interface sync0 --syncid 7
	nsx lb2 ipvsadm --start-daemon backup --mcast-interface sync0 --syncid 7
	start_servers
	drive_traffic
	wait_for_states
	snapshot lb lab
	snapshot lb2 backup
	printf '%s\n' "$begin_marker"
	tar -C "$work/out" -cz . | base64 -w 76
	printf '%s\n' "$end_marker"
}

if [[ ${1:-} == --guest || ${LVSKIT_IN_VM:-} == 1 ]]; then
	guest_main
else
	host_main "$@"
fi
