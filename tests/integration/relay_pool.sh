#!/usr/bin/env bash
# The relay pool (relay-client/) through `appliance publish` and `appliance req` against the real
# third-party relay (tests/peers/relay.mjs: @nostr-relay/core + sqlite + validator) on 127.0.0.1:
# publish and read back, every filter field, EOSE, an invalid event refused by the relay with its
# reason, two relays with overlapping events delivered once, NIP-42 AUTH (auth-required REQ and
# EVENT, NIP-70 protected events), wss:// with a test CA, a connect address different from the
# relay's name, and TLS failures (unknown CA, host-name mismatch).
# Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${APPLIANCE_BIN:-$ROOT/bin}
A=$BIN/appliance
. "$ROOT/tests/lib/peers.sh"
PY=/usr/bin/python3
T=$PEERS_TMP
TO=(timeout -k 2 30)

[[ -x $A ]] || { t_fail "appliance binary at $A"; t_summary; exit 1; }

# ids FILE: the sorted event ids of the JSON lines in FILE, space-separated.
ids() { $PY -c 'import json,sys; print(" ".join(sorted(json.loads(l)["id"] for l in open(sys.argv[1]) if l.strip())))' "$1"; }
# sorted_ids ID...: the arguments sorted, space-separated.
sorted_ids() { printf '%s\n' "$@" | sort | tr '\n' ' ' | sed 's/ $//'; }
# sign KEY TEMPLATE: a signed event (one JSON line); its id is the 8th char... use evid.
sign() { APPLIANCE_SEC=$1 "$A" event sign <<<"$2"; }
evid() { $PY -c 'import json,sys; print(json.loads(sys.stdin.read())["id"])' <<<"$1"; }
# stat FILE URL KEY: a counter from a --stats JSON line of relay URL in FILE.
stat() {
	$PY -c '
import json,sys
for l in open(sys.argv[1]):
    try: j=json.loads(l)
    except Exception: continue
    if j.get("relay")==sys.argv[2]:
        k=sys.argv[3]; v=j["malformed_by"][k[13:]] if k.startswith("malformed_by.") else j[k]; print(v); break
else: print(-1)' "$1" "$2" "$3"
}

KA=$("$A" keygen) KB=$("$A" keygen) KC=$("$A" keygen)
PA=$(APPLIANCE_SEC=$KA "$A" key pub) PB=$(APPLIANCE_SEC=$KB "$A" key pub) PC=$(APPLIANCE_SEC=$KC "$A" key pub)
NOW=$(date +%s)

# --- a ws:// relay ----------------------------------------------------------------------------
if ! relay_start; then t_fail "relay starts"; t_summary; exit 1; fi
R1=$RELAY_URL

E1=$(sign "$KA" "{\"kind\":1,\"content\":\"first\",\"tags\":[[\"t\",\"alpha\"]],\"created_at\":$((NOW - 100))}")
E2=$(sign "$KB" "{\"kind\":1,\"content\":\"second\",\"tags\":[[\"t\",\"beta\"]],\"created_at\":$((NOW - 50))}")
E3=$(sign "$KA" "{\"kind\":7,\"content\":\"+\",\"tags\":[[\"t\",\"alpha\"]],\"created_at\":$((NOW - 10))}")
E4=$(sign "$KA" "{\"kind\":1,\"content\":\"fourth\",\"tags\":[],\"created_at\":$NOW}")
I1=$(evid "$E1") I2=$(evid "$E2") I3=$(evid "$E3") I4=$(evid "$E4")

"${TO[@]}" "$A" publish --relay "$R1" <<<"$E1" >"$T/pub1.out" 2>"$T/pub1.err"
rc=$?
t_eq "publish: exit 0 when the relay accepts" 0 "$rc"
t_eq "publish: prints the relay's OK" "$R1 accepted" "$(cat "$T/pub1.out")"
for e in "$E2" "$E3" "$E4"; do
	"${TO[@]}" "$A" publish --relay "$R1" <<<"$e" >/dev/null 2>>"$T/pub.err" || t_fail "publish $(evid "$e")"
