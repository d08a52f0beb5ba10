#!/usr/bin/env bash
# trace-attach.sh: lvsdiag trace's attach and detach time (probes'
# BenchmarkVMAttach) of this tree against a baseline git ref, side by
# side in one VM: the two test binaries alternate (A B, B A, ...) for
# N pairs, one Open and Close per case and run, and each case is
# reported as the median and range of each binary's times and of the
# pairs' ratios (this / baseline). Under emulation on a shared host a
# run's time swings by a factor of two; only the paired ratios mean much.
# Each case runs in a process of its own, as lvsdiag trace opens once a
# process (a process's first Open is its slowest: BenchmarkVMAttach), and
# before the pairs one untimed run of the first case takes the boot's
# one-time costs, which a director that has been up has paid.
#
#   bench/trace-attach.sh [--base REF] [--pairs N] [--bench REGEXP]
#   VM_KERNEL=6.1 bench/trace-attach.sh ...
#
# REF defaults to main, N to 6, REGEXP to every backend of both sets
# (set=ipvs: every IPVS hop; set=dr-tcp: what lvsdiag trace attaches for
# one DR TCP service). LVSKIT_TRACE_DEBUG=1 makes this tree's runs log
# each program's verifier time and Close's time per kind of link.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
base=main pairs=6 bench='BenchmarkVMAttach/set=.*/parallel=1/'
while (($#)); do
	case $1 in
	--base) base=$2 ;;
	--pairs) pairs=$2 ;;
	--bench) bench=$2 ;;
	*) echo "usage: $0 [--base REF] [--pairs N] [--bench REGEXP]" >&2 && exit 2 ;;
	esac
	shift 2
done
out=$repo/bench/out
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -C "$repo" archive "$base" | tar -x -C "$tmp"
(cd "$tmp" && go test -c -tags vmtest -o "$out/attach-base.test" ./probes/)
(cd "$repo" && go test -c -tags vmtest -o "$out/attach-this.test" ./probes/)
# The cases REGEXP selects, by name, each anchored level by level.
(cd "$repo/probes" && LVSKIT_ATTACH_LIST=1 "$out/attach-this.test" -test.run '^$' -test.bench "$bench" -test.benchtime 1x) |
	awk '/^attach-case / {n = split($2, l, "/"); p = ""
		for (i = 1; i <= n; i++) { gsub(/[][\\.*+?(){}|^$]/, "\\\\&", l[i]); p = p (i > 1 ? "/" : "") "^" l[i] "$" }
		print p}' >"$out/attach-cases"
[[ -s $out/attach-cases ]] || { echo "$0: no BenchmarkVMAttach case matches $bench" >&2 && exit 2; }
cat >"$out/attach-pairs.sh" <<'EOF'
#!/bin/sh
# Runs inside the VM: N pairs of the two binaries, the order alternating,
# each case (a line of the cases file) in a process of its own, after one
# untimed run of the first case.
n=$1 cases=$2 a=$3 b=$4
"$b" -test.run '^$' -test.bench "$(head -n 1 "$cases")" -test.benchtime 1x >/dev/null 2>&1
for i in $(seq 1 "$n"); do
	order="$a $b"
	[ $((i % 2)) -eq 1 ] && order="$b $a"
	while read -r c; do
		for bin in $order; do
			echo "=== pair $i $(basename "$bin")"
			"$bin" -test.run '^$' -test.bench "$c" -test.benchtime 1x </dev/null 2>&1 | grep -E 'attach-s|tracer attached|tracer detached'
		done
	done <"$cases"
done
EOF
chmod +x "$out/attach-pairs.sh"
echo "host load before: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$repo/probes" && nice -n -19 "$repo/scripts/vm/run" "$out/attach-pairs.sh" "$pairs" "$out/attach-cases" \
	"$out/attach-base.test" "$out/attach-this.test") | tee "$out/attach-pairs.log"
echo "host load after: $(cut -d' ' -f1-3 /proc/loadavg)"
# One line per run: case binary pair attach detach.
awk '/^=== pair/ {pair = $3; bin = $4; sub(/^attach-/, "", bin); sub(/\.test$/, "", bin)}
	/attach-s/ {c = $1; sub(/^BenchmarkVMAttach\//, "", c); sub(/-[0-9]+$/, "", c)
		for (i = 1; i < NF; i++) { if ($(i+1) == "attach-s") a = $i; if ($(i+1) == "detach-s") d = $i }
		print c, bin, pair, a, d}' "$out/attach-pairs.log" >"$tmp/runs"
# median and range of a column of numbers on stdin
stats() { sort -g | awk '{v[NR] = $1} END {if (NR) printf "median %.2f (%.2f-%.2f, n=%d)", (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2), v[1], v[NR], NR}'; }
for c in $(cut -d' ' -f1 "$tmp/runs" | sort -u); do
	echo "$c"
	for what in attach:4 detach:5; do
		col=${what#*:} name=${what%:*}
		for bin in base this; do
			printf '  %-7s %-5s %s\n' "$name" "$bin" "$(awk -v c="$c" -v b="$bin" -v k="$col" '$1 == c && $2 == b {print $k}' "$tmp/runs" | stats)"
		done
		printf '  %-7s ratio this/base %s\n' "$name" "$(awk -v c="$c" -v k="$col" '$1 == c {v[$3 " " $2] = $k; p[$3]} END {for (i in p) if (v[i " base"] > 0 && v[i " this"] != "") print v[i " this"] / v[i " base"]}' "$tmp/runs" | stats)"
	done
done
