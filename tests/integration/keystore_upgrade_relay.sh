#!/usr/bin/env bash
# keystore_upgrade_relay: an upgrade authorised by a maintainer release signature found ONLY on the
# relay (enclave/releases.h): no [service] release_file anywhere. Build 1 makes the key (sealed journal
# in appliance-keystore); build 2 without a published signature is refused; once
# `appliance release sign | appliance release publish` put the signature on the relay, build 2 fetches
# it at start, gets the key through the keystore's upgrade check and re-seals it under its own PCRs.
# Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/enclave.sh"
export TMPDIR=$PEERS_TMP
T=$ENC_TMP
A=$ENC_CLI
K=$ENC_BINDIR/appliance-keystore

# stop_enclave: SIGTERM and up to 20 s to flush (journal, last checkpoint); then SIGKILL. Returns the exit status.
stop_enclave() {
	local pid=$ENCLAVE_PID rc=0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || rc=$?
	return $rc
}
# run_refused CONFIG: the enclave must exit without becoming ready, within 30 s; its log in $T/refused.log
run_refused() {
	timeout -k 2 30 "$ENC_BIN" --config "$1" >"$T/refused.log" 2>&1 </dev/null
	local rc=$?
	[[ $rc -ne 0 && $rc -ne 124 ]] && ! grep -q 'event=ready' "$T/refused.log"
}
enclave_peers_start || { t_fail "peers start"; t_summary; exit 1; }
STORE=$T/store
R=(--relay "$RELAY_URL")
PCR1=$(python3 -c 'import hashlib; print(hashlib.sha384(bytes(48)+hashlib.sha384(b"").digest()).hexdigest())')

"$ENC_PARENT" nsm-emulator --socket "$T/ks.sock" --ca "$DEVCA" --image "$K" --instance-id i-0000000000000000a \
	>"$T/ksnsm.out" 2>"$T/ksnsm.err" </dev/null &
_PEERS_PIDS+=($!)
peers_wait_line "$T/ksnsm.out" '^nsm-emulator ready' 10 >/dev/null || { t_fail "keystore emulator"; t_summary; exit 1; }
KS_PCR0=$(sed -n 's/.*pcr0=\([0-9a-f]*\).*/\1/p' "$T/ksnsm.out")
cat >"$T/ks.ini" <<EOT
[keystore]
nsm = unix:$T/ks.sock
allow_dev = true
dev_root = $DEVCA/root.pem
[relays]
relay = $RELAY_URL
EOT
"$K" --config "$T/ks.ini" >"$T/ks.log" 2>&1 </dev/null &
_PEERS_PIDS+=($!)
line=$(peers_wait_line "$T/ks.log" 'event=ready' 15 $!) || { t_fail "keystore start"; t_summary; exit 1; }
KS_PK=$(sed -n 's/.*pubkey=\([0-9a-f]\{64\}\).*/\1/p' <<<"$line")

"$A" keygen >"$T/m1.sec"
M1=$("$A" key pub --sec-file "$T/m1.sec")
"$A" keygen >"$T/other.sec"
KSCFG=("keystore.image=$KS_PCR0" "keystore.allow_dev=true" "keystore.dev_root=$DEVCA/root.pem"
	"keystore.store=dir:$STORE" "keystore.checkpoint_interval=2" "keystore.timeout_ms=3000"
	"keystore.+maintainer=$M1" "service.version=0.1.0")

# --- build 1: a new key, a job's records sealed in the store ---
enclave_config "$T/v1.ini" "${KSCFG[@]}"
enclave_start "$T/v1.ini" || { t_fail "v1 start"; t_summary; exit 1; }
t_ok "v1: a new key" grep -q "event=journal_new_key" "$ENCLAVE_LOG"
t_ok "  the release fetch ran (nothing for v1)" grep -q "event=releases_fetch .*kept=0 .*eose=1" "$ENCLAVE_LOG"
client job "${R[@]}" --instance "$ENCLAVE_PUBKEY" --data "$HTTP_URL/files/iris.csv" --param epochs=1 \
	--nwc "$NWC_CLIENT" --timeout-ms 30000 >"$T/j1.out"
t_eq "  a paid job completes (records in the journal)" true "$(jget "$T/j1.out" 'j.get("ok")')"
stop_enclave
t_eq "v1: clean stop" 0 $?
t_ok "  the store holds the journal" bash -c "ls '$STORE' | grep -q '^journal-'"

# --- build 2 ---
cp "$ENC_BIN" "$T/appliance-enclave-v2" && printf 'v0.2.0' >>"$T/appliance-enclave-v2"
"$ENC_PARENT" nsm-emulator --socket "$T/v2.sock" --ca "$DEVCA" --image "$T/appliance-enclave-v2" \
	>"$T/v2.out" 2>&1 </dev/null &
_PEERS_PIDS+=($!)
peers_wait_line "$T/v2.out" '^nsm-emulator ready' 10 >/dev/null
V2=$(sed -n 's/.*pcr0=\([0-9a-f]*\).*/\1/p' "$T/v2.out")
sign() { # SEC-FILE VERSION
	"$A" release sign --sec-file "$1" --repo https://github.com/appliance/appliance --version "$2" --dev \
		--pcr0 "$V2" --pcr1 "$PCR1" --pcr2 "$V2"
}
enclave_config "$T/v2.ini" "${KSCFG[@]}" "service.nsm=unix:$T/v2.sock" "service.version=0.2.0"
t_ok "v2 config has no release_file" bash -c "! grep -q release_file '$T/v2.ini'"
ENC_BIN=$T/appliance-enclave-v2
# decoys on the relay: a non-maintainer's signature, and the maintainer's for another repository
sign "$T/other.sec" 0.2.0 | "$A" release publish "${R[@]}" >"$T/pub0.out" 2>&1
"$A" release sign --sec-file "$T/m1.sec" --repo https://example.org/fork --version 0.2.0 --dev \
	--pcr0 "$V2" --pcr1 "$PCR1" --pcr2 "$V2" | "$A" release publish "${R[@]}" >>"$T/pub0.out" 2>&1
t_ok "v2 without the maintainer's signature on the relay: refused" run_refused "$T/v2.ini"
t_ok "  the reason" grep -q "refusing to make a new key" "$T/refused.log"
t_ok "  the fork's signature was fetched and refused" grep -q "event=releases_fetch .*kept=0 refused=1" "$T/refused.log"

sign "$T/m1.sec" 0.2.0 | "$A" release publish "${R[@]}" >"$T/pub1.out" 2>&1
t_ok "release sign | release publish: the relay accepted it" grep -q "accepted" "$T/pub1.out"
enclave_start "$T/v2.ini" || t_fail "v2 start"
t_ok "v2: the signature fetched from the relay" grep -q "event=releases_fetch .*kept=1 .*eose=1" "$ENCLAVE_LOG"
t_ok "  the key through the release" grep -q "event=journal_open .*new_key=0 upgraded=1" "$ENCLAVE_LOG"
t_ok "  re-sealed under its own PCRs" "$A" keystore has "${R[@]}" --keystore "$KS_PK" --nsm "unix:$T/v2.sock" --timeout 10
stop_enclave
t_eq "v2: clean stop" 0 $?
t_ok "no sanitizer reports (refused run included)" bash -c "! grep -q 'Sanitizer' '$T'/*.log"
grep -h "event=releases_fetch" "$T"/*.log | sed 's/^/# /'
t_ok "no key material in the logs" bash -c "! grep -rqE 'ajk1|disk-key' '$T'/*.log"
t_summary
