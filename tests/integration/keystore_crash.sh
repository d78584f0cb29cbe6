#!/usr/bin/env bash
# keystore_crash: crash safety of appliance-enclave on its sealed journal (enclave/runtime/sjournal.h) with the
# disk key and checkpoints in appliance-keystore, over the real relay and the real NIP-47 wallet.
# Batches of job lifecycles (quote, invoice, payment, training, publishing: enclave-client.mjs jobs
# paying through the wallet) are interrupted by kill -9 of the enclave at a random moment, and the
# enclave is restarted each time (a new service key, the same journal). At the end the journal (read
# back with `appliance keystore journal`), the wallet's payments and the results on the relay must
# show: the enclave restarted every time; no paid job lost (every invoice the wallet paid has its
# "paid" record: the job completed or the money is the client's credit); no payment credited twice;
# no job debited or refunded twice; no request with two different results.
# CRASH_BATCHES (default 10) x CRASH_JOBS (default 5) lifecycles; CRASH_SEED for the kill times.
# Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/enclave.sh"
export TMPDIR=$PEERS_TMP
T=$ENC_TMP
A=$ENC_CLI
K=$ENC_BINDIR/appliance-keystore
BATCHES=${CRASH_BATCHES:-10}
JOBS=${CRASH_JOBS:-5}
SEED=${CRASH_SEED:-$$}
RANDOM=$SEED
echo "# seed $SEED, $BATCHES batches of $JOBS jobs"

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
"$ENC_PARENT" nsm-emulator --socket "$T/ks.sock" --ca "$DEVCA" --image "$K" >"$T/ksnsm.out" 2>&1 </dev/null &
_PEERS_PIDS+=($!)
peers_wait_line "$T/ksnsm.out" '^nsm-emulator ready' 10 >/dev/null || { t_fail "keystore emulator"; t_summary; exit 1; }
cat >"$T/ks.ini" <<EOF
[keystore]
nsm = unix:$T/ks.sock
allow_dev = true
dev_root = $DEVCA/root.pem
log_level = info
[relays]
relay = $RELAY_URL
EOF
"$K" --config "$T/ks.ini" >"$T/ks.log" 2>&1 </dev/null &
_PEERS_PIDS+=($!)
line=$(peers_wait_line "$T/ks.log" 'event=ready' 15 $!) || { t_fail "keystore start"; t_summary; exit 1; }
KS_PK=$(sed -n 's/.*pubkey=\([0-9a-f]\{64\}\).*/\1/p' <<<"$line")
STORE=$T/store
enclave_config "$T/enclave.ini" "keystore.keystore=$KS_PK" "keystore.store=dir:$STORE" \
	"keystore.checkpoint_interval=2" "service.log_level=info" "wallet.lookup_interval=1"
DATA=$HTTP_URL/files/breast_cancer.csv

enclave_start "$T/enclave.ini" || { t_fail "enclave start"; t_summary; exit 1; }
starts=1 restarts_ok=0 kills=0 njobs=0
for ((b = 1; b <= BATCHES; b++)); do
	pids=()
	for ((k = 1; k <= JOBS; k++)); do
		njobs=$((njobs + 1))
		timeout -k 2 40 "$PEERS_NODE" "$PEERS_DIR/enclave-client.mjs" job --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" \
			--data "$DATA" --param epochs=3 --nwc "$NWC_CLIENT" --timeout-ms 30000 >"$T/job.$njobs.out" 2>/dev/null </dev/null &
		pids+=($!)
		_PEERS_PIDS+=($!)
		sleep 0.$((RANDOM % 4))
	done
	if ((b % 4 != 0)); then # three batches in four are interrupted, one runs to its end
		sleep "$((RANDOM % 3)).$((RANDOM % 10))"
		kill -KILL "$ENCLAVE_PID" 2>/dev/null && kills=$((kills + 1))
		wait "$ENCLAVE_PID" 2>/dev/null
		if enclave_start "$T/enclave.ini"; then
			restarts_ok=$((restarts_ok + 1))
		else
			t_fail "restart after kill $kills" "$(grep -m1 'step=' "$ENCLAVE_LOG")"
			break
		fi
		starts=$((starts + 1))
		# the new instance (a new service key) fails the interrupted jobs; their clients wait for the old key
		sleep 2
		for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	fi
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
done
t_ok "at least 50 job lifecycles" test "$njobs" -ge 50
t_eq "every kill -9 was followed by a good restart" "$kills" "$restarts_ok"
t_ok "the restarts replayed the journal (not a new key)" bash -c "[[ \$(grep -l 'journal_new_key' '$T'/enclave.*.log | wc -l) -eq 1 ]]"

