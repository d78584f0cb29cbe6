#!/usr/bin/env bash
# The `appliance attest verify|show` and `appliance release sign|verify`
# commands on the real AWS Nitro documents of tests/vectors/nitro: encodings,
# time modes, PCR expectations, refusal reasons, JSON output, exit codes.
# (Dev-CA documents and events through the CLI: nsm_test and nec_test.)
# Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${APPLIANCE_BIN:-$ROOT/bin}
A=$BIN/appliance
V=$ROOT/tests/vectors/nitro
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
no() { fail=$((fail + 1)); echo "FAIL $1"; [[ -s $T/err ]] && sed 's/^/     /' "$T/err" | head -5; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else no "$name"; fi; }
rc_is() { local want=$1; shift; "$@" >"$T/out" 2>"$T/err"; [[ $? -eq $want ]]; }
err_has() { grep -q -- "$1" "$T/err"; }
out_has() { grep -q -- "$1" "$T/out"; }

DOC=$V/base-nitro-validator_2026-01-03_attestation_repaired.bin
DBG=$V/evervault_beta_debug-mode-attestation-doc.bin
OLD=$V/evervault_beta_valid-attestation-doc.bin
BAD=$V/base-nitro-validator_2026-01-03_attestation_AS-PUBLISHED-corrupted.b64
TS=1767472867
ZERO=$(printf '0%.0s' $(seq 96))
PCR0=4b8d4cf2a99e05ce1b5bddaf9d21cb446eb0e606c5bebd1ebf02b473a22165f7b68b0bb0d1ac5a90f0311e493522cfab

check "verify now: expired" rc_is 1 "$A" attest verify "$DOC"
check "  reason names the validity check" err_has "refused (validity)"
check "verify --at doc" rc_is 0 "$A" attest verify "$DOC" --at doc
check "  prints module_id and pcr0" out_has "module_id=i-0368fa67e156d6d23-enc019b8596b1a9dad6 .*pcr0=$PCR0"
check "verify 2022 document --at doc" rc_is 0 "$A" attest verify "$OLD" --at doc
check "verify --at its timestamp" rc_is 0 "$A" attest verify "$DOC" --at $TS
check "verify --at +4 h: leaf expired" rc_is 1 "$A" attest verify "$DOC" --at $((TS + 14400))
check "  validity" err_has "(validity)"
check "verify --at +400 s: stale" rc_is 1 "$A" attest verify "$DOC" --at $((TS + 400))
check "  freshness" err_has "(freshness)"
check "debug document refused as debug" rc_is 1 "$A" attest verify "$DBG" --at doc
check "  debug" err_has "(debug)"
check "corrupted document refused" rc_is 1 "$A" attest verify "$BAD" --at doc
check "  cose" err_has "(cose)"
od -An -v -tx1 "$DOC" | tr -d ' \n' >"$T/doc.hex"
base64 -w0 "$DOC" >"$T/doc.b64"
check "hex input" rc_is 0 "$A" attest verify "$T/doc.hex" --at doc
check "base64 input" rc_is 0 "$A" attest verify "$T/doc.b64" --at doc
check "stdin input" rc_is 0 "$A" attest verify - --at doc <"$T/doc.b64"
check "--expect-pcr match" rc_is 0 "$A" attest verify "$DOC" --at doc --expect-pcr 0=$PCR0 --expect-pcr 3=$ZERO
check "--expect-pcr mismatch" rc_is 1 "$A" attest verify "$DOC" --at doc --expect-pcr 4=$ZERO
check "  pcr" err_has "refused (pcr): PCR4"
check "--expect-pcr malformed" rc_is 2 "$A" attest verify "$DOC" --expect-pcr 0=abc
check "--expect-pcr 32" rc_is 2 "$A" attest verify "$DOC" --expect-pcr 32=$ZERO
check "--trust on a bare document" rc_is 2 "$A" attest verify "$DOC" --trust "$PCR0"
check "--threshold without --trust" rc_is 2 "$A" attest verify "$DOC" --threshold 2
check "--at garbage" rc_is 2 "$A" attest verify "$DOC" --at yesterday
check "missing file" rc_is 2 "$A" attest verify "$T/nope"
check "--root not a certificate" rc_is 2 "$A" attest verify "$DOC" --root "$DOC"
check "AWS root as --root is harmless" rc_is 0 "$A" attest verify "$DOC" --at doc --root "$V/aws_nitro_root_g1.pem"
printf 'not an attestation' >"$T/junk"
check "junk input" rc_is 1 "$A" attest verify "$T/junk"
check "--json verified" rc_is 0 "$A" attest verify "$DOC" --at doc --json
check "  JSON fields" python3 -c '
import json,sys
j=json.load(open(sys.argv[1]))
assert j["verdict"]=="verified" and j["check"]=="ok" and j["dev"] is False
assert j["module_id"]=="i-0368fa67e156d6d23-enc019b8596b1a9dad6" and j["timestamp"]==1767472867402
assert j["digest"]=="SHA384" and len(j["pcrs"])==16 and j["pcrs"]["0"]==sys.argv[2]
assert j["public_key"] is None and j["nonce"] is None and len(j["user_data"])==40
assert len(j["chain"])==5 and j["chain"][4]["subject"].startswith("CN=aws.nitro-enclaves")
assert j["chain"][0]["not_after"]-j["chain"][0]["not_before"]==10803
' "$T/out" "$PCR0"
check "--json refused" rc_is 1 "$A" attest verify "$DOC" --json
check "  JSON verdict" python3 -c '
import json,sys
j=json.load(open(sys.argv[1]))
assert j["verdict"]=="refused" and j["check"]=="validity" and j["error"]=="EEXPIRED" and "expired" in j["reason"]
assert j["module_id"].startswith("i-0368")
' "$T/out"
check "show --json" rc_is 0 "$A" attest show "$OLD" --json
check "  show fields" python3 -c '
import json,sys
j=json.load(open(sys.argv[1]))
assert j["kind"] is None and j["pcrs"]["8"].startswith("8790eb3c") and len(j["nonce"])==512
' "$T/out"
check "show text" rc_is 0 "$A" attest show "$DBG"
check "  debug flagged" out_has "^pcr0: 0000"
check "show corrupted" rc_is 1 "$A" attest show "$BAD"
check "attest without subcommand" rc_is 2 "$A" attest
check "attest --help" rc_is 0 "$A" attest --help

