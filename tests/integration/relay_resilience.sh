#!/usr/bin/env bash
# The relay pool when relays misbehave, through `appliance req` / `appliance publish`:
# - the real relay (tests/peers/relay.mjs, sqlite file) is killed and restarted during a live
#   subscription: the client reconnects by itself, resubscribes with `since`, receives the events
#   published after the restart, and prints nothing twice;
# - relays that refuse connections, never answer (TCP accepted, silence) or refuse the websocket
#   upgrade: clear errors, while the healthy relay keeps serving (stored and live events, publish);
# - a relay sending garbage (tests/peers/bad-relay.mjs): non-JSON, wrong arity and types, unknown
#   types, binary frames, over-cap messages, invalid, unmatched, duplicate and unknown-subscription
#   events: each dropped and counted, no crash, the valid events (one of them fragmented) delivered;
# - publish retries: rate-limited then OK, no answer then OK, never an answer (timeout).
# Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${APPLIANCE_BIN:-$ROOT/bin}
A=$BIN/appliance
. "$ROOT/tests/lib/peers.sh"
PY=/usr/bin/python3
T=$PEERS_TMP
TO=(timeout -k 2 30)
FAST=(--pool-opt backoff_min_ms=200 --pool-opt backoff_max_ms=800)

[[ -x $A ]] || { t_fail "appliance binary at $A"; t_summary; exit 1; }

