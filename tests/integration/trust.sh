#!/usr/bin/env bash
# trust: the client's trust policy against two appliances on one relay (issue 10). Appliance A runs
# the enclave binary; appliance B runs a different build (a copy of the binary with bytes appended:
# the parent measures other PCR0/1/2). A maintainer signed A's release only. `appliance discover
# --trust` accepts A and refuses B (no release signature), `appliance submit` to B is refused
# before anything is sent; a release by an untrusted key, or fewer signatures than --threshold,
# changes nothing; once the maintainer signs B's build (release sign + publish on the relay) B is
# accepted and a job on B returns a result attested with B's PCRs; a maintainer's revocation
# (63798) of B's build makes it refused again. Needs root (namespaces). Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
BIN=${APPLIANCE_BIN:-$ROOT/bin}
export TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/trust.XXXXXX")
PEERS_NO_TRAP=1
. "$ROOT/tests/lib/peers.sh"
DEMO_W=$PEERS_TMP
. "$ROOT/scripts/demo-lib.sh"
A=$BIN/appliance
W=$DEMO_W
DATA=$ROOT/tests/data/iris.csv
TO=(timeout -k 5 90)
cleanup() {
	if ((_T_FAIL > 0)); then
		for f in "$W"/a/parent.err "$W"/b/parent.err; do [[ -f $f ]] && { echo "---- $f (tail)"; tail -n 20 "$f" | cut -c1-300 | sed 's/^/    /'; }; done
	fi
	demo_cleanup
	if ((_T_FAIL > 0)); then echo "logs kept in $TMPDIR"; else rm -rf "$TMPDIR"; fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
# verdict FILE PUBKEY: "VERDICT CHECK" of that instance in a discover --json output
verdict() {
	python3 -c '
import json, sys
for i in json.load(open(sys.argv[1]))["instances"]:
    if i["pubkey"] == sys.argv[2]: print(i["verdict"], i["check"]); sys.exit(0)
print("missing")' "$1" "$2" 2>/dev/null || echo "no output"
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
# build B: the same program with other bytes (a trailing marker an ELF loader ignores)
cp "$BIN/appliance-enclave" "$W/appliance-enclave-b"
printf '\nappliance build B\n' >>"$W/appliance-enclave-b"
demo_enclave_config "$W/a.ini" appliance-a
demo_enclave_config "$W/b.ini" appliance-b
demo_parent_start a "$BIN/appliance-enclave" "$W/a.ini" 60 && demo_parent_start b "$W/appliance-enclave-b" "$W/b.ini" 60
t_eq "two appliances ready behind appliance-parent --dev" 0 $?
[[ -n ${PUBKEY_a:-} && -n ${PUBKEY_b:-} ]] || { t_summary; exit 1; }
t_ok "different builds: PCR0, PCR1 and PCR2 all differ" test "$PCR0_a" != "$PCR0_b" -a "$PCR1_a" != "$PCR1_b" -a "$PCR2_a" != "$PCR2_b"

R=(--relay "$RELAY_URL")
DEV=(--allow-dev --root "$DEMO_DEVCA/root.pem")
for k in m m2 x; do "$A" keygen >"$W/$k.sec"; done
M=$("$A" key pub --sec-file "$W/m.sec")
M2=$("$A" key pub --sec-file "$W/m2.sec")
X=$("$A" key pub --sec-file "$W/x.sec")
M_NPUB=$("$A" nip19 encode npub "$M")
sign() { # KEYFILE PCR0 PCR1 PCR2 [VERSION]
	"$A" release sign --sec-file "$1" --repo "$DEMO_REPO" --version "${5:-0.1.0}" --dev --pcr0 "$2" --pcr1 "$3" --pcr2 "$4"
}
sign "$W/m.sec" "$PCR0_a" "$PCR1_a" "$PCR2_a" >"$W/rel-a.json"
t_ok "the maintainer's release of build A is published" "${TO[@]}" "$A" release publish "${R[@]}" "$W/rel-a.json"
# an untrusted key signs build B: it must not count
sign "$W/x.sec" "$PCR0_b" "$PCR1_b" "$PCR2_b" >"$W/rel-b-x.json"
t_ok "an untrusted key's release of build B is published" "${TO[@]}" "$A" release publish "${R[@]}" "$W/rel-b-x.json"

"${TO[@]}" "$A" discover "${R[@]}" "${DEV[@]}" --trust "$M_NPUB" --json >"$W/d1.json" 2>"$W/d1.err"
t_eq "discover --trust: exit 0 (A accepted)" 0 $?
t_eq "discover --trust: A accepted" "accepted ok" "$(verdict "$W/d1.json" "$PUBKEY_a")"
t_eq "discover --trust: B refused (no trusted release signature)" "refused release" "$(verdict "$W/d1.json" "$PUBKEY_b")"
"${TO[@]}" "$A" discover "${R[@]}" "${DEV[@]}" --trust "$M_NPUB" >"$W/d1.txt" 2>&1
grep -E "^appliance-b .*REFUSED: no release signature: 0 of the 1 trusted maintainers needed signed this build" "$W/d1.txt" >/dev/null &&
	t_pass "discover table: B's refusal says why" || t_fail "discover table: B's refusal says why" "$(cat "$W/d1.txt")"
"${TO[@]}" "$A" discover "${R[@]}" "${DEV[@]}" --trust "$M" --trust "$M2" --threshold 2 --json >"$W/d2.json" 2>&1
t_eq "--threshold 2 with one signature: A refused too (exit 1)" "1 refused release" "$? $(verdict "$W/d2.json" "$PUBKEY_a")"
"${TO[@]}" "$A" discover "${R[@]}" "${DEV[@]}" --json >"$W/d3.json" 2>&1
t_eq "without --trust both are accepted (attestation only)" "accepted ok/accepted ok" \
	"$(verdict "$W/d3.json" "$PUBKEY_a")/$(verdict "$W/d3.json" "$PUBKEY_b")"

TRUST=("${R[@]}" "${DEV[@]}" --trust "$M")
"${TO[@]}" "$A" submit "${TRUST[@]}" --instance "$PUBKEY_b" --data "$DATA" --max-price 50000 \
	--nwc-file "$W/client.nwc" --blob-store "$HTTP_URL/blobs" --out "$W/jb1" --json >"$W/s1.json" 2>"$W/s1.err"
t_eq "submit to B: refused (exit 1)" 1 $?
grep -q "instance .* refused: no release signature" "$W/s1.err" && t_pass "submit to B: the reason" ||
	t_fail "submit to B: the reason" "$(cat "$W/s1.err")"
t_eq "submit to B: nothing was uploaded, requested or paid" "" "$(grep -E '"step":"(upload|request|paid)"' "$W/s1.json")"
"${TO[@]}" "$A" submit "${TRUST[@]}" --instance "$PUBKEY_a" --data "$DATA" --max-price 50000 \
	--nwc-file "$W/client.nwc" --blob-store "$HTTP_URL/blobs" --out "$W/ja" --json >"$W/s2.json" 2>"$W/s2.err"
t_eq "submit to A: a verified result" 0 $?

# the maintainer signs build B
sign "$W/m.sec" "$PCR0_b" "$PCR1_b" "$PCR2_b" >"$W/rel-b.json"
t_ok "the maintainer's release of build B is published" "${TO[@]}" "$A" release publish "${R[@]}" "$W/rel-b.json"
"${TO[@]}" "$A" discover "${R[@]}" "${DEV[@]}" --trust "$M_NPUB" --json >"$W/d4.json" 2>&1
t_eq "discover --trust after B's release: B accepted" "accepted ok" "$(verdict "$W/d4.json" "$PUBKEY_b")"
"${TO[@]}" "$A" submit "${TRUST[@]}" --instance "$PUBKEY_b" --data "$DATA" --max-price 50000 \
	--nwc-file "$W/client.nwc" --blob-store "$HTTP_URL/blobs" --out "$W/jb2" --json >"$W/s3.json" 2>"$W/s3.err"
t_eq "submit to B after its release: a verified result" 0 $?
t_eq "B's result is attested with B's PCR0 and one trusted release" "$PCR0_b 1" \
	"$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    j = json.loads(l)
    if j["step"] == "result": print(j["pcr0"], j["trusted_releases"])' "$W/s3.json")"
"$A" attest verify "$W/jb2/tee_root.json" "${DEV[@]}" --expect-pcr "0=$PCR0_b" --expect-pcr "2=$PCR2_b" >/dev/null 2>&1
t_eq "B's tee_root verifies with B's PCRs" 0 $?
"$A" attest verify "$W/jb2/tee_root.json" "${DEV[@]}" --expect-pcr "0=$PCR0_a" >/dev/null 2>&1
t_eq "  and not with A's" 1 $?

# the maintainer revokes build B
"$A" release revoke --sec-file "$W/m.sec" --repo "$DEMO_REPO" --pcr0 "$PCR0_b" --pcr1 "$PCR1_b" --pcr2 "$PCR2_b" \
	--reason "test: build B withdrawn" >"$W/revoke-b.json"
t_ok "the maintainer's revocation of build B is published" "${TO[@]}" "$A" release publish "${R[@]}" "$W/revoke-b.json"
"${TO[@]}" "$A" discover "${R[@]}" "${DEV[@]}" --trust "$M_NPUB" --json >"$W/d5.json" 2>&1
t_eq "after the revocation: B refused (revoked), A still accepted" "refused revoked/accepted ok" \
	"$(verdict "$W/d5.json" "$PUBKEY_b")/$(verdict "$W/d5.json" "$PUBKEY_a")"
"${TO[@]}" "$A" submit "${TRUST[@]}" --instance "$PUBKEY_b" --data "$DATA" --max-price 50000 \
	--nwc-file "$W/client.nwc" --blob-store "$HTTP_URL/blobs" --out "$W/jb3" >"$W/s4.out" 2>&1
t_eq "submit to revoked B: refused (exit 1)" "1 yes" "$? $(grep -q 'revoked this build' "$W/s4.out" && echo yes)"
# job result applies the same policy to an old result: B's earlier result is refused now
ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$W/jb2/request.json")
"${TO[@]}" "$A" job result "$ID" "${TRUST[@]}" --sec-file "$W/jb2/client.key" --out "$W/jb2b" >"$W/jr.out" 2>&1
t_eq "job result of B's job under the same policy: refused (revoked)" "1 yes" "$? $(grep -q 'revoked' "$W/jr.out" && echo yes)"

demo_parent_stop a
demo_parent_stop b
if grep -E -m 3 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$W"/a/parent.err "$W"/b/parent.err "$W"/*.err "$W"/*.out; then
	t_fail "no sanitizer reports"
else
	t_pass "no sanitizer reports"
fi
t_summary
