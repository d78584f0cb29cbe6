# shellcheck shell=bash
# Test peers (tests/peers: a real Nostr relay, a NIP-47 wallet service) and tiny assertion helpers
# for integration scripts. Source it:   . "$APPLIANCE_ROOT/tests/lib/peers.sh"
#
# Peers
#   relay_start [relay.mjs flags]   start a relay on a free 127.0.0.1 port; sets RELAY_URL RELAY_PID
#                                   RELAY_PORT RELAY_LOG (stderr file)
#   relay_stop [PID]                SIGTERM (then SIGKILL after 3 s); returns the peer's exit status
#   wallet_start [wallet.mjs flags] start a wallet service (--relay defaults to $RELAY_URL); sets
#                                   WALLET_PID WALLET_OUT (its stdout: JSON lines) WALLET_LOG
#                                   WALLET_NODE_PUBKEY WALLET_CONNECTIONS ("operator client")
#                                   NWC_<NAME> (URI), NWC_WALLET_PUBKEY_<NAME>, NWC_CLIENT_PUBKEY_<NAME>
#                                   (NAME upper-cased: NWC_OPERATOR, NWC_CLIENT, ...)
#   wallet_stop [PID]
#   wallet_toggle_offline           SIGUSR1 to the wallet; waits for its {"offline":...} line
#   peers_free_port                 print a free TCP port on 127.0.0.1
#   peers_node SCRIPT [ARGS]        run node on tests/peers/SCRIPT with a timeout ($PEERS_CMD_TIMEOUT s)
#   peers_wait_line FILE ERE SECS [PID]  wait until FILE has a line matching ERE; print it
#   tls_make_cert DIR               test CA + leaf for 127.0.0.1/::1/localhost; sets TLS_CA_FILE
#                                   TLS_CERT_FILE TLS_KEY_FILE (DIR/ca.pem cert.pem key.pem)
#   peers_cleanup                   stop every peer started here (installed as the EXIT trap unless
#                                   PEERS_NO_TRAP=1; a script with its own EXIT trap must call it)
# Assertions (each prints one line "ok - NAME" or "FAIL - NAME: why")
#   t_ok NAME CMD [ARGS]            pass when CMD exits 0 (its output is shown only on failure)
#   t_eq NAME EXPECTED ACTUAL
#   t_pass NAME / t_fail NAME [WHY]
#   t_import CMD [ARGS]             run CMD and count its "ok - X" / "FAIL - X" lines as results
#   t_summary                       print "N passed, N failed"; returns 1 when anything failed
#
# t_ok/t_eq/t_import return non-zero on a failed check: scripts here use `set -u`, not `set -e`
# (under set -e a failed check would end the script before t_summary).
# Start peers from the script's own shell, not inside $( ), so the pids are tracked here.
# Every peer gets --exit-with-pid $$: it exits by itself if this script dies without cleanup.
# Logs live in $PEERS_TMP (kept, and their tails printed, when a check failed or PEERS_KEEP_LOGS=1).

PEERS_DIR=${PEERS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../peers" && pwd)}
PEERS_NODE=${PEERS_NODE:-node}
PEERS_START_TIMEOUT=${PEERS_START_TIMEOUT:-20} # seconds to wait for a peer's ready line
PEERS_CMD_TIMEOUT=${PEERS_CMD_TIMEOUT:-30}     # seconds for one peers_node command
PEERS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/appliance-peers.XXXXXX") || {
	echo "peers: cannot create a temporary directory" >&2
	return 2 2>/dev/null || exit 2
}
_PEERS_PIDS=()
_T_PASS=0
_T_FAIL=0

_peers_err() { echo "peers: $*" >&2; }

_peers_check() {
	if ! command -v "$PEERS_NODE" >/dev/null 2>&1; then
		_peers_err "node not found (Node 20 is required; see scripts/deps.sh)"
		return 2
	fi
	if [[ ! -d $PEERS_DIR/node_modules/@nostr-relay/core || ! -d $PEERS_DIR/node_modules/@getalby/sdk ]]; then
		_peers_err "$PEERS_DIR/node_modules is missing or incomplete: run scripts/deps.sh (npm ci in tests/peers)"
		return 2
	fi
}

