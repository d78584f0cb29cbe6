#!/usr/bin/env bash
# The egress path's cost (issue "appliance-parent"): one bulk transfer through
# the enclave's bridge + the parent's SOCKS5 proxy (TCP -> bridge -> unix
# channel -> proxy -> TCP) against a direct loopback transfer, in the same run
# and the same process (tests/bench/parent_probe.c `bench`), best of 5
# alternating rounds (the machine is shared: noise only slows a run down).
# Target: at least 50% of the direct throughput. Also the connection set-up
# overhead (connect + a 1-byte round trip) in microseconds.
# BENCH_PARENT_MIB (default 256) MiB per transfer, BENCH_PARENT_CONNS (200) connections.
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${APPLIANCE_BUILD:-$ROOT/build/release}
P=$B/tests/bench/parent_probe
[[ -x $P ]] || { echo "bench_parent: $P not built"; exit 1; }
export TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/bench_parent.XXXXXX")
trap 'rm -rf "$TMPDIR"' EXIT
out=$(timeout 600 "$P" bench "${BENCH_PARENT_MIB:-256}" "${BENCH_PARENT_CONNS:-200}")
rc=$?
echo "$out" | grep -v '^RESULT'
ratio=$(sed -n 's/^RESULT ratio=\([0-9.]*\).*/\1/p' <<<"$out")
[[ -n $ratio ]] || { echo "bench_parent failed (status $rc)"; exit 1; }
awk -v r="$ratio" 'BEGIN { printf "%-44s %6.2f  %s\n", "throughput ratio bridge+proxy / direct", r, (r >= 0.5) ? "ok (target >= 0.50)" : "BELOW TARGET (0.50)"; exit !(r >= 0.5) }'
