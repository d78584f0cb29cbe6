# shellcheck shell=bash
# Helpers for the appliance-enclave integration tests and bench (tests/integration/enclave_*.sh,
# tests/bench/bench_enclave.sh). Source after tests/lib/peers.sh:
#   . "$APPLIANCE_ROOT/tests/lib/peers.sh"; . "$APPLIANCE_ROOT/tests/lib/enclave.sh"
#
#   enclave_peers_start [relay flags]  a relay (large tags allowed: tee_root, request), the wallet
#                                      (connections operator,client), the HTTP store serving
#                                      $ENC_DATA (default tests/data) and a dev CA + NSM emulator
#                                      measuring $ENC_BIN. Sets HTTP_URL, ENC_TMP, NSM_SOCK, DEVCA.
#   enclave_config FILE [INI LINES]    a working configuration; extra lines "section.key=value"
#                                      replace or add keys (e.g. limits.rate_requests=3).
#   enclave_start CONFIG               start the daemon (stderr to $ENCLAVE_LOG), wait for
#                                      event=ready; sets ENCLAVE_PID ENCLAVE_PUBKEY
#   enclave_stop                       SIGTERM, wait; returns its exit status
#   enclave_rss_kb [PID]               VmRSS of the daemon; enclave_hwm_kb: VmHWM (peak)
#   client ARGS...                     node tests/peers/enclave-client.mjs ARGS (bounded in time)
#   jget FILE|- EXPR                   a value from the last JSON line of FILE (python3 expression on j)
ENC_ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
ENC_BINDIR=${APPLIANCE_BIN:-$ENC_ROOT/bin}
ENC_BIN=$ENC_BINDIR/appliance-enclave
ENC_CLI=$ENC_BINDIR/appliance
ENC_PARENT=$ENC_BINDIR/appliance-parent
ENC_DATA=${ENC_DATA:-$ENC_ROOT/tests/data}
ENC_TMP=$PEERS_TMP
_ENC_SEQ=0

# _enc_spawn NAME CMD...: background process tracked by peers_cleanup; sets _ENC_OUT _ENC_ERR _ENC_PID
_enc_spawn() {
	local name=$1
	shift
	_ENC_OUT=$ENC_TMP/$name.out
	_ENC_ERR=$ENC_TMP/$name.err
	"$@" >"$_ENC_OUT" 2>"$_ENC_ERR" </dev/null &
	_ENC_PID=$!
	_PEERS_PIDS+=("$_ENC_PID")
}

