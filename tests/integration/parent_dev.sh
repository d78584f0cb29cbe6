#!/usr/bin/env bash
# appliance-parent --dev end to end (DESIGN §2 "Dev mode"), with a stand-in
# enclave (tests/bench/parent_probe.c) launched by the parent in fresh
# network/mount/PID namespaces, and the real test relay on 127.0.0.1:
#   - isolation: a direct TCP connection from inside the namespace to the
#     relay's port on the host's loopback fails; nothing reaches the relay;
#   - egress: an HTTP request and a relay publish (relay pool, connect_to the
#     bridge, the relay named "localhost": resolved by the parent) go through
#     the bridge and the parent's SOCKS5 proxy;
#   - a host not on the allowlist is refused (REP 0x02 to the client) and
#     logged by the parent;
#   - blob store through the channel; a malformed control frame is dropped;
#   - measurement: PCR0/1/2 = the documented formulas over the binary and its
#     config (recomputed here with openssl);
#   - supervision: the enclave killed -> restarted with backoff;
#   - the parent killed and started again -> the enclave, still running, is
#     adopted and its channel client reconnects by itself;
#   - `appliance-parent stop`: the shutdown notice, the enclave's BYE, exit.
# Needs root for unshare(CLONE_NEWNET): without it this test FAILS and says so.
# Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${APPLIANCE_BIN:-$ROOT/bin}
B=${APPLIANCE_BUILD:-$ROOT/build/release}
export TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/parent_dev.XXXXXX")
. "$ROOT/tests/lib/peers.sh"
PARENT=$BIN/appliance-parent
PROBE=$B/tests/bench/parent_probe
W=$TMPDIR/w
mkdir -p "$W"
PARENT_PID=
cleanup() {
	if [[ -n $PARENT_PID ]] && kill -0 "$PARENT_PID" 2>/dev/null; then
		kill -TERM "$PARENT_PID" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$PARENT_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$PARENT_PID" 2>/dev/null
	fi
	# an enclave left by a killed parent (recorded pid, only if it is still that process)
	# an enclave and its NSM emulator left by a killed parent (recorded pids, checked by name)
	if [[ -f $W/state/run/enclave.state ]]; then
		read -r epid _ _ _ _ npid _ <"$W/state/run/enclave.state"
		[[ -n $epid ]] && grep -q appliance-enclave "/proc/$epid/cmdline" 2>/dev/null && kill -KILL "$epid"
		[[ -n $npid ]] && grep -q nsm-emulator "/proc/$npid/cmdline" 2>/dev/null && kill -KILL "$npid"
	fi
	if ((_T_FAIL > 0)); then
		echo "---- parent log (tail)"; tail -n 40 "$W/parent.err" 2>/dev/null | sed 's/^/    /'
		echo "---- enclave stdout (tail)"; tail -n 20 "$W/parent.out" 2>/dev/null | sed 's/^/    /'
	fi
	peers_cleanup
	if ((_T_FAIL > 0)); then echo "logs kept in $TMPDIR"; else rm -rf "$TMPDIR"; fi
}
trap cleanup EXIT

for f in "$PARENT" "$PROBE"; do
	[[ -x $f ]] || { t_fail "setup" "$f missing (make tests-build)"; t_summary; exit 1; }
done
if [[ $(id -u) -ne 0 ]] || ! unshare -n true 2>/dev/null; then
	t_fail "network namespace" "unshare(CLONE_NEWNET) is not permitted here (needs root): dev-mode isolation cannot be tested"
	t_summary
	exit 1
fi

relay_start || { t_fail "relay start"; t_summary; exit 1; }
PORT=$RELAY_PORT
# a second relay with TLS: the enclave's TLS runs end to end through the bridge (SNI and the
# certificate check use "localhost" while the connection goes to the bridge's 127.0.0.1 port)
tls_make_cert "$W/tls" || { t_fail "test CA"; t_summary; exit 1; }
relay_start --tls-cert "$TLS_CERT_FILE" --tls-key "$TLS_KEY_FILE" || { t_fail "TLS relay start"; t_summary; exit 1; }
TLS_PORT=$RELAY_PORT
export APPLIANCE_PROBE_RELAY_CA=$TLS_CA_FILE

cat >"$W/enclave.ini" <<EOF
; the stand-in enclave's configuration (measured into PCR0/PCR1)
[service]
name = probe
EOF
write_conf() { # extra probe args...
	{
		echo "[parent]"
		echo "state_dir = $W/state"
		echo "log_level = info"
		echo "[enclave]"
		echo "binary = $PROBE"
		echo "config = $W/enclave.ini"
		for a in "$@"; do echo "arg = $a"; done
		echo "restart_min_ms = 300"
		echo "restart_max_ms = 2000"
		echo "shutdown_grace_ms = 5000"
		echo "[egress]"
		echo "allow = localhost:$PORT"
		echo "allow = localhost:$TLS_PORT"
		echo "allow_private = yes"
		echo "max_connections = 16"
		echo "[blobstore]"
		echo "max_bytes = 16M"
	} >"$W/parent.ini"
}