# peers_wait_line FILE ERE TIMEOUT_S [PID]: print the first line of FILE matching ERE; fail after
# TIMEOUT_S seconds, or as soon as PID (when given) has exited.
peers_wait_line() {
	local file=$1 re=$2 timeout=$3 pid=${4:-} line
	local deadline=$((SECONDS + timeout))
	while :; do
		if [[ -f $file ]] && line=$(grep -m 1 -E -- "$re" "$file"); then
			printf '%s\n' "$line"
			return 0
		fi
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			# one last look: the line may have been written just before the exit
			if [[ -f $file ]] && line=$(grep -m 1 -E -- "$re" "$file"); then
				printf '%s\n' "$line"
				return 0
			fi
			return 1
		fi
		((SECONDS < deadline)) || return 1
		sleep 0.05
	done
}

# _peers_kill PID: SIGTERM, wait up to 3 s, then SIGKILL; reap; return the exit status.
_peers_kill() {
	local pid=$1 i rc=0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 60; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		if kill -0 "$pid" 2>/dev/null; then
			_peers_err "pid $pid did not exit on SIGTERM within 3 s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || rc=$?
	local keep=() p
	for p in "${_PEERS_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
	_PEERS_PIDS=("${keep[@]}")
	return $rc
}

# _peers_spawn NAME SCRIPT ARGS...: start node SCRIPT in the background; sets _PEERS_LAST_PID/OUT/ERR.
_peers_spawn() {
	local name=$1 script=$2
	shift 2
	# Unique names even when called from a subshell (a counter would not be
	# shared with the parent shell and a later peer could read an earlier
	# peer's READY line from a reused file).
	_PEERS_LAST_OUT=$(mktemp "$PEERS_TMP/$name.XXXXXX.out") || return 2
	_PEERS_LAST_ERR=${_PEERS_LAST_OUT%.out}.err
	"$PEERS_NODE" "$PEERS_DIR/$script" --exit-with-pid "$$" "$@" >"$_PEERS_LAST_OUT" 2>"$_PEERS_LAST_ERR" </dev/null &
	_PEERS_LAST_PID=$!
	_PEERS_PIDS+=("$_PEERS_LAST_PID")
}

_peers_start_failed() { # NAME PID ERRFILE
	local name=$1 pid=$2 err=$3 state
	if kill -0 "$pid" 2>/dev/null; then
		state="no ready line within ${PEERS_START_TIMEOUT} s"
	else
		local st=0
		wait "$pid" 2>/dev/null || st=$?
		state="exited with status $st"
	fi
	_peers_err "$name did not start ($state); last lines of $err:"
	tail -n 20 "$err" 2>/dev/null | sed 's/^/    /' >&2
	_peers_kill "$pid" >/dev/null 2>&1 || true
	return 1
}

