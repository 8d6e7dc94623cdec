#!/bin/sh
# test_repro.sh: `bpc repro`, end to end on the real MNIST (CPU target), on a grid small
# enough to take seconds: mnist_dense x (BrainProp, EBP) x seeds 1 and 2, one epoch on
# 1000 images. Checks:
#  - one run folder per cell, each a complete `bpc train --out` folder;
#  - results.md: a row per (model, rule) with the test accuracy and the epochs to the
#    best validation accuracy as mean (std) over the two seeds, seconds per epoch, each
#    run, the machine, the date and the exact command; the per-model plot is valid SVG;
#  - the same command again skips every finished cell (no training: the summaries are
#    untouched) and rewrites the table;
#  - a cell without summary.json but with last.safetensors is resumed, not restarted;
#  - a cell whose lock another process holds is skipped (and `train --resume` refuses
#    it), and taken up by the same command once it is free;
#  - a finished cell trained with other options, and bad arguments, are refused.
# Env: BPC, DATA (data root holding mnist/), PYTHON (default /usr/bin/python3).
set -u
TEST=repro
. "$(dirname "$0")/lib.sh"
PY=${PYTHON:-/usr/bin/python3}

G=$T/grid
CELLS="mnist_dense-brainprop-seed1 mnist_dense-brainprop-seed2 mnist_dense-ebp-seed1 mnist_dense-ebp-seed2"
repro() {
    BPC_GNUPLOT=none "$BPC" repro --models mnist_dense --rules brainprop,ebp --seeds 1,2 --out "$G" \
        --data "$DATA" --target cpu --epochs 1 --limit 1000 --test-limit 200 --no-progress "$@"
}

# ---- the grid -----------------------------------------------------------------------------
if repro > "$T/r1.log" 2>&1; then ok "repro runs the grid"; else bad "repro runs the grid" "$T/r1.log"; fi
n=0
for c in $CELLS; do
    for f in model.bp command.txt metrics.jsonl summary.json best.safetensors last.safetensors; do
        [ -s "$G/$c/$f" ] || { bad "$c holds $f"; n=1; }
    done
done
[ $n -eq 0 ] && ok "one complete run folder per (model, rule, seed)"
"$PY" - "$G" <<'EOF' > "$T/md.log" 2>&1 && ok "results.md: mean (std) per (model, rule), each run, machine, date, command" || bad "results.md" "$T/md.log"
import json, re, statistics, sys, xml.dom.minidom
g = sys.argv[1]
md = open(f"{g}/results.md").read()
for rule, name in (("brainprop", "BrainProp"), ("ebp", "EBP")):
    m = re.search(r"^\| mnist_dense \| %s \| 2 of 2 \| ([0-9.]+) \(([0-9.]+)\) \| ([0-9.]+) \(([0-9.]+)\) \|"
                  r" [0-9.]+ \([0-9.]+\) \| ([0-9.]+) \|" % name, md, re.M)
    assert m, f"no row for {name} in\n{md}"
    s = [json.load(open(f"{g}/mnist_dense-{rule}-seed{k}/summary.json")) for k in (1, 2)]
    acc = [100 * x["test_acc"] for x in s]
    assert abs(float(m.group(1)) - statistics.mean(acc)) < 0.006, (m.group(1), acc)
    assert abs(float(m.group(2)) - statistics.stdev(acc)) < 0.006, (m.group(2), acc)
    assert float(m.group(3)) == 1.0 and float(m.group(4)) == 0.0, m.group(0)  # one epoch
    for k in (1, 2):
        assert re.search(r"^\| mnist_dense-%s-seed%d \| %d \| [0-9.]+ \| 1 \| 1 \|" % (rule, k, k), md, re.M), md
assert re.search(r"^- Machine: .+, \d+ cores online, [0-9.]+ GiB memory", md, re.M), md
assert re.search(r"^- Date: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", md, re.M), md
assert "bpc repro --models mnist_dense --rules brainprop,ebp --seeds 1,2 --out " in md, md
assert "200 mnist test images" in md, md
assert "(plot-mnist_dense.svg)" in md, md
d = xml.dom.minidom.parse(f"{g}/plot-mnist_dense.svg")
assert len(d.getElementsByTagName("polyline")) == 4
EOF
grep -q -F "bpc repro --models mnist_dense" "$G/mnist_dense-ebp-seed2/command.txt" \
    && ok "each run's command.txt holds the repro command" || bad "command.txt" "$G/mnist_dense-ebp-seed2/command.txt"

# ---- the same command again: nothing retrained --------------------------------------------
stamps() { for c in $CELLS; do stat -c '%y' "$G/$c/summary.json" "$G/$c/last.safetensors"; done; }
stamps > "$T/before"
if repro > "$T/r2.log" 2>&1; then ok "the same command again"; else bad "the same command again" "$T/r2.log"; fi
stamps > "$T/after"
if cmp -s "$T/before" "$T/after" && [ "$(grep -c ': done (test accuracy .*); skipped$' "$T/r2.log")" -eq 4 ] &&
   ! grep -q "^bpc: training" "$T/r2.log"; then
    ok "finished cells are skipped (summaries and checkpoints untouched)"
else
    diff "$T/before" "$T/after" >> "$T/r2.log"
    bad "finished cells are skipped" "$T/r2.log"
fi
grep -q "^| mnist_dense | EBP | 2 of 2 |" "$G/results.md" && ok "results.md rewritten from the summaries" || bad "results.md rewritten" "$G/results.md"

