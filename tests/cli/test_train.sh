#!/bin/sh
# test_train.sh: the training protocol, run folders, checkpoints, resume, signals and
# `bpc eval`, end to end on the real MNIST (CPU target), on a small model with every
# kind of parameter (conv, batch norm after conv and after dense, loccon, a dense layer
# after a spatial one) so that each run takes seconds.
#
#  - A run folder holds the source, the command, metrics.jsonl, summary.json, best and
#    last; the tested epoch is the first epoch of the highest validation accuracy, and
#    its test accuracy is what `bpc eval` gives for best.safetensors.
#  - The checkpoint loads into the PyTorch twin (torch_ckpt.py, load_state_dict strict)
#    and the twin predicts what `bpc eval` predicts.
#  - --val: the default 10% hold-out, a count, the test split (flag and `val test;`).
#  - Early stopping ends a run (and a resumed early-stopped run trains no more).
#  - eval against a checkpoint of another model, of another source, truncated, with a
#    broken header: each its exact message and exit status.
#  - Resume: killed with SIGKILL mid-epoch, and interrupted by SIGINT (exit 130, last
#    written mid-epoch), each resumed run is identical to an uninterrupted one
#    (same_run.py: tensors byte for byte, metrics, summary). SIGTERM exits 143.
#  - A NaN loss (a planted huge learning rate at a resume) stops with the epoch and step
#    and leaves the last good checkpoint untouched.
# Env: BPC, DATA (data root holding mnist/), PYTHON (default /usr/bin/python3).
set -u
TEST=train
. "$(dirname "$0")/lib.sh"
PY=${PYTHON:-/usr/bin/python3}
HERE=$(dirname "$0")

cat > "$T/ck.bp" <<'EOF'
# ck.bp: a small model with every kind of parameter, for checkpoint tests
model ck {
  input     28 x 28 x 1;
  conv      4 size 3 stride 2 pad same relu;
  batchnorm;
  loccon    3 size 3 stride 2 relu;
  maxpool   size 2;
  dropout   0.2;
  dense     16 relu;
  batchnorm;
  output    10 brainprop;
}
train { data mnist; batch 32; sgd lr 1; init normal 0.1; }
EOF
sed 's/dense     16 relu/dense     17 relu/' "$T/ck.bp" > "$T/wide.bp"
{ cat "$T/ck.bp"; echo "# an edited comment"; } > "$T/edited.bp"
sed 's/init normal 0.1;/init normal 0.1; val test;/' "$T/ck.bp" > "$T/valtest.bp"
sed 's/init normal 0.1;/init normal 0.1; early_stop patience 1 min_delta 0.5;/' "$T/ck.bp" > "$T/early.bp"

SMALL="--limit 6000 --val 500 --test-limit 500"
TRAIN="$BPC train $T/ck.bp --data $DATA --target cpu"

# ---- a run folder ------------------------------------------------------------------------
if $TRAIN --epochs 3 $SMALL --out "$T/a" > "$T/a.log" 2>&1; then ok "train with --out"; else bad "train with --out" "$T/a.log"; fi
for f in model.bp command.txt metrics.jsonl summary.json best.safetensors last.safetensors; do
    [ -s "$T/a/$f" ] || bad "run folder holds $f"
done
cmp -s "$T/a/model.bp" "$T/ck.bp" && ok "model.bp is the source" || bad "model.bp is the source"
grep -q -F -- "--out $T/a" "$T/a/command.txt" && ok "command.txt holds the command" || bad "command.txt" "$T/a/command.txt"
grep -q "^validation: 500 training images held out (the last 500 of 6000)" "$T/a.log" \
    && ok "the summary names the held-out validation split" || bad "validation line" "$T/a.log"
"$PY" - "$T/a" "$T/a.log" <<'EOF' && ok "tested epoch = first best validation epoch" || bad "tested epoch" "$T/a.log"
import json, re, sys
run, log = sys.argv[1:3]
m = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
assert [x["epoch"] for x in m] == [1, 2, 3], m
for x in m:
    assert set(x) == {"epoch", "lr", "train_loss", "train_reward", "train_acc", "val_acc", "test_acc", "best_epoch", "seconds"}, x
