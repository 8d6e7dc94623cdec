#!/usr/bin/python3
"""make_feedback.py: the feedback-pathway section of docs/results.md, from one grid.

    /usr/bin/python3 docs/results/feedback/make_feedback.py GRID   (from the repository root)

GRID is the folder of `bpc repro` over the models of this folder (the command is in
the page). For every (net, rule, feedback) the table gives the test accuracy of the
epoch with the best validation accuracy within the run, the last epoch's, and the last
epoch's alignment angles (runtime/align.h); the curves are `bpc plot` SVGs. A run that
stopped before its first epoch ended gets its error, from the train.log kept in its
folder (its lines of the repro command's output). The tied
rows come from GRID's runs of the repository models when they are there, else from the
first 20 epochs of the full-protocol runs under docs/results/runs/ (labelled so). The
text between the feedback markers of docs/results.md and docs/results/results.md.in is
replaced; each run's metrics.jsonl and summary.json are copied to runs/ here.
"""
import json, os, shutil, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
HERE = os.path.join(ROOT, "docs", "results", "feedback")
MODES = ["tied", "random", "sign", "kolen_pollack", "direct"]
NETS = ["mnist_dense", "mnist_conv"]
RULES = ["brainprop", "ebp"]
BEGIN, END = "<!-- feedback begin -->", "<!-- feedback end -->"
EPOCHS = 20


def load(d):
    p = os.path.join(d, "metrics.jsonl")
    m = [json.loads(l) for l in open(p)] if os.path.exists(p) else []
    s = os.path.join(d, "summary.json")
    return m, (json.load(open(s)) if os.path.exists(s) else None)


def run_dir(grid, net, mode, rule):
    name = net if mode == "tied" else f"{net}_{mode}"
    d = os.path.join(grid, f"{name}-{rule}-seed1")
    if mode == "tied" and not os.path.exists(os.path.join(d, "metrics.jsonl")):
        return os.path.join(ROOT, "docs", "results", "runs", f"{net}-{rule}-seed1"), True
    return d, False


def angles(last, key):
    """The last epoch's angles, layer by layer: updates of the hidden layers (the
    output's own update is always exact), matrices of every layer that has one."""
    rows = [r for r in last.get("align", []) if r[key] is not None
            and not (key == "update_angle" and r["kind"] == "output")]
    return " / ".join(f"{r[key]:.0f}" for r in rows) if rows else "-"


def main(grid):
    out = [BEGIN, "## Feedback pathways", ""]
    w = out.append
    w("The MNIST nets with each feedback pathway of `docs/language.md` (feedback on the "
      "output line, so for every layer), BrainProp and EBP, seed 1, 20 epochs each, the "
      "models' own hyperparameters (lr 0.1, the paper's init, held-out validation), CPU "
      "target. The models are in `docs/results/feedback/`; the grid ran as")
    w("")
    w("```")
    w("M=$(ls docs/results/feedback/*.bp | tr '\\n' ,)models/mnist_dense.bp,models/mnist_conv.bp")
    w("OMP_NUM_THREADS=1 bpc repro --models $M --rules brainprop,ebp --seeds 1 --epochs 20 --out GRID --no-progress")
    w("/usr/bin/python3 docs/results/feedback/make_feedback.py GRID")
    w("```")
    w("")
    w("(two copies of the repro command at once, one thread each, sharing the grid). Angles "
      "are the last epoch's, in degrees, per weight layer from the first up: *update*: "
      "each hidden layer's weight update against the exact (tied) one on the probe batch "
      "(the output's own update is always exact); *matrix*: the feedback matrix against W, "
      "from the second weight layer to the output (none for the first layer, which no "
      "feedback crosses, and none for direct).")
    w("")
    w("| net | rule | feedback | epochs | test acc. at best val. (%) | last epoch test acc. (%) | update angles | matrix angles | curves |")
    w("|---|---|---|---|---|---|---|---|---|")
    os.makedirs(os.path.join(HERE, "runs"), exist_ok=True)
    bpc = os.path.join(ROOT, "build", "bpc")
    for net in NETS:
        for rule in RULES:
            curves = []
            for mode in MODES:
                d, old = run_dir(grid, net, mode, rule)
                m, s = load(d)
                if old:
                    m = m[:EPOCHS]
                if not m:
                    # a run that stopped before its first epoch: train.log (its output,
                    # kept beside it) says why
                    log = os.path.join(d, "train.log")
                    why = "not run"
                    if os.path.exists(log):
                        err = [l.strip() for l in open(log) if "error:" in l]
                        why = err[-1].split("error: ", 1)[1] if err else why
                        dst = os.path.join(HERE, "runs", os.path.basename(d))
                        os.makedirs(dst, exist_ok=True)
                        shutil.copy(log, dst)
                    w(f"| {net} | {'BrainProp' if rule == 'brainprop' else 'EBP'} | {mode} | 0: {why} | | | | | |")
                    continue
                best = max(m, key=lambda r: (r["val_acc"], -r["epoch"]))
                last = m[-1]
                plot = "-"
                if not old:
                    curves.append(d)
                    dst = os.path.join(HERE, "runs", os.path.basename(d))
                    os.makedirs(dst, exist_ok=True)
                    for f in ("metrics.jsonl", "summary.json"):
                        if os.path.exists(os.path.join(d, f)):
                            shutil.copy(os.path.join(d, f), dst)
                    if mode != "tied":
                        svg = f"{os.path.basename(d)}-align.svg"
                        subprocess.run([bpc, "plot", d, "--metric", "align", "-o", os.path.join(HERE, svg)],
                                       check=True, stdout=subprocess.DEVNULL)
                        plot = f"[angles](results/feedback/{svg})"
                label = mode + (" (full-protocol run, first 20 epochs)" if old else "")
                done = "" if len(m) >= EPOCHS else " (still training)"
                w(f"| {net} | {'BrainProp' if rule == 'brainprop' else 'EBP'} | {label} | {len(m)}{done} | "
                  f"{best['test_acc'] * 100:.2f} (epoch {best['epoch']}) | {last['test_acc'] * 100:.2f} | "
                  f"{angles(last, 'update_angle')} | {angles(last, 'weight_angle')} | {plot} |")
            if curves:
                svg = f"{net}-{rule}-feedback.svg"
                subprocess.run([bpc, "plot", *curves, "-o", os.path.join(HERE, svg)], check=True,
                               stdout=subprocess.DEVNULL)
                w(f"| | | test accuracy of every pathway: [plot](results/feedback/{svg}) | | | | | | |")
    w("")
    w("__FEEDBACK_TEXT__")
    w(END)
    text = open(os.path.join(HERE, "section.md")).read().strip()
    section = "\n".join(out).replace("__FEEDBACK_TEXT__", text)
    for path in (os.path.join(ROOT, "docs", "results.md"), os.path.join(ROOT, "docs", "results", "results.md.in")):
        doc = open(path).read()
        if BEGIN in doc:
            doc = doc[:doc.index(BEGIN)] + section + doc[doc.index(END) + len(END):]
        else:
            doc = doc.rstrip("\n") + "\n\n" + section + "\n"
        open(path, "w").write(doc)
    print(section)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_feedback.py GRID")
    main(sys.argv[1])
