#!/usr/bin/env bash
# interop_client: a job requested, paid and verified by a client written only with nostr-tools and
# @getalby/sdk (tests/peers/interop-client.mjs: no project code on the client side, its own CBOR /
# COSE_Sign1 / certificate-chain check of the attestation documents) against an appliance behind
# `appliance-parent --dev`. The model it receives is compared with a local `appliance train` of the
# same engine (the C side only cross-checks here). Needs root (namespaces). Ends with
# "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
BIN=${APPLIANCE_BIN:-$ROOT/bin}
export TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/interop_client.XXXXXX")
PEERS_NO_TRAP=1
. "$ROOT/tests/lib/peers.sh"
DEMO_W=$PEERS_TMP
. "$ROOT/scripts/demo-lib.sh"
W=$DEMO_W
cleanup() {
	if ((_T_FAIL > 0)) && [[ -f $W/app/parent.err ]]; then
		echo "---- parent log (tail)"; tail -n 20 "$W/app/parent.err" | cut -c1-300 | sed 's/^/    /'
	fi
	demo_cleanup
	if ((_T_FAIL > 0)); then echo "logs kept in $TMPDIR"; else rm -rf "$TMPDIR"; fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

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
demo_enclave_config "$W/app.ini" appliance-interop
demo_parent_start app "$BIN/appliance-enclave" "$W/app.ini" 60 && t_pass "appliance ready behind appliance-parent --dev" ||
	{ t_fail "appliance ready behind appliance-parent --dev"; t_summary; exit 1; }

PEERS_CMD_TIMEOUT=90
peers_node interop-client.mjs --relay "$RELAY_URL" --root "$DEMO_DEVCA/root.pem" --nwc "$NWC_CLIENT" \
	--blob "$HTTP_URL/blobs" --data "$ROOT/tests/data/breast_cancer.csv" --instance "$PUBKEY_app" \
	--param epochs=25 --param seed=3 --bid 50000 --out "$W/out" --timeout-ms 80000 >"$W/client.out" 2>"$W/client.err"
RC=$?
t_import cat "$W/client.out"
t_eq "the JS client's exit status" 0 "$RC"
((RC == 0)) || sed 's/^/    /' "$W/client.err" | tail -n 10
"$BIN/appliance" train --data "$ROOT/tests/data/breast_cancer.csv" --epochs 25 --seed 3 --json >"$W/local.json"
t_eq "the model the JS client received = a local appliance train, byte for byte" \
	"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_sha256"])' "$W/local.json")" \
	"$(sha256sum "$W/out/model.bin" 2>/dev/null | cut -c1-64)"
t_eq "the PCR0 the JS client verified = the one the parent measured" "$PCR0_app" \
	"$(python3 -c '
import json, sys
print([json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")][-1].get("pcr0"))' "$W/client.out" 2>/dev/null)"
# the JS verifier is not a rubber stamp: another development root is refused before anything is sent
"$BIN/appliance-parent" dev-ca create "$W/otherca" >/dev/null
peers_node interop-client.mjs --relay "$RELAY_URL" --root "$W/otherca/root.pem" --nwc "$NWC_CLIENT" \
	--blob "$HTTP_URL/blobs" --data "$ROOT/tests/data/breast_cancer.csv" --instance "$PUBKEY_app" \
	--timeout-ms 30000 >"$W/client2.out" 2>&1
t_eq "JS client with another root: refused at discovery (exit 1)" "1 yes" \
	"$? $(grep -q 'FAIL - discover: the attestation document verifies.*cabundle\[0\] is not the pinned root' "$W/client2.out" && echo yes)"
demo_parent_stop app
t_summary