# release signatures
export APPLIANCE_SEC=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
P1=$(printf '1%.0s' $(seq 96)) P2=$(printf '2%.0s' $(seq 96))
check "release sign" rc_is 0 "$A" release sign --repo https://github.com/example/appliance --version 1.2.3 \
	--pcr0 "$PCR0" --pcr1 "$P1" --pcr2 "$P2"
cp "$T/out" "$T/rel.json"
check "  kind 63794" grep -q '"kind":63794' "$T/rel.json"
check "release verify" rc_is 0 "$A" release verify "$T/rel.json"
check "  fields" out_has "t=prod r=https://github.com/example/appliance v=1.2.3 pubkey=npub1"
check "  pcr0" out_has "pcr0=$PCR0"
check "release verify from stdin" rc_is 0 "$A" release verify <"$T/rel.json"
check "a plain NIP-01 event too" rc_is 0 "$A" event verify "$T/rel.json"
sed 's/1\.2\.3/1.2.4/' "$T/rel.json" >"$T/tampered.json"
check "tampered version refused" rc_is 1 "$A" release verify "$T/tampered.json"
check "release sign --dev" rc_is 0 "$A" release sign --repo r --version v2 --pcr0 "$P1" --pcr1 "$P1" --pcr2 "$P1" --dev
cp "$T/out" "$T/dev.json"
check "  t=dev" bash -c "'$A' release verify '$T/dev.json' | grep -q 't=dev'"
check "release sign without --pcr2" rc_is 2 "$A" release sign --repo r --version 1 --pcr0 "$P1" --pcr1 "$P1"
check "release sign bad version" rc_is 2 "$A" release sign --repo r --version 1.x --pcr0 "$P1" --pcr1 "$P1" --pcr2 "$P1"
check "release sign short pcr" rc_is 2 "$A" release sign --repo r --version 1 --pcr0 abcd --pcr1 "$P1" --pcr2 "$P1"
unset APPLIANCE_SEC
check "release sign without a key" rc_is 2 "$A" release sign --repo r --version 1 --pcr0 "$P1" --pcr1 "$P1" --pcr2 "$P1"
check "release verify not an event" rc_is 1 "$A" release verify "$T/junk"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