# ---- a cell stopped before its summary is resumed ------------------------------------------
cp "$G/mnist_dense-ebp-seed2/summary.json" "$T/summary.json"
rm "$G/mnist_dense-ebp-seed2/summary.json"
if repro > "$T/r3.log" 2>&1 && grep -q "ebp seed 2: resuming " "$T/r3.log" &&
   [ "$(grep -c "skipped$" "$T/r3.log")" -eq 3 ] &&
   "$PY" -c 'import json,sys; a, b = (json.load(open(p)) for p in sys.argv[1:]); a.pop("seconds_per_epoch"); b.pop("seconds_per_epoch"); assert a == b, (a, b)' \
       "$T/summary.json" "$G/mnist_dense-ebp-seed2/summary.json" >> "$T/r3.log" 2>&1; then
    ok "a cell with last.safetensors but no summary is resumed to the same result"
else
    bad "resume a cell" "$T/r3.log"
fi

# ---- a run folder in use by another process --------------------------------------------------
# A shell holds the cell's lock (flock(1) on its fd 9, then it becomes `sleep`), as a
# second bpc would: repro skips the cell, and train
# refuses it; once the holder is gone the same command takes it up.
C2=$G/mnist_dense-ebp-seed2
rm "$C2/summary.json"
sh -c 'exec 9> "$1" && flock 9 && exec sleep 120' sh "$C2/lock" & holder=$!
i=0; while flock -n "$C2/lock" true 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if repro > "$T/r4.log" 2>&1 && grep -q "ebp seed 2: being trained by another process; skipped" "$T/r4.log" &&
   grep -q "3 of 4 runs done (some are being trained by another process" "$T/r4.log" &&
   grep -q "^| mnist_dense-ebp-seed2 | 2 | pending |" "$G/results.md"; then
    ok "repro skips a cell that another process is training (several workers share a grid)"
else
    bad "repro skips a busy cell" "$T/r4.log"
fi
expect "train --resume of a run folder in use" 1 "is being trained by another bpc process" \
    "$BPC" train --resume "$C2" --data "$DATA" --no-progress
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
if repro > "$T/r5.log" 2>&1 && grep -q "ebp seed 2: resuming " "$T/r5.log" && grep -q "4 of 4 runs done" "$T/r5.log"; then
    ok "the freed cell is taken up by the same command"
else
    bad "the freed cell is taken up" "$T/r5.log"
fi

# ---- a damaged summary.json: that cell fails, the other three stay in the table --------------
C3=$G/mnist_dense-ebp-seed1
cp "$C3/summary.json" "$T/summary1.json"
echo '{}' > "$C3/summary.json"
repro > "$T/r6.log" 2>&1; rc=$?
if [ "$rc" -eq 2 ] && grep -q "ebp-seed1/summary.json is not a bpc run summary; that run counts as failed" "$T/r6.log" &&
   grep -q "3 of 4 runs done (some failed" "$T/r6.log" && grep -q "^| mnist_dense | BrainProp | 2 of 2 |" "$G/results.md" &&
   grep -q "^| mnist_dense-ebp-seed1 | 1 | failed |" "$G/results.md"; then
    ok "a damaged summary fails its own cell only (exit 2), the table keeps the others"
else
    bad "a damaged summary (exit $rc)" "$T/r6.log"; sed 's/^/  /' "$G/results.md" | head -20
fi
cp "$T/summary1.json" "$C3/summary.json"

# ---- refusals -------------------------------------------------------------------------------
expect "a finished cell trained with another --limit" 1 "mnist_dense-brainprop-seed1 was trained with --limit 1000" \
    env BPC_GNUPLOT=none "$BPC" repro --models mnist_dense --seeds 1,2 --out "$G" --data "$DATA" --target cpu \
    --epochs 1 --limit 2000 --test-limit 200
expect "a finished cell trained with another --val" 1 "mnist_dense-brainprop-seed1 was trained with 100 held-out validation images" \
    env BPC_GNUPLOT=none "$BPC" repro --models mnist_dense --seeds 1,2 --out "$G" --data "$DATA" --target cpu \
    --epochs 1 --limit 1000 --test-limit 200 --val 0.3
expect "a finished cell trained with another --lr" 1 "mnist_dense-brainprop-seed1 was trained with --lr 0.1" \
    env BPC_GNUPLOT=none "$BPC" repro --models mnist_dense --seeds 1,2 --out "$G" --data "$DATA" --target cpu \
    --epochs 1 --limit 1000 --test-limit 200 --lr 0.05
expect "--out is required" 1 "--out GRID_DIR is required" "$BPC" repro --models mnist_dense
expect "--models is required" 1 "--models is required" "$BPC" repro --out "$T/g2"
expect "an unknown model" 1 "--models: no model 'nosuch'" "$BPC" repro --models nosuch --out "$T/g2"
expect "an unknown rule" 1 "--rules takes brainprop and ebp, not 'sgd'" "$BPC" repro --models mnist_dense --rules sgd --out "$T/g2"
expect "a bad seed" 1 "--seeds takes unsigned integers below 2^64, not 'x'" "$BPC" repro --models mnist_dense --seeds 1,x --out "$T/g2"
expect "a repeated seed" 1 "--seeds names '1' twice" "$BPC" repro --models mnist_dense --seeds 1,1 --out "$T/g2"
expect "an unknown option" 1 "unknown option '--rule'" "$BPC" repro --models mnist_dense --rule ebp --out "$T/g2"
[ -e "$T/g2" ] && bad "nothing created on a refused command"

[ "$fails" -eq 0 ] && echo "test_repro: all passed" || echo "test_repro: $fails failed"
[ "$fails" -eq 0 ]
