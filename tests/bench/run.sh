#!/usr/bin/env bash
# Runs every benchmark script tests/bench/bench_*.sh in name order.
# Usage: tests/bench/run.sh BIN_DIR BUILD_DIR. Benchmarks print their
# figures and the ratio against a baseline measured in the same run.
# Select some with BENCH=pattern (e.g. BENCH=verify make bench).
set -u
BIN=${1:?bin dir}
B=${2:?build dir}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export APPLIANCE_ROOT=$ROOT APPLIANCE_BIN=$BIN APPLIANCE_BUILD=$B
cd "$ROOT"
"$ROOT/scripts/deps.sh" --bench
rc=0
for s in tests/bench/bench_*.sh; do
	[[ -f $s ]] || continue
	[[ -n ${BENCH:-} && $s != *${BENCH}* ]] && continue
	echo "== $(basename "$s" .sh)"
	bash "$s" || { echo "bench $(basename "$s") FAILED"; rc=1; }
done
exit $rc