best = max(range(3), key=lambda i: (m[i]["val_acc"], -i)) + 1
s = json.load(open(f"{run}/summary.json"))
assert s["best_epoch"] == best and s["tested_epoch"] == best, (s, best)
assert abs(s["test_acc"] - m[best - 1]["test_acc"]) < 1e-9, s
t = open(log).read()
assert re.search(r"^test accuracy [0-9.]+ \(500 images\) with the weights of epoch %d," % best, t, re.M), t
EOF

# ---- eval, and the PyTorch twin ----------------------------------------------------------
if "$BPC" eval "$T/ck.bp" "$T/a" --data "$DATA" --test-limit 500 > "$T/eval.txt" 2>&1 &&
   grep -q "^confusion matrix" "$T/eval.txt" && grep -q "^test accuracy" "$T/eval.txt"; then
    ok "bpc eval RUN_DIR"
else
    bad "bpc eval RUN_DIR" "$T/eval.txt"
fi
"$PY" - "$T/a/summary.json" "$T/eval.txt" <<'EOF' && ok "eval of best = the run's final test accuracy" || bad "eval = summary" "$T/eval.txt"
import json, re, sys
s = json.load(open(sys.argv[1]))
acc = float(re.search(r"^test accuracy ([0-9.]+)", open(sys.argv[2]).read(), re.M).group(1))
assert abs(acc - s["test_acc"]) < 1e-4, (acc, s["test_acc"])
EOF
if "$BPC" eval "$T/ck.bp" "$T/a/best.safetensors" --data "$DATA" --test-limit 500 --json > "$T/eval.json" 2> "$T/err" &&
   "$PY" "$HERE/torch_ckpt.py" "$T/a/best.safetensors" "$DATA/mnist" "$T/eval.json" > "$T/torch.log" 2>&1; then
    ok "PyTorch twin loads the checkpoint and predicts as bpc eval"
else
    cat "$T/err" >> "$T/torch.log"
    bad "PyTorch twin" "$T/torch.log"
fi

# ---- checkpoints that do not fit ----------------------------------------------------------
expect "eval: another model's checkpoint" 1 \
    "bpc: error: $T/a/best.safetensors does not fit $T/wide.bp: 6.weight is [16, 27] in the checkpoint but [17, 27] in the model; 7.weight is [16] in the checkpoint but [17] in the model; 7.bias is [16] in the checkpoint but [17] in the model; 7.running_mean is [16] in the checkpoint but [17] in the model; and 2 more" \
    "$BPC" eval "$T/wide.bp" "$T/a/best.safetensors" --data "$DATA"
expect "eval: another source" 1 \
    "bpc: error: $T/a/best.safetensors was saved from a different source of $T/edited.bp (source_sha256" \
    "$BPC" eval "$T/edited.bp" "$T/a/best.safetensors" --data "$DATA"
size=$(wc -c < "$T/a/best.safetensors")
head -c $((size - 100)) "$T/a/best.safetensors" > "$T/trunc.safetensors"
expect "eval: truncated checkpoint" 2 \
    "bytes); the file is truncated or corrupt" \
    "$BPC" eval "$T/ck.bp" "$T/trunc.safetensors" --data "$DATA"
grep -q -F "bpc: error: $T/trunc.safetensors: tensor " "$T/err" || bad "truncated: names the file and tensor" "$T/err"
cp "$T/a/best.safetensors" "$T/hdr.safetensors"
printf '#' | dd of="$T/hdr.safetensors" bs=1 seek=9 conv=notrunc 2> /dev/null
expect "eval: broken header" 2 \
    "bpc: error: $T/hdr.safetensors: the header is not valid JSON (near byte 2 of" \
    "$BPC" eval "$T/ck.bp" "$T/hdr.safetensors" --data "$DATA"

# ---- validation splits ------------------------------------------------------------------
$TRAIN --epochs 1 --limit 2000 --test-limit 300 > "$T/v1.log" 2>&1
grep -q "^validation: 200 training images held out (the last 200 of 2000)" "$T/v1.log" \
    && ok "default validation: 10% held out" || bad "default validation" "$T/v1.log"