done
"${TO[@]}" "$A" publish --relay "$R1" --json <<<"$E1" >"$T/pubdup.out" 2>&1
t_ok "publish --json: accepted again (the relay answers duplicates with OK true)" \
	grep -q '"status":"accepted","accepted":true' "$T/pubdup.out"

"${TO[@]}" "$A" req --relay "$R1" "{\"ids\":[\"$I1\"]}" >"$T/rb.out" 2>"$T/rb.err"
rc=$?
t_eq "req: read back by id, exit 0 after EOSE" 0 "$rc"
t_eq "req: the event read back is the one published (byte-identical JSON)" "$E1" "$(cat "$T/rb.out")"
t_ok "read-back event verifies" "$A" event verify "$T/rb.out"

check_filter() { # NAME FILTER EXPECTED_IDS...
	local name=$1 filter=$2
	shift 2
	"${TO[@]}" "$A" req --relay "$R1" "$filter" >"$T/f.out" 2>"$T/f.err"
	local rc=$?
	if ((rc != 0)); then t_fail "filter $name" "exit $rc: $(head -c 300 "$T/f.err")"; return; fi
	t_eq "filter $name" "$(sorted_ids "$@")" "$(ids "$T/f.out")"
}
check_filter "ids" "{\"ids\":[\"$I2\"]}" "$I2"
check_filter "authors" "{\"authors\":[\"$PA\"]}" "$I1" "$I3" "$I4"
check_filter "kinds" "{\"authors\":[\"$PA\",\"$PB\"],\"kinds\":[7]}" "$I3"
check_filter "#t tag" "{\"authors\":[\"$PA\",\"$PB\"],\"#t\":[\"alpha\"]}" "$I1" "$I3"
check_filter "since/until (inclusive)" "{\"authors\":[\"$PA\",\"$PB\"],\"since\":$((NOW - 50)),\"until\":$((NOW - 10))}" "$I2" "$I3"
check_filter "limit (newest first)" "{\"authors\":[\"$PA\"],\"limit\":2}" "$I3" "$I4"
check_filter "AND inside a filter" "{\"authors\":[\"$PA\"],\"kinds\":[1],\"#t\":[\"alpha\"]}" "$I1"
check_filter "several filters (OR)" "[{\"ids\":[\"$I2\"]},{\"authors\":[\"$PA\"],\"kinds\":[7]}]" "$I2" "$I3"
check_filter "no match: EOSE with nothing" "{\"authors\":[\"$PC\"]}"
"${TO[@]}" "$A" req --relay "$R1" --stats --pool-opt dedupe_max=1 "{\"authors\":[\"$PA\"]}" >"$T/dd.out" 2>"$T/dd.err"
t_eq "dedupe set at its cap (1 id): the oldest ids are evicted and counted, events still delivered" \
	"3 2" "$(wc -l <"$T/dd.out") $(grep -o '"dedupe_evictions":[0-9]*' "$T/dd.err" | cut -d: -f2)"

"${TO[@]}" "$A" req --relay "$R1" '{"kinds":"x"}' >/dev/null 2>"$T/badf.err"
t_eq "req: a malformed filter is refused (exit 1)" 1 "$?"
"${TO[@]}" "$A" req '{}' >/dev/null 2>&1
t_eq "req: no --relay is a usage error (exit 2)" 2 "$?"