relay_start() {
	_peers_check || return
	_peers_spawn relay relay.mjs "$@"
	local pid=$_PEERS_LAST_PID line
	if ! line=$(peers_wait_line "$_PEERS_LAST_OUT" '^READY wss?://' "$PEERS_START_TIMEOUT" "$pid"); then
		_peers_start_failed relay "$pid" "$_PEERS_LAST_ERR"
		return 1
	fi
	RELAY_URL=${line#READY }
	RELAY_PORT=${RELAY_URL##*:}
	RELAY_PID=$pid
	RELAY_LOG=$_PEERS_LAST_ERR
	export RELAY_URL RELAY_PORT RELAY_PID RELAY_LOG
}

# peer_start NAME SCRIPT READY_REGEX [ARGS...]: starts tests/peers/SCRIPT (any
# peer that prints a ready line), waits for a stdout line matching
# READY_REGEX; sets PEER_LINE (that line), PEER_PID, PEER_OUT (stdout file)
# and PEER_LOG (stderr file). Call it directly, not in $( ): the variables
# must reach the calling shell. The pid is stopped by peers_cleanup.
peer_start() {
	_peers_check || return
	local name=$1 script=$2 ready=$3 line
	shift 3
	_peers_spawn "$name" "$script" "$@"
	PEER_PID=$_PEERS_LAST_PID PEER_OUT=$_PEERS_LAST_OUT PEER_LOG=$_PEERS_LAST_ERR
	if ! line=$(peers_wait_line "$PEER_OUT" "$ready" "$PEERS_START_TIMEOUT" "$PEER_PID"); then
		_peers_start_failed "$name" "$PEER_PID" "$PEER_LOG"
		return 1
	fi
	PEER_LINE=$line
	export PEER_LINE PEER_PID PEER_OUT PEER_LOG
}

relay_stop() {
	local pid=${1:-${RELAY_PID:-}}
	[[ -n $pid ]] || { _peers_err "relay_stop: no pid"; return 2; }
	_peers_kill "$pid"
}

wallet_start() {
	_peers_check || return
	local a has_relay=0
	for a in "$@"; do [[ $a == --relay || $a == --relay=* ]] && has_relay=1; done
	if ((!has_relay)); then
		[[ -n ${RELAY_URL:-} ]] || { _peers_err "wallet_start: no --relay given and RELAY_URL is unset"; return 2; }
		set -- --relay "$RELAY_URL" "$@"
	fi
	_peers_spawn wallet wallet.mjs "$@"
	local pid=$_PEERS_LAST_PID line vars
	if ! line=$(peers_wait_line "$_PEERS_LAST_OUT" '^\{"ready":true' "$PEERS_START_TIMEOUT" "$pid"); then
		_peers_start_failed wallet "$pid" "$_PEERS_LAST_ERR"
		return 1
	fi
	# The ready line is JSON; turn it into shell assignments (values checked against a safe set).
	# shellcheck disable=SC2016 # JavaScript, not shell, inside the quotes
	if ! vars=$("$PEERS_NODE" -e '
		const j = JSON.parse(process.argv[1]); const out = [];
		const put = (k, v) => { if (!/^[A-Za-z0-9:\/?&=%._+~-]*$/.test(v)) throw new Error("unsafe value for " + k); out.push(`${k}='"'"'${v}'"'"'`) };
		put("WALLET_NODE_PUBKEY", j.node_pubkey);
		const names = Object.keys(j.connections);
		for (const n of names) {
			const N = n.toUpperCase();
			put("NWC_" + N, j.connections[n]);
			put("NWC_WALLET_PUBKEY_" + N, j.wallet_pubkeys[n]);
			put("NWC_CLIENT_PUBKEY_" + N, j.client_pubkeys[n]);
		}
		out.push(`WALLET_CONNECTIONS='"'"'${names.join(" ")}'"'"'`);
		console.log(out.join("\n"));' "$line"); then
		_peers_err "wallet_start: cannot parse the ready line: $line"
		_peers_kill "$pid" >/dev/null 2>&1 || true
		return 1
	fi
	eval "$vars"
	local n
	for n in $WALLET_CONNECTIONS; do
		n=${n^^}
		export "NWC_$n" "NWC_WALLET_PUBKEY_$n" "NWC_CLIENT_PUBKEY_$n"
	done
	WALLET_PID=$pid
	WALLET_OUT=$_PEERS_LAST_OUT
	WALLET_LOG=$_PEERS_LAST_ERR
	export WALLET_PID WALLET_OUT WALLET_LOG WALLET_NODE_PUBKEY WALLET_CONNECTIONS
}

wallet_stop() {
	local pid=${1:-${WALLET_PID:-}}
	[[ -n $pid ]] || { _peers_err "wallet_stop: no pid"; return 2; }
	_peers_kill "$pid"
}

# wallet_toggle_offline: SIGUSR1 to $WALLET_PID; waits (5 s) for the new {"offline":...} line.
wallet_toggle_offline() {
	local before after
	before=$(grep -c '^{"offline"' "$WALLET_OUT" || true)
	kill -USR1 "$WALLET_PID" || return 1
	local deadline=$((SECONDS + 5))
	while :; do
		after=$(grep -c '^{"offline"' "$WALLET_OUT" || true)
		((after > before)) && { grep '^{"offline"' "$WALLET_OUT" | tail -n 1; return 0; }
		((SECONDS < deadline)) || { _peers_err "wallet_toggle_offline: no answer"; return 1; }
		sleep 0.05
	done
}

peers_free_port() {
	"$PEERS_NODE" -e '
		const s = require("net").createServer();
		s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => console.log(p)); });'
}

