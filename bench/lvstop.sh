#!/usr/bin/env bash
# lvstop.sh: lvstop --once on a saved tree with a 1,000,000-entry
# connection table: wall time and peak RSS (GNU time), median of R runs,
# beside cat of the same table. Goal (lvstop's issue): RSS <= 150 MB.
#
#   bench/lvstop.sh [--reps R]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
reps=7
[[ ${1:-} == --reps ]] && reps=$2
out=$repo/bench/out
tree=$out/lvstop-tree
mkdir -p "$out"
(cd "$repo" && CGO_ENABLED=0 go build -o "$out/lvstop" ./cmd/lvstop && CGO_ENABLED=0 go build -o "$out/conntable" ./bench/conntable)
if [[ ! -s $tree/proc/net/ip_vs_conn ]]; then
	mkdir -p "$tree/proc/net"
	cp "$repo"/director/ipvs/testdata/proc/lab/{ip_vs,ip_vs_stats} "$tree/proc/net/"
	"$out/conntable" -generate 1000000 -o "$tree/proc/net/ip_vs_conn"
fi
cat "$tree/proc/net/ip_vs_conn" >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((i = 0; i < reps; i++)); do
	/usr/bin/time -f '%e %M' -a -o "$tmp/cat" cat "$tree/proc/net/ip_vs_conn" >/dev/null
	/usr/bin/time -f '%e %M' -a -o "$tmp/once" "$out/lvstop" --once --proc "$tree" >/dev/null
	/usr/bin/time -f '%e %M' -a -o "$tmp/json" "$out/lvstop" --once --output json --proc "$tree" >/dev/null
done
median() { sort -g -k"$1" "$2" | awk -v c="$1" '{v[NR]=$c} END {print v[int((NR+1)/2)]}'; }
printf '%-28s %8s %10s   (median of %d runs, 1,000,000 entries)\n' command "wall s" "peak RSS" "$reps"
for n in cat once json; do
	label=$n
	[[ $n == once ]] && label="lvstop --once"
	[[ $n == json ]] && label="lvstop --once --output json"
	printf '%-28s %8s %7d KB\n' "$label" "$(median 1 "$tmp/$n")" "$(median 2 "$tmp/$n")"
done
