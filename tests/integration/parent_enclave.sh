#!/usr/bin/env bash
# The full job flow with appliance-enclave isolated behind appliance-parent --dev (issue
# "appliance-parent", DESIGN §2): the enclave runs in fresh network/mount/PID namespaces, measured
# by the parent, attesting through the parent's NSM emulator, and reaches the relay, the NIP-47
# wallet (through its relay) and the dataset/blob HTTP server only through the egress bridge and
# the parent's SOCKS5 proxy. A nostr-tools client on the host discovers it, checks the
# attestation (PCRs = the parent's measurement), pays and gets a checked result. Then: a dataset
# host the parent does not allow gives the client a clear error; the parent restarted while the
# enclave runs (the enclave keeps its relays through the bridge and reconnects its control
# channel); `appliance-parent stop` lets the enclave stop cleanly.
# Needs root (namespaces). Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
export TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/parent_enclave.XXXXXX")
PEERS_NO_TRAP=1
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/enclave.sh"
A=$ENC_CLI
P=$ENC_PARENT
W=$ENC_TMP/parent
mkdir -p "$W"
PARENT_PID=
cleanup() {
	if [[ -n $PARENT_PID ]] && kill -0 "$PARENT_PID" 2>/dev/null; then
		kill -TERM "$PARENT_PID" 2>/dev/null
		for _ in $(seq 150); do kill -0 "$PARENT_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$PARENT_PID" 2>/dev/null
	fi
	# an enclave and its NSM emulator left by a killed parent (recorded pids, checked by name)
	if [[ -f $W/state/run/enclave.state ]]; then
		read -r epid _ _ _ _ npid _ <"$W/state/run/enclave.state"
		[[ -n $epid ]] && grep -q appliance-enclave "/proc/$epid/cmdline" 2>/dev/null && kill -KILL "$epid"
		[[ -n $npid ]] && grep -q nsm-emulator "/proc/$npid/cmdline" 2>/dev/null && kill -KILL "$npid"
	fi
	if ((_T_FAIL > 0)); then
		echo "---- parent log (tail)"; tail -n 50 "$W/parent.err" 2>/dev/null | cut -c1-400 | sed 's/^/    /'
	fi
	peers_cleanup
	if ((_T_FAIL > 0)); then echo "logs kept in $TMPDIR"; else rm -rf "$TMPDIR"; fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ $(id -u) -ne 0 ]] || ! unshare -n true 2>/dev/null; then
	t_fail "network namespace" "unshare(CLONE_NEWNET) is not permitted here (needs root): the isolated enclave cannot be tested"
	t_summary
	exit 1
fi
mkdir -p "$ENC_TMP/data"
cp "$ROOT/tests/data/breast_cancer.csv" "$ENC_TMP/data/"
ENC_DATA=$ENC_TMP/data
enclave_peers_start || { t_fail "peers start"; t_summary; exit 1; }
HTTP_PORT=${HTTP_URL##*:}
# the enclave's own configuration (measured by the parent); its NSM setting is overridden by the
# launcher's emulator; "localhost" is allowed by the enclave's fetch policy but not by the parent
enclave_config "$ENC_TMP/enclave.ini" "fetch.+allowed_host=localhost"
cat >"$W/parent.ini" <<EOF
[parent]
state_dir = $W/state
[enclave]
binary = $ENC_BIN
config = $ENC_TMP/enclave.ini
restart_min_ms = 500
shutdown_grace_ms = 10000
[egress]
allow = 127.0.0.1:$RELAY_PORT
allow = 127.0.0.1:$HTTP_PORT
allow_private = yes
EOF
# sanitizer builds: the enclave's known library leak (tests/lib/lsan.supp) is suppressed
# for the processes the parent starts, as the enclave tests do (the parent passes LSAN_OPTIONS on)
# (full allocation stacks: libcrypto has no frame pointers; see tests/lib/enclave.sh)
if [[ -n ${APPLIANCE_SANITIZED:-} ]]; then
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0:malloc_context_size=24"
	LSAN_OPTIONS="suppressions=$ROOT/tests/lib/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
	export ASAN_OPTIONS LSAN_OPTIONS
fi
start_parent() {
	"$P" run --dev --config "$W/parent.ini" >>"$W/parent.out" 2>>"$W/parent.err" </dev/null &
	PARENT_PID=$!
}
start_parent
if line=$(peers_wait_line "$W/parent.err" 'event=enclave_log instance=enclave line=.*event=ready pubkey=' 40); then
	t_pass "enclave ready behind the parent"
else
	t_fail "enclave ready behind the parent" "no event=ready within 40 s"
	t_summary
	exit 1
fi
ENCLAVE_PUBKEY=$(sed -n 's/.*event=ready pubkey=\([0-9a-f]\{64\}\).*/\1/p' <<<"$line")
grep -q 'event=enclave_start mode=dev .*namespaces=net,mount,pid' "$W/parent.err" && t_pass "isolated in fresh namespaces" ||
	t_fail "isolated in fresh namespaces"
grep -q 'event=lo_up' "$W/parent.err" && t_pass "enclave brought lo up" ||
	t_fail "enclave brought lo up"

# --- discovery: the announcement's attestation carries the parent's measurement ---
D=$ENC_TMP/disc
client discover --relay "$RELAY_URL" --out "$D" --timeout-ms 20000 >"$ENC_TMP/disc.out"
t_eq "discover: announcement found" true "$(jget "$ENC_TMP/disc.out" 'j.get("ok")')"
PCR0=$(sed -n 's/.*event=enclave_start mode=dev .* pcr0=\([0-9a-f]*\) .*/\1/p' "$W/parent.err" | head -n1)
PCR2=$(sed -n 's/.*event=enclave_start mode=dev .* pcr2=\([0-9a-f]*\).*/\1/p' "$W/parent.err" | head -n1)
t_ok "attestation verifies with the parent's dev CA and PCR0/PCR2" \
	"$A" attest verify "$D/announcement.json" --allow-dev --root "$W/state/dev-ca/root.pem" \
	--expect-pcr "0=$PCR0" --expect-pcr "2=$PCR2"

# --- the encrypted job: relay, wallet and dataset only through the egress proxy ---
J=$ENC_TMP/job1
client job --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" --data "$HTTP_URL/files/breast_cancer.csv" \
	--param seed=7 --param validation_split=0 --param epochs=30 --nwc "$NWC_CLIENT" --out "$J" \
	--timeout-ms 40000 >"$ENC_TMP/job1.out"
t_eq "job: result received and checked by the client" true "$(jget "$ENC_TMP/job1.out" 'j.get("ok")')"
t_eq "job: feedback sequence" '["payment-required", "processing", "success"]' \
	"$(jget "$ENC_TMP/job1.out" 'j.get("statuses")')"
"$A" train --data "$ROOT/tests/data/breast_cancer.csv" --seed 7 --validation-split 0 --epochs 30 --json >"$ENC_TMP/local.json"
t_eq "model sha256 equals a local appliance train" "$(jget "$ENC_TMP/local.json" 'j["model_sha256"]')" \
	"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"]["sha256"])' "$J/result.json" 2>/dev/null)"