$TRAIN --epochs 1 --limit 2000 --test-limit 300 --val test --out "$T/vt" > "$T/v2.log" 2>&1
grep -q "^validation: the test split (val test, the paper's protocol)" "$T/v2.log" &&
    grep -q "(on the test split, the paper's protocol)" "$T/v2.log" &&
    "$PY" -c 'import json,sys; m=json.loads(open(sys.argv[1]).readline()); assert m["val_acc"] == m["test_acc"]' "$T/vt/metrics.jsonl" \
    && ok "--val test validates on the test split" || bad "--val test" "$T/v2.log"
"$BPC" train "$T/valtest.bp" --data "$DATA" --target cpu --epochs 1 --limit 2000 --test-limit 300 > "$T/v3.log" 2>&1
grep -q "^validation: the test split" "$T/v3.log" && ok "val test; in the train block" || bad "val test; in the model" "$T/v3.log"
expect "--val 1.5" 1 "bpc: error: --val takes 'test', a number of images (5000) or a fraction (0.1), not '1.5'" \
    $TRAIN --val 1.5
expect "eval without a checkpoint" 1 "bpc: error: eval takes a MODEL.bp and a CHECKPOINT" \
    "$BPC" eval "$T/ck.bp"
expect "--val beyond the training images" 1 "cannot hold out 2000 of the 2000 training images" \
    $TRAIN --epochs 1 --limit 2000 --val 2000

# ---- early stopping: no gain of 0.5 in one epoch stops the run after epoch 2 -------------------
"$BPC" train "$T/early.bp" --data "$DATA" --target cpu --epochs 10 $SMALL --out "$T/e" > "$T/e.log" 2>&1
grep -q "^early stop after epoch 2: the validation accuracy has not improved by 0.5 for 1 epochs" "$T/e.log" &&
    [ "$(lines "$T/e/metrics.jsonl")" -eq 2 ] && grep -q '"stopped": "early_stop"' "$T/e/summary.json" \
    && ok "early stopping" || bad "early stopping" "$T/e.log"
"$BPC" train --resume "$T/e" --epochs 20 > "$T/e2.log" 2>&1
[ $? -eq 0 ] && [ "$(lines "$T/e/metrics.jsonl")" -eq 2 ] && grep -q "^test accuracy" "$T/e2.log" \
    && ok "resuming an early-stopped run trains no more" || bad "resume after early stop" "$T/e2.log"

# ---- run folders and resume options --------------------------------------------------------
expect "--out onto a run" 1 "$T/a already holds a run; continue it with --resume $T/a" \
    $TRAIN --epochs 1 $SMALL --out "$T/a"
expect "resume with another seed" 1 \
    "cannot resume $T/a: the run used seed 1, but this command says --seed 2" \
    $TRAIN --resume "$T/a" --seed 2
expect "resume with another --val" 1 \
    "cannot resume $T/a: the run used --val 500, but this command says 600 validation images" \
    $TRAIN --resume "$T/a" --val 600 --epochs 4
expect "resume an edited source" 1 "cannot resume $T/a: it was trained from a different source" \
    "$BPC" train "$T/edited.bp" --resume "$T/a"
if $TRAIN --resume "$T/a" --epochs 4 > "$T/r.log" 2>&1 && [ "$(lines "$T/a/metrics.jsonl")" -eq 4 ] &&
   grep -q "^resuming $T/a at epoch 4, step 0 of" "$T/r.log"; then
    ok "resume a finished run with more --epochs"
else
    bad "resume with more epochs" "$T/r.log"
fi

# ---- a NaN keeps the last good checkpoint ----------------------------------------------------
cp -r "$T/a" "$T/n"
expect "NaN at a resume with a huge lr" 2 "at epoch 5, step" \
    $TRAIN --resume "$T/n" --epochs 5 --lr 1e6
grep -q -F "; the last good checkpoint is $T/n/last.safetensors (epoch 4)" "$T/err" \
    && ok "NaN: names the last good checkpoint" || bad "NaN message" "$T/err"
