#!/usr/bin/env bash
# Billing over the real test relay and the real NIP-47 wallet service (tests/peers/wallet.mjs,
# @getalby/sdk 7, real signed regtest bolt11 invoices): the whole lifecycle quote -> make_invoice
# -> paid by the payer connection -> notification + lookup -> credited once -> debit; duplicated
# notifications credited once; an expired invoice never credited; `appliance pay --max-msat`
# refusing an invoice above the limit; a wallet reporting a short amount; a nip04-only wallet; a
# wallet that goes away (clear error, then a retry that works); balances after replaying the
# ledger equal the live ones. Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${APPLIANCE_BIN:-$ROOT/bin}
A=$BIN/appliance
. "$ROOT/tests/lib/peers.sh"

if [[ ! -x $A ]]; then
	t_fail "appliance binary" "$A not built"
	t_summary
	exit 1
fi
JOBS=()
cleanup() {
	local p
	for p in "${JOBS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	peers_cleanup
}
trap cleanup EXIT

# jget JSON KEY: a top-level value of a JSON object line ("" when absent).
jget() { node -e 'const v = JSON.parse(process.argv[1])[process.argv[2]]; console.log(v === undefined ? "" : v)' "$1" "$2"; }
hex64() { node -e 'console.log(require("crypto").createHash("sha256").update(process.argv[1]).digest("hex"))' "$1"; }
T=$PEERS_TMP
LEDGER=$T/ledger.txt
CLIENT=$(hex64 client-1)

# receive_start NAME NWCFILE ARGS...: `appliance wallet receive` in the background; sets RECV_PID RECV_OUT
receive_start() {
	local name=$1 nwc=$2
	shift 2
	RECV_OUT=$T/$name.out
	"$A" wallet receive --nwc-file "$nwc" --ledger "$LEDGER" --client "$CLIENT" "$@" >"$RECV_OUT" 2>"$T/$name.err" &
	RECV_PID=$!
	JOBS+=("$RECV_PID")
	INVOICE_LINE=$(peers_wait_line "$RECV_OUT" '^\{"invoice"' 20 "$RECV_PID") || { cat "$T/$name.err"; return 1; }
	BOLT11=$(jget "$INVOICE_LINE" invoice)
	PHASH=$(jget "$INVOICE_LINE" payment_hash)
}
receive_end() { # -> RECV_RC, SUMMARY (last line)
	wait "$RECV_PID"
	RECV_RC=$?
	SUMMARY=$(tail -n 1 "$RECV_OUT")
}

if ! relay_start; then
	t_fail "relay starts"
	t_summary
	exit 1
fi

