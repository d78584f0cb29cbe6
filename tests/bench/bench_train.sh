#!/usr/bin/env bash
# The training engine against its baselines, in one run, one thread each
# (issue: "The training engine"):
#   1. MLP throughput (samples x epochs / s) on a synthetic 100,000 x 32
#      binary task, hidden 64, 20 epochs, batch 256, Adam: vs scikit-learn
#      MLPClassifier and PyTorch, same rows for training and validation;
#      targets >= 3x scikit-learn, >= 1.5x PyTorch, accuracy within 1 point.
#   2. GEMM efficiency of training a large MLP (100,000 x 256, hidden 512,
#      batch 512) vs bare cblas_sgemm of the same shapes; target >= 60%.
#   3. CSV parse speed on a 200 MB file vs numpy.loadtxt (target >= 10x)
#      and peak RSS <= 1.5 x the float32 matrix + 32 MiB.
# Sizes can be lowered for a quick look: BENCH_ROWS, BENCH_CSV_MB.
# BENCH_PARTS picks parts (default "mlp gemm csv"); BENCH_CSV_RUNS (default
# 3) is how many times each CSV reader runs, alternating: medians compared.
set -u
ROOT=${APPLIANCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${APPLIANCE_BUILD:-$ROOT/build/release}
BT=$B/tests/bench/bench_train
PY=/usr/bin/python3
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
ROWS=${BENCH_ROWS:-100000}
CSV_MB=${BENCH_CSV_MB:-200}
PARTS=${BENCH_PARTS:-mlp gemm csv}
CSV_RUNS=${BENCH_CSV_RUNS:-3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
[[ -x $BT ]] || { echo "bench_train: $BT not built"; exit 1; }

field() { # line key
	sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v + 0 >= t + 0) ? "ok" : "BELOW TARGET" }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
want() { [[ " $PARTS " == *" $1 "* ]]; }
status=0
have_py=1 have_np=1
$PY -c 'import sklearn, torch, numpy' 2>/dev/null || have_py=0
$PY -c 'import numpy' 2>/dev/null || have_np=0

if want mlp; then
echo "-- 1. MLP throughput: ${ROWS} x 32 binary, hidden 64, 20 epochs, batch 256, adam, 1 thread"
"$BT" gen-task "$ROWS" 32 7 "$T/task.csv" || exit 1
ours=$("$BT" mlp "$T/task.csv" 64 20 256 "$T/val.idx") || exit 1
echo "   $ours"
if ((have_py)); then
	sk=$($PY "$ROOT/tests/bench/bench_train.py" sklearn "$T/task.csv" 64 20 256 "$T/val.idx")
	echo "   $sk"
	th=$($PY "$ROOT/tests/bench/bench_train.py" torch "$T/task.csv" 64 20 256 "$T/val.idx")
	echo "   $th"
	r_sk=$(ratio "$(field "$ours" samples_per_s)" "$(field "$sk" samples_per_s)")
	r_th=$(ratio "$(field "$ours" samples_per_s)" "$(field "$th" samples_per_s)")
	a0=$(field "$ours" val_accuracy)
	d_sk=$(awk -v a="$a0" -v b="$(field "$sk" val_accuracy)" 'BEGIN { printf "%+.2f", (a - b) * 100 }')
	d_th=$(awk -v a="$a0" -v b="$(field "$th" val_accuracy)" 'BEGIN { printf "%+.2f", (a - b) * 100 }')
	echo "   throughput vs scikit-learn: ${r_sk}x (target 3x: $(verdict "$r_sk" 3))"
	echo "   throughput vs PyTorch:      ${r_th}x (target 1.5x: $(verdict "$r_th" 1.5))"
	echo "   accuracy vs scikit-learn: ${d_sk} points; vs PyTorch: ${d_th} points (target within 1)"
	[[ $(verdict "$r_sk" 3) == ok && $(verdict "$r_th" 1.5) == ok ]] || status=1
	awk -v a="$d_sk" -v b="$d_th" 'BEGIN { exit !(a >= -1 && b >= -1) }' || status=1
else
	echo "   (scikit-learn / PyTorch / numpy missing: scripts/deps.sh --bench installs them)"
	status=1
fi
fi

if want gemm; then
echo "-- 2. GEMM efficiency: ${ROWS} x 256, hidden 512, batch 512, 2 epochs, 1 thread"
g=$("$BT" gemm "$ROWS" 256 512 512 2) || exit 1
echo "   $g"
eff=$(field "$g" efficiency)
echo "   engine $(field "$g" engine_gflops) GFLOP/s vs bare cblas_sgemm $(field "$g" bare_gflops) GFLOP/s:" \
	"$(awk -v e="$eff" 'BEGIN { printf "%.1f%%", e * 100 }') (target 60%: $(verdict "$eff" 0.6))"
[[ $(verdict "$eff" 0.6) == ok ]] || status=1
fi

if want csv; then
echo "-- 3. CSV parse: ${CSV_MB} MB numeric file (32 features + label), ${CSV_RUNS} runs each, alternating"
"$BT" gen-csv "$CSV_MB" 3 "$T/big.csv" || exit 1
cat "$T/big.csv" >/dev/null # page cache warm for both readers
: >"$T/ours" && : >"$T/numpy" && rss_ok=1 rss_max=0
for ((i = 1; i <= CSV_RUNS; i++)); do
	c=$("$BT" csv "$T/big.csv") || exit 1
	echo "   $c"
	field "$c" mb_per_s >>"$T/ours"
	[[ $(field "$c" rss_ok) == 1 ]] || rss_ok=0
	rss_max=$(awk -v a="$rss_max" -v b="$(field "$c" peak_rss_mib)" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
	if ((have_np)); then
		n=$($PY "$ROOT/tests/bench/bench_train.py" loadtxt "$T/big.csv")
		echo "   $n"
		field "$n" mb_per_s >>"$T/numpy"
	fi
done
mo=$(median <"$T/ours")
if ((have_np)); then
	mn=$(median <"$T/numpy")
	r=$(ratio "$mo" "$mn")
	echo "   medians: ours ${mo} MB/s, numpy.loadtxt ${mn} MB/s: ${r}x (target 10x: $(verdict "$r" 10))"
	[[ $(verdict "$r" 10) == ok ]] || status=1
else
	echo "   median: ours ${mo} MB/s (numpy missing: scripts/deps.sh --bench installs it)"
	status=1
fi
echo "   peak RSS ${rss_max} MiB (most of any run), limit 1.5 x $(field "$c" matrix_mib) MiB + 32 MiB =" \
	"$(field "$c" rss_limit_mib) MiB: $( ((rss_ok)) && echo ok || echo OVER)"
((rss_ok)) || status=1
fi
exit $status
