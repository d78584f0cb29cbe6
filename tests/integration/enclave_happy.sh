#!/usr/bin/env bash
# appliance-enclave end to end, the happy path, driven by a nostr-tools client
# (tests/peers/enclave-client.mjs) against a real relay, the test NIP-47 wallet and the NSM
# emulator: discovery and attestation check of the announcement, an encrypted 5720 for
# breast_cancer.csv over HTTP on 127.0.0.1, payment-required with a real bolt11 paid through the
# wallet's client connection, processing, the 6720 result (signature, tee_root attestation bound to
# the service pubkey and the result digest, metrics and model sha256 equal to `appliance train` run
# locally, `appliance evaluate` on the returned model giving the reported accuracy); then a public
# request with a sealed dataset and a model too large to travel inline (sealed in the blob store).
# Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/enclave.sh"
A=$ENC_CLI

mkdir -p "$ENC_TMP/data"
cp "$ROOT/tests/data/breast_cancer.csv" "$ROOT/tests/data/iris.csv" "$ENC_TMP/data/"
"$A" dataset seal --key-out "$ENC_TMP/iris.key" "$ENC_TMP/data/iris.csv" "$ENC_TMP/data/iris.sealed" >/dev/null
ENC_DATA=$ENC_TMP/data

enclave_peers_start || { t_fail "peers start"; t_summary; exit 1; }
# a maintainer's release signature for the PCRs the emulator measured from the binary
PCR0=$(sed -n 's/.* pcr0=\([0-9a-f]*\).*/\1/p' "$ENC_TMP/nsm.out")
PCR1=$(python3 -c 'import hashlib; print(hashlib.sha384(bytes(48) + hashlib.sha384(b"").digest()).hexdigest())')
"$A" keygen >"$ENC_TMP/maint.sec"
MAINT=$(APPLIANCE_SEC=$(cat "$ENC_TMP/maint.sec") "$A" key pub)
"$A" release sign --sec-file "$ENC_TMP/maint.sec" --repo https://example.org/appliance --version 0.1.0 --dev \
	--pcr0 "$PCR0" --pcr1 "$PCR1" --pcr2 "$PCR0" >"$ENC_TMP/release.json"
enclave_config "$ENC_TMP/enclave.ini" service.repo=https://example.org/appliance "service.release_file=$ENC_TMP/release.json" \
	service.keystore=$(printf 'ab%.0s' $(seq 32))
t_ok "check-config" "$ENC_BIN" --config "$ENC_TMP/enclave.ini" --check-config
enclave_start "$ENC_TMP/enclave.ini" || { t_fail "enclave start"; t_summary; exit 1; }

# --- discovery ---
D=$ENC_TMP/disc
client discover --relay "$RELAY_URL" --out "$D" --timeout-ms 15000 >"$ENC_TMP/disc.out"
t_eq "discover: announcement found" true "$(jget "$ENC_TMP/disc.out" 'j.get("ok")')"
t_eq "discover: pubkey is the instance's" "$ENCLAVE_PUBKEY" "$(jget "$ENC_TMP/disc.out" 'j.get("pubkey")')"
t_eq "discover: k=5720, price tag, handler" '5720 ["1000", "100", "MiB-epoch"] 5720' \
	"$(jget "$ENC_TMP/disc.out" 'j["k"] + " " + json.dumps(j["price"]) + " " + j["handler_k"]')"
t_eq "discover: profile and relay list" "appliance-test $RELAY_URL" \
	"$(jget "$ENC_TMP/disc.out" 'j["name"] + " " + ",".join(j["relays"])')"
t_ok "announcement verifies (attest verify --allow-dev --root)" \
	"$A" attest verify "$D/announcement.json" --allow-dev --root "$DEVCA/root.pem"
t_ok "announcement: the maintainer's release (--trust, threshold 1)" \
	"$A" attest verify "$D/announcement.json" --allow-dev --root "$DEVCA/root.pem" --trust "$MAINT" --threshold 1
t_ok "announcement: release, releaser p tag and keystore tags" python3 -c '
import json, sys
ev = json.load(open(sys.argv[1]))
t = ev["tags"]
assert any(x[0] == "release" and json.loads(x[1])["kind"] == 63794 for x in t)
assert ["p", sys.argv[2], "releaser"] in t and ["keystore", "ab" * 32] in t
assert ["k", "5720"] in t and ["o", "false"] in t and any(x[0] == "tee_root" for x in t)' "$D/announcement.json" "$MAINT"
t_eq "announcement without --allow-dev is refused" 1 \
	"$("$A" attest verify "$D/announcement.json" --root "$DEVCA/root.pem" >/dev/null 2>&1; echo $?)"

# --- the encrypted job ---
J=$ENC_TMP/job1
client job --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" --data "$HTTP_URL/files/breast_cancer.csv" \
	--param seed=7 --param validation_split=0 --param epochs=30 --nwc "$NWC_CLIENT" --out "$J" \
	--timeout-ms 30000 >"$ENC_TMP/job1.out"
t_eq "job: result received and checked by the client" true "$(jget "$ENC_TMP/job1.out" 'j.get("ok")')"
t_eq "job: feedback sequence" '["payment-required", "processing", "success"]' \
	"$(jget "$ENC_TMP/job1.out" 'j.get("statuses")')"
