#!/usr/bin/env bash
# appliance-enclave under load: 200 requests with bad signatures and 20 valid ones (20 clients), all
# sent at once. A real relay refuses events whose signature does not verify, so the bad ones travel
# through tests/peers/raw-relay.mjs, a second "relay" the daemon also subscribes to, which forwards
# anything it is given (as a malicious or broken relay would); the valid ones go through the real
# relay. Every valid request must be served (quoted, paid through the wallet, trained, result
# published), every bad one dropped by the relay pool's verification (counted), peak RSS must stay
# bounded (printed), and the daemon must keep answering afterwards. Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/enclave.sh"
BAD=${ENCLAVE_LOAD_BAD:-200}
GOOD=${ENCLAVE_LOAD_GOOD:-20}
RSS_LIMIT_KB=${ENCLAVE_LOAD_RSS_LIMIT_KB:-65536} # 64 MiB; ASan builds get more below
[[ ${APPLIANCE_SANITIZED:-0} == 1 ]] && RSS_LIMIT_KB=$((RSS_LIMIT_KB * 4))

enclave_peers_start || { t_fail "peers start"; t_summary; exit 1; }
raw_relay_start || { t_fail "raw relay start"; t_summary; exit 1; }
enclave_config "$ENC_TMP/enclave.ini" "relays.+relay=$RAW_RELAY_URL" limits.max_queue=64
enclave_start "$ENC_TMP/enclave.ini" || { t_fail "enclave start"; t_summary; exit 1; }
sleep 0.5
IDLE=$(enclave_rss_kb)

# sample RSS while the load runs
(
	peak=0
	while kill -0 "$ENCLAVE_PID" 2>/dev/null; do
		r=$(enclave_rss_kb) || break
		[[ -n $r && $r -gt $peak ]] && peak=$r && echo "$peak" >"$ENC_TMP/rss.peak"
		sleep 0.05
	done
) &
SAMPLER=$!
_PEERS_PIDS+=("$SAMPLER")

CLIENT_TIMEOUT=120 client load --relay "$RELAY_URL" --raw-relay "$RAW_RELAY_URL" --instance "$ENCLAVE_PUBKEY" \
	--data "$HTTP_URL/files/iris.csv" --param epochs=5 --bad "$BAD" --good "$GOOD" --nwc "$NWC_CLIENT" \
	--timeout-ms 110000 >"$ENC_TMP/load.out"
t_eq "all $GOOD valid requests served (results published)" "true $GOOD" \
	"$(jget "$ENC_TMP/load.out" 'json.dumps(j.get("ok")) + " " + str(j.get("results"))')"
echo "# load: $(tail -n 1 "$ENC_TMP/load.out")"
HWM=$(enclave_hwm_kb)
PEAK=$(cat "$ENC_TMP/rss.peak" 2>/dev/null || echo 0)
echo "# rss: idle ${IDLE} kB, sampled peak under load ${PEAK} kB, VmHWM ${HWM} kB (limit ${RSS_LIMIT_KB} kB)"
t_ok "peak RSS bounded (VmHWM ${HWM} kB <= ${RSS_LIMIT_KB} kB)" test "${HWM:-999999999}" -le "$RSS_LIMIT_KB"

# still answering
t_ok "the daemon keeps answering: one more job" client job --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" \
	--data "$HTTP_URL/files/iris.csv" --param epochs=2 --nwc "$NWC_CLIENT" --timeout-ms 30000

enclave_stop
t_eq "daemon stops cleanly" 0 $?
kill "$SAMPLER" 2>/dev/null
wait "$SAMPLER" 2>/dev/null
t_ok "every bad signature was dropped by the pool's verification (events_invalid >= $BAD), none became a job" python3 -c '
import re, sys
bad = int(sys.argv[2]); good = int(sys.argv[3])
stats = [l for l in open(sys.argv[1]) if "event=stats" in l][-1]
c = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", stats))
assert c["events_invalid"] >= bad, c
assert c["done"] == good + 1 and c["failed"] == 0 and c["invalid"] == 0, c' "$ENCLAVE_LOG" "$BAD" "$GOOD"
t_summary
