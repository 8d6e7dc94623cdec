#!/bin/sh
# test_precision.sh: the GEMM precision modes end to end on the CPU target (the unit
# test test_precision.c checks the rounding and the GEMMs themselves):
#  - `precision tf32;` in the train block and `--precision tf32` train the same run;
#  - TF32 changes the weights, 3xTF32 stays far closer to float32 than TF32 does;
#  - the checkpoint records the mode; a resume keeps it (bit-identical to a run that
#    was never stopped) and refuses another one;
#  - bad words are refused with the list, in the language and on the command line.
# Env: BPC, PYTHON (default /usr/bin/python3).
set -u
TEST=precision
. tests/cli/lib.sh
PY=${PYTHON:-/usr/bin/python3}
HERE=tests/cli
export OMP_NUM_THREADS=1
RUN="--data synthetic --limit 2000 --val 400 --test-limit 400 --no-progress --rule ebp"
sed 's/^train {/train {\n  precision   tf32;/' models/mnist_dense.bp > "$T/tf32.bp"
grep -q "precision   tf32;" "$T/tf32.bp" || bad "could not write the tf32 model"

# one SGD step in each mode (128 training images, the rest held out)
ONE="--data synthetic --limit 528 --val 400 --test-limit 100 --no-progress --rule ebp --epochs 1"
for p in ieee tf32 3xtf32; do
    "$BPC" train models/mnist_dense.bp $ONE --precision $p --out "$T/$p" > "$T/$p.log" 2>&1 ||
        bad "train --precision $p" "$T/$p.log"
done
"$BPC" train models/mnist_dense.bp $RUN --epochs 2 --precision tf32 --out "$T/tf32x2" > "$T/log" 2>&1 ||
    bad "train --precision tf32, 2 epochs" "$T/log"
"$BPC" train "$T/tf32.bp" $RUN --epochs 2 --out "$T/block" > "$T/block.log" 2>&1 || bad "train with precision tf32;" "$T/block.log"
grep -q "^precision: GEMMs in tf32" "$T/block.log" && ok "the log names the mode" || bad "the log names the mode" "$T/block.log"

# max |W - W_ieee| over every tensor of last.safetensors, for one run folder
cat > "$T/diff.py" <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[1])
import st_file
def tensors(p):
    t, meta = st_file.tensors(p)
    return {k: st_file.floats(v[2]) for k, v in t.items()}, meta
a, _ = tensors(sys.argv[2] + "/last.safetensors")
b, meta = tensors(sys.argv[3] + "/last.safetensors")
print("%.3e %s" % (max(max(abs(x - y) for x, y in zip(a[k], b[k])) for k in a), meta.get("precision")))
PYEOF
set -- $("$PY" "$T/diff.py" "$HERE" "$T/ieee" "$T/tf32"); d_tf32=$1 m_tf32=$2
set -- $("$PY" "$T/diff.py" "$HERE" "$T/ieee" "$T/3xtf32"); d_3x=$1 m_3x=$2
echo "     max |W - W_ieee| after one step: tf32 $d_tf32, 3xtf32 $d_3x"
"$PY" -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if a > 0 and b < a / 50 else 1)" "$d_tf32" "$d_3x" &&
    ok "tf32 moves the weights; 3xtf32 stays 50x closer to float32" || bad "tf32 $d_tf32, 3xtf32 $d_3x"
[ "$m_tf32" = tf32 ] && [ "$m_3x" = 3xtf32 ] && ok "the checkpoints record the mode" || bad "metadata: $m_tf32 $m_3x"
# the same weights, bit for bit (the sources differ, so same_run.py's hash check would not apply)
set -- $("$PY" "$T/diff.py" "$HERE" "$T/tf32x2" "$T/block")
[ "$1" = "0.000e+00" ] && ok "precision tf32; = --precision tf32" || bad "precision tf32; vs --precision tf32: $1"

# resume: the run's mode is kept, another is refused
"$BPC" train models/mnist_dense.bp $RUN --epochs 3 --precision tf32 --out "$T/ref3" > "$T/log" 2>&1 || bad "3 epochs" "$T/log"
cp -r "$T/tf32x2" "$T/res"
expect "resume with another precision" 1 "precision tf32" "$BPC" train --resume "$T/res" --epochs 3 --precision ieee
"$BPC" train --resume "$T/res" --epochs 3 > "$T/log" 2>&1 || bad "resume" "$T/log"
if "$PY" "$HERE/same_run.py" "$T/ref3" "$T/res" > "$T/same.log" 2>&1; then ok "a resumed tf32 run = an uninterrupted one"
else bad "a resumed tf32 run = an uninterrupted one" "$T/same.log"; fi
"$BPC" eval models/mnist_dense.bp "$T/tf32x2" --data synthetic --test-limit 200 --precision tf32 > "$T/log" 2>&1 &&
    ok "eval --precision tf32" || bad "eval --precision tf32" "$T/log"

expect "--precision fp16" 1 "--precision is ieee, tf32 or 3xtf32, not 'fp16'" \
    "$BPC" train models/mnist_dense.bp $RUN --epochs 1 --precision fp16
sed 's/tf32;/tf23;/' "$T/tf32.bp" > "$T/bad.bp"
expect "precision tf23; in the train block" 1 "error: precision is ieee, tf32 or 3xtf32, not 'tf23'" "$BPC" check "$T/bad.bp"
grep -q "hint: did you mean 'tf32'?" "$T/err" && ok "with a suggestion" || bad "no suggestion" "$T/err"
[ "$fails" -eq 0 ]
