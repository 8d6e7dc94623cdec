# tests/oracle/lib.sh: what the oracle tests share, sourced with TEST set to the
# script's name. Environment: BUILD (default build), DATA (the data root that holds
# mnist/), PYTHON (default /usr/bin/python3: Debian's python3-torch).
# step NAME MODEL.bp RULE DATA BATCH runs $BUILD/oracle_dump on the model's first batch
# (every tensor before and after one step, into $TMP/NAME) and tests/oracle/torch_step.py
# on the dump (the float64 PyTorch twin), printing ok or FAIL with the logs and counting
# n and fail; finish prints the summary and exits non-zero when any step failed.
BUILD=${BUILD:-build}
DATA=${DATA:-$HOME/.cache/bpc/data}
PYTHON=${PYTHON:-/usr/bin/python3}
HERE=$(dirname "$0")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bpc-$TEST.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM

[ -x "$BUILD/oracle_dump" ] || { echo "$TEST: $BUILD/oracle_dump is missing; run make $BUILD/oracle_dump" >&2; exit 1; }
"$PYTHON" -c 'import torch, numpy' 2>/dev/null ||
    { echo "$TEST: $PYTHON cannot import torch and numpy (Debian: apt-get install python3-torch)" >&2; exit 1; }

fail=0
n=0
step() {
    n=$((n + 1))
    if ! "$BUILD/oracle_dump" "$2" "$3" "$4" "$TMP/$1" 1 "$5" > "$TMP/$1.log" 2>&1; then
        cat "$TMP/$1.log"
        echo "FAIL $1: oracle_dump failed"
        fail=$((fail + 1))
    elif "$PYTHON" "$HERE/torch_step.py" "$TMP/$1" > "$TMP/$1.log" 2>&1; then
        echo "ok   $1"
    else
        cat "$TMP/$1.log"
        echo "FAIL $1: bpc and PyTorch disagree"
        fail=$((fail + 1))
    fi
}

finish() {
    [ "$fail" -eq 0 ] && echo "$TEST: all $n steps agree with PyTorch" || echo "$TEST: $fail of $n failed"
    [ "$fail" -eq 0 ]
}
