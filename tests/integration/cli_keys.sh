#!/usr/bin/env bash
# The key, event, nip44 and nip19 commands as a user runs them (README
# examples): secrets from --sec-file and APPLIANCE_SEC, exit codes, refusals.
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
A=${APPLIANCE_BIN:-$ROOT/bin}/appliance
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { if "$@" >/dev/null 2>&1; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*"; fi; }
no() { if "$@" >/dev/null 2>&1; then fail=$((fail + 1)); echo "FAIL (expected refusal): $*"; else pass=$((pass + 1)); fi; }
code() { local want=$1; shift; "$@" >/dev/null 2>&1; local got=$?; if [[ $got == "$want" ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: exit $got, expected $want: $*"; fi; }

"$A" keygen >"$T/me.key" && chmod 600 "$T/me.key"
ok test -s "$T/me.key"
pub=$("$A" key pub --sec-file "$T/me.key")
ok test ${#pub} -eq 64
[[ $("$A" key pub --sec-file "$T/me.key" --json) == *'"npub":"npub1'* ]] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL key pub --json"; }
[[ $(APPLIANCE_SEC=$(cat "$T/me.key") "$A" key pub) == "$pub" ]] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL key pub from env"; }
nsec=$(APPLIANCE_SEC=$(cat "$T/me.key") "$A" nip19 encode nsec)
[[ $(APPLIANCE_SEC=$nsec "$A" key pub) == "$pub" ]] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL key pub from an nsec"; }
code 2 env -u APPLIANCE_SEC "$A" key pub
code 2 "$A" key pub --sec-file "$T/missing"
echo nonsense >"$T/bad.key"; code 1 "$A" key pub --sec-file "$T/bad.key"
code 2 "$A" nip19 encode nsec "$(cat "$T/me.key")"   # secrets are never taken from argv

echo '{"kind":1,"content":"hello","tags":[["t","demo"]]}' | "$A" event sign --sec-file "$T/me.key" >"$T/ev.json"
ok "$A" event verify "$T/ev.json"
[[ $("$A" event verify "$T/ev.json") == "ok "* ]] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL verify output"; }
sed 's/hello/hellO/' "$T/ev.json" >"$T/bad.json"; code 1 "$A" event verify "$T/bad.json"
{ cat "$T/ev.json"; cat "$T/bad.json"; echo 'not json'; } >"$T/mixed.jsonl"
out=$("$A" event verify --jsonl "$T/mixed.jsonl"); rc=$?
[[ $rc == 1 && $(grep -c '^ok ' <<<"$out") == 1 && $(grep -c '^invalid 2 ' <<<"$out") == 1 && $(grep -c '^invalid 3 ' <<<"$out") == 1 ]] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL jsonl: $out"; }
code 1 sh -c "echo '{\"kind\":70000}' | '$A' event sign --sec-file '$T/me.key'"

"$A" keygen >"$T/peer.key"; peer=$("$A" key pub --sec-file "$T/peer.key")
printf 'secret' | "$A" nip44 encrypt --pub "$peer" --sec-file "$T/me.key" >"$T/payload"
[[ $("$A" nip44 decrypt --pub "$pub" --sec-file "$T/peer.key" <"$T/payload") == secret ]] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL nip44 round trip"; }
code 1 sh -c "echo AAAA | '$A' nip44 decrypt --pub '$pub' --sec-file '$T/peer.key'"
code 1 sh -c "printf '' | '$A' nip44 encrypt --pub '$peer' --sec-file '$T/me.key'"
code 2 "$A" nip44 encrypt --pub zz --sec-file "$T/me.key"

npub=$("$A" nip19 encode npub "$pub")
[[ $("$A" nip19 decode "$npub") == "{\"type\":\"npub\",\"hex\":\"$pub\"}" ]] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL nip19 round trip"; }
code 1 "$A" nip19 decode "${npub%?}q"
code 2 "$A" nosuchcommand
ok "$A" --help
for c in keygen key event nip44 nip19; do ok "$A" "$c" --help; done
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
