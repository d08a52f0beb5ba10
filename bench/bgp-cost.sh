#!/usr/bin/env bash
# bgp-cost.sh: what embedding GoBGP costs lvsd, side by side in one run:
# the binary built as usual against one built with -tags nobgp (the same
# code, the speaker left out): size, package initialisation (the sum of
# GODEBUG=inittrace's clocks), wall time and peak RSS of `lvsd version`
# and of `lvsd check` on the BGP example: the least and the median of R
# alternating runs (on a shared host preemption only adds time).
#
#   bench/bgp-cost.sh [--reps R]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
reps=31
[[ ${1:-} == --reps ]] && reps=$2
out=$repo/bench/out
mkdir -p "$out"
(cd "$repo" && CGO_ENABLED=0 go build -o "$out/lvsd-bgp" ./cmd/lvsd && CGO_ENABLED=0 go build -tags nobgp -o "$out/lvsd-nobgp" ./cmd/lvsd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cfg=$repo/examples/bgp-ecmp.yaml
# one run: wall ms, peak RSS KB, init ms
measure() {
	local bin=$1
	shift
	local t0 t1
	t0=$(date +%s%N)
	GODEBUG=inittrace=1 /usr/bin/time -f '%M' -o "$tmp/rss" "$bin" "$@" >/dev/null 2>"$tmp/init"
	t1=$(date +%s%N)
	awk -v w=$(((t1 - t0) / 1000)) -v r="$(cat "$tmp/rss")" \
		'/^init / {s += $5} END {printf "%.2f %d %.2f\n", w/1000, r, s}' "$tmp/init"
}
for ((i = 0; i < reps; i++)); do
	for v in nobgp bgp; do
		measure "$out/lvsd-$v" version >>"$tmp/$v-version"
		measure "$out/lvsd-$v" check --config "$cfg" >>"$tmp/$v-check" || true
	done
done
median() { sort -g -k"$1" "$2" | awk -v c="$1" '{v[NR]=$c} END {print v[int((NR+1)/2)]}'; }
# the least of the runs: on a shared host, preemption only ever adds time
least() { sort -g -k"$1" "$2" | awk -v c="$1" 'NR == 1 {print $c}'; }
printf 'load average: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-22s %8s %16s %16s %12s   (least/median of %d alternating runs)\n' build "size MB" "init ms" "wall ms" "peak RSS MB" "$reps"
for v in nobgp bgp; do
	size=$(stat -c %s "$out/lvsd-$v")
	for c in version check; do
		label="$v: lvsd $c"
		printf '%-22s %8.1f %16s %16s %12.1f\n' "$label" "$(echo "$size / 1000000" | bc -l)" \
			"$(least 3 "$tmp/$v-$c")/$(median 3 "$tmp/$v-$c")" "$(least 1 "$tmp/$v-$c")/$(median 1 "$tmp/$v-$c")" \
			"$(echo "$(median 2 "$tmp/$v-$c") / 1024" | bc -l)"
	done
done
