#!/bin/sh
# test_feedback.sh: feedback pathways end to end (CPU target, the real MNIST). One step
# of each mode against PyTorch is tests/oracle/test_feedback.sh; here:
#  - tied is today's model: `feedback tied` written out, on the output and on a layer,
#    emits the same C and CUDA, byte for byte, as the model without it, for every
#    model in models/; and a tied run's metrics have no "align" member.
#  - the initial weights do not depend on the feedback mode (the feedback matrices are
#    drawn after them), and random and direct matrices never change in training.
#  - the alignment metrics: every epoch's line has one row per weight layer; the
#    Kolen-Pollack matrix angle falls every epoch, the random one stays near 90
#    degrees, sign's is below 90; the output layer's own update is exact.
#  - checkpoints hold the matrices under PyTorch names and layouts, and a run killed
#    with SIGKILL mid-epoch and resumed is identical to an uninterrupted one.
#  - bpc plot --metric align; a `bpc build` trainer trains as `bpc train` does.
# Env: BPC, BUILD, DATA (data root holding mnist/), PYTHON (default /usr/bin/python3).
set -u
TEST=feedback
. "$(dirname "$0")/lib.sh"
PY=${PYTHON:-/usr/bin/python3}
HERE=$(dirname "$0")
BUILD=${BUILD:-build}

