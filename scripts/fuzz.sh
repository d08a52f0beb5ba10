#!/usr/bin/env bash
# fuzz.sh: runs every fuzz target in the repository, one after the other,
# for a while each, and prints a table of executions and findings.
#
#   scripts/fuzz.sh [DURATION]          (make fuzz FUZZTIME=10m; default 1m)
#
# Targets are found afresh each run (func FuzzXxx in *_test.go), so new
# ones are included without editing this file. The inputs that widened
# coverage are copied from Go's fuzz cache into the package's
# testdata/fuzz/FuzzXxx/ (commit them: they become seeds that every
# `go test` runs); a crasher is written there by go test itself and the
# run ends with exit 1 after the other targets.
#
# Environment: FUZZ_PARALLEL workers per target (default: go's, one per
# core); FUZZ_ONLY a regexp of target names to run; FUZZ_MINIMIZE how
# long to minimize each new input (default 5s: go's 60s default stalls
# targets whose seeds are large /proc captures, which then run a few
# dozen inputs a minute, all of it minimizing).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-1m}
go=${GO:-go}
cache=$($go env GOCACHE)/fuzz
module=$($go list -m)
parallel=()
[[ -n ${FUZZ_PARALLEL:-} ]] && parallel=(-parallel "$FUZZ_PARALLEL")
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT

mapfile -t targets < <(grep -rhoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' --with-filename . |
	sed -E 's|^\./(.*)/[^/]*_test\.go:func (Fuzz.*)$|\1 \2|' | sort -u)
failed=0
printf '%-22s %-26s %14s %10s %8s  %s\n' PACKAGE TARGET EXECS EXECS/S NEW RESULT >"$summary"
for t in "${targets[@]}"; do
	pkg=${t% *} name=${t#* }
	if [[ -n ${FUZZ_ONLY:-} && ! $name =~ $FUZZ_ONLY ]]; then
		continue
	fi
	echo "== $pkg $name for $duration"
	log=$(mktemp)
	result=ok
	if ! $go test -run '^$' -fuzz "^${name}\$" -fuzztime "$duration" -fuzzminimizetime "${FUZZ_MINIMIZE:-5s}" \
		"${parallel[@]}" "./$pkg" 2>&1 | tee "$log"; then
		result=FAILED
		failed=1
	fi
	# The last progress line: "fuzz: elapsed: 1m0s, execs: 123 (2/sec), new interesting: 3 (total: 9)"
	last=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -1 || true)
	execs=$(sed -nE 's/.*execs: ([0-9]+) .*/\1/p' <<<"$last")
	# The rate go prints is the last interval's; this is the run's.
	secs=$(sed -nE 's/^fuzz: elapsed: ([0-9hms.]+),.*/\1/p' <<<"$last" |
		awk '{ s = 0; n = split($0, p, /[hms]/); t = $0; gsub(/[0-9.]/, "", t)
		       for (i = 1; i <= length(t); i++) { u = substr(t, i, 1); v = p[i]
		         s += (u == "h") ? v * 3600 : (u == "m") ? v * 60 : v }
		       print s }')
	rate=
	if [[ -n $execs && -n $secs && $secs != 0 ]]; then
		rate=$((execs / ${secs%.*}))
	fi
	new=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
	rm -f "$log"
	# Keep what the fuzzer learnt as seeds in testdata.
	src=$cache/$module/$pkg/$name
	dst=$pkg/testdata/fuzz/$name
	if [[ -d $src ]]; then
		mkdir -p "$dst"
		for f in "$src"/*; do
			[[ -e $dst/$(basename "$f") ]] || cp "$f" "$dst/"
		done
	fi
	printf '%-22s %-26s %14s %10s %8s  %s\n' "$pkg" "$name" "${execs:-?}" "${rate:-?}" "${new:-0}" "$result" >>"$summary"
done
echo
cat "$summary"
exit $failed