# --- 1. nip44 wallet, duplicate notifications: the whole lifecycle --------------------------------
if wallet_start --connections operator,client --duplicate-notifications --duplicate-delay-ms 400; then
	printf '%s\n' "$NWC_OPERATOR" >"$T/op.nwc"
	printf '%s\n' "$NWC_CLIENT" >"$T/cl.nwc"
	chmod 600 "$T/op.nwc" "$T/cl.nwc"
	info=$("$A" wallet info --nwc-file "$T/op.nwc" 2>"$T/info.err")
	t_eq "wallet info: negotiated nip44_v2" nip44_v2 "$(jget "$info" encryption)"
	t_eq "wallet info: regtest node" regtest "$(jget "$info" network)"
	before=$("$A" wallet balance --json --nwc-file "$T/cl.nwc" 2>/dev/null)
	before=$(jget "$before" balance_msat)

	JOB=$(hex64 job-1)
	if receive_start life "$T/op.nwc" --job "$JOB" --dataset-bytes 3145729 --epochs 10 --base-msat 1000 \
		--unit-msat 50 --linger 2 --debit --wait 30; then
		t_pass "make_invoice through the operator connection"
		t_eq "quoted price: 1000 + 4 MiB x 10 epochs x 50 msat" 3000 "$(jget "$INVOICE_LINE" amount_msat)"
		t_ok "the invoice is a real signed regtest bolt11" "$A" bolt11 decode "$BOLT11"
		t_eq "decoded payee = the wallet's node" "$WALLET_NODE_PUBKEY" \
			"$(jget "$("$A" bolt11 decode --json "$BOLT11")" payee)"
		pre=$("$A" pay --nwc-file "$T/cl.nwc" --max-msat 3000 "$BOLT11" 2>"$T/pay.err")
		t_eq "appliance pay: preimage hashes to the payment_hash" "$PHASH" \
			"$(node -e 'console.log(require("crypto").createHash("sha256").update(Buffer.from(process.argv[1],"hex")).digest("hex"))' "$pre")"
		receive_end
		t_eq "receive exits 0" 0 "$RECV_RC"
		t_eq "paid" true "$(jget "$SUMMARY" paid)"
		t_eq "credited exactly once" 1 "$(jget "$SUMMARY" credited)"
		dups=$(jget "$SUMMARY" duplicates)
		t_eq "duplicate notifications seen and refused by the ledger (>= 2)" 1 "$((dups >= 2 ? 1 : 0))"
		t_eq "job debited" 1 "$(jget "$SUMMARY" job_state)"
		t_eq "balance after the debit" 0 "$(jget "$SUMMARY" balance_msat)"
		after=$(jget "$("$A" wallet balance --json --nwc-file "$T/cl.nwc" 2>/dev/null)" balance_msat)
		t_eq "payer's wallet balance went down by the price" 3000 "$((before - after))"
		# the same invoice paid again: the wallet refuses, nothing is credited
		"$A" pay --nwc-file "$T/cl.nwc" "$BOLT11" >/dev/null 2>"$T/pay2.err"
		t_eq "paying the same invoice again is refused (exit 1)" 1 $?
		t_ok "  ... with the wallet's PAYMENT_FAILED" grep -q PAYMENT_FAILED "$T/pay2.err"
	else
		t_fail "make_invoice through the operator connection"
	fi

	# a top-up-sized second job paid the same way; then the replayed ledger equals the live balances
	JOB2=$(hex64 job-2)
	if receive_start life2 "$T/op.nwc" --job "$JOB2" --base-msat 5000 --unit-msat 0 --wait 30; then
		"$A" pay --nwc-file "$T/cl.nwc" "$BOLT11" >/dev/null 2>&1
		receive_end
		t_eq "second job credited once (no debit)" "true 1 5000" \
			"$(jget "$SUMMARY" paid) $(jget "$SUMMARY" credited) $(jget "$SUMMARY" balance_msat)"
		replay=$("$A" wallet ledger "$LEDGER" 2>"$T/ledger.err")
		acct=$(grep "\"client\":\"$CLIENT\"" <<<"$replay")
		t_eq "replayed ledger: same balance as live" "$(jget "$SUMMARY" balance_msat)" "$(jget "$acct" balance_msat)"
		t_eq "replayed ledger: paid 3000 + 5000, debited 3000" "8000 3000" \
			"$(jget "$acct" paid_msat) $(jget "$acct" debited_msat)"
		t_eq "replayed ledger: record count" "$(jget "$SUMMARY" records)" "$(jget "$(tail -n 1 <<<"$replay")" records)"
		t_eq "ledger journal: one paid record per payment_hash" 2 "$(grep -c ' paid ' "$LEDGER")"
	else
		t_fail "second invoice"
	fi

	# --- 2. --max-msat, expiry --------------------------------------------------------------------
	inv=$("$A" wallet invoice --amount-msat 50000 --nwc-file "$T/op.nwc" 2>/dev/null)
	b=$(jget "$inv" invoice)
	bal0=$(jget "$("$A" wallet balance --json --nwc-file "$T/cl.nwc" 2>/dev/null)" balance_msat)
	"$A" pay --nwc-file "$T/cl.nwc" --max-msat 49999 "$b" >/dev/null 2>"$T/max.err"
	t_eq "pay --max-msat below the invoice amount: refused (exit 1)" 1 $?
	t_ok "  ... naming the limit" grep -q 'above --max-msat 49999' "$T/max.err"
	bal1=$(jget "$("$A" wallet balance --json --nwc-file "$T/cl.nwc" 2>/dev/null)" balance_msat)
	t_eq "  ... and nothing was paid" "$bal0" "$bal1"
	lk=$("$A" wallet lookup "$(jget "$inv" payment_hash)" --nwc-file "$T/op.nwc" 2>/dev/null)
	t_eq "  ... the invoice is still pending" pending "$(jget "$lk" state)"

	JOB3=$(hex64 job-3)
	bal_before=$(jget "$(tail -n 1 <<<"$("$A" wallet ledger "$LEDGER" 2>/dev/null | grep "$CLIENT")")" balance_msat)
	if receive_start expiry "$T/op.nwc" --job "$JOB3" --base-msat 700 --expiry 2 --wait 10; then
		receive_end
		t_eq "expired invoice: receive exits 1" 1 "$RECV_RC"
		t_eq "expired invoice: not paid, never credited" "false 0" "$(jget "$SUMMARY" paid) $(jget "$SUMMARY" credited)"
		"$A" pay --nwc-file "$T/cl.nwc" "$BOLT11" >/dev/null 2>"$T/exp.err"
		t_eq "appliance pay refuses the expired invoice (exit 1)" 1 $?
		t_ok "  ... saying it expired" grep -q expired "$T/exp.err"
		acct=$("$A" wallet ledger "$LEDGER" 2>/dev/null | grep "$CLIENT")
		t_eq "  ... and the ledger balance is unchanged" "$bal_before" "$(jget "$acct" balance_msat)"
		t_eq "  ... no paid record for it" 0 "$(grep -c " paid $PHASH " "$LEDGER")"
	else
		t_fail "expiring invoice"
	fi

	# --- 3. a wallet that goes away: clear error, then a retry --------------------------------------
	if wallet_toggle_offline >/dev/null; then
		start=$SECONDS
		"$A" wallet balance --nwc-file "$T/cl.nwc" --timeout-ms 1500 --attempts 2 >/dev/null 2>"$T/off.err"
		rc=$?
		t_eq "offline wallet: exit 2 (environment, try again)" 2 "$rc"
		t_ok "  ... with a clear error" grep -q 'no response from the wallet service' "$T/off.err"
		t_ok "  ... after two attempts" grep -q 'attempt=2 of=2' "$T/off.err"
		t_eq "  ... bounded in time (< 8 s)" 1 "$((SECONDS - start < 8 ? 1 : 0))"
		wallet_toggle_offline >/dev/null
		t_ok "wallet back: the retry works" "$A" wallet balance --nwc-file "$T/cl.nwc" --timeout-ms 5000
	else
		t_fail "wallet_toggle_offline"
	fi
	wallet_stop >/dev/null 2>&1
	"$A" wallet balance --nwc-file "$T/cl.nwc" --timeout-ms 1000 --attempts 1 >/dev/null 2>"$T/gone.err"
	t_eq "stopped wallet: exit 2" 2 $?
