#!/usr/bin/env bash
# Installs what lvskit's tests and tools need on a Debian 12 machine:
# the VM harness's host tools, the independent IPVS client (ipvsadm), the
# real peers of the network tier (keepalived, nginx, arping, tcpdump, bird2) and
# the eBPF toolchain. Idempotent; run as root.
set -euo pipefail

pkgs=(
	# VM harness
	qemu-system-x86 busybox-static kmod cpio xz-utils zstd
	# IPVS's independent client, used to cross-check what lvskit writes
	ipvsadm
	# lvstop: its test drives the built binary in a terminal
	tmux
	# network tier: hosts in namespaces and real protocol peers
	iproute2 iputils-ping procps keepalived nginx-light arping tcpdump nftables iptables curl
	# bench/: peak RSS of a run
	time
	# director's health-check benchmark: syscalls per check of lvsd and keepalived
	strace
	# director's scrape benchmark: node_exporter's ipvs collector, the baseline
	prometheus-node-exporter
	# probes/: eBPF objects are generated with clang; gcc links the race
	# detector's runtime for make test-race (cgo)
	clang llvm gcc
	# make lint-deb: Debian's package checker; contrib/: promtool checks
	# and unit-tests the alerting rules (Debian's prometheus package)
	lintian prometheus
	# lvsdiag trace's throughput benchmark: bpftrace is the baseline (VM only: it needs kprobes)
	bpftrace
	# director's BGP lab: the upstream router with ECMP over three lvsd directors
	bird2
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	echo "install-deps: all ${#pkgs[@]} packages present"
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the daemons it installs; the tests run their own instances.
for svc in nginx keepalived prometheus-node-exporter prometheus bird; do
	systemctl stop "$svc" 2>/dev/null || service "$svc" stop 2>/dev/null || true
done