grep -q "event=egress .*dest=127.0.0.1:$HTTP_PORT verdict=allowed" "$W/parent.err" &&
	t_pass "dataset fetched through the proxy" || t_fail "dataset fetched through the proxy"

# --- a dataset host the parent does not allow: refused, logged, a clear error for the client ---
client job --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" --data "http://localhost:$HTTP_PORT/files/breast_cancer.csv" \
	--nwc "$NWC_CLIENT" --expect error --timeout-ms 30000 >"$ENC_TMP/job2.out"
t_eq "denied dataset host: error feedback" true "$(jget "$ENC_TMP/job2.out" 'j.get("ok")')"
TEXT=$(jget "$ENC_TMP/job2.out" 'j.get("text")')
echo "    client saw: $TEXT"
[[ $TEXT == *"refused by the parent's egress allowlist"* ]] &&
	t_pass "the error names the refusal" || t_fail "the error names the refusal" "$TEXT"
grep -q "event=egress .*dest=localhost:$HTTP_PORT verdict=denied reason=\"not on the allowlist\"" "$W/parent.err" &&
	t_pass "denied host logged by the parent" || t_fail "denied host logged by the parent"

# --- the parent restarted while the enclave runs ---
kill -KILL "$PARENT_PID"
wait "$PARENT_PID" 2>/dev/null
PARENT_PID=
hellos=$(grep -c 'event=control_hello instance=enclave' "$W/parent.err")
start_parent
peers_wait_line "$W/parent.err" 'event=enclave_adopted' 15 >/dev/null && t_pass "restarted parent adopts the enclave" ||
	t_fail "restarted parent adopts the enclave"
deadline=$((SECONDS + 20))
while (($(grep -c 'event=control_hello instance=enclave' "$W/parent.err") <= hellos)) && ((SECONDS < deadline)); do sleep 0.1; done
(($(grep -c 'event=control_hello instance=enclave' "$W/parent.err") > hellos)) &&
	t_pass "enclave reconnected its control channel" || t_fail "enclave reconnected its control channel"
J3=$ENC_TMP/job3
client job --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" --data "$HTTP_URL/files/breast_cancer.csv" \
	--param seed=8 --param validation_split=0 --param epochs=5 --nwc "$NWC_CLIENT" --out "$J3" \
	--timeout-ms 60000 >"$ENC_TMP/job3.out"
t_eq "a job after the parent's restart (relays reconnected through the bridge)" true "$(jget "$ENC_TMP/job3.out" 'j.get("ok")')"

# --- stop: the notice, the enclave stops cleanly ---
"$P" stop --config "$W/parent.ini" --timeout 30 >"$W/stop.out" 2>&1 && t_pass "appliance-parent stop" ||
	t_fail "appliance-parent stop" "$(cat "$W/stop.out")"
wait "$PARENT_PID" 2>/dev/null
PARENT_PID=
grep -q 'event=enclave_stopped pid=[0-9]* flushed=1' "$W/parent.err" && t_pass "enclave flushed and said BYE before stopping" ||
	t_fail "enclave flushed and said BYE before stopping"
# relay connections are logged when they end (bytes, duration): now
grep -q "event=egress .*dest=127.0.0.1:$RELAY_PORT verdict=allowed" "$W/parent.err" &&
	t_pass "relay and wallet traffic went through the proxy" || t_fail "relay and wallet traffic went through the proxy"
grep -q 'event=enclave_kill' "$W/parent.err" && t_fail "no forced kill" || t_pass "no forced kill"
t_ok "no secret in the parent's log (wallet secret)" bash -c '! grep -q -e "$1" "$2"' _ \
	"$(sed -n 's/.*secret=\([0-9a-f]*\).*/\1/p' "$ENC_TMP/nwc")" "$W/parent.err"
# sanitizer builds: no report from the parent, its NSM emulator or the enclave (PID 1, "==1==")
if grep -E -m 3 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$W/parent.err"; then
	t_fail "no sanitizer reports"
else
	t_pass "no sanitizer reports"
fi
t_summary
