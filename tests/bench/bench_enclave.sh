#!/usr/bin/env bash
# appliance-enclave end-to-end overhead (issue 7 "Bench"): over a loopback relay, with the test
# NIP-47 wallet and the NSM emulator, BENCH_ENCLAVE_JOBS (default 20) jobs one after the other on a
# tiny dataset (iris.csv, logreg, 5 epochs), each timed by the nostr-tools client from publishing the
# request to receiving the result, minus the training time reported in the metrics and minus the
# time the client took to pay. Target: median <= 150 ms. Prints idle RSS and RSS during the jobs.
# The baseline of the same run: the bare relay round trip (publish an event, receive it back).
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
PEERS_NO_TRAP=0
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/enclave.sh"
JOBS=${BENCH_ENCLAVE_JOBS:-20}
TARGET_MS=150

enclave_peers_start >/dev/null || { echo "bench_enclave: peers did not start"; exit 1; }
enclave_config "$ENC_TMP/enclave.ini" limits.rate_requests=1000
enclave_start "$ENC_TMP/enclave.ini" || { echo "bench_enclave: the daemon did not start"; exit 1; }
sleep 0.5
IDLE=$(enclave_rss_kb)
(
	peak=0
	while kill -0 "$ENCLAVE_PID" 2>/dev/null; do
		r=$(enclave_rss_kb) || break
		[[ -n $r && $r -gt $peak ]] && peak=$r && echo "$peak" >"$ENC_TMP/rss.peak"
		sleep 0.02
	done
) &
SAMPLER=$!
_PEERS_PIDS+=("$SAMPLER")
CLIENT_TIMEOUT=300 client bench --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" --data "$HTTP_URL/files/iris.csv" \
	--param epochs=5 --good "$JOBS" --nwc "$NWC_CLIENT" --timeout-ms 280000 >"$ENC_TMP/bench.out"
rc=$?
DURING=$(cat "$ENC_TMP/rss.peak" 2>/dev/null || echo 0)
kill "$SAMPLER" 2>/dev/null
if ((rc != 0)); then
	echo "bench_enclave: the jobs failed"; tail -n 3 "$ENC_TMP/bench.out"; exit 1
fi
grep '"step":"job"' "$ENC_TMP/bench.out" | sed 's/^/  /'
python3 - "$ENC_TMP/bench.out" "$IDLE" "$DURING" "$TARGET_MS" <<'PY'
import json, sys
j = json.loads(open(sys.argv[1]).read().splitlines()[-1])
idle, during, target = int(sys.argv[2] or 0), int(sys.argv[3] or 0), float(sys.argv[4])
m = j["median_overhead_ms"]
print("%-52s %8.1f ms  %s" % ("median overhead (publish->result - pay - train), %d jobs" % j["jobs"], m,
      "ok (target <= %d ms)" % target if m <= target else "ABOVE TARGET (%d ms)" % target))
print("%-52s %8.1f ms" % ("p90 overhead", j["p90_overhead_ms"]))
print("%-52s %8.1f ms" % ("  of which publish -> payment-required (median)", j["median_publish_to_invoice_ms"]))
print("%-52s %8.1f ms" % ("  of which paid -> result (median, incl. train)", j["median_paid_to_result_ms"]))
print("%-52s %8.1f ms" % ("median total publish -> result", j["median_total_ms"]))
print("%-52s %8.1f ms" % ("median client pay time (NIP-47 pay_invoice)", j["median_pay_ms"]))
print("%-52s %8.2f ms" % ("median train_ms", j["median_train_ms"]))
print("%-52s %8d kB" % ("RSS idle", idle))
print("%-52s %8d kB" % ("RSS during the jobs (peak, sampled every 20 ms)", during))
sys.exit(0 if m <= target else 1)
PY