else
	t_fail "wallet starts"
fi

# --- 4. a wallet that reports a short amount: not credited --------------------------------------------
if wallet_start --connections operator,client --wrong-amount; then
	printf '%s\n' "$NWC_OPERATOR" >"$T/op3.nwc"
	printf '%s\n' "$NWC_CLIENT" >"$T/cl3.nwc"
	if receive_start short "$T/op3.nwc" --job "$(hex64 job-short)" --base-msat 4000 --wait 15; then
		"$A" pay --nwc-file "$T/cl3.nwc" "$BOLT11" >/dev/null 2>&1
		receive_end
		t_eq "short amount reported: receive exits 1, not credited" "1 false 0" \
			"$RECV_RC $(jget "$SUMMARY" paid) $(jget "$SUMMARY" credited)"
		t_ok "  ... the reason says so" grep -q 'amount below' "$RECV_OUT"
	else
		t_fail "wrong-amount wallet invoice"
	fi
	wallet_stop >/dev/null 2>&1
else
	t_fail "wrong-amount wallet starts"
fi

# --- 5. a nip04-only wallet -----------------------------------------------------------------------------
if wallet_start --nip04-only --connections operator,client; then
	printf '%s\n' "$NWC_OPERATOR" >"$T/op2.nwc"
	printf '%s\n' "$NWC_CLIENT" >"$T/cl2.nwc"
	info=$("$A" wallet info --nwc-file "$T/op2.nwc" 2>/dev/null)
	t_eq "nip04-only wallet: negotiated nip04" nip04 "$(jget "$info" encryption)"
	if receive_start nip04 "$T/op2.nwc" --job "$(hex64 job-nip04)" --base-msat 2100 --debit --wait 20; then
		pre=$(APPLIANCE_NWC=$NWC_CLIENT "$A" pay "$BOLT11" 2>"$T/pay4.err")
		t_eq "nip04: pay via APPLIANCE_NWC prints a 32-byte preimage" 64 "${#pre}"
		receive_end
		t_eq "nip04: credited once (23196 notification + lookup), debited" "0 true 1 1" \
			"$RECV_RC $(jget "$SUMMARY" paid) $(jget "$SUMMARY" credited) $(jget "$SUMMARY" job_state)"
	else
		t_fail "nip04 make_invoice"
	fi
	wallet_stop >/dev/null 2>&1
else
	t_fail "nip04-only wallet starts"
fi

# --- 6. secrets stay off argv and out of the logs ---------------------------------------------------------
secret=${NWC_CLIENT##*secret=}
secret=${secret%%&*}
leaks=$(grep -ls -- "$secret" "$T"/*.err "$T"/*.out | grep -v '/wallet\.[^/]*\.out$') # the wallet prints its URIs
t_eq "no connection secret in anything the appliance printed" "" "$leaks"
"$A" pay --nwc "$NWC_CLIENT" "$BOLT11" >/dev/null 2>&1
t_eq "a URI on argv is not accepted (exit 2)" 2 $?

t_summary
