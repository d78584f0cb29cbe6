#!/usr/bin/env bash
# Runs each libFuzzer target in BUILD_DIR for SECONDS on its seed corpus
# (tests/fuzz/corpus/NAME/, copied to a scratch dir so seeds stay clean).
# Usage: tests/fuzz/run.sh BUILD_DIR [SECONDS]
set -u
B=${1:?build dir}
SECS=${2:-30}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
fail=0 n=0
for f in "$B"/fuzz_*; do
	[[ -x $f ]] || continue
	name=$(basename "$f"); name=${name#fuzz_}
	seeds=tests/fuzz/corpus/$name
	work=$B/corpus-work/$name
	mkdir -p "$work" "$B/artifacts"
	[[ -d $seeds ]] && cp -n "$seeds"/* "$work"/ 2>/dev/null
	n=$((n + 1))
	if "$f" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$B/artifacts/$name-" "$work" >"$B/fuzz_$name.log" 2>&1; then
		echo "ok   fuzz_$name ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$B/fuzz_$name.log" | awk '{print $2}') runs)"
	else
		echo "FAIL fuzz_$name (see $B/fuzz_$name.log)"; tail -n 30 "$B/fuzz_$name.log"; fail=$((fail + 1))
	fi
done
echo "$((n - fail)) passed, $fail failed"
[[ $fail -eq 0 ]]
