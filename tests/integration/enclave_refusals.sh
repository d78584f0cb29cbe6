#!/usr/bin/env bash
# appliance-enclave refusals: every out-of-range parameter, a bid below the price, unreachable and
# refused datasets, a size the server does not announce, an oversized dataset, a sha256 mismatch, a
# sealed dataset with a wrong or no key, a server that sends more than it announced, the wall-time
# and result-size limits, and too many requests from one pubkey. Each must end in a clear `error`
# feedback naming the problem and either "no payment was taken" (refused before the invoice) or the
# amount "credited to your balance" (failed after payment). All requests of the table are sent at
# once by the nostr-tools client (tests/peers/enclave-client.mjs cases). Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export APPLIANCE_ROOT=$ROOT
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/enclave.sh"
A=$ENC_CLI

mkdir -p "$ENC_TMP/data"
cp "$ROOT/tests/data/breast_cancer.csv" "$ROOT/tests/data/iris.csv" "$ENC_TMP/data/"
"$A" dataset seal --key-out "$ENC_TMP/iris.key" "$ENC_TMP/data/iris.csv" "$ENC_TMP/data/iris.sealed" >/dev/null
"$A" keygen >/dev/null 2>&1
ENC_DATA=$ENC_TMP/data
enclave_peers_start || { t_fail "peers start"; t_summary; exit 1; }
enclave_config "$ENC_TMP/enclave.ini" limits.rate_requests=3 limits.job_timeout=3 limits.max_result_bytes=100k
enclave_start "$ENC_TMP/enclave.ini" || { t_fail "enclave start"; t_summary; exit 1; }