# ---- tied is today's model, byte for byte ------------------------------------------------
same=0 n=0
for m in models/*.bp; do
    for target in c cuda; do
        n=$((n + 1))
        cp "$m" "$T/m.bp"
        "$BPC" "$T/m.bp" --target $target -o "$T/plain.src" > /dev/null 2>&1 || { bad "emit $m"; continue; }
        # the output, and the last dense layer (never the first trainable one)
        last=$(grep -n '^ *dense ' "$m" | tail -n 1 | cut -d: -f1)
        sed -e 's/^\( *output .*\);/\1 feedback tied;/' -e "${last}s/;\$/ feedback tied;/" "$m" > "$T/m.bp"
        grep -q "dense .* feedback tied;" "$T/m.bp" || { bad "$m: no dense layer to mark tied"; continue; }
        "$BPC" "$T/m.bp" --target $target -o "$T/tied.src" > /dev/null 2>&1 || { bad "emit tied $m"; continue; }
        if cmp -s "$T/plain.src" "$T/tied.src"; then same=$((same + 1)); else bad "$m ($target): feedback tied emits other source"; fi
    done
done
[ "$same" -eq "$n" ] && ok "feedback tied emits the same source as no feedback ($n sources)"

# ---- the initial weights, whatever the feedback -------------------------------------------
for fb in tied random direct; do
    sed "s/^\( *output .*\);/\1 feedback $fb;/" models/mnist_dense.bp > "$T/d_$fb.bp"
    "$BUILD/oracle_dump" "$T/d_$fb.bp" brainprop "$DATA" "$T/o_$fb" 1 16 > "$T/o_$fb.log" 2>&1 || bad "oracle_dump $fb" "$T/o_$fb.log"
done
"$PY" - "$T" <<'EOF' && ok "same initial weights for tied, random and direct; fixed matrices unchanged by a step" || bad "initial weights"
import sys
sys.path.insert(0, "tests/cli")
import st_file
t = sys.argv[1]
def tensors(path):
    return {k: v[2] for k, v in st_file.tensors(path)[0].items()}
ref = tensors(f"{t}/o_tied/before.safetensors")
for fb, fbs in (("random", ["L2.feedback", "L3.feedback", "L4.feedback"]),
                ("direct", ["L1.feedback", "L2.feedback", "L3.feedback"])):
    b = tensors(f"{t}/o_{fb}/before.safetensors")
    a = tensors(f"{t}/o_{fb}/after.safetensors")
    for k in ref:
        assert b[k] == ref[k], (fb, k, "initial value differs from tied")
    assert sorted(k for k in b if k.endswith(".feedback")) == fbs, (fb, sorted(b))
    for k in fbs:
        assert a[k] == b[k], (fb, k, "a fixed feedback matrix changed")
        assert b[k] != ref["L1.weight"][:len(b[k])], (fb, k)
EOF

# ---- alignment metrics, checkpoints, resume ---------------------------------------------
cat > "$T/fb.bp" <<'EOF'
# fb.bp: a small model with every feedback pathway but direct
model fb {
  input     28 x 28 x 1;
  conv      4 size 3 stride 2 pad same relu;
  batchnorm;
  conv      6 size 3 stride 2 pad same relu feedback sign;
  loccon    5 size 3 stride 1 relu;
  dense     32 relu feedback random;
  output    10 brainprop;
}
train { data mnist; batch 32; sgd lr 0.5; init normal 0.1; }
EOF
sed 's/output    10 brainprop;/output    10 brainprop feedback kolen_pollack decay 0.01;/' "$T/fb.bp" > "$T/kp.bp"
SMALL="--limit 3000 --val 300 --test-limit 300 --target cpu --data $DATA"
if "$BPC" train "$T/kp.bp" $SMALL --epochs 4 --out "$T/a" > "$T/a.log" 2>&1; then ok "train with mixed feedback"; else bad "train with mixed feedback" "$T/a.log"; fi
grep -q "feedback angles (layer: update/matrix): 1: " "$T/a.log" && ok "the log shows the angles" || bad "angles in the log" "$T/a.log"
"$PY" - "$T/a" <<'EOF' && ok "alignment metrics: Kolen-Pollack aligns, random stays orthogonal, sign below 90" || bad "alignment metrics" "$T/a/metrics.jsonl"
import json, sys
m = [json.loads(l) for l in open(f"{sys.argv[1]}/metrics.jsonl")]
assert len(m) == 4, m
modes = {1: "kolen_pollack", 3: "sign", 4: "kolen_pollack", 5: "random", 6: "kolen_pollack"}
for e in m:
    rows = {r["layer"]: r for r in e["align"]}
    assert sorted(rows) == [1, 3, 4, 5, 6], rows
    for k, r in rows.items():
        assert r["feedback"] == modes[k], r
        assert 0 <= r["update_angle"] <= 180, r
    assert rows[1]["weight_angle"] is None, rows[1]     # the first layer: no feedback crosses it
    assert rows[6]["update_angle"] < 0.5, rows[6]        # the output's own update is exact
    assert 80 < rows[5]["weight_angle"] < 100, rows[5]   # random: about orthogonal
    assert rows[3]["weight_angle"] < 60, rows[3]         # sign: well inside 90
# Kolen-Pollack shrinks B - W^T by (1 - lr decay) every step, but W's own norm moves
# too: the angle falls by a wide margin, and once small it may stall (here on an Intel
# CPU the output's went 74.8, 58.2, 41.75, 42.02), so no epoch may raise it by 1 degree
for k in (4, 6):
    a = [next(r for r in e["align"] if r["layer"] == k)["weight_angle"] for e in m]
    assert a[1] < a[0] and all(y < x + 1 for x, y in zip(a, a[1:])) and a[-1] < a[0] - 15, (k, a)
print("kolen_pollack angles fall; random and sign as expected")
EOF
"$BPC" train "$T/fb.bp" $SMALL --epochs 1 --out "$T/t" > "$T/t.log" 2>&1 || bad "a tied output with untied layers trains" "$T/t.log"
"$PY" -c 'import json,sys; assert "align" in json.loads(open(sys.argv[1]).readline())' "$T/t/metrics.jsonl" &&
    ok "a tied output with untied layers keeps the align rows" || bad "align rows" "$T/t/metrics.jsonl"
sed -e 's/ feedback sign;/;/' -e 's/ feedback random;/;/' "$T/fb.bp" > "$T/tied.bp"
"$BPC" train "$T/tied.bp" $SMALL --epochs 1 --out "$T/tt" > "$T/tt.log" 2>&1 || bad "tied run" "$T/tt.log"
"$PY" -c 'import json,sys; assert "align" not in json.loads(open(sys.argv[1]).readline())' "$T/tt/metrics.jsonl" &&
    ok "a tied run's metrics have no align member" || bad "tied metrics" "$T/tt/metrics.jsonl"
"$PY" - "$T/a/last.safetensors" <<'EOF' && ok "checkpoint: the feedback matrices under PyTorch names and layouts" || bad "checkpoint names"
import sys
sys.path.insert(0, "tests/cli")
import st_file
h, _, _ = st_file.read(sys.argv[1])
want = {"4.feedback": [25, 5, 6, 3, 3], "4.weight": [25, 5, 6, 3, 3], "5.feedback": [32, 125],
        "6.feedback": [10, 32], "3.weight": [6, 4, 3, 3]}
for k, s in want.items():
    assert h[k]["shape"] == s, (k, h[k]["shape"], s)
assert "3.feedback" not in h and "1.feedback" not in h, sorted(h)
EOF
if "$BPC" eval "$T/kp.bp" "$T/a" --data "$DATA" --test-limit 300 > "$T/eval.txt" 2>&1; then ok "bpc eval of a run with feedback matrices"; else bad "eval" "$T/eval.txt"; fi

# bpc plot --metric align: the two curves of each layer that has them
if BPC_GNUPLOT=none "$BPC" plot "$T/a" --metric align -o "$T/al.svg" > "$T/plot.log" 2>&1 &&
   grep -q "fb BrainProp L4 update" "$T/al.svg" && grep -q "fb BrainProp L4 matrix" "$T/al.svg" &&
   ! grep -q "fb BrainProp L1 matrix" "$T/al.svg"; then
    ok "bpc plot --metric align"
else
    bad "plot --metric align" "$T/plot.log"
fi
expect "plot --metric align of a tied run" 1 "has no alignment metrics: every feedback of its model is tied" \
    "$BPC" plot "$T/tt" --metric align -o "$T/x.svg"

# a standalone trainer holds the tied twin's kernels too, and trains to the same numbers
if "$BPC" build "$T/kp.bp" -o "$T/trainer" > "$T/build.log" 2>&1 &&
   "$T/trainer" $SMALL --epochs 2 --out "$T/b" > "$T/b.log" 2>&1 &&
   "$BPC" train "$T/kp.bp" $SMALL --epochs 2 --out "$T/c" > "$T/c.log" 2>&1 &&
   "$PY" "$HERE/same_run.py" "$T/b" "$T/c" > "$T/same_b.log" 2>&1; then
    ok "bpc build: a trainer with feedback pathways = bpc train"
else
    cat "$T/build.log" "$T/b.log" "$T/c.log" >> "$T/same_b.log" 2> /dev/null
    bad "bpc build with feedback pathways" "$T/same_b.log"
fi

# kill -9 mid-epoch and resume: the same run, feedback matrices and angles included
BIG="--epochs 3 --limit 20000 --val 500 --test-limit 300 --target cpu --data $DATA"
"$BPC" train "$T/kp.bp" $BIG --out "$T/ref" > "$T/ref.log" 2>&1 || bad "reference run" "$T/ref.log"
"$BPC" train "$T/kp.bp" $BIG --out "$T/k" > "$T/k.log" 2>&1 &
pid=$!
wait_lines "$T/k/metrics.jsonl" 1
sleep 0.2
kill -KILL $pid 2> /dev/null
wait $pid 2> /dev/null
at=$(lines "$T/k/metrics.jsonl")
[ "$at" -lt 3 ] || bad "the SIGKILL came after the last epoch: nothing was resumed"
if "$BPC" train --resume "$T/k" > "$T/k2.log" 2>&1 && "$PY" "$HERE/same_run.py" "$T/ref" "$T/k" > "$T/same.log" 2>&1; then
    ok "SIGKILL + resume = uninterrupted run, with learned feedback"
else
    cat "$T/k2.log" >> "$T/same.log"
    bad "SIGKILL + resume with feedback" "$T/same.log"
fi
[ "$fails" -eq 0 ]