start_parent() {
	"$PARENT" run --dev --config "$W/parent.ini" >>"$W/parent.out" 2>>"$W/parent.err" </dev/null &
	PARENT_PID=$!
}

wait_for() { # FILE ERE SECS
	peers_wait_line "$1" "$2" "$3" >/dev/null
}

count_lines() { grep -c -E -- "$2" "$1" 2>/dev/null || true; }

# ---- 1. checks inside the namespace ------------------------------------------------------------
write_conf enclave --direct "127.0.0.1:$PORT" --http "localhost:$PORT" --denied "example.invalid:443" \
	--relay "ws://localhost:$PORT" --relay "wss://localhost:$TLS_PORT" --blobs --garbage --stay
start_parent
if wait_for "$W/parent.out" '^probe done' 40; then
	t_pass "enclave launched in the namespaces"
else
	t_fail "enclave launched in the namespaces" "no 'probe done' within 40 s"
fi
grep -q 'event=enclave_start mode=dev .*namespaces=net,mount,pid' "$W/parent.err" &&
	t_pass "network, mount and PID namespaces" ||
	t_fail "network, mount and PID namespaces" "$(grep -m1 -E 'namespaces' "$W/parent.err")"
for name in "lo up" "control connected" "direct connection refused" "http through the bridge" \
	"denied host refused" "relay publish through the bridge" "blob put" "blob overwrite refused" \
	"blob get" "blob get missing" "blob list" "malformed frame dropped" \
	"link unaffected by another connection's garbage"; do
	if grep -qxF "ok - $name" "$W/parent.out"; then
		t_pass "enclave: $name"
	else
		t_fail "enclave: $name" "$(grep -m1 -F -- "- $name" "$W/parent.out")"
	fi
done
# nothing from the namespace reached the relay directly: every relay connection came through the proxy
grep -q "event=egress .*dest=localhost:$PORT verdict=allowed" "$W/parent.err" &&
	t_pass "relay traffic logged by the proxy" || t_fail "relay traffic logged by the proxy"
grep -q 'event=egress .*dest=example.invalid:443 verdict=denied reason="not on the allowlist"' "$W/parent.err" &&
	t_pass "denied host logged" || t_fail "denied host logged"
(($(grep -c '^ok - relay publish through the bridge$' "$W/parent.out") >= 2)) &&
	grep -q "^probe relay url=wss://localhost:$TLS_PORT connect_to=127.0.0.1:[0-9]* status=accepted" "$W/parent.out" &&
	t_pass "wss:// relay through the bridge (TLS inside the enclave, SNI = relay name)" ||
	t_fail "wss:// relay through the bridge (TLS inside the enclave, SNI = relay name)"
grep -q 'probe denied target=example.invalid:443 rep=2 reason="connection not allowed by ruleset"' "$W/parent.out" &&
	t_pass "client sees 'connection not allowed by ruleset'" || t_fail "client sees 'connection not allowed by ruleset'"
grep -q 'event=egress_refused upstream=example.invalid' "$W/parent.err" && t_fail "no bridge refusal expected" || t_pass "passthrough refusal reported by SOCKS5, not by a bridge"
grep -q 'event=enclave_log instance=probe line=.*event=probe_checks_done' "$W/parent.err" &&
	t_pass "enclave log lines re-logged by the parent" || t_fail "enclave log lines re-logged by the parent"
grep -q 'event=control_malformed' "$W/parent.err" && t_pass "malformed frame counted" || t_fail "malformed frame counted"
ls "$W/state/blobs/probe/" 2>/dev/null | grep -q '^probe-' && t_pass "blob on disk under the instance id" ||
	t_fail "blob on disk under the instance id"

# measurement: PCR1 = H(0^48 || H(config)), PCR2 = H(0^48 || H(binary)), PCR0 = H(0^48 || H(config || binary))
ext() { { head -c 48 /dev/zero; openssl dgst -sha384 -binary; } | openssl dgst -sha384 -hex | awk '{print $NF}'; }
P0=$(cat "$W/enclave.ini" "$PROBE" | ext)
P1=$(ext <"$W/enclave.ini")
P2=$(ext <"$PROBE")
grep -q "pcr0=$P0 pcr1=$P1 pcr2=$P2" "$W/parent.err" && t_pass "PCR0/1/2 measured from config and binary" ||
	t_fail "PCR0/1/2 measured from config and binary" "expected pcr0=${P0:0:16}.. pcr1=${P1:0:16}.. pcr2=${P2:0:16}.."

