#!/usr/bin/env bash
# keystore_refusals: appliance-keystore as a service over the real relay (tests/peers/relay.mjs),
# driven by `appliance keystore` with attestations from NSM emulators (`appliance-parent
# nsm-emulator`, a dev CA; one emulator per build: a different --image file is another build).
# The happy paths (same image restart, maintainer-signed upgrade) and every refusal of issue 9:
# different PCRs without release signatures, signatures below threshold, from non-maintainers,
# of the wrong kind, a dev release for a prod entry, an older version, a revoked release, a stale
# attestation, a debug document, an attestation whose public_key is not the request's pubkey;
# plus the epoch anti-rollback and a keystore restart (RAM lost). Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
BIN=${APPLIANCE_BIN:-$ROOT/bin}
. "$ROOT/tests/lib/peers.sh"
export TMPDIR=$PEERS_TMP
T=$PEERS_TMP
A=$BIN/appliance
P=$BIN/appliance-parent
K=$BIN/appliance-keystore
REPO=https://github.com/appliance/appliance
TO=(--timeout 10)

ok() { t_pass "$1"; }
no() { t_fail "$1" "${2:-}"; [[ -s $T/err ]] && sed 's/^/     /' "$T/err" | head -5; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else no "$name"; fi; }
rc_is() { local want=$1; shift; "$@" >"$T/out" 2>"$T/err"; [[ $? -eq $want ]]; }
err_has() { grep -q -- "$1" "$T/err"; }
out_has() { grep -q -- "$1" "$T/out"; }

# emu NAME ARGS...: an NSM emulator on $T/NAME.sock (its ready line in $T/NAME.out)
emu() {
	local name=$1
	shift
	"$P" nsm-emulator --socket "$T/$name.sock" --ca "$T/ca" "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null &
	_PEERS_PIDS+=($!)
	peers_wait_line "$T/$name.out" '^nsm-emulator ready' 10 $! >/dev/null || { echo "emulator $name did not start" >&2; cat "$T/$name.err" >&2; exit 1; }
}
pcr0_of() { sed -n 's/.*pcr0=\([0-9a-f]*\).*/\1/p' "$T/$1.out"; }

# keystore_start: starts appliance-keystore with $T/ks.ini; sets KS_PID KS_PK
keystore_start() {
	local log=$T/ks.$((++KS_RUNS)).log line
	"$K" --config "$T/ks.ini" >"$log" 2>&1 </dev/null &
	KS_PID=$!
	_PEERS_PIDS+=("$KS_PID")
	line=$(peers_wait_line "$log" 'event=ready' 15 "$KS_PID") || { echo "keystore did not start" >&2; tail "$log" >&2; exit 1; }
	KS_PK=$(sed -n 's/.*pubkey=\([0-9a-f]\{64\}\).*/\1/p' <<<"$line")
	KS_LOG=$log
}
KS_RUNS=0

relay_start --max-tag-value 65536 --max-content 131072 || exit 1
R=(--relay "$RELAY_URL")
"$P" dev-ca create "$T/ca" >/dev/null || exit 1
printf 'build A 1.0.0' >"$T/imgA"
printf 'build B 1.1.0' >"$T/imgB"
emu ks --image "$K" --instance-id i-0000000000000000a
emu a --image "$T/imgA" --instance-id i-00000000000000001
emu b --image "$T/imgB" --instance-id i-00000000000000001
ZERO=$(printf '0%.0s' $(seq 96))
# PCR1 of an --image emulator: SHA384(0^48 || SHA384(""))
PCR1=$(python3 -c 'import hashlib; print(hashlib.sha384(bytes(48)+hashlib.sha384(b"").digest()).hexdigest())')
emu dbg --pcr "0=$ZERO" --pcr "1=$PCR1" --pcr "2=$(pcr0_of a)" --instance-id i-00000000000000001
A0=$(pcr0_of a) B0=$(pcr0_of b)

cat >"$T/ks.ini" <<EOF
[keystore]
nsm = unix:$T/ks.sock
allow_dev = true
dev_root = $T/ca/root.pem
attestation_max_age = 6
log_level = info
[relays]
relay = $RELAY_URL
EOF
keystore_start

for m in 1 2 3 4; do "$A" keygen >"$T/m$m.sec"; M[$m]=$("$A" key pub --sec-file "$T/m$m.sec"); done
"$A" keygen >"$T/session.sec"

