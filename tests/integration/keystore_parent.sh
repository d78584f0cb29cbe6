#!/usr/bin/env bash
# keystore_parent: appliance-keystore run by `appliance-parent --dev` like the appliance (measured,
# in fresh namespaces with only lo, its own PCRs, the parent's NSM emulator, every relay connection
# through the parent's egress proxy), answering `appliance keystore` over the real relay: status, a
# set and a get with an attestation from the parent's dev CA; its log lines reach the parent.
# Needs root for unshare(CLONE_NEWNET): without it this test FAILS and says so.
# Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
BIN=${APPLIANCE_BIN:-$ROOT/bin}
. "$ROOT/tests/lib/peers.sh"
export TMPDIR=$PEERS_TMP
W=$PEERS_TMP
A=$BIN/appliance
PARENT=$BIN/appliance-parent
PARENT_PID=
stop_parent() {
	[[ -n $PARENT_PID ]] || return 0
	"$PARENT" stop --config "$W/parent.ini" >/dev/null 2>&1
	for _ in $(seq 100); do kill -0 "$PARENT_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$PARENT_PID" 2>/dev/null
	wait "$PARENT_PID" 2>/dev/null
	PARENT_PID=
}
trap 'stop_parent; peers_cleanup' EXIT

if [[ $(id -u) -ne 0 ]] || ! unshare -n true 2>/dev/null; then
	t_fail "network namespace" "unshare(CLONE_NEWNET) is not permitted here (needs root)"
	t_summary
	exit 1
fi
relay_start --max-tag-value 65536 || { t_fail "relay start"; t_summary; exit 1; }
P=$RELAY_PORT
cat >"$W/ks.ini" <<EOF
; measured into the keystore's PCRs by the parent
[keystore]
allow_dev = true
dev_root = $W/state/dev-ca/root.pem
[relays]
relay = ws://localhost:$P
EOF
cat >"$W/parent.ini" <<EOF
[parent]
state_dir = $W/state
log_level = info
[enclave]
binary = $BIN/appliance-keystore
config = $W/ks.ini
shutdown_grace_ms = 3000
[egress]
allow = localhost:$P
allow_private = yes
EOF
"$PARENT" run --dev --config "$W/parent.ini" >"$W/parent.out" 2>"$W/parent.err" </dev/null &
PARENT_PID=$!
_PEERS_PIDS+=("$PARENT_PID")
line=$(peers_wait_line "$W/parent.err" 'event=ready pubkey=' 40 "$PARENT_PID")
t_ok "the keystore runs under the parent and says ready (through the parent's log sink)" test -n "$line"
PK=$(sed -n 's/.*event=ready pubkey=\([0-9a-f]\{64\}\).*/\1/p' <<<"$line")
t_ok "  in fresh namespaces" grep -q 'event=enclave_start mode=dev .*namespaces=net' "$W/parent.err"
R=(--relay "ws://127.0.0.1:$P" --keystore "$PK" --timeout 10)
t_ok "status over the relay" "$A" keystore status "${R[@]}"
"$PARENT" nsm-emulator --socket "$W/a.sock" --ca "$W/state/dev-ca" --image "$W/ks.ini" >"$W/a.out" 2>&1 </dev/null &
_PEERS_PIDS+=($!)
peers_wait_line "$W/a.out" '^nsm-emulator ready' 10 >/dev/null
printf 'the-key' >"$W/data"
t_ok "set with an attestation from the parent's dev CA" "$A" keystore set "${R[@]}" --nsm "unix:$W/a.sock" \
	--data-file "$W/data" --epoch 1
t_ok "get it back" bash -c "'$A' keystore get ${R[*]} --nsm unix:$W/a.sock --show-data | grep -qx the-key"
stop_parent
t_ok "stopped by the parent's shutdown notice" grep -q 'event=stopping' "$W/parent.err"
t_ok "its relay connection went through the egress proxy (one line per connection, at its end)" \
	grep -q "event=egress .*dest=localhost:$P verdict=allowed" "$W/parent.err"
t_summary
