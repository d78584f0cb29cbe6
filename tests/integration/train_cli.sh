#!/usr/bin/env bash
# The `appliance train | evaluate | dataset` commands end to end on the
# shipped datasets: sealing, refusals, training from sealed data, JSON
# output, determinism of model files, evaluate round trip, exit codes.
# Ends with "N passed, N failed".
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${APPLIANCE_BIN:-$ROOT/bin}
A=$BIN/appliance
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
no() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else no "$name"; fi; }
rc_is() { local want=$1; shift; "$@" >"$T/out" 2>"$T/err"; [[ $? -eq $want ]]; }

BC=$ROOT/tests/data/breast_cancer.csv
IRIS=$ROOT/tests/data/iris.csv

# dataset seal / open
check "seal writes a key and a sealed file" rc_is 0 "$A" dataset seal --key-out "$T/k" "$BC" "$T/bc.sealed"
check "key file is 64 hex digits, mode 600" bash -c "grep -qxE '[0-9a-f]{64}' '$T/k' && [[ \$(stat -c %a '$T/k') == 600 ]]"
check "sealed file starts with the magic" bash -c "head -c 6 '$T/bc.sealed' | grep -q APSEAL"
check "open restores the bytes" bash -c "'$A' dataset open --key-file '$T/k' '$T/bc.sealed' '$T/bc.csv' && cmp -s '$BC' '$T/bc.csv'"
check "seal refuses to overwrite a key file" rc_is 2 "$A" dataset seal --key-out "$T/k" "$BC" "$T/x.sealed"
"$A" dataset seal --key-out "$T/k2" "$IRIS" "$T/other.sealed" >/dev/null 2>&1
check "wrong key refused (exit 1), no output" bash -c "! '$A' dataset open --key-file '$T/k2' '$T/bc.sealed' '$T/no.csv' 2>'$T/e'; [[ \$? -eq 0 && ! -e '$T/no.csv' ]] && grep -q EBADMAC '$T/e'"
head -c 5000 "$T/bc.sealed" >"$T/trunc.sealed"
check "truncated refused" rc_is 1 "$A" dataset open --key-file "$T/k" "$T/trunc.sealed" "$T/o1"
cat "$T/bc.sealed" "$T/bc.sealed" >"$T/ext.sealed"
check "extended refused" rc_is 1 "$A" dataset open --key-file "$T/k" "$T/ext.sealed" "$T/o2"
python3 - "$T/bc.sealed" "$T/swap.sealed" <<'EOF'
import sys
b = open(sys.argv[1], 'rb').read()
h, c = 40, 65536 + 17
open(sys.argv[2], 'wb').write(b[:h] + b[h + c:h + 2 * c] + b[h:h + c] + b[h + 2 * c:])
EOF
check "reordered chunks refused" rc_is 1 "$A" dataset open --key-file "$T/k" "$T/swap.sealed" "$T/o3"
check "open without --key-file is a usage error" rc_is 2 "$A" dataset open "$T/bc.sealed" "$T/o4"

# train
check "train --json on a sealed dataset" rc_is 0 "$A" train --data "$T/bc.sealed" --key-file "$T/k" --json
check "json has the fields" bash -c "python3 -c 'import json,sys; d=json.load(open(\"$T/out\")); k=[\"accuracy\",\"log_loss\",\"auc\",\"samples\",\"features\",\"classes\",\"epochs_run\",\"train_ms\",\"model_sha256\"]; sys.exit(0 if all(x in d for x in k) and d[\"samples\"]==569 and d[\"features\"]==30 and d[\"accuracy\"]>0.9 else 1)'"
check "sealed input without key is refused" rc_is 2 "$A" train --data "$T/bc.sealed"
check "sealed input with the wrong key is refused" rc_is 1 "$A" train --data "$T/bc.sealed" --key-file "$T/k2"
check "train mlp writes a model" rc_is 0 "$A" train --data "$IRIS" --model mlp --hidden 8,4 --activation tanh --epochs 30 --model-out "$T/m1" --json
sha1=$(python3 -c "import json; print(json.load(open('$T/out'))['model_sha256'])")
check "model_sha256 is the file's sha256" bash -c "[[ \$(sha256sum '$T/m1' | cut -d' ' -f1) == '$sha1' ]]"
"$A" train --data "$IRIS" --model mlp --hidden 8,4 --activation tanh --epochs 30 --model-out "$T/m2" --json >/dev/null
check "same data, parameters and seed: identical model files" cmp -s "$T/m1" "$T/m2"
check "evaluate the saved model" rc_is 0 "$A" evaluate --model "$T/m1" --data "$IRIS" --json
check "evaluate reports 150 samples, 3 classes" bash -c "python3 -c 'import json,sys; d=json.load(open(\"$T/out\")); sys.exit(0 if d[\"samples\"]==150 and d[\"classes\"]==3 and \"auc\" not in d else 1)'"
check "evaluate refuses a dataset of another shape" rc_is 1 "$A" evaluate --model "$T/m1" --data "$BC"
check "pooled datasets" rc_is 0 "$A" train --data "$IRIS" --data "$IRIS" --json
check "pooled samples add up" grep -q '"samples":300' "$T/out"

# refusals name the parameter or the place
check "out-of-range parameter names it" bash -c "! '$A' train --data '$IRIS' --epochs 0 2>'$T/e'; grep -q 'epochs: 0 is out of range' '$T/e'"
check "hidden with logreg is refused" bash -c "! '$A' train --data '$IRIS' --hidden 4 2>'$T/e'; grep -q 'hidden: only with model=mlp' '$T/e'"
printf 'a,b,y\n1,2,0\n3,x,1\n' >"$T/bad.csv"
check "malformed CSV: file, line, column, what" bash -c "'$A' train --data '$T/bad.csv' 2>'$T/e'; [[ \$? -eq 1 ]] && grep -q 'bad.csv:3:2: non-numeric field .x.' '$T/e'"
printf 'a,b,y\n1,2,0\n3,4,0\n' >"$T/one.csv"
check "a single class is refused" bash -c "! '$A' train --data '$T/one.csv' 2>'$T/e'; grep -q 'a single class' '$T/e'"
check "missing file is an environment error" rc_is 2 "$A" train --data "$T/none.csv"
check "--help exits 0" rc_is 0 "$A" train --help
check "label column by name" rc_is 0 "$A" train --data "$IRIS" --label-column target --json

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
