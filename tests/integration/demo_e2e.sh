#!/usr/bin/env bash
# demo_e2e: the flow of `make demo`, with assertions (issue 10). A relay, the NIP-47 wallet (operator
# and client connections), an HTTP blob store, a keystore and an appliance, each behind its own
# `appliance-parent --dev` (measured, isolated, attested by the dev CA; the appliance's disk key in
# the keystore, its journal sealed at the parent); a maintainer's release signature on the relay; then
# the client commands: `appliance discover` (table and JSON, trust policy with and without the
# release), `appliance submit` on breast_cancer.csv (sealed upload, encrypted request, checked and
# paid invoice, verified result: files, model = a local `appliance train` byte for byte, tee_root
# bound to the digest and the measured PCR0), `appliance job status|result`, the no-wallet path
# (bolt11 printed, paid by `appliance pay` from elsewhere), and refusals with their exit codes.
# Needs root (namespaces). Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
BIN=${APPLIANCE_BIN:-$ROOT/bin}
export TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/demo_e2e.XXXXXX")
PEERS_NO_TRAP=1
. "$ROOT/tests/lib/peers.sh"
DEMO_W=$PEERS_TMP
. "$ROOT/scripts/demo-lib.sh"
A=$BIN/appliance
W=$DEMO_W
DATA=$ROOT/tests/data/breast_cancer.csv
TO=(timeout -k 5 120)
cleanup() {
	if ((_T_FAIL > 0)); then
		for f in "$W"/ks/parent.err "$W"/app/parent.err; do [[ -f $f ]] && { echo "---- $f (tail)"; tail -n 30 "$f" | cut -c1-300 | sed 's/^/    /'; }; done
	fi
	demo_cleanup
	if ((_T_FAIL > 0)); then echo "logs kept in $TMPDIR"; else rm -rf "$TMPDIR"; fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
jq_() { python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$1"; }
# jl FILE STEP EXPR: EXPR on the first JSON line of FILE whose "step" is STEP
jl() {
	python3 -c '
import json, sys
for l in open(sys.argv[1]):
    if l.startswith("{"):
        j = json.loads(l)
        if j.get("step") == sys.argv[2]:
            print(eval(sys.argv[3])); sys.exit(0)
print("missing")' "$@"
}

if [[ $(id -u) -ne 0 ]] || ! unshare -n true 2>/dev/null; then
	t_fail "network namespace" "unshare(CLONE_NEWNET) is not permitted here (needs root)"
	t_summary
	exit 1
fi
if [[ -n ${APPLIANCE_SANITIZED:-} ]]; then
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0:malloc_context_size=24"
	LSAN_OPTIONS="suppressions=$ROOT/tests/lib/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
	export ASAN_OPTIONS LSAN_OPTIONS
fi

demo_peers_start >"$W/peers.log" 2>&1 || { cat "$W/peers.log"; t_fail "peers start"; t_summary; exit 1; }
# a keystore behind its own parent (as in the demo), holding the appliance's disk key
"$A" keygen >"$W/m.sec"
MAINT=$("$A" key pub --sec-file "$W/m.sec")
printf '%s\n' "[keystore]" "allow_dev = true" "dev_root = $DEMO_DEVCA/root.pem" "[relays]" "relay = $RELAY_URL" >"$W/ks.ini"
if demo_parent_start ks "$BIN/appliance-keystore" "$W/ks.ini" 40; then
	t_pass "keystore ready behind appliance-parent --dev"
else
	t_fail "keystore ready behind appliance-parent --dev"
	t_summary
	exit 1
fi
demo_enclave_config "$W/app.ini" appliance-e2e price.msat_per_unit=10 keystore.keystore="$PUBKEY_ks" \
	keystore.allow_dev=true "keystore.dev_root=$DEMO_DEVCA/root.pem" keystore.maintainer="$MAINT" \
	keystore.threshold=1 service.keystore="$PUBKEY_ks"
if demo_parent_start app "$BIN/appliance-enclave" "$W/app.ini" 60; then
	t_pass "appliance ready behind appliance-parent --dev"
else
	t_fail "appliance ready behind appliance-parent --dev"
	t_summary
	exit 1
fi
ROOTPEM=$DEMO_DEVCA/root.pem
R=(--relay "$RELAY_URL")
DEV=(--allow-dev --root "$ROOTPEM")
grep -q 'event=journal_new_key' "$W/app/parent.err" && t_pass "first start: a new disk key, stored in the keystore" ||
	t_fail "first start: a new disk key, stored in the keystore"

# --- discover ---
"${TO[@]}" "$A" discover "${R[@]}" "${DEV[@]}" --json >"$W/d1.json" 2>"$W/d1.err"
t_eq "discover: exit 0 (an instance accepted)" 0 $?
t_eq "discover: the instance, accepted, dev, measured PCR0" "$PUBKEY_app accepted True $PCR0_app" \
	"$(jq_ '" ".join(str(x) for x in (j["instances"][0]["pubkey"], j["instances"][0]["verdict"], j["instances"][0]["dev"], j["instances"][0]["pcr0"]))' <"$W/d1.json")"
t_eq "discover: price tag" "1000 10 MiB-epoch" "$(jq_ '" ".join(j["instances"][0]["price"].values())' <"$W/d1.json")"
t_eq "discover: the keystore tag" "$PUBKEY_ks" "$(jq_ 'j["instances"][0]["keystore"]' <"$W/d1.json")"
t_eq "discover: only the instance (the keystore does not offer kind 5720)" 1 "$(jq_ 'len(j["instances"])' <"$W/d1.json")"
"${TO[@]}" "$A" discover "${R[@]}" >"$W/d2.txt" 2>&1
t_eq "discover without --allow-dev: exit 1" 1 $?
grep -q 'REFUSED: the attestation does not chain to AWS Nitro Enclaves Root G1' "$W/d2.txt" &&
	t_pass "discover without --allow-dev: the reason is printed" || t_fail "discover without --allow-dev: the reason is printed" "$(cat "$W/d2.txt")"
"${TO[@]}" "$A" discover "${R[@]}" "${DEV[@]}" --trust "$MAINT" --json >"$W/d3.json" 2>&1
t_eq "discover --trust before the release: refused (release)" "1 release" \
	"$? $(jq_ 'j["instances"][0]["check"]' <"$W/d3.json" 2>/dev/null)"
"$A" release sign --sec-file "$W/m.sec" --repo "$DEMO_REPO" --version 0.1.0 --dev \
	--pcr0 "$PCR0_app" --pcr1 "$PCR1_app" --pcr2 "$PCR2_app" >"$W/rel.json"
t_ok "release published on the relay" "${TO[@]}" "$A" release publish "${R[@]}" "$W/rel.json"
"${TO[@]}" "$A" discover "${R[@]}" "${DEV[@]}" --trust "$MAINT" >"$W/d4.txt" 2>&1
t_eq "discover --trust after the release: accepted" 0 $?
grep -q '1/1 trusted .* accepted' "$W/d4.txt" && t_pass "discover table: release signers and verdict" ||
	t_fail "discover table: release signers and verdict" "$(cat "$W/d4.txt")"
TRUST=("${R[@]}" "${DEV[@]}" --trust "$MAINT")

# --- submit ---
OUT=$W/out1
"${TO[@]}" "$A" submit "${TRUST[@]}" --instance "$PUBKEY_app" --data "$DATA" --epochs 30 --seed 7 \
	--validation-split 0.25 --max-price 50000 --nwc-file "$W/client.nwc" --blob-store "$HTTP_URL/blobs" --out "$OUT" \
	--json >"$W/s1.json" 2>"$W/s1.err"
t_eq "submit: exit 0" 0 $?
t_eq "submit: steps" "instance upload request payment-required paid processing result done" \
	"$(python3 -c '
import json, sys
seen = []
for l in open(sys.argv[1]):
    s = json.loads(l)["step"]
    if s not in seen: seen.append(s)
print(" ".join(seen))' "$W/s1.json")"
t_eq "submit: the invoice was the quote (1000 + 1 MiB x 30 epochs x 10)" 1300 "$(jl "$W/s1.json" payment-required 'j["amount_msat"]')"
t_eq "submit: the upload is sealed (not the CSV bytes)" 1 \
	"$(python3 -c 'import sys; print(int(sys.argv[1] != sys.argv[2]))' "$(jl "$W/s1.json" upload 'j["sha256"]')" "$(sha256sum "$DATA" | cut -c1-64)")"
BLOB=$(jl "$W/s1.json" upload 'j["url"]')
curl -s "$BLOB" -o "$W/blob"
t_eq "the blob store holds sealed data (APSEAL), not the dataset" APSEAL "$(head -c 6 "$W/blob")"
t_ok "submit: result files" test -s "$OUT/model.bin" -a -s "$OUT/result.json" -a -s "$OUT/metrics.json" -a -s "$OUT/tee_root.json" -a -s "$OUT/client.key"
t_eq "client.key is private (0600)" 600 "$(stat -c %a "$OUT/client.key")"
"$A" train --data "$DATA" --epochs 30 --seed 7 --validation-split 0.25 --json >"$W/local.json"
t_eq "model = a local appliance train, byte for byte" "$(jq_ 'j["model_sha256"]' <"$W/local.json")" "$(sha256sum "$OUT/model.bin" | cut -c1-64)"
t_eq "reported accuracy = the local run's" "$(jq_ 'round(j["accuracy"], 9)' <"$W/local.json")" \
	"$(jl "$W/s1.json" result 'round(j["metrics"]["accuracy"], 9)')"
"$A" attest verify "$OUT/tee_root.json" "${DEV[@]}" --json >"$W/tee.json" 2>&1
t_eq "tee_root verifies on its own" 0 $?
t_eq "tee_root: user_data = digest, public_key = instance, PCR0 = measured" "$(cat "$OUT/digest") $PUBKEY_app $PCR0_app" \
	"$(jq_ '" ".join((j["user_data"], j["public_key"], j["pcrs"]["0"]))' <"$W/tee.json")"
ID=$(jl "$W/s1.json" request 'j["id"]')

# --- job status / result ---
"${TO[@]}" "$A" job status "$ID" "${R[@]}" --sec-file "$OUT/client.key" --json >"$W/st.json" 2>&1
t_eq "job status: done, with a result" "done True" "$(jq_ 'j["state"] + " " + str(j["result"])' <"$W/st.json")"
"${TO[@]}" "$A" job status "$ID" "${R[@]}" --sec-file "$OUT/client.key" >"$W/st.txt" 2>&1
grep -q 'payment-required pay the invoice to start the job' "$W/st.txt" && t_pass "job status: decrypted feedback texts" ||
	t_fail "job status: decrypted feedback texts" "$(cat "$W/st.txt")"
"${TO[@]}" "$A" job result "$ID" "${TRUST[@]}" --sec-file "$OUT/client.key" --out "$W/out1b" >"$W/jr.txt" 2>&1
t_eq "job result: verified again" 0 $?
t_ok "job result: the same model" cmp "$OUT/model.bin" "$W/out1b/model.bin"
"${TO[@]}" "$A" job result "$ID" "${TRUST[@]}" --out "$W/out1c" >"$W/jr2.txt" 2>&1
t_eq "job result without the client key: refused (exit 1)" 1 $?

# --- no wallet: the bolt11 is printed, someone pays it, the job goes on ---
"${TO[@]}" "$A" submit "${TRUST[@]}" --instance "$PUBKEY_app" --data "$DATA" --max-price 50000 --no-wallet \
	--blob-store "$HTTP_URL/blobs" --out "$W/out2" --json >"$W/s2.json" 2>"$W/s2.err" &
SPID=$!
if line=$(peers_wait_line "$W/s2.json" '"step":"payment-required"' 30 "$SPID"); then
	BOLT11=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["bolt11"])' "$line")
	t_ok "no wallet: the printed bolt11 is paid with appliance pay" "${TO[@]}" "$A" pay --nwc-file "$W/client.nwc" --max-msat 50000 "$BOLT11"
else
	t_fail "no wallet: payment-required with a bolt11"
fi
wait "$SPID"
t_eq "no wallet: the job then completes (exit 0)" 0 $?
"${TO[@]}" "$A" submit "${TRUST[@]}" --instance "$PUBKEY_app" --data "$DATA" --max-price 50000 --no-wallet \
	--blob-store "$HTTP_URL/blobs" --out "$W/out3" >"$W/s3.out" 2>&1 --timeout 6
if grep -q '^lnbcrt' "$W/s3.out" && grep -q '▀' "$W/s3.out"; then
	t_pass "no wallet: the bolt11 and a QR code are printed"
else
	t_fail "no wallet: the bolt11 and a QR code are printed"
fi

# --- refusals ---
"${TO[@]}" "$A" submit "${TRUST[@]}" --instance "$PUBKEY_app" --data "$DATA" --epochs 100 --max-price 1500 \
	--nwc-file "$W/client.nwc" --blob-store "$HTTP_URL/blobs" --out "$W/out4" >"$W/s4.out" 2>&1
t_eq "max-price below the price: exit 1" 1 $?
grep -q 'the instance refused the job: bid: 1500 msat is below the price of 2000 msat; no payment was taken' "$W/s4.out" &&
	t_pass "  the instance's reason is shown" || t_fail "  the instance's reason is shown" "$(tail -n 2 "$W/s4.out")"
"${TO[@]}" "$A" submit "${TRUST[@]}" --instance "$PUBKEY_app" --data "$HTTP_URL/blobs/none.csv" --max-price 50000 \
	--nwc-file "$W/client.nwc" --out "$W/out5" >"$W/s5.out" 2>&1
t_eq "a missing dataset: exit 1 with the reason" "1 yes" "$? $(grep -q 'dataset 1: HTTP status 404; no payment was taken' "$W/s5.out" && echo yes)"
"${TO[@]}" "$A" submit "${R[@]}" --instance "$PUBKEY_app" --data "$DATA" --max-price 50000 --blob-store "$HTTP_URL/blobs" >"$W/s6.out" 2>&1
t_eq "submit without --allow-dev: exit 1, nothing sent" "1 no" "$? $(grep -q '^request' "$W/s6.out" && echo yes || echo no)"
"$A" keygen >"$W/x.sec"
"${TO[@]}" "$A" submit "${TRUST[@]}" --instance "$("$A" key pub --sec-file "$W/x.sec")" --data "$DATA" --max-price 1 >"$W/s7.out" 2>&1
t_eq "an unknown instance: exit 2" 2 $?
"$A" submit "${TRUST[@]}" --instance "$PUBKEY_app" --data "$DATA" --max-price 1 --epochs 0 >"$W/s8.out" 2>&1
t_eq "a parameter out of range: exit 2, named" "2 yes" "$? $(grep -q 'epochs: 0 is out of range' "$W/s8.out" && echo yes)"
"$A" submit "${TRUST[@]}" --instance "$PUBKEY_app" --data "$DATA" --max-price 50000 >"$W/s9.out" 2>&1
t_eq "a local file without a blob store: exit 2" "2 yes" "$? $(grep -q 'needs a blob store' "$W/s9.out" && echo yes)"

# --- the appliance's state: sealed records at the parent, its key in the keystore ---
n=0 sealed=0
for f in "$W"/app/state/blobs/*/*; do [[ -f $f ]] || continue; n=$((n + 1)); [[ $(head -c 4 "$f") == APJ1 ]] && sealed=$((sealed + 1)); done
t_ok "the journal is in the parent's blob store, every record sealed (APJ1)" test "$n" -gt 5 -a "$n" -eq "$sealed"
t_ok "no ledger line in clear at the parent" bash -c '! grep -rqa "^L1 " "$1"/app/state/blobs' _ "$W"
"${TO[@]}" "$A" keystore has "${R[@]}" --keystore "$PUBKEY_ks" --pcr0 "$PCR0_app" --pcr1 "$PCR1_app" --pcr2 "$PCR2_app" >"$W/has.out" 2>&1
t_eq "the keystore holds the entry of the appliance's PCRs" 0 $?

# --- secrets stay out of logs ---
SECRET=$(sed -n 's/.*secret=\([0-9a-f]*\).*/\1/p' "$W/client.nwc")
t_ok "the client's wallet secret appears in no log or output" bash -c '! grep -q -e "$1" "$2"/app/parent.err "$2"/[sdt]*.json "$2"/s*.out "$2"/s*.err "$2"/d*.txt "$2"/jr*.txt "$2"/st.*' _ "$SECRET" "$W"
demo_parent_stop app
grep -q 'event=enclave_stopped pid=[0-9]* flushed=1' "$W/app/parent.err" && t_pass "the appliance stopped cleanly" ||
	t_fail "the appliance stopped cleanly"
grep -q 'event=checkpoint_failed' "$W/app/parent.err" && t_fail "every checkpoint reached the keystore" ||
	t_pass "every checkpoint reached the keystore"
demo_parent_stop ks
if grep -E -m 3 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$W/app/parent.err" "$W/ks/parent.err" "$W"/*.err "$W"/*.out; then
	t_fail "no sanitizer reports"
else
	t_pass "no sanitizer reports"
fi
t_summary
