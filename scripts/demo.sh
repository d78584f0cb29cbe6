#!/usr/bin/env bash
# make demo: the main job end to end on 127.0.0.1, explained as it goes.
#
#   scripts/demo.sh [BIN_DIR]      (make demo installs the dependencies and builds first)
#
# Starts a Nostr relay, a Lightning wallet service (NIP-47; one connection for the operator, one
# for the client), an HTTP blob store, a keystore and an appliance (each behind its own
# `appliance-parent --dev`: measured, isolated in fresh namespaces, attested by an emulated NSM),
# then plays a maintainer (signs the appliance's build) and a client (`appliance discover`,
# `appliance submit` on tests/data/breast_cancer.csv), checks the result independently and stops
# everything it started, by pid, also on failure or Ctrl-C. Exit 0 when every step worked.
# Needs root (dev mode makes network namespaces). DEMO_KEEP=1 keeps the work directory.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/bin}
export APPLIANCE_ROOT=$ROOT APPLIANCE_BIN=$BIN
A=$BIN/appliance
T0=$SECONDS
DATA=$ROOT/tests/data/breast_cancer.csv

if [[ -t 1 ]]; then
	B=$'\e[1m' D=$'\e[2m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'
else
	B= D= G= R= N=
fi
NSTEPS=7
step_no=0
step() { # TITLE WHAT-IT-PROVES
	step_no=$((step_no + 1))
	printf '\n%s[%d/%d] %s%s\n' "$B" "$step_no" "$NSTEPS" "$1" "$N"
	[[ -z ${2:-} ]] || printf '%s      %s%s\n' "$D" "$2" "$N"
}
info() { printf '      %s\n' "$*"; }
show() { printf '%s      $ %s%s\n' "$D" "$*" "$N"; } # a command, as a person would type it
die() {
	printf '\n%sdemo FAILED at step %d: %s%s\n' "$R" "$step_no" "$*" "$N" >&2
	exit 1
}

# --- preconditions -------------------------------------------------------------------------------
for p in appliance appliance-enclave appliance-parent; do
	[[ -x $BIN/$p ]] || { echo "demo: $BIN/$p is missing: run 'make demo' (it builds first)" >&2; exit 2; }
done
if [[ $(id -u) -ne 0 ]] || ! unshare -n true 2>/dev/null; then
	echo "demo: dev mode runs each enclave in fresh network namespaces: run as root (sudo make demo)" >&2
	exit 2
fi
command -v node >/dev/null || { echo "demo: node (20 or later) is needed for the test relay and wallet (see README)" >&2; exit 2; }

W=$(mktemp -d "${TMPDIR:-/tmp}/appliance-demo.XXXXXX") || exit 2
chmod 700 "$W"
export TMPDIR=$W
PEERS_NO_TRAP=1
. "$ROOT/tests/lib/peers.sh" || exit 2
DEMO_W=$PEERS_TMP
. "$ROOT/scripts/demo-lib.sh" || exit 2
OK=0
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	printf '\n%sStopping everything this demo started (by pid)...%s\n' "$B" "$N"
	if ! ((OK)) || [[ ${DEMO_KEEP:-0} == 1 ]]; then PEERS_KEEP_LOGS=1; fi
	demo_cleanup >/dev/null 2>&1
	if ((OK)) && [[ ${DEMO_KEEP:-0} != 1 ]]; then
		rm -rf "$W"
	else
		printf 'logs and files kept in %s\n' "$W"
	fi
	if ((OK)); then
		printf '%sdemo finished in %d s%s\n' "$G" $((SECONDS - T0)) "$N"
	elif ((rc == 130)); then
		printf 'demo interrupted\n'
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

printf '%sThe appliance, end to end on 127.0.0.1%s\n' "$B" "$N"
printf 'An operator runs a training service in an (emulated) AWS Nitro enclave; a client finds it\n'
printf 'on a Nostr relay, checks what code it runs, pays a Lightning invoice and gets a model whose\n'
printf 'provenance it can verify. Work directory: %s\n' "$W"

# --- 1. peers ------------------------------------------------------------------------------------
step "Test peers: a Nostr relay, a Lightning wallet (NIP-47) and an HTTP blob store" \
	"Real third-party software (@nostr-relay, @getalby/sdk), bound to 127.0.0.1 only."
