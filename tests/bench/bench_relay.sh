#!/usr/bin/env bash
# Relay client CPU per received event (issue: relay-client bench).
# A real relay (tests/peers/relay.mjs, sqlite file) holds N events (default 20,000: signed in C by
# relay_bench_gen, stored through the relay's own repository by bench_relay_seed.mjs, cached in
# BUILD_DIR/bench/ and reused). Then, from the same relay in the same run, each client subscribes
# with {"kinds":[1],"limit":N} and receives every event until EOSE:
#   ours:     appliance req (relay pool: parse, dedupe, filter check, full id+signature
#             verification, canonical JSON out to a file)
#   baseline: nostr-tools SimplePool (verifyEvent, dedupe), counting events
# measuring the client process's CPU time (user+sys, getrusage of the child, startup included),
# each pinned to one core. Prints medians, CPU per event and the ratio (target <= 1/10).
set -euo pipefail
ROOT=${APPLIANCE_ROOT:?}; BIN=${APPLIANCE_BIN:?}; B=${APPLIANCE_BUILD:?}
N=${BENCH_RELAY_EVENTS:-20000}; RUNS=${BENCH_RUNS:-3}; JS_RUNS=${BENCH_JS_RUNS:-1}
A=$BIN/appliance
PY=/usr/bin/python3
. "$ROOT/tests/lib/peers.sh"
cache=$B/bench
mkdir -p "$cache"
events=$cache/relay-events-$N.jsonl db=$cache/relay-$N.sqlite

if [[ ! -s $db || ! -s $events || $(wc -l <"$events") -ne $N ]]; then
	rm -f "$db" "$db-wal" "$db-shm"
	echo "generating $N events and seeding $db (once; reused by later runs)"
	"$B/tests/bench/relay_bench_gen" "$N" 200 >"$events"
	node "$ROOT/tests/bench/bench_relay_seed.mjs" "$events" "$db"
fi
limit=$((N > 1000 ? N : 1000))
relay_start --db "$db" --default-limit $(((limit + 9) / 10)) >/dev/null
echo "relay $RELAY_URL holding $N events ($(du -h "$events" | cut -f1) of JSON)"
filter="{\"kinds\":[1],\"limit\":$N}"

pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
# cpu_run OUT CMD...: runs CMD with stdout to OUT; prints "cpu_seconds wall_seconds status".
cpu_run() {
	$PY -c '
import resource, subprocess, sys, time
with open(sys.argv[1], "wb") as out:
    t = time.monotonic(); r = subprocess.run(sys.argv[2:], stdout=out); w = time.monotonic() - t
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{u.ru_utime + u.ru_stime:.4f} {w:.3f} {r.returncode}")' "$@"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

tmp=$PEERS_TMP
ours=() ours_wall=()
for ((i = 0; i < RUNS; i++)); do
	read -r cpu wall st < <(cpu_run "$tmp/ours.out" "${pin[@]}" "$A" req --relay "$RELAY_URL" --timeout 120 "$filter")
	got=$(wc -l <"$tmp/ours.out")
	[[ $st -eq 0 && $got -eq $N ]] || { echo "appliance req: status $st, $got of $N events"; exit 1; }
	ours+=("$cpu") ours_wall+=("$wall")
done
uniq_ids=$($PY -c 'import json,sys; print(len({json.loads(l)["id"] for l in open(sys.argv[1])}))' "$tmp/ours.out")
[[ $uniq_ids -eq $N ]] || { echo "appliance req: $uniq_ids distinct ids"; exit 1; }
js=() js_recv=() js_wall=()
for ((i = 0; i < JS_RUNS; i++)); do
	read -r cpu wall st < <(cpu_run "$tmp/js.out" "${pin[@]}" node "$ROOT/tests/bench/bench_relay_nostr_tools.mjs" "$RELAY_URL" "$filter" "$N")
	[[ $st -eq 0 ]] || { echo "nostr-tools: status $st: $(cat "$tmp/js.out")"; exit 1; }
	js+=("$cpu") js_wall+=("$wall")
	js_recv+=("$(awk '{print $5 / 1e6}' "$tmp/js.out")")
done
relay_stop >/dev/null || true

o=$(printf '%s\n' "${ours[@]}" | median) ow=$(printf '%s\n' "${ours_wall[@]}" | median)
j=$(printf '%s\n' "${js[@]}" | median) jw=$(printf '%s\n' "${js_wall[@]}" | median)
jr=$(printf '%s\n' "${js_recv[@]}" | median)
per() { echo "$1 * 1000000 / $N" | bc -l; }
printf 'events received per run           : %d (verified, deduplicated)\n' "$N"
printf 'appliance req (relay pool)        : %7.3f s CPU  %6.1f us/event  (%.2f s wall; median of %d: %s)\n' \
	"$o" "$(per "$o")" "$ow" "$RUNS" "$(printf '%s ' "${ours[@]}")"
printf 'nostr-tools SimplePool            : %7.3f s CPU  %6.1f us/event  (%.2f s wall; %d run(s); subscribe..EOSE alone %.3f s)\n' \
	"$j" "$(per "$j")" "$jw" "$JS_RUNS" "$jr"
printf 'ratio ours / nostr-tools (CPU)    : 1/%.1f   (target <= 1/10)\n' "$(echo "$j / $o" | bc -l)"
