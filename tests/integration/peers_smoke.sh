#!/usr/bin/env bash
# Smoke test of the third-party test peers (tests/peers): the relay over ws:// and wss:// (NIP-42,
# strict live filters), the NIP-47 wallet service (nip44 and nip04-only) driven by NWCClient, and
# the harness in tests/lib/peers.sh. Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$ROOT/tests/lib/peers.sh"

start=$SECONDS

# --- relay over ws://
if relay_start; then
	t_pass "relay starts (ws): $RELAY_URL"
	WS_URL=$RELAY_URL WS_PID=$RELAY_PID
	t_import peers_node relay-smoke.mjs --relay "$WS_URL"
else
	t_fail "relay starts (ws)"
fi

# --- relay over wss:// with a test CA, NIP-42 required, NIP-01 live tag filters
if tls_make_cert "$PEERS_TMP/tls"; then
	t_pass "tls_make_cert"
	if relay_start --tls-cert "$TLS_CERT_FILE" --tls-key "$TLS_KEY_FILE" --auth-required --strict-live-filters; then
		t_pass "relay starts (wss): $RELAY_URL"
		t_eq "wss relay url scheme" wss "${RELAY_URL%%://*}"
		NODE_EXTRA_CA_CERTS=$TLS_CA_FILE t_import peers_node relay-smoke.mjs --relay "$RELAY_URL" --auth-required --strict-live-filters
		t_ok "wss certificate verifies with openssl against the test CA" \
			openssl s_client -connect "127.0.0.1:$RELAY_PORT" -CAfile "$TLS_CA_FILE" -verify_return_error \
			-verify_ip 127.0.0.1 -brief </dev/null
		t_ok "wss relay stops cleanly on SIGTERM (exit 0)" relay_stop
	else
		t_fail "relay starts (wss)"
	fi
else
	t_fail "tls_make_cert"
fi

# --- a startup failure is reported, not hung on
if relay_start --port "${WS_URL##*:}" 2>"$PEERS_TMP/busy.err"; then
	t_fail "relay on a busy port fails to start"
else
	t_ok "relay on a busy port fails to start, with a reason" grep -q 'EADDRINUSE' "$PEERS_TMP/busy.err"
fi

# --- wallet service (nip44_v2 + nip04), two connections
RELAY_URL=$WS_URL
if wallet_start --connections operator,client --balance client=50000000; then
	t_pass "wallet starts: connections $WALLET_CONNECTIONS"
	t_ok "NWC_OPERATOR is a wallet connect URI" grep -qE '^nostr\+walletconnect://[0-9a-f]{64}\?relay=ws%3A%2F%2F127\.0\.0\.1%3A[0-9]+&secret=[0-9a-f]{64}$' <<<"$NWC_OPERATOR"
	t_eq "operator and client have their own wallet pubkeys" 1 "$([[ $NWC_WALLET_PUBKEY_OPERATOR != "$NWC_WALLET_PUBKEY_CLIENT" ]] && echo 1)"
	t_eq "node pubkey = BOLT-11 example key" 03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad "$WALLET_NODE_PUBKEY"
	t_import peers_node nwc-smoke.mjs --operator "$NWC_OPERATOR" --client "$NWC_CLIENT" --node-pubkey "$WALLET_NODE_PUBKEY"
	t_ok "wallet stops cleanly on SIGTERM (exit 0)" wallet_stop
else
	t_fail "wallet starts"
fi

# --- nip04-only wallet (legacy: no encryption tag in the info event)
if wallet_start --nip04-only --connections operator,client; then
	t_pass "nip04-only wallet starts"
	t_import peers_node nwc-smoke.mjs --operator "$NWC_OPERATOR" --client "$NWC_CLIENT" --node-pubkey "$WALLET_NODE_PUBKEY" --nip04
	# offline switch: SIGUSR1 toggles; the wallet says so on stdout
	t_ok "SIGUSR1 takes the wallet offline" eval 'wallet_toggle_offline | grep -q "\"offline\":true"'
	t_ok "SIGUSR1 again brings it back" eval 'wallet_toggle_offline | grep -q "\"offline\":false"'
	t_ok "nip04 wallet stops cleanly on SIGTERM (exit 0)" wallet_stop
else
	t_fail "nip04-only wallet starts"
fi

# --- misbehaviour switches
if wallet_start --shared-wallet-key --duplicate-notifications --duplicate-delay-ms 300 --delay-ms 150 \
	--wrong-amount --wrong-amount-delta=-1000 --fee-msat 10 --offline-after 8 --seed smoke; then
	t_pass "misbehaving wallet starts"
	t_eq "--shared-wallet-key: one wallet pubkey" "$NWC_WALLET_PUBKEY_OPERATOR" "$NWC_WALLET_PUBKEY_CLIENT"
	seeded=$NWC_CLIENT
	t_import peers_node nwc-smoke.mjs --operator "$NWC_OPERATOR" --client "$NWC_CLIENT" --node-pubkey "$WALLET_NODE_PUBKEY" \
		--misbehave --wallet-pid "$WALLET_PID" --delay-ms 150 --fee-msat 10 --wrong-amount-delta=-1000 --offline-after 8
	t_ok "the wallet announced going offline" grep -q '^{"offline":true,"reason":"--offline-after 8"}$' "$WALLET_OUT"
	t_ok "misbehaving wallet stops cleanly" wallet_stop
	# the same --seed gives the same connection URIs
	if wallet_start --shared-wallet-key --seed smoke; then
		t_eq "--seed: same connection URIs" "$seeded" "$NWC_CLIENT"
		wallet_stop
	else
		t_fail "seeded wallet starts"
	fi
else
	t_fail "misbehaving wallet starts"
fi

t_ok "ws relay stops cleanly on SIGTERM (exit 0)" relay_stop "$WS_PID"
t_eq "no peer left running" "" "$(for p in "${_PEERS_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && echo "$p"; done)"
echo "peers smoke took $((SECONDS - start)) s"
t_summary