# peers_node SCRIPT [ARGS]: node tests/peers/SCRIPT ARGS, killed after $PEERS_CMD_TIMEOUT s.
peers_node() {
	local script=$1
	shift
	timeout -k 2 "$PEERS_CMD_TIMEOUT" "$PEERS_NODE" "$PEERS_DIR/$script" "$@"
}

tls_make_cert() {
	local dir=${1:?tls_make_cert DIR}
	mkdir -p "$dir" || return 1
	local ext=$dir/leaf.ext
	printf '%s\n' 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost' 'basicConstraints=critical,CA:FALSE' \
		'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' >"$ext"
	if ! {
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
			-subj '/CN=appliance test CA' -keyout "$dir/ca.key" -out "$dir/ca.pem" \
			-addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' &&
			openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
				-subj '/CN=localhost' -keyout "$dir/key.pem" -out "$dir/leaf.csr" &&
			openssl x509 -req -in "$dir/leaf.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
				-set_serial "0x$(openssl rand -hex 8)" -days 7 -extfile "$ext" -out "$dir/cert.pem"
	} >"$dir/openssl.log" 2>&1; then
		_peers_err "tls_make_cert: openssl failed:"
		sed 's/^/    /' "$dir/openssl.log" >&2
		return 1
	fi
	TLS_CA_FILE=$dir/ca.pem
	TLS_CERT_FILE=$dir/cert.pem
	TLS_KEY_FILE=$dir/key.pem
	export TLS_CA_FILE TLS_CERT_FILE TLS_KEY_FILE
}

peers_cleanup() {
	local pid
	for pid in "${_PEERS_PIDS[@]}"; do
		_peers_kill "$pid" >/dev/null 2>&1 || true
	done
	_PEERS_PIDS=()
	if [[ -d ${PEERS_TMP:-} ]]; then
		if ((_T_FAIL > 0)) || [[ ${PEERS_KEEP_LOGS:-0} == 1 ]]; then
			local f
			for f in "$PEERS_TMP"/*.err; do
				[[ -s $f ]] || continue
				echo "---- peer log $f (last 15 lines)"
				tail -n 15 "$f" | sed 's/^/    /'
			done
			echo "peers: logs kept in $PEERS_TMP"
		else
			rm -rf "$PEERS_TMP"
		fi
	fi
}

# --- assertions ------------------------------------------------------------------------------
t_pass() {
	_T_PASS=$((_T_PASS + 1))
	echo "ok - $1"
}
t_fail() {
	_T_FAIL=$((_T_FAIL + 1))
	echo "FAIL - $1${2:+: $2}"
}
t_ok() {
	local name=$1
	shift
	local out rc
	out=$(mktemp "$PEERS_TMP/t_ok.XXXXXX")
	rc=0
	"$@" >"$out" 2>&1 || rc=$?
	if ((rc == 0)); then
		t_pass "$name"
	else
		t_fail "$name" "exit status $rc from: $*"
		tail -n 20 "$out" | sed 's/^/    /'
	fi
	rm -f "$out"
	return $rc
}
t_eq() {
	if [[ "$2" == "$3" ]]; then
		t_pass "$1"
	else
		t_fail "$1" "expected '$2', got '$3'"
		return 1
	fi
}
# t_import CMD [ARGS]: CMD prints "ok - NAME" / "FAIL - NAME: why" lines (other lines pass through);
# each counts as one result. A non-zero exit without any FAIL line counts as one more failure.
t_import() {
	local line rc fails_before=$_T_FAIL out
	out=$(mktemp "$PEERS_TMP/t_import.XXXXXX")
	rc=0
	"$@" >"$out" 2>&1 || rc=$?
	while IFS= read -r line; do
		case $line in
		"ok - "*) _T_PASS=$((_T_PASS + 1)) ;;
		"FAIL - "*) _T_FAIL=$((_T_FAIL + 1)) ;;
		esac
		printf '%s\n' "$line"
	done <"$out"
	rm -f "$out"
	if ((rc != 0 && _T_FAIL == fails_before)); then
		t_fail "$(basename -- "${2:-$1}")" "exit status $rc"
	fi
	return $rc
}
t_summary() {
	echo "$_T_PASS passed, $_T_FAIL failed"
	((_T_FAIL == 0))
}

if [[ ${PEERS_NO_TRAP:-0} != 1 ]]; then
	trap peers_cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
fi
