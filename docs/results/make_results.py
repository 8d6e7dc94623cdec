#!/usr/bin/python3
"""make_results.py: writes docs/results.md from the run folders of the two grids
(runs/grid-conv and runs/grid, made by the commands in the page) and the page's text
(docs/results/results.md.in): the tables, the curves (`build/bpc plot`) and a copy of
each run's metrics.jsonl and summary.json under docs/results/runs/.

    /usr/bin/python3 docs/results/make_results.py      (from the repository root)
"""
import json, os, statistics, subprocess, sys
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNS = os.path.join(ROOT, "runs")
OUT = os.path.join(ROOT, "docs")
PLOTS = os.path.join(OUT, "results")
os.makedirs(PLOTS, exist_ok=True)
GRIDS = [("A", "grid-conv", "mnist_conv", ["brainprop", "ebp"], [1, 2, 3]),
         ("B", "grid", "mnist_dense", ["brainprop", "ebp"], [1]),
         ("B", "grid", "mnist_loccon", ["brainprop", "ebp"], [1])]
CMD = {"A": "OMP_NUM_THREADS=1 bpc repro --models models/mnist_conv.bp --seeds 1,2,3 --out runs/grid-conv --no-progress",
       "B": "OMP_NUM_THREADS=1 bpc repro --models models/mnist_dense.bp,models/mnist_loccon.bp --seeds 1 --out runs/grid --no-progress"}

def hms(s):
    s = int(round(s)); return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"

def load(d):
    m = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))] if os.path.exists(os.path.join(d, "metrics.jsonl")) else []
    s = json.load(open(os.path.join(d, "summary.json"))) if os.path.exists(os.path.join(d, "summary.json")) else None
    return m, s

rows, runs = [], []
for key, grid, model, rules, seeds in GRIDS:
    for rule in rules:
        done = []
        for seed in seeds:
            d = os.path.join(RUNS, grid, f"{model}-{rule}-seed{seed}")
            m, s = load(d)
            wall = sum(r.get("seconds", 0) for r in m)
            runs.append((key, model, rule, seed, d, m, s, wall))
            if s: done.append((s, wall))
        rows.append((model, rule, len(seeds), done))

def ms(v, dec):
    if not v: return "-"
    if len(v) == 1: return f"{v[0]:.{dec}f}"
    return f"{statistics.mean(v):.{dec}f} ({statistics.stdev(v):.{dec}f})"

out = []
w = out.append
w("# Results: the paper's protocol on MNIST, CPU target\n")
w("__STATUS__\n")
w("| net | rule | runs done | test accuracy (%) | epochs to best validation | epochs run | s / epoch (training) | wall time | plot |")
w("|---|---|---|---|---|---|---|---|---|")
for model, rule, n, done in rows:
    acc = [s["test_acc"] * 100 for s, _ in done]
    be = [s["best_epoch"] for s, _ in done]
    er = [s["epochs_run"] for s, _ in done]
    spe = [s["seconds_per_epoch"] for s, _ in done]
    wall = sum(wl for _, wl in done)
    w(f"| {model} | {'BrainProp' if rule == 'brainprop' else 'EBP'} | {len(done)} of {n} | {ms(acc, 2)} | {ms(be, 1)} | {ms(er, 1)} | "
      f"{ms(spe, 1)} | {hms(wall) if done else '-'} | [plot](results/{model}.svg) |")
w("\nmean (sample standard deviation) over the seeds that are done.\n")
w("## Every run\n")
w("| run | command | test accuracy (%) | best epoch | epochs run | stopped | s / epoch (training) | wall time |")
w("|---|---|---|---|---|---|---|---|")
for key, model, rule, seed, d, m, s, wall in runs:
    name = os.path.basename(d)
    if s:
        w(f"| {name} | {key} | {s['test_acc'] * 100:.2f} | {s['best_epoch']} | {s['epochs_run']} | "
          f"{'early stop' if s['stopped'] == 'early_stop' else s['stopped']} | {s['seconds_per_epoch']:.1f} | {hms(wall)} |")
    elif m:
        best = max(m, key=lambda r: r["val_acc"])
        w(f"| {name} | {key} | training: epoch {len(m)}, best validation {best['val_acc'] * 100:.2f}% at epoch {best['epoch']} (test {best['test_acc'] * 100:.2f}%) | | | | | {hms(wall)} so far |")
    else:
        w(f"| {name} | {key} | not started | | | | | |")