BC=$HTTP_URL/files/breast_cancer.csv
CLOSED=$(peers_free_port)
WRONG=$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')
GOODSHA=$(sha256sum "$ENC_DATA/breast_cancer.csv" | cut -c1-64)
BADSHA=$(printf '%064d' 0)
HOSTPORT=${HTTP_URL#http://127.0.0.1:}
python3 - "$ENC_TMP/cases.json" <<EOF
import json, sys
bc = "$BC"
def p(name, value, text, extra=()):
    return {"name": "param %s=%s" % (name, value), "data": [bc], "params": list(extra) + [[name, value]], "text": text}
cases = [
 p("epochs", "0", "epochs: 0 is out of range 1..10000"),
 p("epochs", "10001", "epochs: 10001 is out of range 1..10000"),
 p("epochs", "ten", "epochs: 'ten' is not an integer"),
 p("learning_rate", "0", "learning_rate: 0 is out of range (0, 10]"),
 p("learning_rate", "10.5", "learning_rate: 10.5 is out of range (0, 10]"),
 p("learning_rate", "nan", "learning_rate: 'nan' is not a decimal number"),
 p("batch_size", "0", "batch_size: 0 is out of range 1..65536"),
 p("batch_size", "65537", "batch_size: 65537 is out of range 1..65536"),
 p("validation_split", "0.95", "validation_split: 0.95 is out of range [0, 0.9]"),
 p("validation_split", "-0.1", "validation_split: -0.1 is out of range [0, 0.9]"),
 p("momentum", "1", "momentum: 1 is out of range [0, 0.999]", [["optimizer", "sgd"]]),
 p("momentum", "0.5", "momentum: only with optimizer=sgd"),
 p("l2", "1001", "l2: 1001 is out of range [0, 1000]"),
 p("l2", "-1", "l2: -1 is out of range [0, 1000]"),
 p("patience", "1001", "patience: 1001 is out of range 0..1000"),
 p("patience", "5", "patience: needs validation_split > 0", [["validation_split", "0"]]),
 p("threads", "0", "threads: 0 is out of range 1..64"),
 p("threads", "65", "threads: 65 is out of range 1..64"),
 p("threads", "2", "threads: 2 is above this instance's limit of 1"),
 p("seed", "-1", "seed: '-1' is not an integer in 0..18446744073709551615"),
 p("seed", "18446744073709551616", "seed: '18446744073709551616' is not an integer"),
 p("model", "svm", "model: 'svm' is not logreg or mlp"),
 p("hidden", "0", "hidden: 0 is out of range 1..4 comma-separated widths of 1..4096", [["model", "mlp"]]),
 p("hidden", "4097", "hidden: 4097 is out of range", [["model", "mlp"]]),
 p("hidden", "8,8,8,8,8", "hidden: 8,8,8,8,8 is out of range", [["model", "mlp"]]),
 p("hidden", "64", "hidden: only with model=mlp"),
 p("activation", "gelu", "activation: 'gelu' is not relu, tanh or sigmoid", [["model", "mlp"]]),
 p("optimizer", "rmsprop", "optimizer: 'rmsprop' is not sgd or adam"),
 p("label_column", "x" * 257, "label_column: 'last', a 0-based column index or a header name of 1..256 bytes"),
 {"name": "label_column not in the header (paid, credited)", "data": [bc], "params": [["label_column", "nosuchcolumn"]], "pay": True, "credited": True, "text": "nosuchcolumn"},
 p("dataset_key", "xyz", "dataset_key: not 64 hex digits"),
 p("sha256", "abc", "sha256: 'abc' is not 64 hex digits"),
 p("frobnicate", "1", "frobnicate: unknown parameter"),
 {"name": "a parameter given twice", "data": [bc], "params": [["epochs", "5"], ["epochs", "6"]], "text": "epochs: given twice"},
 {"name": "no dataset", "data": [], "params": [], "text": "i: no dataset"},
 {"name": "bid below the price", "data": [bc], "params": [], "bid": "1", "text": "bid: 1 msat is below the price of 3000 msat"},
 {"name": "malformed bid", "data": [bc], "params": [], "bid": "1e3", "text": "bid: '1e3' is not an amount in msat"},
 {"name": "public form: bid below the price", "data": [bc], "params": [], "bid": "10", "public": True, "text": "bid: 10 msat is below the price"},
 {"name": "unreachable dataset", "data": ["http://127.0.0.1:$CLOSED/x.csv"], "text": "dataset 1: unreachable"},
 {"name": "dataset 404", "data": ["$HTTP_URL/files/nope.csv"], "text": "dataset 1: HTTP status 404"},
 {"name": "dataset host not allowed", "data": ["http://localhost:$HOSTPORT/files/iris.csv"], "text": "i: dataset 1: host 'localhost' port $HOSTPORT is not allowed by this instance"},
 {"name": "dataset scheme not allowed", "data": ["ftp://127.0.0.1/x.csv"], "text": "i: dataset 1: URL scheme not supported"},
 {"name": "walrus without an aggregator", "data": ["walrus:abc"], "text": "walrus: URLs are not supported by this instance"},
 {"name": "redirect to a host not allowed", "data": ["$HTTP_URL/away"], "text": "dataset 1: redirected to a URL this instance does not allow"},
 {"name": "too many redirects", "data": ["$HTTP_URL/redirect/5/iris.csv"], "text": "dataset 1: too many redirects (more than 3)"},
 {"name": "size unknown (no Content-Length)", "data": ["$HTTP_URL/nolength/iris.csv"], "text": "dataset 1: size unknown (the server sends no Content-Length)"},
 {"name": "oversized dataset", "data": ["$HTTP_URL/big"], "text": "dataset 1: 1073741824 bytes, over the limit of 1048576 bytes"},
 {"name": "oversized datasets together", "data": [bc] * 9, "text": "i: at most 8 datasets per job"},
 {"name": "sha256 mismatch (paid, credited)", "data": [bc], "params": [["sha256", "$BADSHA"]], "pay": True, "credited": True, "text": "dataset 1: sha256 mismatch: expected $BADSHA, got $GOODSHA"},
 {"name": "sealed dataset with a wrong key (paid, credited)", "data": ["$HTTP_URL/files/iris.sealed"], "params": [["dataset_key", "$WRONG"]], "pay": True, "credited": True, "text": "dataset 1: sealed data refused: wrong dataset_key or modified data"},
 {"name": "sealed dataset without a key (paid, credited)", "data": ["$HTTP_URL/files/iris.sealed"], "pay": True, "credited": True, "text": "dataset 1: the dataset is sealed but no dataset_key was given"},
 {"name": "server sends more than it announced (paid, credited)", "data": ["$HTTP_URL/lie/breast_cancer.csv"], "pay": True, "credited": True, "text": "dataset 1: larger than the 10 bytes it had when quoted"},
 {"name": "not a CSV of numbers (paid, credited)", "data": ["$HTTP_URL/files/iris.key"], "pay": True, "credited": True, "text": "dataset1:"},
 {"name": "wall time limit (paid, credited)", "data": [bc], "params": [["model", "mlp"], ["hidden", "512,512"], ["epochs", "10000"]], "pay": True, "credited": True, "text": "limit: the job exceeded this instance's wall time limit of 3 s"},
 {"name": "result size limit (paid, credited)", "data": [bc], "params": [["model", "mlp"], ["hidden", "512,64"], ["epochs", "1"]], "pay": True, "credited": True, "text": "over this instance's limit of 102400 bytes"},
 {"name": "a valid request in the same batch still works", "data": [bc], "params": [["epochs", "2"]], "pay": True, "expect": "result"},
]
json.dump(cases, open(sys.argv[1], "w"))
EOF
cp "$ENC_TMP/iris.key" "$ENC_DATA/iris.key"
CLIENT_TIMEOUT=90 t_import client cases --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" --file "$ENC_TMP/cases.json" \
	--nwc "$NWC_CLIENT" --timeout-ms 80000

# too many requests from one pubkey (limits.rate_requests=3 per 60 s)
SK=$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')
for i in 1 2 3; do
	client job --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" --sec "$SK" --data "$BC" --no-pay \
		--expect payment-required --timeout-ms 15000 >"$ENC_TMP/rate$i.out"
	t_eq "rate: request $i of 3 is quoted" payment-required "$(jget "$ENC_TMP/rate$i.out" 'j.get("outcome")')"
done
client job --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" --sec "$SK" --data "$BC" --no-pay --expect error \
	--timeout-ms 15000 >"$ENC_TMP/rate4.out"
t_eq "rate: the 4th request is refused" error "$(jget "$ENC_TMP/rate4.out" 'j.get("outcome")')"
t_ok "rate: the text names the limit" grep -q 'rate-limited: at most 3 requests per 60 s per pubkey; try again later; no payment was taken' "$ENC_TMP/rate4.out"
client job --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" --sec "$SK" --data "$BC" --no-pay --expect error \
	--timeout-ms 2500 >"$ENC_TMP/rate5.out"
t_eq "rate: a 5th request in the window is dropped without feedback" timeout "$(jget "$ENC_TMP/rate5.out" 'j.get("outcome")')"
t_ok "another pubkey is still served" client job --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" --data "$BC" \
	--no-pay --expect payment-required --timeout-ms 15000

enclave_stop
t_eq "daemon stops cleanly" 0 $?
t_ok "counters: rate_limited, invalid, dataset_refused, dataset_too_big, wall_time, result_too_big, refunds" python3 -c '
import re, sys
line = [l for l in open(sys.argv[1]) if "event=stats" in l][-1]
c = dict(re.findall(r"(\w+)=(\d+)", line))
want = {"rate_limited": 2, "invalid": 30, "dataset_refused": 5, "dataset_too_big": 1, "wall_time": 1, "result_too_big": 1, "refunds": 7, "price_refused": 2}
bad = {k: (c.get(k), v) for k, v in want.items() if int(c.get(k, 0)) < v}
assert not bad, bad' "$ENCLAVE_LOG"

# the queue limit: one unfinished job at most (the first waits for its payment)
enclave_config "$ENC_TMP/enclave2.ini" limits.max_queue=1 "service.journal=$ENC_TMP/journal2"
enclave_start "$ENC_TMP/enclave2.ini" || { t_fail "enclave restart"; t_summary; exit 1; }
client job --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" --data "$BC" --no-pay --expect payment-required \
	--timeout-ms 15000 >"$ENC_TMP/q1.out"
t_eq "queue: the first job waits for its payment" payment-required "$(jget "$ENC_TMP/q1.out" 'j.get("outcome")')"
client job --relay "$RELAY_URL" --instance "$ENCLAVE_PUBKEY" --data "$BC" --no-pay --expect error \
	--timeout-ms 15000 >"$ENC_TMP/q2.out"
t_ok "queue: the next one is refused as busy" grep -q '"text":"busy: 1 jobs are waiting or running; try again later; no payment was taken"' "$ENC_TMP/q2.out"
enclave_stop
t_ok "queue: counted" grep -q "event=stats .* busy=1 " "$ENCLAVE_LOG"
t_summary
