#!/bin/sh
# test_plot.sh: `bpc plot`, end to end: two tiny real runs (BrainProp and EBP on MNIST,
# CPU target) drawn into one chart, so that the comparison the paper makes is one
# command. Checks:
#  - the built-in SVG writer (BPC_GNUPLOT=none): well-formed XML, one polyline per run,
#    each run labelled "MODEL RULE" from its summary.json; another --metric;
#  - labels without summary.json (from the checkpoint's metadata) and without either
#    (the folder's name); a last line cut short by a kill is ignored;
#  - gnuplot where it is installed (SVG and PNG); PNG without gnuplot is refused with
#    the reason;
#  - bad input: a missing folder, no metrics.jsonl, an empty or malformed one, a bad
#    --metric or output name, no run at all: each its message and exit status.
# Env: BPC, DATA (data root holding mnist/), PYTHON (default /usr/bin/python3).
set -u
TEST=plot
. "$(dirname "$0")/lib.sh"
PY=${PYTHON:-/usr/bin/python3}

# svg_check FILE TAG N LABEL...: FILE is well-formed XML with at least N TAG elements
# and a text holding each LABEL.
svg_check() {
    "$PY" - "$@" <<'EOF'
import sys, xml.dom.minidom
path, tag, n, labels = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
d = xml.dom.minidom.parse(path)
got = len(d.getElementsByTagName(tag))
assert got >= n, f"{got} <{tag}> elements, wanted {n}"
def text(e):
    return "".join(c.data if c.nodeType == c.TEXT_NODE else text(c) for c in e.childNodes)
texts = [text(t) for t in d.getElementsByTagName("text")]
for l in labels:
    assert any(l in t for t in texts), f"no label {l!r} in {texts}"
EOF
}

for r in brainprop ebp; do
    if "$BPC" train models/mnist_dense.bp --data "$DATA" --target cpu --epochs 2 --limit 1000 \
        --test-limit 200 --rule $r --out "$T/$r" > "$T/$r.log" 2>&1; then ok "train $r"; else bad "train $r" "$T/$r.log"; fi
done

# ---- the built-in SVG -------------------------------------------------------------------
if BPC_GNUPLOT=none "$BPC" plot "$T/brainprop" "$T/ebp" -o "$T/a.svg" > "$T/log" 2>&1 &&
   svg_check "$T/a.svg" polyline 2 "mnist_dense BrainProp" "mnist_dense EBP" >> "$T/log" 2>&1 &&
   [ "$(grep -c '<polyline' "$T/a.svg")" -eq 2 ]; then
    ok "built-in SVG: two curves, labelled by model and rule"
else
    bad "built-in SVG" "$T/log"
fi
if BPC_GNUPLOT=none "$BPC" plot "$T/brainprop" "$T/ebp" --metric train_loss -o "$T/l.svg" > "$T/log" 2>&1 &&
   svg_check "$T/l.svg" polyline 2 "training loss" >> "$T/log" 2>&1; then
    ok "--metric train_loss"
else
    bad "--metric train_loss" "$T/log"
fi

# labels: from the checkpoint without summary.json; from the folder without either;
# a line cut short by a kill at the end is left out
mkdir -p "$T/nosum" "$T/bare_run"
cp "$T/ebp/metrics.jsonl" "$T/ebp/last.safetensors" "$T/nosum/"
cp "$T/ebp/metrics.jsonl" "$T/bare_run/"
printf '{"epoch": 3, "test_a' >> "$T/bare_run/metrics.jsonl"
if BPC_GNUPLOT=none "$BPC" plot "$T/brainprop" "$T/nosum" "$T/bare_run" -o "$T/b.svg" > "$T/log" 2>&1 &&
   svg_check "$T/b.svg" polyline 3 "mnist_dense BrainProp" "mnist_dense EBP" "bare_run" >> "$T/log" 2>&1; then
    ok "labels from the checkpoint, from the folder name; a cut last line ignored"
else
    bad "labels without summary.json" "$T/log"
fi

# ---- gnuplot, where installed; PNG without it -------------------------------------------
expect "PNG without gnuplot: refused with the reason" 2 "PNG output needs gnuplot, which is not installed" \
    env BPC_GNUPLOT=none "$BPC" plot "$T/brainprop" -o "$T/x.png"
[ -e "$T/x.png" ] && bad "no PNG left behind without gnuplot"
if command -v gnuplot > /dev/null 2>&1; then
    if "$BPC" plot "$T/brainprop" "$T/ebp" -o "$T/g.svg" > "$T/log" 2>&1 &&
       svg_check "$T/g.svg" path 2 "mnist_dense BrainProp" "mnist_dense EBP" >> "$T/log" 2>&1; then
        ok "gnuplot SVG: two curves, both labels"
    else
        bad "gnuplot SVG" "$T/log"
    fi
    if "$BPC" plot "$T/brainprop" "$T/ebp" -o "$T/g.png" > "$T/log" 2>&1 &&
       [ "$(head -c 8 "$T/g.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
        ok "gnuplot PNG"
    else
        bad "gnuplot PNG" "$T/log"
    fi
elif [ "${CI:-}" = true ]; then
    bad "gnuplot is not installed (.ci/run installs gnuplot-nox): its SVG and PNG are not tested"
else
    echo "skip gnuplot is not installed: its SVG and PNG are not tested"
fi

# ---- bad input ----------------------------------------------------------------------------
export BPC_GNUPLOT=none
mkdir -p "$T/empty" "$T/nometrics" "$T/broken" "$T/garbage"
: > "$T/empty/metrics.jsonl"
printf '\000\377{{{{' > "$T/garbage/metrics.jsonl"   # one line, no newline, not a cut-off object
{ head -n 1 "$T/ebp/metrics.jsonl"; echo '{"epoch": 2, "test_acc": }'; } > "$T/broken/metrics.jsonl"
expect "missing run folder" 1 "$T/nothere: no such run folder" "$BPC" plot "$T/nothere" -o "$T/x.svg"
expect "a folder without metrics.jsonl" 1 "$T/nometrics has no metrics.jsonl" "$BPC" plot "$T/brainprop" "$T/nometrics" -o "$T/x.svg"
expect "empty metrics.jsonl" 1 "$T/empty/metrics.jsonl is empty: the run has not finished an epoch yet" "$BPC" plot "$T/empty" -o "$T/x.svg"
expect "malformed metrics.jsonl" 2 "$T/broken/metrics.jsonl:2: not a JSON object" "$BPC" plot "$T/broken" -o "$T/x.svg"
expect "garbage metrics.jsonl" 2 "$T/garbage/metrics.jsonl:1: not a JSON object" "$BPC" plot "$T/garbage" -o "$T/x.svg"
expect "unknown --metric" 1 "--metric is test_acc, val_acc, train_acc, train_loss, train_reward or align, not 'acc'" \
    "$BPC" plot "$T/ebp" --metric acc -o "$T/x.svg"
expect "output neither .svg nor .png" 1 "-o $T/x.pdf: the chart is written as .svg or .png" "$BPC" plot "$T/ebp" -o "$T/x.pdf"
expect "no run folder given" 1 "plot takes at least one RUN_DIR" "$BPC" plot -o "$T/x.svg"
expect "unknown option" 1 "unknown option '--colour'" "$BPC" plot "$T/ebp" --colour
[ -e "$T/x.svg" ] && bad "no chart written on an error"

[ "$fails" -eq 0 ] && echo "test_plot: all passed" || echo "test_plot: $fails failed"
[ "$fails" -eq 0 ]