KS=(--keystore "$KS_PK")
check "status answers" rc_is 0 "$A" keystore status "${R[@]}" "${KS[@]}" "${TO[@]}"
check "  no entries yet" out_has '"entries":0'
npub=$(sed -n 's/.*npub=\(npub1[0-9a-z]*\).*/\1/p' "$KS_LOG")
check "status by npub" rc_is 0 "$A" keystore status "${R[@]}" --keystore "$npub" "${TO[@]}"

# the entry of build A: 2-of-2 maintainers, version 1.0.0, prod
printf 'disk-key-of-A' >"$T/data"
SETA=(keystore set "${R[@]}" "${KS[@]}" "${TO[@]}" --nsm "unix:$T/a.sock" --data-file "$T/data" --repo "$REPO"
	--version 1.0.0 --maintainer "${M[1]}" --maintainer "${M[2]}" --threshold 2 --type prod)
check "set from build A" rc_is 0 "$A" "${SETA[@]}" --epoch 5
check "has by PCR values: found" rc_is 0 "$A" keystore has "${R[@]}" "${KS[@]}" "${TO[@]}" --pcr0 "$A0" --pcr1 "$PCR1" --pcr2 "$A0"
check "  epoch 5" out_has "found epoch=5"
check "has for build B: not found" rc_is 1 "$A" keystore has "${R[@]}" "${KS[@]}" "${TO[@]}" --pcr0 "$B0" --pcr1 "$PCR1" --pcr2 "$B0"
check "has by attestation (A)" rc_is 0 "$A" keystore has "${R[@]}" "${KS[@]}" "${TO[@]}" --nsm "unix:$T/a.sock"

# same image restart: a new session key, a new attestation, the same PCRs
check "same image restart: get" rc_is 0 "$A" keystore get "${R[@]}" "${KS[@]}" "${TO[@]}" --nsm "unix:$T/a.sock" --show-data
check "  exact, epoch 5" out_has "found epoch=5 bytes=13 match=exact"
check "  the data" out_has "^disk-key-of-A$"
check "anti-rollback: a lower epoch is refused" rc_is 1 "$A" "${SETA[@]}" --epoch 4
check "  loudly" err_has "EROLLBACK.*anti-rollback"
check "an equal epoch replaces" rc_is 0 "$A" "${SETA[@]}" --epoch 5

# upgrades to build B
check "different PCRs without release signatures: not found" rc_is 1 "$A" keystore get "${R[@]}" "${KS[@]}" "${TO[@]}" --nsm "unix:$T/b.sock"
check "  a definitive not found" out_has "^not found$"
sign() { # sign M VERSION OUT [--dev] [--pcr0 X]
	local m=$1 v=$2 out=$3
	shift 3
	"$A" release sign --sec-file "$T/m$m.sec" --repo "$REPO" --version "$v" --pcr0 "$B0" --pcr1 "$PCR1" --pcr2 "$B0" "$@" >"$out"
}
sign 1 1.1.0 "$T/r1.json" && sign 2 1.1.0 "$T/r2.json" && sign 3 1.1.0 "$T/r3.json" && sign 4 1.1.0 "$T/r4.json"
GETB=(keystore get "${R[@]}" "${KS[@]}" "${TO[@]}" --nsm "unix:$T/b.sock")
check "maintainer-signed upgrade: B gets A's key" rc_is 0 "$A" "${GETB[@]}" --release-sig "$T/r1.json" --release-sig "$T/r2.json" --show-data
check "  through the release" out_has "found epoch=5 bytes=13 match=release"
check "  the data" out_has "^disk-key-of-A$"
check "signatures below threshold" rc_is 1 "$A" "${GETB[@]}" --release-sig "$T/r1.json"
check "  1 of 2" err_has "1 of 2 required"
check "signatures from non-maintainers" rc_is 1 "$A" "${GETB[@]}" --release-sig "$T/r3.json" --release-sig "$T/r4.json"
check "  not a maintainer" err_has "not a maintainer"
for m in 1 2; do
	python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print(json.dumps({"kind":1,"content":"","tags":e["tags"]}))' "$T/r$m.json" |
		"$A" event sign --sec-file "$T/m$m.sec" >"$T/k1_$m.json"
