#!/usr/bin/env bash
# conntable.sh: how fast lvskit aggregates a 1,000,000-entry IPVS connection
# table, against `cat FILE >/dev/null` (and, with --vm, `ipvsadm -lcn`) on the
# same file in the same run.
#
#   bench/conntable.sh [--lines N] [--reps R]        on this host
#   bench/conntable.sh --vm [--lines N] [--reps R]   inside the test VM (needs
#        scripts/vm/prepare-kit.sh): adds ipvsadm -lcn, which reads
#        /proc/net/ip_vs_conn, fed the same file through a tmpfs mounted over
#        /proc in a private mount namespace.
#
# Each command runs R times (default 7) in turns; the script prints the median
# wall time and peak RSS (GNU time's %M) of each, and the ratios ours/cat and
# ipvsadm/ours. Goals (lvstop's issue): ours <= 1.5x cat, >= 5x faster than
# ipvsadm -lcn, RSS <= 150 MB. Files go to bench/out/ (gitignored).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
lines=1000000
reps=7
vm=0
inner=0
mounted=0
while (($#)); do
	case $1 in
	--lines) lines=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--vm) vm=1; shift ;;
	--inner) inner=1; shift ;;    # set by --vm: we are in the VM
	--mounted) mounted=1; shift ;; # set by --inner: /proc is our tmpfs
	*)
		printf 'usage: %s [--vm] [--lines N] [--reps R]\n' "$0" >&2
		exit 2
		;;
	esac
done

out=$repo/bench/out
bin=$out/conntable

log() { printf 'conntable.sh: %s\n' "$*" >&2; }

ensure_time() {
	[[ -x /usr/bin/time ]] && /usr/bin/time -f %M true >/dev/null 2>&1 && return
	log "installing GNU time (Debian package time)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null ||
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null; }
}

prepare() {
	mkdir -p "$out"
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$bin" ./bench/conntable)
	local file=$out/ip_vs_conn.$lines
	if [[ ! -s $file ]]; then
		log "generating $file"
		"$bin" -generate "$lines" -o "$file.tmp"
		mv "$file.tmp" "$file"
	fi
}

# measure NAME CMD...: one run; appends "wall-ms cpu-ms peak-RSS-KB" to
# $tmp/NAME. The wall time is taken around GNU time, whose own cost (a fork
# and an exec, the same for every command) is in every figure; its %e has
# only 10 ms resolution.
measure() {
	local name=$1 t0 t1
	shift
	t0=$EPOCHREALTIME
	/usr/bin/time -f '%U %S %M' -o "$tmp/$name.one" "$@" >/dev/null
	t1=$EPOCHREALTIME
	awk -v t0="$t0" -v t1="$t1" '{ printf "%.2f %.0f %d\n", (t1 - t0) * 1000, ($1 + $2) * 1000, $3 }' \
		"$tmp/$name.one" >>"$tmp/$name"
}

median() { # median COLUMN FILE
	sort -g -k"$1" "$2" | awk -v c="$1" '{v[NR]=$c} END {print v[int((NR+1)/2)]}'
}

report() {
	local name ms cpu rss
	printf '%-10s %10s %10s %12s   (median of %d runs, %s lines, %s MB)\n' command "wall ms" "CPU ms" "peak RSS" \
		"$reps" "$lines" "$(($(stat -c %s "$file") / 1000000))"
	for name in "$@"; do
		ms=$(median 1 "$tmp/$name")
		cpu=$(median 2 "$tmp/$name")
		rss=$(median 3 "$tmp/$name")
		printf '%-10s %10s %10s %9d KB\n' "$name" "$ms" "$cpu" "$rss"
		eval "ms_$name=$ms rss_$name=$rss"
	done
	awk -v o="$ms_ours" -v c="$ms_cat" 'BEGIN { printf "ours/cat     %.2fx wall (goal <= 1.5x)\n", o / c }'
	if [[ -n ${ms_ipvsadm:-} ]]; then
		awk -v o="$ms_ours" -v i="$ms_ipvsadm" 'BEGIN { printf "ipvsadm/ours %.2fx wall (goal >= 5x)\n", i / o }'
	fi
	awk -v r="$rss_ours" 'BEGIN { printf "ours RSS     %.1f MB (goal <= 150 MB)\n", r / 1024 }'
	awk -v o="$ms_ours" -v l="$lines" 'BEGIN { printf "ours         %.1f ns/line wall\n", o * 1e6 / l }'
}

run_bench() {
	ensure_time
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064 # expand now
	trap "rm -rf '$tmp'" EXIT
	local names=(cat ours)
	if ((inner)); then
		# ipvsadm reads /proc/net/ip_vs_conn: all three read that path, a copy
		# of the file on the tmpfs we mounted over /proc.
		cp "$bin" "$tmp/conntable"
		bin=$tmp/conntable
		file=/proc/net/ip_vs_conn
		names+=(ipvsadm)
	fi
	cat "$file" >/dev/null # warm the page cache
	local i
	for ((i = 0; i < reps; i++)); do
		measure cat cat "$file"
		measure ours "$bin" "$file"
		((inner)) && measure ipvsadm ipvsadm -lcn
	done
	((inner)) && printf 'in the VM: kernel %s, %s CPUs, files on tmpfs\n' "$(uname -r)" "$(nproc)"
	"$bin" "$file"
	report "${names[@]}"
}

if ((inner && !mounted)); then
	# In the VM: a private mount namespace with a tmpfs over /proc that holds
	# only net/ip_vs_conn, our copy of the generated file.
	file=$out/ip_vs_conn.$lines
	[[ -s $file ]] || { log "no $file: run bench/conntable.sh --vm on the host"; exit 1; }
	exec unshare -m sh -c 'mount -t tmpfs none /proc && mkdir /proc/net && cp "$1" /proc/net/ip_vs_conn &&
		shift && exec bash "$@"' sh "$file" "$0" --inner --mounted --lines "$lines" --reps "$reps"
fi
if ((!inner)); then
	prepare
fi
file=$out/ip_vs_conn.$lines
if ((vm)); then
	exec "$repo/scripts/vm/run" bash "$repo/bench/conntable.sh" --inner --lines "$lines" --reps "$reps"
fi
run_bench