# --- an invalid event: refused locally, or sent anyway and refused by the relay with its reason ---
BAD=$(sign "$KA" "{\"kind\":1,\"content\":\"tampered signature $RANDOM\"}")
BAD=$($PY -c 'import json,sys; e=json.loads(sys.argv[1]); s=e["sig"]; e["sig"]=s[:-1]+("0" if s[-1]!="0" else "1"); print(json.dumps(e,separators=(",",":"),ensure_ascii=False))' "$BAD")
"${TO[@]}" "$A" publish --relay "$R1" <<<"$BAD" >"$T/bad.out" 2>"$T/bad.err"
t_eq "publish: an invalid event is refused before sending (exit 1)" 1 "$?"
t_ok "publish: local refusal names the reason" grep -q 'signature verification failed' "$T/bad.err"
"${TO[@]}" "$A" publish --relay "$R1" --no-verify <<<"$BAD" >"$T/bad.out" 2>"$T/bad.err"
t_eq "publish --no-verify: OK false from the relay -> exit 1" 1 "$?"
t_eq "publish: the relay's reason is surfaced" "$R1 rejected invalid: signature is wrong" "$(cat "$T/bad.out")"
"${TO[@]}" "$A" publish --relay "$R1" --no-verify --json <<<"$BAD" >"$T/bad.json" 2>/dev/null
t_ok "publish --json: prefix invalid, status rejected" grep -q '"status":"rejected","accepted":false,"prefix":"invalid"' "$T/bad.json"

# --- two relays with overlapping events: each delivered once ------------------------------------
if relay_start; then
	R2=$RELAY_URL
	X1=$(sign "$KC" '{"kind":1,"content":"only on relay 1"}')
	X2=$(sign "$KC" '{"kind":1,"content":"only on relay 2"}')
	X3=$(sign "$KC" '{"kind":1,"content":"on both relays"}')
	"${TO[@]}" "$A" publish --relay "$R1" <<<"$X1" >/dev/null 2>&1
	"${TO[@]}" "$A" publish --relay "$R2" <<<"$X2" >/dev/null 2>&1
	"${TO[@]}" "$A" publish --relay "$R1" --relay "$R2" <<<"$X3" >"$T/both.out" 2>&1
	t_eq "publish to two relays: both accept" 2 "$(grep -c ' accepted$' "$T/both.out")"
	"${TO[@]}" "$A" req --relay "$R1" --relay "$R2" --stats "{\"authors\":[\"$PC\"]}" >"$T/two.out" 2>"$T/two.err"
	t_eq "two relays: exit 0 after EOSE from both" 0 "$?"
	t_eq "two relays: every event exactly once" "$(sorted_ids "$(evid "$X1")" "$(evid "$X2")" "$(evid "$X3")")" "$(ids "$T/two.out")"
	t_eq "two relays: 3 lines printed" 3 "$(wc -l <"$T/two.out")"
	d1=$(stat "$T/two.err" "$R1" events_duplicate) d2=$(stat "$T/two.err" "$R2" events_duplicate)
	t_eq "two relays: the second copy was dropped as a duplicate (counted)" 1 "$((d1 + d2))"
	t_eq "two relays: EOSE counted on each" "1 1" "$(stat "$T/two.err" "$R1" eose) $(stat "$T/two.err" "$R2" eose)"
else
	t_fail "second relay starts"
fi

# --- NIP-42 -------------------------------------------------------------------------------------
if relay_start --auth-required; then
	RA=$RELAY_URL
	Y1=$(sign "$KA" '{"kind":1,"content":"behind auth"}')
	"${TO[@]}" "$A" publish --relay "$RA" <<<"$Y1" >"$T/a1.out" 2>&1
	t_eq "auth-required relay, no --auth: exit 1" 1 "$?"
	t_ok "auth-required relay, no --auth: the relay's auth-required reason is shown" \
		grep -q "^$RA rejected auth-required: " "$T/a1.out"
	APPLIANCE_SEC=$KB "${TO[@]}" "$A" publish --relay "$RA" --auth --stats <<<"$Y1" >"$T/a2.out" 2>"$T/a2.err"
	t_eq "auth-required relay, --auth: AUTH (kind 22242) then the EVENT again -> accepted" "$RA accepted" "$(cat "$T/a2.out")"
	t_eq "auth-required relay: one AUTH sent and accepted" "1 1" \
		"$(stat "$T/a2.err" "$RA" auth_sent) $(stat "$T/a2.err" "$RA" auth_accepted)"
	"${TO[@]}" "$A" req --relay "$RA" "{\"ids\":[\"$(evid "$Y1")\"]}" >"$T/a3.out" 2>"$T/a3.err"
	t_eq "auth-required relay, REQ without --auth: CLOSED -> exit 1" 1 "$?"
	t_ok "REQ refused: the CLOSED reason is shown" grep -q 'subscription closed: auth-required:' "$T/a3.err"
	APPLIANCE_SEC=$KC "${TO[@]}" "$A" req --relay "$RA" --auth "{\"ids\":[\"$(evid "$Y1")\"]}" >"$T/a4.out" 2>"$T/a4.err"
	t_eq "auth-required relay, REQ with --auth: the REQ is redone after AUTH" "$Y1" "$(cat "$T/a4.out")"
	relay_stop >/dev/null
