#!/usr/bin/env bash
# keystore_journal: appliance-enclave with its journal sealed (enclave/runtime/sjournal.h), its disk key and
# checkpoint in appliance-keystore, over the real relay; the store is a directory the test plays the
# adversarial parent on. Checks: first start (a new key only after a definitive "not found"), restart
# (same key, same records, via `appliance keystore journal` too); refusals with their reason and
# nothing overwritten for a flipped byte, a truncated journal, a dropped record, reordered records,
# a journal from before the last checkpoint (rollback) and another instance's journal; the keystore
# unreachable at start (the enclave waits and retries, makes no key, and starts once it answers); the
# keystore restarted (RAM lost, a new service key found by discovery): the enclave re-uploads; an
# upgrade: a new enclave build gets the key through maintainer release signatures and re-seals it
# under its own PCRs. Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/enclave.sh"
export TMPDIR=$PEERS_TMP
T=$ENC_TMP
A=$ENC_CLI
K=$ENC_BINDIR/appliance-keystore

# stop_enclave [PID]: SIGTERM and up to 20 s to flush (journal, last checkpoint), as the parent's
# shutdown grace allows; then SIGKILL. Returns the exit status.
stop_enclave() {
	local pid=${1:-$ENCLAVE_PID} rc=0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || rc=$?
	return $rc
}
enclave_peers_start || { t_fail "peers start"; t_summary; exit 1; }
STORE=$T/store
R=(--relay "$RELAY_URL")
PCR1=$(python3 -c 'import hashlib; print(hashlib.sha384(bytes(48)+hashlib.sha384(b"").digest()).hexdigest())')
ENC0=$(sed -n 's/.*pcr0=\([0-9a-f]*\).*/\1/p' "$T/nsm.out")

"$ENC_PARENT" nsm-emulator --socket "$T/ks.sock" --ca "$DEVCA" --image "$K" --instance-id i-0000000000000000a \
	>"$T/ksnsm.out" 2>"$T/ksnsm.err" </dev/null &
_PEERS_PIDS+=($!)
peers_wait_line "$T/ksnsm.out" '^nsm-emulator ready' 10 >/dev/null || { t_fail "keystore emulator"; t_summary; exit 1; }
KS_PCR0=$(sed -n 's/.*pcr0=\([0-9a-f]*\).*/\1/p' "$T/ksnsm.out")
cat >"$T/ks.ini" <<EOF
[keystore]
nsm = unix:$T/ks.sock
allow_dev = true
dev_root = $DEVCA/root.pem
[relays]
relay = $RELAY_URL
EOF
KS_RUNS=0
keystore_start() {
	local log=$T/ks.$((++KS_RUNS)).log line
	"$K" --config "$T/ks.ini" >"$log" 2>&1 </dev/null &
	KS_PID=$!
	_PEERS_PIDS+=("$KS_PID")
	line=$(peers_wait_line "$log" 'event=ready' 15 "$KS_PID") || { echo "keystore did not start" >&2; return 1; }
	KS_PK=$(sed -n 's/.*pubkey=\([0-9a-f]\{64\}\).*/\1/p' <<<"$line")
}
keystore_start || { t_fail "keystore start"; t_summary; exit 1; }

for m in 1 2; do "$A" keygen >"$T/m$m.sec"; M[$m]=$("$A" key pub --sec-file "$T/m$m.sec"); done
# the instance: keystores found by their image (a restarted keystore has a new key), maintainers m1, m2
KSCFG=("keystore.image=$KS_PCR0" "keystore.allow_dev=true" "keystore.dev_root=$DEVCA/root.pem"
	"keystore.store=dir:$STORE" "keystore.checkpoint_interval=2" "keystore.timeout_ms=3000"
	"keystore.+maintainer=${M[1]}" "keystore.+maintainer=${M[2]}" "service.version=0.1.0")
enclave_config "$T/enclave.ini" "${KSCFG[@]}"
BC=$HTTP_URL/files/iris.csv

# run_refused NAME CONFIG: the enclave must exit (not become ready), within 30 s; its log in $T/refused.log
run_refused() {
	timeout -k 2 30 "$ENC_BIN" --config "$2" >"$T/refused.log" 2>&1 </dev/null
	local rc=$?
	[[ $rc -ne 0 && $rc -ne 124 ]] && ! grep -q 'event=ready' "$T/refused.log"
}
snap() { (cd "$STORE" && sha256sum journal-* 2>/dev/null | sha256sum); }
ks_epoch() { "$A" keystore has "${R[@]}" --keystore "$KS_PK" --nsm "unix:$NSM_SOCK" --timeout 10 2>/dev/null | sed -n 's/found epoch=//p'; }
dump() { "$A" keystore journal "${R[@]}" --keystore "$KS_PK" --nsm "unix:$NSM_SOCK" --store "$STORE" --timeout 10 "$@"; }

