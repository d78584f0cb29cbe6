# shellcheck shell=bash
# Helpers shared by `make demo` (scripts/demo.sh) and the end-to-end tests
# (tests/integration/demo_e2e.sh, trust.sh, interop_client.sh): an appliance (or a keystore)
# launched by `appliance-parent run --dev` on 127.0.0.1, next to the test peers of
# tests/lib/peers.sh (source that first, with PEERS_NO_TRAP=1, and call demo_cleanup from your
# EXIT trap).
#
#   demo_peers_start                  relay (large tags allowed), wallet (connections operator and
#                                     client), HTTP blob store; sets RELAY_URL RELAY_PORT HTTP_URL
#                                     HTTP_PORT and writes $DEMO_W/operator.nwc, client.nwc (0600)
#   demo_enclave_config FILE NAME [section.key=value ...]
#                                     an appliance-enclave configuration for this setup
#   demo_parent_start NAME BINARY CONFIG [TIMEOUT_S]
#                                     appliance-parent --dev for BINARY (measured, isolated) in
#                                     $DEMO_W/NAME; waits for the daemon's event=ready; sets
#                                     PUBKEY_<NAME> PCR0_<NAME> PCR1_<NAME> PCR2_<NAME> PID_<NAME>
#   demo_parent_stop NAME             appliance-parent stop (the enclave flushes), then by pid
#   demo_keystore_host_start          appliance-keystore as a plain process with its own NSM emulator
#                                     (dev CA $DEMO_DEVCA): for builds whose keystore cannot run behind
#                                     a parent; sets PUBKEY_ks PCR0_ks
#   demo_cleanup                      stops every parent started here, then the peers
# Every process is stopped by its pid; nothing is looked up by name.
DEMO_ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
DEMO_BIN=${APPLIANCE_BIN:-$DEMO_ROOT/bin}
DEMO_W=${DEMO_W:-$PEERS_TMP}
DEMO_DEVCA=$DEMO_W/devca
DEMO_REPO=${DEMO_REPO:-https://github.com/appliance/appliance}
_DEMO_PARENTS=()

demo_peers_start() {
	relay_start --max-tag-value 400000 --max-content 400000 --max-payload 8388608 --max-subs 200 || return 1
	wallet_start --default-expiry 600 || return 1
	mkdir -p "$DEMO_W/store" || return 1
	peer_start blobstore http-store.mjs '^READY http://' --dir "$DEMO_W/store" || return 1
	HTTP_URL=${PEER_LINE#READY }
	HTTP_PORT=${HTTP_URL##*:}
	HTTP_PID=$PEER_PID
	(umask 077 && printf '%s\n' "$NWC_OPERATOR" >"$DEMO_W/operator.nwc" && printf '%s\n' "$NWC_CLIENT" >"$DEMO_W/client.nwc")
	export HTTP_URL HTTP_PORT HTTP_PID
}

# demo_enclave_config FILE NAME [section.key=value ...]: overrides replace keys; "section.+key=v" adds
# one more value of a repeatable key; "section.key=" removes the key.
demo_enclave_config() {
	local file=$1 name=$2
	shift 2
	python3 - "$file" "$@" <<EOF
import sys
cfg = {
 "service": {"name": "$name", "version": "0.1.0", "repo": "$DEMO_REPO", "journal": "$DEMO_W/$name.journal",
             "log_level": "info", "announce_interval": "600"},
 "relays": {"relay": ["$RELAY_URL"]},
 "wallet": {"nwc_uri_file": "$DEMO_W/operator.nwc", "lookup_interval": "1", "timeout_ms": "10000",
            "invoice_expiry": "600"},
 "price": {"base_msat": "1000", "msat_per_unit": "100"},
 "limits": {"feedback_interval": "1", "job_timeout": "120"},
 "fetch": {"allowed_host": ["127.0.0.1"], "allow_http": "true", "timeout": "30", "connect_timeout": "5"},
 "blobstore": {"put_url": "$HTTP_URL/blobs/{sha256}"},
}
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    sec, key = k.split(".", 1)
    if key.startswith("+"):
        cur = cfg.setdefault(sec, {}).setdefault(key[1:], [])
        if not isinstance(cur, list): cfg[sec][key[1:]] = [cur]
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

# demo_parent_start NAME BINARY CONFIG [TIMEOUT_S]
demo_parent_start() {
	local name=$1 bin=$2 cfg=$3 timeout=${4:-40} d=$DEMO_W/$1 line pid
	mkdir -p "$d" || return 1
	cat >"$d/parent.ini" <<EOF
[parent]
state_dir = $d/state
[enclave]
binary = $bin
config = $cfg
restart_min_ms = 500
shutdown_grace_ms = 10000
[dev]
ca_dir = $DEMO_DEVCA
[egress]
allow = 127.0.0.1:$RELAY_PORT
allow = 127.0.0.1:$HTTP_PORT
allow_private = yes
EOF
	"$DEMO_BIN/appliance-parent" run --dev --config "$d/parent.ini" >"$d/parent.out" 2>"$d/parent.err" </dev/null &
	pid=$!
	_DEMO_PARENTS+=("$name:$pid")
	printf -v "PID_$name" '%s' "$pid"
	if ! line=$(peers_wait_line "$d/parent.err" 'event=enclave_log instance=[^ ]* line=.*event=ready pubkey=[0-9a-f]{64}' "$timeout" "$pid"); then
		echo "appliance-parent ($name) did not report a ready daemon within $timeout s; last lines of $d/parent.err:" >&2
		tail -n 15 "$d/parent.err" | cut -c1-300 | sed 's/^/    /' >&2
		return 1
	fi
	printf -v "PUBKEY_$name" '%s' "$(sed -n 's/.*event=ready pubkey=\([0-9a-f]\{64\}\).*/\1/p' <<<"$line")"
	line=$(grep -m1 'event=enclave_start mode=dev' "$d/parent.err")
	printf -v "PCR0_$name" '%s' "$(sed -n 's/.* pcr0=\([0-9a-f]*\).*/\1/p' <<<"$line")"
	printf -v "PCR1_$name" '%s' "$(sed -n 's/.* pcr1=\([0-9a-f]*\).*/\1/p' <<<"$line")"
	printf -v "PCR2_$name" '%s' "$(sed -n 's/.* pcr2=\([0-9a-f]*\).*/\1/p' <<<"$line")"
}

# _demo_kill_recorded STATE_DIR: the enclave and NSM emulator a parent recorded, if still the same
# programs (pid and the name in /proc/PID/cmdline checked), e.g. after the parent was killed.
_demo_kill_recorded() {
	local st=$1/run/enclave.state epid npid
	[[ -f $st ]] || return 0
	read -r epid _ _ _ _ npid _ <"$st" || return 0
	[[ $epid =~ ^[0-9]+$ ]] && grep -qa -e appliance-enclave -e appliance-keystore -e memfd "/proc/$epid/cmdline" 2>/dev/null &&
		kill -KILL "$epid" 2>/dev/null
	[[ $npid =~ ^[0-9]+$ ]] && grep -qa nsm-emulator "/proc/$npid/cmdline" 2>/dev/null && kill -KILL "$npid" 2>/dev/null
	return 0
}

demo_parent_stop() {
	local name=$1 d=$DEMO_W/$1 e pid= keep=() i
	for e in "${_DEMO_PARENTS[@]}"; do
		if [[ ${e%%:*} == "$name" ]]; then pid=${e#*:}; else keep+=("$e"); fi
	done
	_DEMO_PARENTS=("${keep[@]}")
	[[ -n $pid ]] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		timeout -k 2 25 "$DEMO_BIN/appliance-parent" stop --config "$d/parent.ini" --timeout 20 >"$d/stop.out" 2>&1 ||
			kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	_demo_kill_recorded "$d/state"
	return 0
}

demo_keystore_host_start() {
	local d=$DEMO_W/ks line
	mkdir -p "$d" || return 1
	[[ -f $DEMO_DEVCA/root.pem ]] || "$DEMO_BIN/appliance-parent" dev-ca create "$DEMO_DEVCA" >/dev/null || return 1
	"$DEMO_BIN/appliance-parent" nsm-emulator --socket "$d/nsm.sock" --ca "$DEMO_DEVCA" --image "$DEMO_BIN/appliance-keystore" \
		>"$d/nsm.out" 2>"$d/nsm.err" </dev/null &
	_PEERS_PIDS+=($!)
	peers_wait_line "$d/nsm.out" '^nsm-emulator ready' 10 $! >/dev/null || { cat "$d/nsm.err" >&2; return 1; }
	PCR0_ks=$(sed -n 's/.*pcr0=\([0-9a-f]*\).*/\1/p' "$d/nsm.out")
	printf '%s\n' "[keystore]" "nsm = unix:$d/nsm.sock" "allow_dev = true" "dev_root = $DEMO_DEVCA/root.pem" \
		"[relays]" "relay = $RELAY_URL" >"$d/keystore.ini"
	"$DEMO_BIN/appliance-keystore" --config "$d/keystore.ini" >"$d/keystore.log" 2>&1 </dev/null &
	_PEERS_PIDS+=($!)
	line=$(peers_wait_line "$d/keystore.log" 'event=ready' 20 $!) || { tail -n 10 "$d/keystore.log" >&2; return 1; }
	PUBKEY_ks=$(sed -n 's/.*pubkey=\([0-9a-f]\{64\}\).*/\1/p' <<<"$line")
	[[ -n $PUBKEY_ks ]]
}

demo_cleanup() {
	local i
	# the newest first: an appliance checkpoints to its keystore while it stops
	for ((i = ${#_DEMO_PARENTS[@]} - 1; i >= 0; i--)); do demo_parent_stop "${_DEMO_PARENTS[i]%%:*}"; done
	peers_cleanup
}
