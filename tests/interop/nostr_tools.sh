#!/usr/bin/env bash
# Interop with nostr-tools (the reference JS client): see nostr_tools.mjs.
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${APPLIANCE_BIN:-$ROOT/bin}
exec node "$ROOT/tests/interop/nostr_tools.mjs" "$BIN/appliance" "${INTEROP_EVENTS:-1000}"
