#!/usr/bin/env bash
# appliance-enclave exactly once: the same request through two relays and re-published three times
# gets one invoice and one result; the wallet sends every payment notification three times (twice at
# once, once more later, both NIP-44 and NIP-04 kinds) and the payment is credited once; a paid job
# that fails is credited and the next job of the same client is paid from that credit without an
# invoice; after a restart (a new service key) the journal's ledger still holds the credit and a job
# left unfinished (appended to the journal as a crash would leave it) is failed and credited.
# Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/enclave.sh"

ENC_WALLET_FLAGS="--duplicate-notifications --duplicate-delay-ms 400"
enclave_peers_start || { t_fail "peers start"; t_summary; exit 1; }
R1=$RELAY_URL R1PID=$RELAY_PID
relay_start --max-tag-value 400000 --max-content 400000 --max-payload 8388608 --max-subs 200 ||
	{ t_fail "second relay"; t_summary; exit 1; }
R2=$RELAY_URL
RELAY_URL=$R1 RELAY_PID=$R1PID
enclave_config "$ENC_TMP/enclave.ini" "relays.+relay=$R2"
enclave_start "$ENC_TMP/enclave.ini" || { t_fail "enclave start"; t_summary; exit 1; }
BC=$HTTP_URL/files/breast_cancer.csv
IRIS=$HTTP_URL/files/iris.csv
count() { grep -c -- "$1" "$2" 2>/dev/null || true; }

# --- one request, two relays, published four times ---
ENCLAVE_CLIENT_LINGER_MS=1500 client job --relay "$R1" --relay "$R2" --republish 3 --instance "$ENCLAVE_PUBKEY" \
	--data "$IRIS" --param epochs=5 --nwc "$NWC_CLIENT" --out "$ENC_TMP/j1" --timeout-ms 30000 >"$ENC_TMP/j1.out"
J1=$(jget "$ENC_TMP/j1.out" 'j["job"]')
t_eq "two relays + 3 re-publications: result" true "$(jget "$ENC_TMP/j1.out" 'j.get("ok")')"
t_eq "  one invoice, one result (seen on both relays)" "1 1" "$(jget "$ENC_TMP/j1.out" 'str(j["invoices"]) + " " + str(j["results"])')"
t_eq "  the journal saw the request once" 1 "$(count "^J1 [0-9]* [0-9]* seen $J1 " "$ENC_TMP/journal")"
t_eq "  one quote, one invoice, one paid, one debit" "1 1 1 1" "$(count " quote [0-9a-f]* $J1 " "$ENC_TMP/journal") \
$(grep -c " invoice " "$ENC_TMP/journal") $(grep -c " paid " "$ENC_TMP/journal") $(count " debit $J1 " "$ENC_TMP/journal")"
sleep 1 # the wallet's delayed duplicate notifications
t_ok "  duplicated payment notifications arrived (wallet log)" grep -q "notify payment_received" "$WALLET_LOG"
t_eq "  still one paid record after the duplicates" 1 "$(grep -c " paid " "$ENC_TMP/journal")"
t_eq "  the job is done once" 1 "$(count "^J1 [0-9]* [0-9]* state $J1 done " "$ENC_TMP/journal")"

# --- a paid job that fails, then a job paid from the credit ---
SK=$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')
client job --relay "$R1" --instance "$ENCLAVE_PUBKEY" --sec "$SK" --data "$BC" \
	--param sha256=0000000000000000000000000000000000000000000000000000000000000000 --nwc "$NWC_CLIENT" \
	--expect error --out "$ENC_TMP/j2" --timeout-ms 30000 >"$ENC_TMP/j2.out"
t_eq "paid job that fails: error" error "$(jget "$ENC_TMP/j2.out" 'j.get("outcome")')"
t_ok "  the error says the amount was credited" grep -q '3000 msat credited to your balance (now 3000 msat)' "$ENC_TMP/j2.out"
t_eq "  it was invoiced once" 1 "$(jget "$ENC_TMP/j2.out" 'j["invoices"]')"
J2=$(jget "$ENC_TMP/j2.out" 'j["job"]')
t_eq "  refund journaled" 1 "$(count " credit [0-9a-f]* 3000 refund $J2" "$ENC_TMP/journal")"
client job --relay "$R1" --instance "$ENCLAVE_PUBKEY" --sec "$SK" --data "$BC" --param epochs=5 --nwc "$NWC_CLIENT" \
	--expect-no-invoice --out "$ENC_TMP/j3" --timeout-ms 30000 >"$ENC_TMP/j3.out"
