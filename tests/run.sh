#!/usr/bin/env bash
# Runs every test suite: unit test binaries, then integration scripts.
# Usage: tests/run.sh BIN_DIR BUILD_DIR
# Each suite prints its own lines and ends with "N passed, N failed"; this
# script sums them and ends with the same line for the whole run.
set -u
BIN=${1:?bin dir}
B=${2:?build dir}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export APPLIANCE_ROOT=$ROOT APPLIANCE_BIN=$BIN APPLIANCE_BUILD=$B
cd "$ROOT"
total_pass=0 total_fail=0 failed_suites=()
log_dir=$B/test-logs
mkdir -p "$log_dir"

run_suite() { # name, command...
	local name=$1; shift
	local log=$log_dir/$name.log start=$SECONDS
	mkdir -p "$(dirname "$log")"
	"$@" >"$log" 2>&1
	local rc=$?
	local line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	local p=0 f=0
	if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
		p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]}
	fi
	if [[ $rc -ne 0 && $f -eq 0 ]]; then f=1; fi
	if [[ -z $line && $rc -eq 0 ]]; then f=1; echo "  (suite printed no summary line)" >>"$log"; fi
	total_pass=$((total_pass + p)) total_fail=$((total_fail + f))
	printf '%-40s %5d passed %3d failed  %4ds\n' "$name" "$p" "$f" $((SECONDS - start))
	if [[ $f -ne 0 ]]; then
		failed_suites+=("$name")
		echo "---- $name (log: $log)"; grep -E 'FAIL|ERROR|error|Sanitizer|runtime error' "$log" | head -n 40; echo "----"
	fi
}

for t in "$B"/tests/unit/*_test; do
	[[ -x $t ]] || continue
	run_suite "unit/$(basename "$t")" "$t"
done
for t in tests/integration/*.sh tests/interop/*.sh; do
	[[ -f $t ]] || continue
	run_suite "${t#tests/}" bash "$t"
done

if ((${#failed_suites[@]})); then echo "failed suites: ${failed_suites[*]}"; fi
echo "$total_pass passed, $total_fail failed"
[[ $total_fail -eq 0 ]]