t_eq "job: exactly one invoice and one result" "1 1" "$(jget "$ENC_TMP/job1.out" 'str(j["invoices"]) + " " + str(j["results"])')"
for c in signature author e_tag p_tag encrypted_as_request request_tag model_sha256 datasets digest tee_root; do
	t_eq "result check: $c" true "$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if "\"step\":\"result\"" in l]; print(json.dumps(r[0]["checks"].get(sys.argv[2])) if r else "missing")' "$ENC_TMP/job1.out" "$c")"
done
"$A" attest verify "$J/tee_root.json" --allow-dev --root "$DEVCA/root.pem" --json >"$ENC_TMP/tee.json" 2>"$ENC_TMP/tee.err"
t_eq "tee_root attestation verifies" 0 $?
t_eq "tee_root binds the service pubkey" "$ENCLAVE_PUBKEY" "$(jget "$ENC_TMP/tee.json" 'j.get("public_key")')"
t_eq "tee_root user_data is the result digest" "$(cat "$J/digest")" "$(jget "$ENC_TMP/tee.json" 'j.get("user_data")')"
"$A" train --data "$ROOT/tests/data/breast_cancer.csv" --seed 7 --validation-split 0 --epochs 30 --json >"$ENC_TMP/local.json"
t_eq "model sha256 equals a local appliance train" "$(jget "$ENC_TMP/local.json" 'j["model_sha256"]')" \
	"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"]["sha256"])' "$J/result.json")"
t_ok "metrics equal the local run (accuracy, log_loss, auc, confusion)" python3 -c '
import json, sys
l = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))["metrics"]
for k in ("accuracy", "log_loss", "auc"):
    assert abs(l[k] - r[k]) < 1e-9, (k, l[k], r[k])
assert l["confusion"] == r["confusion"] and l["support"] == r["support"] and l["samples"] == r["samples"]
assert l["epochs_run"] == r["epochs_run"] == 30' "$ENC_TMP/local.json" "$J/result.json"
"$A" evaluate --model "$J/model.bin" --data "$ROOT/tests/data/breast_cancer.csv" --json >"$ENC_TMP/eval.json"
t_ok "appliance evaluate on the returned model gives the reported accuracy" python3 -c '
import json, sys
e = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))["metrics"]
assert abs(e["accuracy"] - r["accuracy"]) < 1e-9, (e["accuracy"], r["accuracy"])' "$ENC_TMP/eval.json" "$J/result.json"
t_ok "the journal holds the job (seen ... done) and the ledger lines" bash -c '
j=$1; id=$2
grep -q "^J1 [0-9]* [0-9]* seen $id " "$j" && grep -q "^J1 [0-9]* [0-9]* state $id done " "$j" &&
grep -q "^L1 [0-9]* [0-9]* paid " "$j" && grep -q "^L1 [0-9]* [0-9]* debit $id " "$j"' _ "$ENC_TMP/journal" \
	"$(jget "$ENC_TMP/job1.out" 'j["job"]')"

# --- a public request: sealed dataset, an MLP too large to travel inline ---
K=$(cat "$ENC_TMP/iris.key")
J2=$ENC_TMP/job2
client job --public --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" --data "$HTTP_URL/files/iris.sealed" \
	--param dataset_key="$K" --param model=mlp --param hidden=256,128 --param epochs=3 --param seed=3 \
	--bid 100000 --nwc "$NWC_CLIENT" --out "$J2" --timeout-ms 30000 >"$ENC_TMP/job2.out"
t_eq "public job with a sealed dataset: result" true "$(jget "$ENC_TMP/job2.out" 'j.get("ok")')"
t_eq "  the model went to the blob store (sealed, sha256 checked)" true \
	"$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if "\"step\":\"result\"" in l]; print(json.dumps(r[0]["checks"].get("sealed_sha256")) if r else "missing")' "$ENC_TMP/job2.out")"
"$A" dataset open --key-file "$J2/model.key" "$J2/model.sealed" "$J2/model.bin" 2>"$ENC_TMP/open.err"
t_eq "  the sealed model opens with the key from the result" 0 $?
"$A" train --data "$ENC_DATA/iris.sealed" --key-file "$ENC_TMP/iris.key" --model mlp --hidden 256,128 --epochs 3 \
	--seed 3 --json >"$ENC_TMP/local2.json"
t_eq "  model sha256 equals a local appliance train" "$(jget "$ENC_TMP/local2.json" 'j["model_sha256"]')" \
	"$(sha256sum "$J2/model.bin" | cut -c1-64)"
t_eq "  the dataset hash is the sealed file's" "$(sha256sum "$ENC_DATA/iris.sealed" | cut -c1-64)" \
	"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["datasets"][0]["sha256"])' "$J2/result.json")"

enclave_stop
t_eq "daemon stops cleanly on SIGTERM" 0 $?
t_ok "no secret in the log (wallet secret, dataset key)" bash -c '! grep -q -e "$1" -e "$2" "$3"' _ \
	"$(sed -n 's/.*secret=\([0-9a-f]*\).*/\1/p' "$ENC_TMP/nwc")" "$K" "$ENCLAVE_LOG"
t_summary