# ---- 2. supervision: the enclave dies -> restarted with backoff --------------------------------
EPID=$(grep -o 'event=enclave_start mode=dev pid=[0-9]*' "$W/parent.err" | tail -n1 | grep -o '[0-9]*$')
starts_before=$(count_lines "$W/parent.err" 'event=enclave_start ')
kill -KILL "$EPID" 2>/dev/null
deadline=$((SECONDS + 15))
while (($(count_lines "$W/parent.err" 'event=enclave_start ') <= starts_before)) && ((SECONDS < deadline)); do sleep 0.1; done
if (($(count_lines "$W/parent.err" 'event=enclave_start ') > starts_before)); then
	t_pass "enclave restarted after it died"
else
	t_fail "enclave restarted after it died"
fi
grep -q 'event=enclave_exit pid=.* signal=9' "$W/parent.err" && t_pass "exit logged" || t_fail "exit logged"
grep -q 'event=enclave_restart_scheduled in_ms=' "$W/parent.err" && t_pass "restart backoff" || t_fail "restart backoff"
deadline=$((SECONDS + 40))
while (($(count_lines "$W/parent.out" '^probe done') < 2)) && ((SECONDS < deadline)); do sleep 0.1; done
n_done=$(count_lines "$W/parent.out" '^probe done')
((n_done >= 2)) && t_pass "restarted enclave ran its checks" || t_fail "restarted enclave ran its checks"

# ---- 3. stop: shutdown notice, BYE, exit ---------------------------------------------------------
if "$PARENT" stop --config "$W/parent.ini" --timeout 20 >"$W/stop.out" 2>&1; then
	t_pass "appliance-parent stop"
else
	t_fail "appliance-parent stop" "$(cat "$W/stop.out")"
fi
wait "$PARENT_PID"
rc=$?
PARENT_PID=
t_eq "parent exit status" 0 "$rc"
grep -q '^probe bye=sent' "$W/parent.out" && t_pass "enclave got the notice and said BYE" || t_fail "enclave got the notice and said BYE"
grep -q 'event=enclave_flushed' "$W/parent.err" && t_pass "parent saw the flush" || t_fail "parent saw the flush"
grep -q 'event=enclave_stopped pid=[0-9]* flushed=1' "$W/parent.err" && t_pass "enclave stopped after flushing" ||
	t_fail "enclave stopped after flushing"
[[ ! -e $W/state/run/enclave.state && ! -e $W/state/run/parent.pid ]] && t_pass "state files removed" || t_fail "state files removed"

# ---- 4. the parent restarted while the enclave runs: adoption and reconnect -----------------------
: >"$W/parent.out"
starts_before=$(count_lines "$W/parent.err" 'event=enclave_start ')
write_conf enclave --puts
start_parent
wait_for "$W/parent.out" '^probe put n=3 connects=1' 30 && t_pass "enclave storing blobs" || t_fail "enclave storing blobs"
kill -KILL "$PARENT_PID"
wait "$PARENT_PID" 2>/dev/null
PARENT_PID=
sleep 0.5
read -r EPID _ <"$W/state/run/enclave.state"
kill -0 "$EPID" 2>/dev/null && t_pass "enclave survives its parent's crash" || t_fail "enclave survives its parent's crash"
start_parent
wait_for "$W/parent.err" 'event=enclave_adopted' 15 && t_pass "restarted parent adopts the running enclave" ||
	t_fail "restarted parent adopts the running enclave"
if wait_for "$W/parent.out" '^probe put n=[0-9]+ connects=2$' 20; then
	t_pass "channel client reconnected by itself"
else
	t_fail "channel client reconnected by itself" "$(tail -n 2 "$W/parent.out")"
fi
(($(count_lines "$W/parent.err" 'event=enclave_start ') == starts_before + 1)) && t_pass "no second enclave launched" ||
	t_fail "no second enclave launched"
"$PARENT" stop --config "$W/parent.ini" --timeout 20 >"$W/stop.out" 2>&1 && t_pass "stop after adoption" ||
	t_fail "stop after adoption" "$(cat "$W/stop.out")"
wait "$PARENT_PID" 2>/dev/null
PARENT_PID=
kill -0 "$EPID" 2>/dev/null && t_fail "adopted enclave stopped" || t_pass "adopted enclave stopped"

# sanitizer builds (make check): any report from the parent or the stand-in enclave is a failure
if grep -E -m 3 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$W/parent.err" "$W/parent.out"; then
	t_fail "no sanitizer reports"
else
	t_pass "no sanitizer reports"
fi

t_summary