demo_peers_start >"$W/peers.log" 2>&1 || { cat "$W/peers.log" >&2; die "the test peers did not start"; }
info "relay       $RELAY_URL"
info "wallet      NIP-47 service with two connections: the operator's and the client's"
info "blob store  $HTTP_URL/blobs/ (HTTP PUT/GET)"

# --- 2. a maintainer key -------------------------------------------------------------------------
"$A" keygen >"$W/maintainer.sec" && chmod 600 "$W/maintainer.sec" || die "keygen"
MAINT_HEX=$("$A" key pub --sec-file "$W/maintainer.sec") || die "key pub"
MAINT=$("$A" nip19 encode npub "$MAINT_HEX") || die "nip19 encode"

# --- 3. keystore ---------------------------------------------------------------------------------
step "A keystore (appliance-keystore, an enclave service of its own)" \
	"It will hold the appliance's disk key and release it only to the same, or a maintainer-signed, build."
KEYSTORE=
if [[ -x $BIN/appliance-keystore ]] && grep -q APPLIANCE_PARENT_CONTROL "$BIN/appliance-keystore" 2>/dev/null; then
	printf '%s\n' "[keystore]" "allow_dev = true" "dev_root = $DEMO_DEVCA/root.pem" "[relays]" "relay = $RELAY_URL" \
		>"$W/keystore.ini"
	if demo_parent_start ks "$BIN/appliance-keystore" "$W/keystore.ini" 30 2>"$W/ks-start.err"; then
		KEYSTORE=$PUBKEY_ks
		info "isolated    behind its own appliance-parent --dev: measured, attested, RAM only"
	else
		info "the keystore did not start behind the parent (see $W/ks-start.err)"
		demo_parent_stop ks
	fi
elif [[ -x $BIN/appliance-keystore ]]; then
	info "NOTE: this build's appliance-keystore cannot run behind appliance-parent yet (it has no"
	info "parent link), so it runs as a plain process with its own NSM emulator (not isolated)."
	if demo_keystore_host_start 2>"$W/ks-start.err"; then
		KEYSTORE=$PUBKEY_ks
	else
		info "the keystore did not start either (see $W/ks-start.err)"
	fi
fi
if [[ -n $KEYSTORE ]]; then
	info "keystore    $("$A" nip19 encode npub "$KEYSTORE" 2>/dev/null || echo "$KEYSTORE") (PCR0 ${PCR0_ks:0:16}..)"
else
	info "the appliance runs WITHOUT a keystore: its journal is a local file, not sealed"
fi

# --- 4. the appliance ----------------------------------------------------------------------------
step "The appliance enclave (appliance-enclave behind appliance-parent --dev)" \
	"The parent measures the exact binary and configuration into PCR0/1/2 and runs them with no network but its channel."
KS_LINES=()
if [[ -n $KEYSTORE ]]; then
	KS_LINES=(keystore.keystore="$KEYSTORE" keystore.allow_dev=true "keystore.dev_root=$DEMO_DEVCA/root.pem"
		keystore.maintainer="$MAINT_HEX" keystore.threshold=1 service.keystore="$KEYSTORE")
fi
demo_enclave_config "$W/appliance.ini" appliance-demo price.msat_per_unit=10 "${KS_LINES[@]}" || die "configuration"
demo_parent_start app "$BIN/appliance-enclave" "$W/appliance.ini" 60 || die "the appliance did not start"
NPUB=$("$A" nip19 encode npub "$PUBKEY_app" 2>/dev/null || echo "$PUBKEY_app")
info "instance    $NPUB"
info "PCR0        $PCR0_app"
info "isolated    $(grep -m1 -o 'namespaces=[a-z,]*' "$DEMO_W/app/parent.err" | cut -d= -f2) namespaces; every connection goes through the parent's SOCKS5 allowlist"
info "announced   kind 13793 with its attestation document (dev root), price 1000 msat + 10 msat per MiB-epoch"
if [[ -n $KEYSTORE ]]; then
	info "state       a fresh disk key, held by the keystore; the journal goes sealed to the parent"
fi

# --- 5. the maintainer ---------------------------------------------------------------------------
step "A maintainer signs this build (release signature, kind 63794)" \
	"Clients that trust this maintainer accept this build (these PCRs); a build nobody they trust signed is refused."
show "appliance release sign --repo $DEMO_REPO --version 0.1.0 --dev --pcr0 ${PCR0_app:0:12}.. --pcr1 .. --pcr2 .. | appliance release publish --relay $RELAY_URL"
"$A" release sign --sec-file "$W/maintainer.sec" --repo "$DEMO_REPO" --version 0.1.0 --dev \
	--pcr0 "$PCR0_app" --pcr1 "$PCR1_app" --pcr2 "$PCR2_app" >"$W/release.json" || die "release sign"
