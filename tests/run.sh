#!/bin/sh
# tests/run.sh: every test of bpc, in one run; ends with "N passed, N failed, N skipped"
# (under CI=true a skipped check counts as failed: it means a missing install).
#
# Counts each cmocka test case, each golden diagnostic, each model check and each
# end-to-end run as one test. Environment: BUILD (build folder), DATA (data root that
# holds mnist/, fetched by `bpc data fetch mnist` when missing), FUZZ_SECONDS.
BUILD=${BUILD:-build}
DATA=${DATA:-$HOME/.cache/bpc/data}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
BPC=$BUILD/bpc
SANBPC=$BUILD/san/bpc
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bpc-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
pass=0
fail=0
skipped=0
failed=""

ok() { pass=$((pass + 1)); echo "ok    $1"; }
bad() { fail=$((fail + 1)); failed="$failed $1"; echo "FAIL  $1"; [ -f "$2" ] && tail -n 40 "$2" | sed 's/^/      /'; }

# run NAME CMD...: one test, passes when CMD exits 0. Lines "skip ..." in its output
# (a check a script left out for want of a tool) are shown and counted as skipped.
run() {
    name=$1; shift
    if "$@" > "$TMP/log" 2>&1; then ok "$name"; else bad "$name" "$TMP/log"; fi
    k=$(grep -c '^skip ' "$TMP/log")
    if [ "$k" -gt 0 ]; then
        skipped=$((skipped + k))
        grep '^skip ' "$TMP/log" | sed "s/^/      $name: /"
    fi
}

# cmocka NAME PROGRAM: adds the program's passed and failed test counts.
cmocka() {
    name=$1; prog=$2
    "$prog" > "$TMP/log" 2>&1
    rc=$?
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$TMP/log" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$TMP/log" | tail -n 1)
    k=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$TMP/log" | tail -n 1)
    p=${p:-0}; f=${f:-0}; k=${k:-0}
    skipped=$((skipped + k))
    [ "$k" -gt 0 ] && grep '^\[  SKIPPED \] test' "$TMP/log" | sed "s/^/      $name: /"
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # a crash counts as a failure
    pass=$((pass + p)); fail=$((fail + f))
    if [ "$f" -eq 0 ]; then echo "ok    $name ($p tests)"; else failed="$failed $name"; echo "FAIL  $name ($f of $((p + f)))"; grep -E 'FAILED|ERROR|Failure|error|Sanitizer' "$TMP/log" | head -n 40 | sed 's/^/      /'; fi
}

echo "== real MNIST"
if [ ! -f "$DATA/mnist/train-images-idx3-ubyte" ] && [ ! -f "$DATA/mnist/train-images-idx3-ubyte.gz" ]; then
    "$BPC" data fetch mnist --data "$DATA" > "$TMP/log" 2>&1 || { cat "$TMP/log"; echo "cannot fetch MNIST"; }
fi
run "data verify mnist" "$BPC" data verify mnist --data "$DATA"
export BPC_TEST_MNIST="$DATA/mnist"

echo "== unit tests (cmocka)"
for t in "$BUILD"/tests/test_*; do
    case "$t" in *.d) continue ;; esac
    cmocka "$(basename "$t")" "$t"
done

echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "$BUILD"/san/tests/test_*; do
    case "$t" in *.d) continue ;; esac
    cmocka "san/$(basename "$t")" "$t"
done

echo "== golden diagnostics (sanitized bpc)"
for bp in tests/golden/*.bp; do
    [ -f "$bp" ] || continue
    exp=${bp%.bp}.err
    "$SANBPC" check "$bp" > /dev/null 2> "$TMP/err"
    rc=$?
    want=0; [ -s "$exp" ] && want=1
    if [ "$rc" -eq "$want" ] && diff -u "$exp" "$TMP/err" > "$TMP/log" 2>&1; then ok "golden $(basename "$bp")"
    else echo "exit $rc, expected $want" >> "$TMP/log"; bad "golden $(basename "$bp")" "$TMP/log"; fi
done

echo "== every model checks and emits C (sanitized bpc)"
for m in models/*.bp; do
    run "check $(basename "$m")" "$SANBPC" check "$m"
    run "emit c $(basename "$m")" "$SANBPC" "$m" -o "$TMP/net.c"
done

echo "== CUDA: every model through NVRTC to PTX, then ptxas for sm_90"
run "cuda compile" env BPC="$BPC" OUT="$TMP/cuda" sh tests/cuda_compile.sh
run "cuda compile, feedback pathways" env BPC="$BPC" OUT="$TMP/cuda-fb" \
    MODELS="$(ls docs/results/feedback/*.bp) tests/golden/ok_feedback.bp" sh tests/cuda_compile.sh

echo "== PyTorch oracle: one training step against torch"
for t in tests/oracle/test_*.sh; do
    [ -f "$t" ] || continue
    run "oracle $(basename "$t" .sh)" env BPC="$BPC" BUILD="$BUILD" DATA="$DATA" sh "$t"
done

echo "== shell tests"
for t in tests/cli/test_*.sh; do
    [ -f "$t" ] || continue
    run "$(basename "$t" .sh)" env BPC="$BPC" SANBPC="$SANBPC" BUILD="$BUILD" DATA="$DATA" sh "$t"
done

echo "== fuzzing the .bp front end and the data readers, ${FUZZ_SECONDS}s each"
mkdir -p "$TMP/corpus"
cp models/*.bp tests/golden/*.bp "$TMP/corpus/" 2>/dev/null
run "fuzz frontend" "$BUILD/fuzz_frontend" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 "$TMP/corpus"
for f in idx cifar jpeg_cache; do
    mkdir -p "$TMP/corpus-$f"
    cp tests/fuzz/seeds/$f/* "$TMP/corpus-$f/"
    run "fuzz $f" "$BUILD/fuzz_$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 "$TMP/corpus-$f"
done

echo "== reliability: SIGKILL + resume (10 kills here; make torture does 50), unit tests under valgrind"
run "torture: 10 SIGKILLs, resumed = uninterrupted" /usr/bin/python3 tests/torture.py --bpc "$BPC" --kills 10 --epochs 10
# the quick programs here; `make valgrind` runs every one (those that train take long)
run "valgrind: the front end, data readers, Philox, protocol, UTF-8" env BUILD="$BUILD" \
    TESTS="test_frontend test_data test_datasets test_philox test_protocol test_utf8" sh tests/valgrind.sh

echo "== end to end: mnist_conv, 1 epoch on the real MNIST (CPU target)"
run "train mnist_conv 1 epoch" sh tests/e2e_mnist.sh "$BPC" "$DATA"

echo
# A check skipped for want of a file or package is a missing install step in CI.
if [ "$skipped" -gt 0 ] && [ "${CI:-}" = true ]; then
    fail=$((fail + skipped)); failed="$failed (skipped checks count as failed in CI)"
fi
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