else
	t_fail "auth-required relay starts"
fi
if relay_start --nip70 --auth; then
	RP=$RELAY_URL
	Z1=$(sign "$KA" '{"kind":1,"content":"protected","tags":[["-"]]}')
	APPLIANCE_SEC=$KA "${TO[@]}" "$A" publish --relay "$RP" --auth <<<"$Z1" >"$T/p1.out" 2>&1
	t_eq "NIP-70 protected event, AUTH as its author: accepted" "$RP accepted" "$(cat "$T/p1.out")"
	APPLIANCE_SEC=$KB "${TO[@]}" "$A" publish --relay "$RP" --auth <<<"$(sign "$KA" '{"kind":1,"content":"p2","tags":[["-"]]}')" >"$T/p2.out" 2>&1
	t_eq "NIP-70, AUTH as someone else: exit 1" 1 "$?"
	t_ok "NIP-70, AUTH as someone else: restricted: reason shown" grep -q "^$RP rejected restricted: " "$T/p2.out"
	relay_stop >/dev/null
else
	t_fail "nip70 relay starts"
fi

# --- wss:// ------------------------------------------------------------------------------------
if tls_make_cert "$T/tls" && relay_start --tls-cert "$TLS_CERT_FILE" --tls-key "$TLS_KEY_FILE"; then
	RS=$RELAY_URL PORT=$RELAY_PORT
	W1=$(sign "$KB" '{"kind":1,"content":"over TLS"}')
	"${TO[@]}" "$A" publish --relay "$RS" --ca-file "$TLS_CA_FILE" <<<"$W1" >"$T/w1.out" 2>"$T/w1.err"
	t_eq "wss: publish with the test CA" "$RS accepted" "$(cat "$T/w1.out")"
	"${TO[@]}" "$A" req --relay "wss://localhost:$PORT" --connect-to "localhost:$PORT:127.0.0.1:$PORT" \
		--ca-file "$TLS_CA_FILE" "{\"ids\":[\"$(evid "$W1")\"]}" >"$T/w2.out" 2>"$T/w2.err"
	t_eq "wss: relay named localhost reached at 127.0.0.1 (SNI/host check on localhost)" "$W1" "$(cat "$T/w2.out")"
	"${TO[@]}" "$A" req --relay "$RS" '{"limit":1}' >/dev/null 2>"$T/w3.err"
	t_eq "wss without the test CA: exit 2" 2 "$?"
	t_ok "wss without the test CA: certificate error reported" grep -q 'TLS certificate check failed: unable to get local issuer certificate' "$T/w3.err"
	"${TO[@]}" "$A" req --relay "wss://relay.example.com:$PORT" --connect-to "relay.example.com:$PORT:127.0.0.1:$PORT" \
		--ca-file "$TLS_CA_FILE" '{"limit":1}' >/dev/null 2>"$T/w4.err"
	t_eq "wss with a name the certificate does not carry: exit 2" 2 "$?"
	t_ok "wss host-name mismatch reported" grep -q 'TLS certificate check failed: hostname mismatch' "$T/w4.err"
	"${TO[@]}" "$A" publish --relay "$RS" --ca-file "$T/nonexistent.pem" <<<"$W1" >/dev/null 2>"$T/w5.err"
	t_eq "an unreadable --ca-file is a usage error" 2 "$?"
else
	t_fail "wss relay starts"
fi

t_summary