# --- first start, one job, restart ---
enclave_start "$T/enclave.ini" || { t_fail "enclave start"; t_summary; exit 1; }
t_ok "first start: a definitive not found, then a new key" grep -q "answer=not_found.*" "$ENCLAVE_LOG"
t_ok "  journal_new_key" grep -q "event=journal_new_key" "$ENCLAVE_LOG"
client job "${R[@]}" --instance "$ENCLAVE_PUBKEY" --data "$BC" --param epochs=1 --nwc "$NWC_CLIENT" --timeout-ms 30000 >"$T/j1.out"
t_eq "a paid job completes" true "$(jget "$T/j1.out" 'j.get("ok")')"
stop_enclave
t_eq "clean stop" 0 $?
N1=$(ls "$STORE" | grep -c '^journal-')
t_ok "records are sealed blobs in the store" test "$N1" -ge 8
t_ok "  no plaintext in the store" bash -c "! grep -rq 'paid\|debit\|quote' '$STORE'"
t_eq "the keystore holds the checkpoint of every record" "$N1" "$(ks_epoch)"
dump >"$T/dump1" 2>"$T/dump1.err"
t_eq "appliance keystore journal reads it back" "$N1" "$(wc -l <"$T/dump1")"
t_ok "  the ledger records are there" grep -q "^L1 [0-9]* [0-9]* paid " "$T/dump1"
enclave_start "$T/enclave.ini" || { t_fail "restart"; t_summary; exit 1; }
t_ok "restart: the key found, the records replayed" grep -q "event=journal_open .*records=$N1 checkpoint=$N1 new_key=0" "$ENCLAVE_LOG"
cp -a "$STORE" "$T/store.before-job2" # a copy the parent keeps: a journal from before the next checkpoint
client job "${R[@]}" --instance "$ENCLAVE_PUBKEY" --data "$BC" --param epochs=1 --nwc "$NWC_CLIENT" --timeout-ms 30000 >"$T/j2.out"
t_eq "a second job" true "$(jget "$T/j2.out" 'j.get("ok")')"
stop_enclave
N2=$(ls "$STORE" | grep -c '^journal-')
t_eq "checkpoint after it" "$N2" "$(ks_epoch)"

# --- the adversarial parent: each change is refused with its reason, nothing is overwritten ---
cp -a "$STORE" "$T/store.good"
restore() { rm -rf "$STORE" && cp -a "$T/store.good" "$STORE"; }
adversary() { # NAME CODE REASON
	local name=$1 code=$2 reason=$3 before after e0 e1
	before=$(snap)
	e0=$(ks_epoch)
	t_ok "$name: refused" run_refused "$name" "$T/enclave.ini"
	t_ok "  $code: $reason" grep -q "event=startup step=journal err=$code reason=\".*$reason" "$T/refused.log"
	after=$(snap)
	e1=$(ks_epoch)
	t_eq "  nothing overwritten (store, keystore epoch)" "$before $e0" "$after $e1"
	restore
}
python3 - "$STORE/journal-00000000000000000003" <<'EOF'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[110] ^= 0x04; open(p, 'wb').write(b)
EOF
adversary "flipped byte" EBADMAC "record 3: bad tag"
rm "$STORE/$(ls "$STORE" | grep '^journal-' | tail -n 1)"
adversary "truncated journal" EROLLBACK "older than the checkpoint"
rm "$STORE/journal-00000000000000000004"
adversary "dropped record" EROLLBACK "record 4 is missing"
mv "$STORE/journal-00000000000000000005" "$T/x" && mv "$STORE/journal-00000000000000000006" "$STORE/journal-00000000000000000005" && mv "$T/x" "$STORE/journal-00000000000000000006"
adversary "reordered records" EROLLBACK "record 5 holds sequence number 6 (reordered)"
rm -rf "$STORE" && cp -a "$T/store.before-job2" "$STORE"
adversary "a journal from before the last checkpoint" EROLLBACK "records but the checkpoint says $N2"
# another instance: a journal made by another enclave (another build: its own key, its own keystore entry)
cp "$ENC_BIN" "$T/appliance-enclave-other" && printf 'other' >>"$T/appliance-enclave-other"
"$ENC_PARENT" nsm-emulator --socket "$T/other.sock" --ca "$DEVCA" --image "$T/appliance-enclave-other" \
	>"$T/other.out" 2>&1 </dev/null &
_PEERS_PIDS+=($!)
peers_wait_line "$T/other.out" '^nsm-emulator ready' 10 >/dev/null
enclave_config "$T/other.ini" "${KSCFG[@]}" "keystore.store=dir:$T/other-store" "service.nsm=unix:$T/other.sock" \
	"keystore.maintainer="
ENC_BIN_SAVE=$ENC_BIN
ENC_BIN=$T/appliance-enclave-other
enclave_start "$T/other.ini" && client job "${R[@]}" --instance "$ENCLAVE_PUBKEY" --data "$BC" --param epochs=1 \
	--nwc "$NWC_CLIENT" --timeout-ms 30000 >"$T/o.out"
stop_enclave
ENC_BIN=$ENC_BIN_SAVE
t_ok "another instance ran its own journal" test -s "$T/other-store/journal-00000000000000000001"
rm -f "$STORE"/journal-* && cp "$T/other-store"/journal-* "$STORE"/
adversary "another instance's journal" EROLLBACK "belongs to another instance"