tables = "\n".join(out[2:])
ndone = sum(1 for r in runs if r[6])
going = [os.path.basename(r[4]) for r in runs if not r[6] and r[5]]
status = (f"**{ndone} of {len(runs)} runs are done** (BrainProp and EBP for each "
          "net, three seeds of mnist_conv). " +
          (f"Still training when this page was written: {', '.join(going)}; the others wait their "
           "turn. The grids continue with the same commands (below). " if ndone < len(runs) else "") +
          "This page is regenerated from the run folders by `docs/results/make_results.py`.")
def summ(name, grid):
    return json.load(open(os.path.join(RUNS, grid, name, "summary.json")))
def maxtest(name, grid):
    m = [json.loads(l) for l in open(os.path.join(RUNS, grid, name, "metrics.jsonl"))]
    return max(m, key=lambda r: r["test_acc"])
def conv_runs(rule):
    """The finished mnist_conv seeds of a rule: their summaries and best test epochs."""
    names = [f"mnist_conv-{rule}-seed{seed}" for seed in (1, 2, 3)]
    names = [n for n in names if os.path.exists(os.path.join(RUNS, "grid-conv", n, "summary.json"))]
    return [summ(n, "grid-conv") for n in names], [maxtest(n, "grid-conv") for n in names]
(cs, cm), (ce, cem) = conv_runs("brainprop"), conv_runs("ebp")
def and_list(v): return v[0] if len(v) == 1 else ", ".join(v[:-1]) + " and " + v[-1]
acc = [c["test_acc"] * 100 for c in cs]; mxa = [m["test_acc"] * 100 for m in cm]
doc = open(os.path.join(PLOTS, "results.md.in")).read()
for k, v in {"__STATUS__": status, "__TABLES__": tables, "__CMDA__": CMD["A"], "__CMDB__": CMD["B"],
             "__CONVMEAN__": ms(acc, 2), "__CONVN__": str(len(cs)),
             "__CONVLIST__": and_list([f"{a:.2f}" for a in acc]),
             "__CONVBE__": ms([c["best_epoch"] for c in cs], 1),
             "__CONVMAXLIST__": and_list([f"{a:.2f}" for a in mxa]),
             "__CONVMAXMEAN__": f"{statistics.mean(mxa):.2f}",
             "__CONVEBP__": ms([c["test_acc"] * 100 for c in ce], 2), "__CONVEBPN__": str(len(ce)),
             "__CONVEBPBE__": ms([c["best_epoch"] for c in ce], 1),
             "__CONVEBPMAXMEAN__": f"{statistics.mean([m['test_acc'] * 100 for m in cem]):.2f}" if cem else "-",
             "__CONVGAP__": f"{statistics.mean([c['test_acc'] * 100 for c in ce]) - statistics.mean(acc):.2f}" if ce else "-",
             "__DENSEBP__": f"{summ('mnist_dense-brainprop-seed1', 'grid')['test_acc'] * 100:.2f}",
             "__DENSEEBP__": f"{summ('mnist_dense-ebp-seed1', 'grid')['test_acc'] * 100:.2f}",
             "__LOCBP__": f"{summ('mnist_loccon-brainprop-seed1', 'grid')['test_acc'] * 100:.2f}",
             "__LOCEBP__": f"{summ('mnist_loccon-ebp-seed1', 'grid')['test_acc'] * 100:.2f}"}.items():
    doc = doc.replace(k, v)
assert "__" not in doc.replace("__metadata__", ""), [l for l in doc.splitlines() if "__" in l]
open(os.path.join(OUT, "results.md"), "w").write(doc)
# the small files of every run, for the record
import shutil
for key, model, rule, seed, d, m, sm, wall in runs:
    if not m: continue
    dst = os.path.join(PLOTS, "runs", os.path.basename(d))
    os.makedirs(dst, exist_ok=True)
    for f in ("metrics.jsonl", "summary.json"):
        if os.path.exists(os.path.join(d, f)): shutil.copy(os.path.join(d, f), dst)
# plots: BrainProp and EBP overlaid, per net
bpc = os.path.join(ROOT, "build", "bpc")
for model in ("mnist_dense", "mnist_conv", "mnist_loccon"):
    ds = [d for key, mo, rule, seed, d, m, s, wall in runs if mo == model and m]
    if ds:
        subprocess.run([bpc, "plot", *ds, "-o", os.path.join(PLOTS, model + ".svg")], check=True,
                       stdout=subprocess.DEVNULL)
print(doc)