http_store_start() {
	_peers_spawn http http-store.mjs --dir "$ENC_DATA" "$@"
	local line
	line=$(peers_wait_line "$_PEERS_LAST_OUT" '^READY http://' "$PEERS_START_TIMEOUT" "$_PEERS_LAST_PID") || {
		_peers_start_failed http-store "$_PEERS_LAST_PID" "$_PEERS_LAST_ERR"
		return 1
	}
	HTTP_URL=${line#READY }
	HTTP_PID=$_PEERS_LAST_PID
	HTTP_OUT=$_PEERS_LAST_OUT
}

raw_relay_start() {
	_peers_spawn raw raw-relay.mjs "$@"
	local line
	line=$(peers_wait_line "$_PEERS_LAST_OUT" '^READY ws://' "$PEERS_START_TIMEOUT" "$_PEERS_LAST_PID") || {
		_peers_start_failed raw-relay "$_PEERS_LAST_PID" "$_PEERS_LAST_ERR"
		return 1
	}
	RAW_RELAY_URL=${line#READY }
	RAW_RELAY_PID=$_PEERS_LAST_PID
}

nsm_start() {
	DEVCA=$ENC_TMP/devca
	NSM_SOCK=$ENC_TMP/nsm.sock
	[[ -f $DEVCA/root.pem ]] || "$ENC_PARENT" dev-ca create "$DEVCA" >/dev/null || return 1
	_enc_spawn nsm "$ENC_PARENT" nsm-emulator --socket "$NSM_SOCK" --ca "$DEVCA" --image "$ENC_BIN"
	NSM_PID=$_ENC_PID
	peers_wait_line "$_ENC_OUT" '^nsm-emulator ready' 10 "$NSM_PID" >/dev/null || {
		echo "nsm emulator did not start:" >&2
		tail -n 5 "$_ENC_ERR" >&2
		return 1
	}
}

enclave_peers_start() {
	relay_start --max-tag-value 400000 --max-content 400000 --max-payload 8388608 --max-subs 200 "$@" || return 1
	wallet_start --default-expiry 120 ${ENC_WALLET_FLAGS:-} || return 1
	http_store_start || return 1
	nsm_start || return 1
}

# enclave_config FILE [section.key=value ...]
enclave_config() {
	local file=$1
	shift
	printf '%s\n' "$NWC_OPERATOR" >"$ENC_TMP/nwc"
	chmod 600 "$ENC_TMP/nwc"
	python3 - "$file" "$@" <<EOF
import sys
cfg = {
 "service": {"name": "appliance-test", "nsm": "unix:$NSM_SOCK", "journal": "$ENC_TMP/journal", "log_level": "info"},
 "relays": {"relay": ["$RELAY_URL"]},
 "wallet": {"nwc_uri_file": "$ENC_TMP/nwc", "lookup_interval": "2", "timeout_ms": "5000", "invoice_expiry": "120"},
 "price": {"base_msat": "1000", "msat_per_unit": "100"},
 "limits": {"max_concurrent_jobs": "2", "rate_requests": "50", "rate_window": "60", "max_dataset_bytes": "1M",
            "job_timeout": "60", "feedback_interval": "1"},
 "fetch": {"allowed_host": ["127.0.0.1"], "allow_http": "true", "timeout": "10", "connect_timeout": "3"},
 "blobstore": {"put_url": "$HTTP_URL/blobs/{sha256}"},
}
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    sec, key = k.split(".", 1)
    if key.startswith("+"):
        cfg.setdefault(sec, {}).setdefault(key[1:], [])
        if not isinstance(cfg[sec][key[1:]], list): cfg[sec][key[1:]] = [cfg[sec][key[1:]]]
        cfg[sec][key[1:]].append(v)
    elif v == "":
        cfg.get(sec, {}).pop(key, None)
    else:
        cfg.setdefault(sec, {})[key] = v
with open(sys.argv[1], "w") as f:
    for sec, kv in cfg.items():
        f.write("[%s]\n" % sec)
        for k, v in kv.items():
            for x in (v if isinstance(v, list) else [v]):
                f.write("%s = %s\n" % (k, x))
        f.write("\n")
EOF
}

enclave_start() {
	local cfg=$1
	ENCLAVE_LOG=$ENC_TMP/enclave.$((++_ENC_SEQ)).log
	# sanitizer builds: full allocation stacks (libcrypto has no frame pointers), so that the one
	# known library leak can be suppressed precisely (tests/lib/lsan.supp)
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0:malloc_context_size=24" \
	LSAN_OPTIONS="suppressions=$ENC_ROOT/tests/lib/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
		"$ENC_BIN" --config "$cfg" >"$ENCLAVE_LOG" 2>&1 </dev/null &
	ENCLAVE_PID=$!
	_PEERS_PIDS+=("$ENCLAVE_PID")
	local line
	line=$(peers_wait_line "$ENCLAVE_LOG" 'event=ready' 20 "$ENCLAVE_PID") || {
		echo "appliance-enclave did not start; log:" >&2
		tail -n 20 "$ENCLAVE_LOG" >&2
		return 1
	}
	ENCLAVE_PUBKEY=$(sed -n 's/.*event=ready pubkey=\([0-9a-f]\{64\}\).*/\1/p' <<<"$line")
	export ENCLAVE_PID ENCLAVE_PUBKEY ENCLAVE_LOG
}

enclave_stop() {
	local pid=${1:-$ENCLAVE_PID}
	_peers_kill "$pid"
}

enclave_rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/${1:-$ENCLAVE_PID}/status" 2>/dev/null; }
enclave_hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/${1:-$ENCLAVE_PID}/status" 2>/dev/null; }

client() {
	timeout -k 2 "${CLIENT_TIMEOUT:-60}" "$PEERS_NODE" "$PEERS_DIR/enclave-client.mjs" "$@"
}

# jget FILE EXPR: evaluates EXPR (python, `j` = the last JSON line of FILE) and prints it
jget() {
	python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("{")]
j = json.loads(lines[-1]) if lines else {}
v = eval(sys.argv[2])
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$1" "$2"
}