# --- the keystore unreachable at start: the enclave waits and retries, no new key ---
RPORT=$RELAY_PORT
relay_stop >/dev/null
before=$(snap)
"$ENC_BIN" --config "$T/enclave.ini" >"$T/wait.log" 2>&1 </dev/null &
WPID=$!
_PEERS_PIDS+=("$WPID")
for _ in $(seq 40); do (($(grep -c 'event=keystores_undecided' "$T/wait.log") >= 2)) && break; sleep 0.5; done
t_ok "relay down: the enclave waits for the keystores" kill -0 "$WPID"
t_ok "  and retries" test "$(grep -c 'event=keystores_undecided' "$T/wait.log")" -ge 2
t_ok "  no new key, nothing written" bash -c "! grep -q journal_new_key '$T/wait.log' && [[ '$(snap)' == '$before' ]]"
relay_start --port "$RPORT" --max-tag-value 400000 --max-content 400000 --max-payload 8388608 --max-subs 200 >/dev/null
t_ok "relay back: the enclave starts with its journal" peers_wait_line "$T/wait.log" 'event=ready' 60 "$WPID"
t_ok "  the same key and records" grep -q "event=journal_open .*records=$N2 .*new_key=0" "$T/wait.log"
ENCLAVE_PID=$WPID
stop_enclave

# --- the keystore restarted (RAM lost): the running enclave re-uploads to the new one ---
enclave_start "$T/enclave.ini" || t_fail "start before the keystore restart"
kill -KILL "$KS_PID"
wait "$KS_PID" 2>/dev/null
OLDKS=$KS_PK
sleep 1.2 # its announcement must be newer than the dead one's (same host: the newest wins)
keystore_start
t_ok "the restarted keystore has a new key and nothing" bash -c "[[ '$KS_PK' != '$OLDKS' && -z '$(ks_epoch)' ]]"
for _ in $(seq 40); do [[ -n $(ks_epoch) ]] && break; sleep 0.5; done
t_ok "  the enclave found it and re-uploaded key and checkpoint" test -n "$(ks_epoch)"
stop_enclave
t_eq "  checkpoint current" "$(ls "$STORE" | grep -c '^journal-')" "$(ks_epoch)"

# --- upgrade: build 2 gets the key through 2-of-2 maintainer release signatures, then re-seals ---
cp "$ENC_BIN" "$T/appliance-enclave-v2" && printf 'v0.2.0' >>"$T/appliance-enclave-v2"
"$ENC_PARENT" nsm-emulator --socket "$T/v2.sock" --ca "$DEVCA" --image "$T/appliance-enclave-v2" \
	>"$T/v2.out" 2>&1 </dev/null &
_PEERS_PIDS+=($!)
peers_wait_line "$T/v2.out" '^nsm-emulator ready' 10 >/dev/null
V2=$(sed -n 's/.*pcr0=\([0-9a-f]*\).*/\1/p' "$T/v2.out")
for m in 1 2; do
	"$A" release sign --sec-file "$T/m$m.sec" --repo https://github.com/appliance/appliance --version 0.2.0 --dev \
		--pcr0 "$V2" --pcr1 "$PCR1" --pcr2 "$V2" >"$T/rel$m.json"
done
t_ok "v2 has no entry of its own yet" bash -c "! '$A' keystore has ${R[*]} --keystore $KS_PK --nsm unix:$T/v2.sock --timeout 10"
enclave_config "$T/v2-unsigned.ini" "${KSCFG[@]}" "service.nsm=unix:$T/v2.sock" "service.version=0.2.0"
ENC_BIN_SAVE=$ENC_BIN
ENC_BIN=$T/appliance-enclave-v2
t_ok "v2 without release signatures: refused (the journal exists, not found everywhere)" run_refused v2 "$T/v2-unsigned.ini"
t_ok "  the reason" grep -q "refusing to make a new key" "$T/refused.log"
enclave_config "$T/v2.ini" "${KSCFG[@]}" "service.nsm=unix:$T/v2.sock" "service.version=0.2.0" \
	"service.+release_file=$T/rel1.json" "service.+release_file=$T/rel2.json"
enclave_start "$T/v2.ini" || t_fail "v2 start"
t_ok "v2 with 2-of-2 signatures: the key through the release" grep -q "event=journal_open .*new_key=0 upgraded=1" "$ENCLAVE_LOG"
t_ok "  re-sealed under its own PCRs" "$A" keystore has "${R[@]}" --keystore "$KS_PK" --nsm "unix:$T/v2.sock" --timeout 10
client job "${R[@]}" --instance "$ENCLAVE_PUBKEY" --data "$BC" --param epochs=1 --nwc "$NWC_CLIENT" --timeout-ms 30000 >"$T/j3.out"
t_eq "  v2 runs jobs on the same journal" true "$(jget "$T/j3.out" 'j.get("ok")')"
stop_enclave
ENC_BIN=$ENC_BIN_SAVE
t_ok "no key material in the logs" bash -c "! grep -rqE 'ajk1|disk-key' '$T'/*.log"
t_summary