# late payments: invoices paid just before a kill are found by lookup after the restart
paid_jobs() { grep -l '"step":"paid"' "$T"/job.*.out 2>/dev/null | xargs -r -n1 python3 -c '
import json, sys
for l in open(sys.argv[1]):
    j = json.loads(l)
    if j.get("step") == "published": print(j["id"])' | sort -u; }
dump() { "$A" keystore journal --relay "$RELAY_URL" --keystore "$KS_PK" --nsm "unix:$NSM_SOCK" --store "$STORE" \
	--timeout 15 >"$T/journal.txt" 2>"$T/journal.err"; }
check_paid() { python3 - "$T/journal.txt" "$@" <<'EOF'
import sys
lines = open(sys.argv[1]).read().split("\n")
jobs = set(sys.argv[2:])
quote_job, inv_quote, paid = {}, {}, set()
for l in lines:
    f = l.split()
    if len(f) < 4 or f[0] != "L1": continue
    if f[3] == "quote": quote_job[f[4]] = f[5]
    elif f[3] == "invoice": inv_quote[f[4]] = f[5]
    elif f[3] == "paid": paid.add(f[4])
have = {quote_job.get(inv_quote[ph]) for ph in paid if ph in inv_quote}
missing = [j for j in jobs if j not in have]
if missing:
    print("paid by the wallet, no paid record: %d (%s)" % (len(missing), missing[0][:16])); sys.exit(1)
EOF
}
PAID=$(paid_jobs)
t_ok "the wallet paid invoices in this run" test -n "$PAID"
ok=0
for _ in $(seq 20); do
	dump && check_paid $PAID >"$T/check.out" 2>&1 && ok=1 && break
	sleep 2
done
t_ok "no paid job lost: every invoice the wallet paid has its paid record" test $ok -eq 1 || cat "$T/check.out" "$T/journal.err"
stop_enclave
t_eq "clean stop" 0 $?
t_ok "journal read back after the stop" dump
"$A" req --relay "$RELAY_URL" --timeout 10 '{"kinds":[6720],"limit":5000}' >"$T/results.jsonl" 2>/dev/null
python3 - "$T/journal.txt" "$T/results.jsonl" $PAID >"$T/rules.out" 2>&1 <<'EOF'
import json, sys, collections
lines = [l for l in open(sys.argv[1]).read().split("\n") if l]
results = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
paid_jobs = set(sys.argv[3:])
quote = {}      # quote id -> (job, client, amount)
invoice = {}    # payment_hash -> quote id
paid = collections.Counter()
debit = collections.Counter()
refund = collections.Counter()
balance = collections.Counter()
done = collections.defaultdict(set)
state = {}
for l in lines:
    f = l.split()
    if f[0] == "L1":
        t = f[3]
        if t == "quote": quote[f[4]] = (f[5], f[6], int(f[7]))
        elif t == "invoice": invoice[f[4]] = f[5]
        elif t == "paid":
            paid[f[4]] += 1
            q = quote.get(invoice.get(f[4]))
            if q: balance[q[1]] += int(f[5])
        elif t == "debit": debit[f[4]] += 1; balance[f[5]] -= int(f[6])
        elif t == "credit":
            balance[f[4]] += int(f[5])
            if f[6] == "refund": refund[f[7]] += 1
    elif f[0] == "J1" and f[3] == "state":
        state[f[4]] = f[5]
        if f[5] == "done": done[f[4]].add(f[6])
errors = []
errors += ["payment credited %d times: %s" % (n, k[:16]) for k, n in paid.items() if n > 1]
errors += ["job debited %d times: %s" % (n, k[:16]) for k, n in debit.items() if n > 1]
errors += ["job refunded %d times: %s" % (n, k[:16]) for k, n in refund.items() if n > 1]
errors += ["refund without a debit: %s" % k[:16] for k in refund if not debit[k]]
errors += ["job done with %d results: %s" % (len(v), k[:16]) for k, v in done.items() if len(v) > 1]
errors += ["negative balance: %s" % k[:16] for k, v in balance.items() if v < 0]
by_req = collections.defaultdict(set)
for ev in results:
    e = [t[1] for t in ev["tags"] if t[0] == "e"]
    if e: by_req[e[0]].add(ev["id"])
errors += ["request with %d different results: %s" % (len(v), k[:16]) for k, v in by_req.items() if len(v) > 1]
# a job paid by the wallet completed (one result) or its money is the client's credit
client_of = {q[0]: q[1] for q in quote.values()}
amount_of = {q[0]: q[2] for q in quote.values()}
for j in paid_jobs:
    if state.get(j) == "done": continue
    c = client_of.get(j)
    if c is None or balance[c] < amount_of[j]:
        errors.append("paid job %s (%s) neither done nor credited" % (j[:16], state.get(j)))
for j, ids in done.items():
    if j in by_req and not ids <= by_req[j]:
        errors.append("journaled result of %s is not the published one" % j[:16])
print("jobs %d, paid %d, done %d, refunds %d, results %d, paid jobs not done: %d" % (
    len(client_of), len(paid), len(done), sum(refund.values()), len(by_req),
    len([j for j in paid_jobs if state.get(j) != "done"])))
for e in errors[:10]: print("ERROR", e)
sys.exit(1 if errors else 0)
EOF
t_eq "the ledger and the results keep every rule" 0 $?
sed 's/^/# /' "$T/rules.out"
t_summary
