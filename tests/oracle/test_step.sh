#!/bin/sh
# tests/oracle/test_step.sh: one bpc training step against PyTorch, for mnist_dense and
# mnist_conv under both rules (BrainProp and EBP), on the CPU target.
#
# For each pair, $BUILD/oracle_dump runs the step on the first 32 MNIST training images
# and dumps every tensor before and after it; tests/oracle/torch_step.py replays the
# step in float64 PyTorch and compares weights, batch-norm state and loss (1e-5
# relative; updates 1e-4 relative). Environment: BUILD (default build), DATA (the data
# root that holds mnist/), PYTHON (default /usr/bin/python3: Debian's python3-torch).
# Exits non-zero when any pair fails or cannot run.
BUILD=${BUILD:-build}
DATA=${DATA:-$HOME/.cache/bpc/data}
PYTHON=${PYTHON:-/usr/bin/python3}
HERE=$(dirname "$0")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bpc-oracle.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM

if [ ! -x "$BUILD/oracle_dump" ]; then
    echo "test_step: $BUILD/oracle_dump is missing; run make $BUILD/oracle_dump" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
    echo "test_step: $PYTHON cannot import torch and numpy (Debian: apt-get install python3-torch)" >&2
    exit 1
fi

fail=0
# MODEL:DATA:BATCH — the MNIST nets on the real images; the rest, whose data sets are
# not available offline, on synthetic images (the step's arithmetic is the same).
n=0
for spec in mnist_dense:$DATA:32 mnist_conv:$DATA:32 mnist_loccon:$DATA:8 \
            cifar10_conv:synthetic:16 cifar100_loccon:synthetic:4 cifar10_deep:synthetic:8; do
    model=${spec%%:*}; rest=${spec#*:}; data=${rest%:*}; batch=${rest##*:}
    for rule in brainprop ebp; do
        n=$((n + 1))
        out="$TMP/$model-$rule"
        echo "== $model, $rule"
        if ! "$BUILD/oracle_dump" "models/$model.bp" "$rule" "$data" "$out" 1 "$batch"; then
            echo "FAIL $model $rule: oracle_dump failed"
            fail=$((fail + 1))
            continue
        fi
        if "$PYTHON" "$HERE/torch_step.py" "$out"; then
            echo "ok   $model $rule"
        else
            echo "FAIL $model $rule: bpc and PyTorch disagree"
            fail=$((fail + 1))
        fi
    done
done
[ "$fail" -eq 0 ] && echo "test_step: all $n steps agree with PyTorch" || echo "test_step: $fail of $n failed"
[ "$fail" -eq 0 ]
