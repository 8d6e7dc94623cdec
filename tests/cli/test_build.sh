#!/bin/sh
# test_build.sh: standalone trainers (`bpc build`), end to end on the real MNIST.
#
#  - A CPU trainer for models/mnist_dense.bp is built, then run for one epoch on a
#    subset with no compiler (CC=/nonexistent, PATH=/nonexistent) and an empty cache:
#    it ends with the "test accuracy" line, gives the same numbers as `bpc train` with
#    the same options and seed (the per-epoch line without its seconds, and the test
#    accuracy line without the timing), under both rules, and writes nothing into the
#    cache (no kernel was compiled).
#  - Its run folder resumes, and `bpc eval` reads its checkpoint (same source hash).
#  - It refuses a MODEL.bp argument, another target, and a run of another model.
#  - The CUDA trainer builds and links; without a GPU it says "CUDA target unavailable"
#    (with one, it trains).
#  - Interrupted while compiling, bpc build exits 130 and leaves no trainer, no
#    temporary file and no compiler process.
# Env: BPC, DATA (data root holding mnist/).
set -u
BPC=${BPC:-build/bpc}
DATA=${DATA:-$HOME/.cache/bpc/data}
TEST=build
. "$(dirname "$0")/lib.sh"

# numbers LOG: the epoch lines without their seconds and the test accuracy line
# without the timing: what must be equal between two runs.
numbers() {
    sed -n -e 's/^\(epoch .*test-acc [0-9.]*\) .*/\1/p' \
           -e 's/^\(test accuracy .*\); [0-9]* epochs*, .*/\1/p' "$1"
}

OPTS="--data $DATA --epochs 1 --limit 2000 --test-limit 500 --no-progress"

# ---- the CPU trainer -------------------------------------------------------------------
if "$BPC" build models/mnist_dense.bp -o "$T/trainer" > "$T/log" 2>&1 && [ -x "$T/trainer" ]; then
    ok "build cpu trainer"
else
    bad "build cpu trainer" "$T/log"
fi
mkdir -p "$T/cache"
nocc() { env CC=/nonexistent PATH=/nonexistent XDG_CACHE_HOME="$T/cache" "$@"; }

for rule in brainprop ebp; do
    # shellcheck disable=SC2086
    if nocc "$T/trainer" $OPTS --rule $rule --out "$T/run-$rule" > "$T/t-$rule.log" 2> "$T/t-$rule.err"; then
        ok "trainer runs without a compiler ($rule)"
    else
        cat "$T/t-$rule.err" >> "$T/t-$rule.log"
        bad "trainer runs without a compiler ($rule)" "$T/t-$rule.log"
    fi
    if tail -n 1 "$T/t-$rule.log" | grep -q '^test accuracy [0-9.]* (500 images) with the weights of epoch 1'; then
        ok "trainer's final line ($rule)"
    else
        bad "trainer's final line ($rule)" "$T/t-$rule.log"
    fi
    # shellcheck disable=SC2086
    "$BPC" train models/mnist_dense.bp $OPTS --rule $rule > "$T/b-$rule.log" 2>&1
    numbers "$T/t-$rule.log" > "$T/t-$rule.num"
    numbers "$T/b-$rule.log" > "$T/b-$rule.num"
    if [ "$(wc -l < "$T/b-$rule.num")" -eq 2 ] && diff -u "$T/b-$rule.num" "$T/t-$rule.num" > "$T/diff" 2>&1; then
        ok "trainer's results equal bpc train's ($rule)"
    else
        cat "$T/b-$rule.log" >> "$T/diff"
        bad "trainer's results equal bpc train's ($rule)" "$T/diff"
    fi
done
if [ -z "$(ls -A "$T/cache")" ]; then ok "nothing compiled into the cache"; else ls -R "$T/cache" > "$T/ls"; bad "nothing compiled into the cache" "$T/ls"; fi

