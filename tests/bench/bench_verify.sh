#!/usr/bin/env bash
# Event verification throughput (issue: Foundation bench).
# `appliance event verify --jsonl` over N real-shaped events (default 100,000),
# against nostr-tools verifyEvent over the same file (first JS_N events,
# default 10,000: pure JS verifies ~500/s) and against a bare
# secp256k1_schnorrsig_verify loop over the same signatures. All single-core.
# Rates are per CPU second (user+sys of each process), which other load on a
# shared machine disturbs far less than wall time. Prints medians of RUNS runs
# (default 5, ours and the bare loop interleaved) and both ratios.
set -euo pipefail
ROOT=${APPLIANCE_ROOT:?}; BIN=${APPLIANCE_BIN:?}; B=${APPLIANCE_BUILD:?}
N=${BENCH_EVENTS:-100000}; JS_N=${BENCH_JS_EVENTS:-10000}; RUNS=${BENCH_RUNS:-5}; export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$B/tests/bench/verify_tool" gen "$N" 2000 >"$tmp/events.jsonl"
echo "events: $N ($(du -h "$tmp/events.jsonl" | cut -f1)), 2000 authors, kinds 1/7/0/3/5720"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ours=() bares=()
for ((i = 0; i < RUNS; i++)); do
	cpu=$( { /usr/bin/time -f '%U %S' taskset -c 0 "$BIN/appliance" event verify --jsonl "$tmp/events.jsonl" >"$tmp/out"; } 2>&1 | tail -n 1)
	[[ $(grep -c '^ok ' "$tmp/out") -eq $N ]] || { echo "not every event verified"; exit 1; }
	ours+=("$(echo "$N / (${cpu% *} + ${cpu#* })" | bc -l)")
	bares+=("$(taskset -c 0 "$B/tests/bench/verify_tool" bare "$tmp/events.jsonl" | awk '{print $2}')")
done
js=$(taskset -c 0 node "$ROOT/tests/bench/nostr_tools_verify.mjs" "$tmp/events.jsonl" "$JS_N" | awk '{print $2}')
o=$(printf '%s\n' "${ours[@]}" | median); b=$(printf '%s\n' "${bares[@]}" | median)
printf 'appliance event verify --jsonl : %8.0f events/CPU-s (median of %d; runs: %s)\n' "$o" "$RUNS" "$(printf '%.0f ' "${ours[@]}")"
printf 'bare secp256k1_schnorrsig_verify: %8.0f verifies/CPU-s (median of %d)\n' "$b" "$RUNS"
printf 'nostr-tools verifyEvent        : %8.0f events/CPU-s (%d events)\n' "$js" "$JS_N"
printf 'ratio vs nostr-tools           : %6.1fx   (target >= 20x)\n' "$(echo "$o / $js" | bc -l)"
printf 'ratio vs bare signature check  : %6.1f%%   (target >= 80%%)\n' "$(echo "100 * $o / $b" | bc -l)"