ids() { $PY -c 'import json,sys; print(" ".join(sorted(json.loads(l)["id"] for l in open(sys.argv[1]) if l.strip())))' "$1"; }
sorted_ids() { printf '%s\n' "$@" | sort | tr '\n' ' ' | sed 's/ $//'; }
sign() { APPLIANCE_SEC=$1 "$A" event sign <<<"$2"; }
evid() { $PY -c 'import json,sys; print(json.loads(sys.stdin.read())["id"])' <<<"$1"; }
stat() {
	$PY -c '
import json,sys
for l in open(sys.argv[1]):
    try: j=json.loads(l)
    except Exception: continue
    if j.get("relay")==sys.argv[2]:
        k=sys.argv[3]; v=j["malformed_by"][k[13:]] if k.startswith("malformed_by.") else j[k]; print(v); break
else: print(-1)' "$1" "$2" "$3"
}
# wait_lines FILE N SECS: wait until FILE has at least N lines.
wait_lines() {
	local deadline=$((SECONDS + $3))
	while (($(wc -l <"$1" 2>/dev/null || echo 0) < $2)); do
		((SECONDS < deadline)) || return 1
		sleep 0.05
	done
}
# bad_start MODE [ARGS]: start tests/peers/bad-relay.mjs; sets BAD_URL BAD_PORT BAD_PID.
bad_start() {
	_peers_spawn bad-relay bad-relay.mjs --mode "$@"
	local line
	line=$(peers_wait_line "$_PEERS_LAST_OUT" '^READY ' "$PEERS_START_TIMEOUT" "$_PEERS_LAST_PID") || {
		_peers_start_failed bad-relay "$_PEERS_LAST_PID" "$_PEERS_LAST_ERR"
		return 1
	}
	BAD_URL=${line#READY } BAD_PORT=${line##*:} BAD_PID=$_PEERS_LAST_PID
}
# stream_start OUT ERR ARGS...: `appliance req --stream` in the background; sets STREAM_PID.
stream_start() {
	local out=$1 err=$2
	shift 2
	"$A" req --stream --stats "$@" >"$out" 2>"$err" &
	STREAM_PID=$!
}
# stream_stop: SIGTERM (the command prints its stats and exits 0), then reap.
stream_stop() {
	kill -TERM "$STREAM_PID" 2>/dev/null
	local i
	for ((i = 0; i < 100; i++)); do kill -0 "$STREAM_PID" 2>/dev/null || break; sleep 0.05; done
	kill -KILL "$STREAM_PID" 2>/dev/null
	wait "$STREAM_PID"
}
trap 'kill -KILL "${STREAM_PID:-}" 2>/dev/null; peers_cleanup' EXIT

K=$("$A" keygen)
PK=$(APPLIANCE_SEC=$K "$A" key pub)

# --- the relay is killed and restarted during a live subscription --------------------------------
DB=$T/relay.sqlite
if relay_start --db "$DB"; then
	R=$RELAY_URL PORT=$RELAY_PORT
	E0=$(sign "$K" '{"kind":1,"content":"stored before the subscription"}')
	"${TO[@]}" "$A" publish --relay "$R" <<<"$E0" >/dev/null 2>&1
	stream_start "$T/s.out" "$T/s.err" --relay "$R" "${FAST[@]}" --timeout 40 "{\"authors\":[\"$PK\"]}"
	t_ok "stream: the stored event arrives" wait_lines "$T/s.out" 1 10
	E1=$(sign "$K" '{"kind":1,"content":"live before the restart"}')
	"${TO[@]}" "$A" publish --relay "$R" <<<"$E1" >/dev/null 2>&1
	t_ok "stream: a live event arrives" wait_lines "$T/s.out" 2 10
	t_ok "relay stopped (SIGTERM)" relay_stop
	t_ok "stream: the loss is reported" peers_wait_line "$T/s.err" 'connection lost' 10
	sleep 0.5 # let a reconnect attempt fail
	if relay_start --db "$DB" --port "$PORT"; then
		t_eq "relay restarted on the same port with the same database" "$R" "$RELAY_URL"
		E2=$(sign "$K" '{"kind":1,"content":"published after the restart"}')
		"${TO[@]}" "$A" publish --relay "$R" <<<"$E2" >/dev/null 2>&1
		t_ok "stream: the event published after the restart arrives" wait_lines "$T/s.out" 3 15
		E3=$(sign "$K" '{"kind":1,"content":"live after the reconnect"}')
		"${TO[@]}" "$A" publish --relay "$R" <<<"$E3" >/dev/null 2>&1
		t_ok "stream: a live event after the reconnect arrives" wait_lines "$T/s.out" 4 15
		sleep 0.3
	else
		t_fail "relay restarts"
	fi
	stream_stop
	t_eq "stream: exit 0 on SIGTERM" 0 "$?"
	t_eq "stream: every event exactly once (no duplicate after the resubscription)" \
		"$(sorted_ids "$(evid "$E0")" "$(evid "$E1")" "$(evid "$E2")" "$(evid "$E3")")" "$(ids "$T/s.out")"
	t_eq "stream: 4 lines" 4 "$(wc -l <"$T/s.out")"
	t_ok "stream: reconnected by itself (reconnects >= 1)" test "$(stat "$T/s.err" "$R" reconnects)" -ge 1
	t_ok "stream: the resubscription's overlap was dropped as duplicates (events_duplicate >= 1)" \
		test "$(stat "$T/s.err" "$R" events_duplicate)" -ge 1
	t_ok "stream: 'connected' again reported after the loss" grep -q ': connected$' "$T/s.err"
else
	t_fail "relay with a sqlite file starts"
fi

# --- relays that refuse, hang or reject next to a healthy one -----------------------------------
if relay_start; then
	GOOD=$RELAY_URL
	G1=$(sign "$K" '{"kind":1,"content":"on the healthy relay"}')
	"${TO[@]}" "$A" publish --relay "$GOOD" <<<"$G1" >/dev/null 2>&1
	REFUSED="ws://127.0.0.1:$(peers_free_port)"
	bad_start silent && SILENT="ws://127.0.0.1:$BAD_PORT"
	bad_start reject && REJECT=$BAD_URL
	start=$SECONDS
	"${TO[@]}" "$A" req --relay "$REFUSED" --relay "$SILENT" --relay "$REJECT" --relay "$GOOD" \
		--pool-opt connect_timeout_ms=1500 "{\"ids\":[\"$(evid "$G1")\"]}" >"$T/u.out" 2>"$T/u.err"
	rc=$? took=$((SECONDS - start))
	t_eq "unreachable relays + a healthy one: exit 0" 0 "$rc"
	t_eq "unreachable relays + a healthy one: the healthy relay's event" "$G1" "$(cat "$T/u.out")"
	t_ok "unreachable relays: done within the connect timeout (${took}s)" test "$took" -le 5
	t_ok "refused connection reported" grep -q "$REFUSED: connection failed: cannot connect (refused or unreachable)" "$T/u.err"
	t_ok "silent relay reported as a connect timeout" grep -q "$SILENT: connection failed: connect timeout" "$T/u.err"
	t_ok "rejected upgrade reported" grep -q "$REJECT: connection failed: .*not 101" "$T/u.err"

	G2=$(sign "$K" '{"kind":1,"content":"published to the healthy relay among dead ones"}')
	"${TO[@]}" "$A" publish --relay "$REFUSED" --relay "$SILENT" --relay "$GOOD" --timeout 3 \
		--pool-opt connect_timeout_ms=1000 <<<"$G2" >"$T/up.out" 2>"$T/up.err"
	t_eq "publish with dead relays: exit 0 (the healthy relay accepted)" 0 "$?"
	t_ok "publish with dead relays: healthy accepted" grep -q "^$GOOD accepted$" "$T/up.out"
	t_ok "publish with dead relays: refused one failed with its reason" grep -q "^$REFUSED failed not connected: cannot connect" "$T/up.out"
	t_ok "publish with dead relays: silent one failed" grep -q "^$SILENT failed not connected: connect timeout" "$T/up.out"
	"${TO[@]}" "$A" publish --relay "$REFUSED" --timeout 2 <<<"$G2" >/dev/null 2>&1
	t_eq "publish with only a dead relay: exit 2" 2 "$?"

	stream_start "$T/l.out" "$T/l.err" --relay "$REFUSED" --relay "$SILENT" --relay "$GOOD" "${FAST[@]}" \
		--pool-opt connect_timeout_ms=1000 --timeout 30 "{\"authors\":[\"$PK\"],\"since\":$(date +%s)}"
	sleep 0.5
	G3=$(sign "$K" '{"kind":1,"content":"live on the healthy relay while others are down"}')
	"${TO[@]}" "$A" publish --relay "$GOOD" <<<"$G3" >/dev/null 2>&1
	t_ok "stream with dead relays: live events from the healthy relay arrive" wait_lines "$T/l.out" 1 10
	sleep 1.5 # several reconnect attempts to the dead relays meanwhile
	stream_stop
	t_eq "stream with dead relays: exactly the live event" "$(evid "$G3")" "$(ids "$T/l.out")"
	t_ok "stream with dead relays: kept retrying the refused relay" test "$(stat "$T/l.err" "$REFUSED" connect_failures)" -ge 2
	t_eq "stream with dead relays: each failure reported once, not per attempt" 1 "$(grep -c "$REFUSED: connection failed" "$T/l.err")"
else
	t_fail "healthy relay starts"
fi

# --- a relay that sends garbage ------------------------------------------------------------------
if bad_start garbage --oversize-bytes 100000; then
	"${TO[@]}" "$A" req --relay "$BAD_URL" --stream --timeout 3 --stats --pool-opt max_message=65536 '{"kinds":[1]}' \
		>"$T/g.out" 2>"$T/g.err"
	rc=$?
	t_eq "garbage relay: no crash, exit 0" 0 "$rc"
	t_eq "garbage relay: the 3 valid events (one sent in 3 fragments, one live) delivered once" 3 "$(wc -l <"$T/g.out")"
	t_eq "garbage relay: all delivered events verify" 3 "$("$A" event verify --jsonl "$T/g.out" | grep -c '^ok ')"
	for kv in malformed_by.notjson=4 malformed_by.notarray=2 malformed_by.type=1 malformed_by.unknown=1 \
		malformed_by.arity=3 malformed_by.field=2 malformed_by.subid=1 malformed_by.text=1 \
		malformed_by.event=1 malformed_by.toobig=1 oversize=1 binary=1 malformed=17 events_invalid=2 \
		events_unknown_sub=1 events_unmatched=1 events_duplicate=1 events_delivered=3 notices=1 \
		unknown_sub_msgs=1 eose=1 dropped=23; do
		t_eq "garbage relay: counter ${kv%%=*}" "${kv#*=}" "$(stat "$T/g.err" "$BAD_URL" "${kv%%=*}")"
	done
	t_eq "garbage relay: still connected afterwards" connected "$($PY -c 'import json,sys
for l in open(sys.argv[1]):
    try: j=json.loads(l)
    except Exception: continue
    if "relay" in j: print(j["state"])' "$T/g.err")"
	if [[ -n ${GOOD:-} ]]; then
		"${TO[@]}" "$A" req --relay "$BAD_URL" --relay "$GOOD" --pool-opt max_message=65536 \
			"{\"ids\":[\"$(evid "$G1")\"]}" >"$T/gg.out" 2>"$T/gg.err"
		t_eq "garbage relay + healthy relay: exit 0" 0 "$?"
		t_eq "garbage relay + healthy relay: the healthy relay's event" "$G1" "$(cat "$T/gg.out")"
	fi
else
	t_fail "bad relay (garbage) starts"
fi

# --- publish retries ------------------------------------------------------------------------------
P1=$(sign "$K" '{"kind":1,"content":"retry me"}')
# pub_script SCRIPT: a bad relay answering EVENTs by SCRIPT (started from this shell, not in $( ),
# so its pid is tracked and its READY line is its own); sets OUT to the publish --json result.
pub_script() {
	OUT=
	bad_start publish --ok-script "$1" || return 1
	"${TO[@]}" "$A" publish --relay "$BAD_URL" --json --timeout 8 --pool-opt publish_timeout_ms=700 \
		--pool-opt backoff_min_ms=100 <<<"$P1" >"$T/ps.out" 2>&1
	OUT=$(cat "$T/ps.out")
}
fields() { grep -o "$1" <<<"$OUT" | tr '\n' ' ' | sed 's/ $//'; }
F='"status":"[a-z]*"\|"prefix":"[a-z-]*"\|"attempts":[0-9]*'
pub_script rate,ok
t_eq "rate-limited, then OK: accepted on the 2nd attempt" '"status":"accepted" "prefix":"" "attempts":2' "$(fields "$F")"
pub_script none,ok
t_eq "no OK, then OK: timeout, retry, accepted on the 2nd attempt" '"status":"accepted" "prefix":"" "attempts":2' "$(fields "$F")"
pub_script rate
t_eq "always rate-limited: rejected after 3 attempts with the relay's reason" \
	'"status":"rejected" "prefix":"rate-limited" "attempts":3' "$(fields "$F")"
pub_script none
t_eq "never an OK: timeout after 3 attempts" '"status":"timeout" "prefix":"" "attempts":3' "$(fields "$F")"

t_summary