# the run folder: the model's own source, a resume, and bpc eval on its checkpoint
if cmp -s models/mnist_dense.bp "$T/run-ebp/model.bp"; then ok "run folder holds the model source"; else bad "run folder holds the model source"; fi
if nocc "$T/trainer" --data "$DATA" --resume "$T/run-ebp" --epochs 2 --no-progress > "$T/r.log" 2>&1 &&
   grep -q '^epoch   2/2 ' "$T/r.log"; then ok "trainer resumes its run"; else bad "trainer resumes its run" "$T/r.log"; fi
if "$BPC" eval models/mnist_dense.bp "$T/run-ebp" --data "$DATA" --test-limit 500 > "$T/e.log" 2>&1; then
    ok "bpc eval reads the trainer's checkpoint"
else
    bad "bpc eval reads the trainer's checkpoint" "$T/e.log"
fi

expect "trainer takes no MODEL.bp" 1 "it takes no 'models/mnist_conv.bp'" "$T/trainer" models/mnist_conv.bp
expect "trainer refuses what bpc train does not take" 1 "--arch does not apply to \`trainer\`" "$T/trainer" --arch sm_90
expect "trainer refuses another target" 1 "this trainer was built for --target cpu" "$T/trainer" --target cuda
mkdir -p "$T/other"
cp models/mnist_conv.bp "$T/other/model.bp"
expect "trainer refuses another model's run" 1 "was trained from another source than this trainer's" \
    "$T/trainer" --resume "$T/other" --data "$DATA"
expect "build: unknown target" 1 "--target for build is cpu or cuda, not 'tpu'" \
    "$BPC" build models/mnist_dense.bp -o "$T/x" --target tpu
printf 'model bad {\n  input 28 x 28 x 1;\n  dense;\n}\n' > "$T/bad.bp"
expect "build: a model with errors" 1 "bad.bp:3:" "$BPC" build "$T/bad.bp" -o "$T/x"
[ -e "$T/x" ] && bad "build: no trainer for a model with errors"

# ---- the CUDA trainer: links here; runs only with a GPU ---------------------------------
if "$BPC" build models/mnist_dense.bp -o "$T/cuda-trainer" --target cuda > "$T/log" 2>&1 && [ -x "$T/cuda-trainer" ]; then
    ok "build cuda trainer (links)"
else
    bad "build cuda trainer (links)" "$T/log"
fi
# shellcheck disable=SC2086
nocc "$T/cuda-trainer" $OPTS > "$T/c.log" 2> "$T/c.err"
rc=$?
if [ "$rc" -eq 0 ] && tail -n 1 "$T/c.log" | grep -q '^test accuracy'; then
    ok "cuda trainer trains (a GPU is here)"
elif [ "$rc" -eq 2 ] && grep -q "CUDA target unavailable" "$T/c.err"; then
    ok "cuda trainer: CUDA target unavailable (no GPU here)"
else
    cat "$T/c.err" >> "$T/c.log"
    bad "cuda trainer: exit $rc" "$T/c.log"
fi

# ---- interrupted while compiling: the compiler and its helpers go, and nothing stays ------
# (a private TMPDIR, so that any leftover of bpc, gcc, cc1 or as would be seen)
mkdir -p "$T/tmpdir"
TMPDIR=$T/tmpdir "$BPC" build models/cifar10_deep.bp -o "$T/deep-trainer" > "$T/i.log" 2>&1 &
pid=$!
i=0; while [ -z "$(ls "$T/tmpdir")" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
kill -INT "$pid"; wait "$pid"; rc=$?
sleep 0.5
if [ "$rc" -eq 130 ] && grep -q "interrupted (SIGINT); no trainer was written" "$T/i.log" &&
   [ -z "$(ls -A "$T/tmpdir")" ] && [ ! -e "$T/deep-trainer" ] &&
   ! grep -qs "$T/tmpdi[r]" /proc/[0-9]*/cmdline; then  # [r]: not this grep itself
    ok "bpc build interrupted: exit 130, no trainer, no temporary file, no compiler left"
else
    ls -lA "$T/tmpdir" >> "$T/i.log"
    bad "bpc build interrupted (exit $rc)" "$T/i.log"
fi

[ "$fails" -eq 0 ]