cmp -s "$T/a/last.safetensors" "$T/n/last.safetensors" && cmp -s "$T/a/best.safetensors" "$T/n/best.safetensors" \
    && ok "NaN: the checkpoints are untouched" || bad "NaN: checkpoints changed"

# ---- kill and resume: bit-identical to an uninterrupted run --------------------------------
BIG="--epochs 3 --limit 60000 --val 1000 --test-limit 500"
if $TRAIN $BIG --out "$T/ref" > "$T/ref.log" 2>&1; then ok "reference run"; else bad "reference run" "$T/ref.log"; fi

$TRAIN $BIG --out "$T/k" > "$T/k.log" 2>&1 &
pid=$!
wait_lines "$T/k/metrics.jsonl" 1
sleep 0.1
kill -KILL $pid 2> /dev/null
wait $pid 2> /dev/null
at=$(lines "$T/k/metrics.jsonl")
echo "     SIGKILL after $at complete epoch(s)"
[ "$at" -lt 3 ] || bad "the SIGKILL came too late to test anything"
# the resumed run needs neither the model nor the options: the run folder has them
if "$BPC" train --resume "$T/k" > "$T/k2.log" 2>&1 && "$PY" "$HERE/same_run.py" "$T/ref" "$T/k" > "$T/same.log" 2>&1; then
    ok "SIGKILL mid-epoch + resume = uninterrupted run"
else
    cat "$T/k2.log" >> "$T/same.log"
    bad "SIGKILL + resume" "$T/same.log"
fi

env --default-signal=INT $TRAIN $BIG --out "$T/i" > "$T/i.log" 2> "$T/i.err" &
pid=$!
wait_lines "$T/i/metrics.jsonl" 1
sleep 0.1
kill -INT $pid
wait $pid
rc=$?
if [ "$rc" -eq 130 ] && grep -q "^bpc: interrupted by SIGINT at epoch 2, step [0-9]* of [0-9]*; saved $T/i/last.safetensors; continue with --resume $T/i" "$T/i.err"; then
    ok "SIGINT: exit 130, last written"
else
    echo "exit $rc" >> "$T/i.err"
    bad "SIGINT" "$T/i.err"
fi
"$PY" -c '
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
m = json.loads(b[8:8 + n])["__metadata__"]
assert m["epoch"] == "1" and int(m["step_in_epoch"]) > 0, m
print("     SIGINT at epoch 2, step", m["step_in_epoch"])' "$T/i/last.safetensors" \
    && ok "SIGINT: last.safetensors is mid-epoch" || bad "SIGINT: mid-epoch checkpoint"
if $TRAIN --resume "$T/i" > "$T/i2.log" 2>&1 && "$PY" "$HERE/same_run.py" "$T/ref" "$T/i" > "$T/same.log" 2>&1; then
    ok "SIGINT mid-epoch + resume = uninterrupted run"
else
    cat "$T/i2.log" >> "$T/same.log"
    bad "SIGINT + resume" "$T/same.log"
fi

$TRAIN $BIG --out "$T/t" > "$T/t.log" 2> "$T/t.err" &
pid=$!
wait_lines "$T/t/metrics.jsonl" 1
kill -TERM $pid
wait $pid
rc=$?
[ "$rc" -eq 143 ] && grep -q "^bpc: interrupted by SIGTERM" "$T/t.err" && [ -s "$T/t/last.safetensors" ] \
    && ok "SIGTERM: exit 143, last written" || { echo "exit $rc" >> "$T/t.err"; bad "SIGTERM" "$T/t.err"; }

# ---- the live progress line ------------------------------------------------------------------
$TRAIN --epochs 1 --limit 2000 --test-limit 300 --progress > "$T/p.log" 2>&1
grep -q "samples/s  loss [0-9.]*  acc [0-9.]*  ETA " "$T/p.log" && grep -q "step [0-9]*/57" "$T/p.log" \
    && ok "--progress: live line with step, samples/s, loss, accuracy, ETA" || bad "progress line" "$T/p.log"

[ "$fails" -eq 0 ] && echo "test_train: all passed" || echo "test_train: $fails failed"
[ "$fails" -eq 0 ]