"$A" release publish --relay "$RELAY_URL" "$W/release.json" >"$W/release.out" 2>&1 || { cat "$W/release.out"; die "release publish"; }
info "maintainer  $MAINT"

# --- 6. discover ---------------------------------------------------------------------------------
step "Client: find instances and check them (appliance discover)" \
	"Signature, expiration, attestation chain (dev root allowed explicitly), PCR tags, and the maintainer's signature."
TRUST=(--relay "$RELAY_URL" --allow-dev --root "$DEMO_DEVCA/root.pem" --trust "$MAINT")
show "appliance discover --relay $RELAY_URL --allow-dev --root .../devca/root.pem --trust ${MAINT:0:16}.."
"$A" discover "${TRUST[@]}" | sed 's/^/      /'
[[ ${PIPESTATUS[0]} -eq 0 ]] || die "discover accepted no instance"

# --- 7. submit -----------------------------------------------------------------------------------
step "Client: train a model on breast_cancer.csv (appliance submit)" \
	"The dataset is sealed before upload, the request is encrypted to the enclave, the invoice is checked before paying."
OUT=$W/result
show "appliance submit --instance ${NPUB:0:16}.. --data tests/data/breast_cancer.csv --model mlp --hidden 256,128 --epochs 1500 --max-price 50000 --nwc-file client.nwc --blob-store $HTTP_URL/blobs ..."
"$A" submit "${TRUST[@]}" --instance "$PUBKEY_app" --data "$DATA" --model mlp --hidden 256,128 --epochs 1500 \
	--seed 7 --max-price 50000 --nwc-file "$DEMO_W/client.nwc" --blob-store "$HTTP_URL/blobs" --out "$OUT" \
	--timeout 150 || die "submit did not return a verified result"

# --- 8. independent checks -----------------------------------------------------------------------
step "Check the result independently" \
	"The same engine run locally gives the same model bytes; the attestation binds this result to the measured PCR0."
show "appliance train --data tests/data/breast_cancer.csv --model mlp --hidden 256,128 --epochs 1500 --seed 7 --json"
"$A" train --data "$DATA" --model mlp --hidden 256,128 --epochs 1500 --seed 7 --json >"$W/local.json" 2>/dev/null ||
	die "local training"
read -r LSHA LACC < <(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
print(j["model_sha256"], j["accuracy"])' "$W/local.json")
RSHA=$(sha256sum "$OUT/model.bin" | cut -c1-64)
[[ $LSHA == "$RSHA" ]] || die "a local run of the same engine gives another model ($LSHA, enclave $RSHA)"
info "local training: accuracy $LACC, model sha256 $LSHA"
info "= the enclave's model, byte for byte: it ran the published engine, with these parameters, on your data"
show "appliance attest verify $OUT/tee_root.json --allow-dev --root .../root.pem --json"
"$A" attest verify "$OUT/tee_root.json" --allow-dev --root "$DEMO_DEVCA/root.pem" --json >"$W/tee.json" ||
	die "the result's attestation does not verify on its own"
read -r UD PK P0 < <(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
print(j["user_data"], j["public_key"], j["pcrs"]["0"])' "$W/tee.json")
[[ $UD == "$(cat "$OUT/digest")" ]] || die "user_data is not the result digest"
[[ $PK == "$PUBKEY_app" ]] || die "public_key is not the instance's key"
[[ $P0 == "$PCR0_app" ]] || die "the attested PCR0 is not the measured one"
info "attestation user_data = result digest $UD"
info "attestation public_key = the instance's key, PCR0 = what the parent measured"
if [[ -n $KEYSTORE ]]; then
	NBLOBS=0 SEALED=0
	for f in "$DEMO_W"/app/state/blobs/*/*; do
		[[ -f $f ]] || continue
		NBLOBS=$((NBLOBS + 1))
		[[ $(head -c 4 "$f") == APJ1 ]] && SEALED=$((SEALED + 1))
	done
	info "the appliance's journal (ledger, job states): $NBLOBS records in the parent's blob store, $SEALED of"
	info "them sealed records (APJ1) under the disk key that only the keystore and this build hold"
fi
info "${G}verified: this model came from this exact enclave build, on this exact data.${N}"
OK=1