done
check "wrong kind (a note with the release's tags)" rc_is 1 "$A" "${GETB[@]}" --release-sig "$T/k1_1.json" --release-sig "$T/k1_2.json"
check "  kind named" err_has "kind 63794"
sign 1 1.1.0 "$T/d1.json" --dev && sign 2 1.1.0 "$T/d2.json" --dev
check "a dev release for a prod entry" rc_is 1 "$A" "${GETB[@]}" --release-sig "$T/d1.json" --release-sig "$T/d2.json"
check "  dev for prod" err_has "dev release for a prod entry"
sign 1 0.9.0 "$T/o1.json" && sign 2 0.9.0 "$T/o2.json"
check "an older version (downgrade)" rc_is 1 "$A" "${GETB[@]}" --release-sig "$T/o1.json" --release-sig "$T/o2.json"
check "  downgrade" err_has "downgrade"
# revocation of build B by one maintainer
"$A" release revoke --sec-file "$T/m2.sec" --repo "$REPO" --pcr0 "$B0" --pcr1 "$PCR1" --pcr2 "$B0" --reason "CVE" >"$T/rev.json"
check "release publish: a revocation goes to the relay" rc_is 0 "$A" release publish "${R[@]}" "$T/rev.json"
check "release publish: a release signature too" rc_is 0 "$A" release publish "${R[@]}" "$T/r1.json"
check "the keystore takes the revocation" rc_is 0 "$A" keystore revoke "${R[@]}" "${KS[@]}" "${TO[@]}" --revocation "$T/rev.json"
check "a revoked release" rc_is 1 "$A" "${GETB[@]}" --release-sig "$T/r1.json" --release-sig "$T/r2.json"
check "  revoked" err_has "revoked"
"$A" release revoke --sec-file "$T/m3.sec" --repo "$REPO" --pcr0 "$A0" --pcr1 "$PCR1" --pcr2 "$A0" >"$T/rev3.json"
check "a stranger's revocation is refused" rc_is 1 "$A" keystore revoke "${R[@]}" "${KS[@]}" "${TO[@]}" --revocation "$T/rev3.json"

# attestation checks
check "a debug-mode document (PCR0 all zero, dev CA)" rc_is 1 "$A" keystore get "${R[@]}" "${KS[@]}" "${TO[@]}" --nsm "unix:$T/dbg.sock"
check "  debug" err_has "EDEBUG.*(debug)"
check "a fresh attestation, saved" rc_is 0 "$A" keystore get "${R[@]}" "${KS[@]}" "${TO[@]}" --nsm "unix:$T/a.sock" \
	--session-key-file "$T/session.sec" --save-attestation "$T/att.bin"
check "its public_key is not another request's pubkey" rc_is 1 "$A" keystore get "${R[@]}" "${KS[@]}" "${TO[@]}" --attestation "$T/att.bin"
check "  public_key" err_has "(public_key)"
check "replayed at once with its own key: accepted" rc_is 0 "$A" keystore get "${R[@]}" "${KS[@]}" "${TO[@]}" \
	--attestation "$T/att.bin" --session-key-file "$T/session.sec"
sleep 7
check "a stale attestation (older than attestation_max_age)" rc_is 1 "$A" keystore get "${R[@]}" "${KS[@]}" "${TO[@]}" \
	--attestation "$T/att.bin" --session-key-file "$T/session.sec"
check "  freshness" err_has "EEXPIRED.*(freshness)"

# a restarted keystore has a new key and has forgotten everything
kill -KILL "$KS_PID"
wait "$KS_PID" 2>/dev/null
old=$KS_PK
keystore_start
check "restarted keystore: a new service key" test "$old" != "$KS_PK"
check "  RAM lost: not found" rc_is 1 "$A" keystore get "${R[@]}" --keystore "$KS_PK" "${TO[@]}" --nsm "unix:$T/a.sock"
check "the old key no longer answers" rc_is 2 "$A" keystore status "${R[@]}" --keystore "$old" --timeout 2
check "discover finds the new keystore by its image" rc_is 0 "$A" keystore discover "${R[@]}" "${TO[@]}" --image "$(pcr0_of ks)" --allow-dev --dev-root "$T/ca/root.pem"
check "  newest per host only" bash -c "[[ \$(wc -l <'$T/out') -eq 1 ]] && grep -q '^$KS_PK ' '$T/out'"
check "discover without the dev root finds nothing" rc_is 1 "$A" keystore discover "${R[@]}" "${TO[@]}" --image "$(pcr0_of ks)"
check "no key material in the keystore logs" bash -c "! grep -q 'disk-key-of-A' $T/ks.*.log"
t_summary