t_eq "next job of the same client: result without an invoice" "true 0" \
	"$(jget "$ENC_TMP/j3.out" 'json.dumps(j.get("ok")) + " " + str(j["invoices"])')"
t_ok "  processing says it was paid from the credit (1500 msat, 1500 left)" \
	grep -q 'paid from your credit: 1500 msat (1500 msat left)' "$ENC_TMP/j3.out"

# --- restart: new key, the journal keeps the credit; an unfinished job is credited ---
OLDKEY=$ENCLAVE_PUBKEY
enclave_stop
t_eq "stop" 0 $?
# a job left in the middle (as after a crash): seen, quoted, paid, fetching
NOW=$(date +%s)
FAKE=$(printf 'f%.0s' $(seq 64))
CLIENT=$(python3 -c 'print("ab" * 32)')
python3 - "$ENC_TMP/journal" "$FAKE" "$CLIENT" "$NOW" <<'EOF'
import sys, re
path, job, client, now = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
lines = open(path).read().splitlines()
jseq = max(int(l.split()[1]) for l in lines if l.startswith("J1 "))
lseq = max(int(l.split()[1]) for l in lines if l.startswith("L1 "))
qid = "ee" * 16
ph = "cd" * 32
add = [
 "J1 %d %d seen %s %s %d 0" % (jseq + 1, now, job, client, now),
 "L1 %d %d quote %s %s %s 2000 %d" % (lseq + 1, now, qid, job, client, now + 600),
 "J1 %d %d state %s quoted" % (jseq + 2, now, job),
 "L1 %d %d invoice %s %s 2000 %d" % (lseq + 2, now, ph, qid, now + 600),
 "J1 %d %d state %s invoiced %s" % (jseq + 3, now, job, ph),
 "L1 %d %d paid %s 2000 %d" % (lseq + 3, now, ph, now),
 "L1 %d %d debit %s %s 2000" % (lseq + 4, now, job, client),
 "J1 %d %d state %s paid" % (jseq + 4, now, job),
 "J1 %d %d state %s fetching" % (jseq + 5, now, job),
]
open(path, "a").write("\n".join(add) + "\n")
EOF
enclave_start "$ENC_TMP/enclave.ini" || { t_fail "restart"; t_summary; exit 1; }
t_ok "restart: a new service key" test "$ENCLAVE_PUBKEY" != "$OLDKEY"
t_ok "restart: the journal was replayed" grep -q "event=journal_replayed records=[1-9]" "$ENCLAVE_LOG"
t_eq "restart: the unfinished job failed (restart) and was refunded" "1 1" \
	"$(count "^J1 [0-9]* [0-9]* state $FAKE failed restart" "$ENC_TMP/journal") $(count " credit $CLIENT 2000 refund $FAKE" "$ENC_TMP/journal")"
client job --relay "$R1" --instance "$ENCLAVE_PUBKEY" --sec "$SK" --data "$BC" --param epochs=5 --nwc "$NWC_CLIENT" \
	--expect-no-invoice --out "$ENC_TMP/j4" --timeout-ms 30000 >"$ENC_TMP/j4.out"
t_eq "after the restart the client's credit pays the next job" "true 0" \
	"$(jget "$ENC_TMP/j4.out" 'json.dumps(j.get("ok")) + " " + str(j["invoices"])')"
t_ok "  from the 1500 msat left" grep -q 'paid from your credit: 1500 msat (0 msat left)' "$ENC_TMP/j4.out"
client job --relay "$R1" --instance "$ENCLAVE_PUBKEY" --sec "$SK" --data "$BC" --param epochs=5 --no-pay \
	--expect payment-required --timeout-ms 15000 >"$ENC_TMP/j5.out"
t_eq "with the credit used up, an invoice again" payment-required "$(jget "$ENC_TMP/j5.out" 'j.get("outcome")')"

enclave_stop
t_eq "stop after restart" 0 $?
t_ok "counters: credit jobs, refunds" python3 -c '
import re, sys
c = {}
for f in sys.argv[1:]:
    for l in open(f):
        if "event=stats" in l:
            for k, v in re.findall(r"(\w+)=(\d+)", l): c[k] = max(c.get(k, 0), int(v))
assert c["credit_jobs"] >= 1 and c["refunds"] >= 1 and c["duplicate_payments"] == 0, c' "$ENC_TMP"/enclave.*.log
t_summary
