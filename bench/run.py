#!/usr/bin/python3
"""run.py: the driver of `make bench` (started by bench/run.sh): bpc's CPU training step
(or CUDA step, --target cuda) against the same model and rule in PyTorch, interleaved,
on synthetic inputs.

    /usr/bin/python3 bench/run.py --bench-step build/bench_step [--out bench/results.json]
                                  [--models a,b] [--quick] [--target cpu|cuda]
                                  [--precision ieee|tf32|3xtf32]

These machines are shared and noisy, so every figure that matters is a ratio taken in
one run, from processes that take turns: for each model, one long-lived bench_step
process per rule (bpc) and one bench/torch_step.py process per rule (PyTorch) are
started with --serve, each compiles and warms up, and then they run a few timed steps
each in turn (bpc BrainProp, PyTorch BrainProp, bpc EBP, PyTorch EBP; every other round
the EBP pair goes first) for several rounds, so that every bpc turn follows a PyTorch
turn and every PyTorch turn a bpc one: a process that follows itself finds its caches
warm, and an order that reversed each round gave that edge to bpc BrainProp and PyTorch
EBP (it made bpc's dense EBP step look 35% slower than its BrainProp step, against
equal times alone). Medians are taken over all timed steps
of a process. The big nets (tinyimagenet_deep needs ~8 GB in bpc) keep only one rule's
pair alive at a time.

PyTorch runs with the thread count bpc's OpenMP uses and with the process settings
bpc's bp_tune_process chose (OMP_WAIT_POLICY, OPENBLAS_CORETYPE): without them Debian's
PyTorch (OpenBLAS pthreads + libgomp) was measured 3-6x slower here, which would flatter
bpc for reasons that have nothing to do with its code. A turn of several steps drops its
first step's time: that step pays for the caches and cores the other process just had
(short turns made bpc's dense step read 14.5 ms interleaved against 9.5 ms alone, and
PyTorch's 12 ms against 12.4 ms alone).

Writes a list with one object per (model, rule, target) to --out and prints a table.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# model, warm-up steps, rounds, timed steps per round, rules kept alive together.
# Sized to keep the whole bench under ~10 minutes on a 2-core machine: about 6.5
# minutes on 2026-11-29, 4 of them tinyimagenet_deep (~13 s a step in bpc, 11 in PyTorch).
PLAN = [
    ("mnist_dense", 3, 6, 25, True),
    ("mnist_conv", 2, 5, 7, True),
    ("mnist_loccon", 3, 6, 16, True),
    ("cifar10_deep", 1, 3, 1, True),
    ("tinyimagenet_deep", 1, 3, 1, False),
]
RULES = ("brainprop", "ebp")


def median(v):
    s = sorted(v)
    n = len(s)
    return (s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2) if n else float("nan")


def quantile(v, q):
    s = sorted(v)
    if not s:
        return float("nan")
    pos = q * (len(s) - 1)
    i = int(pos)
    return s[i] if i + 1 >= len(s) else s[i] + (pos - i) * (s[i + 1] - s[i])


class Server:
    """One --serve process: a JSON line in answer to each command line."""

    def __init__(self, name, argv, env=None):
        self.name = name
        self.err = tempfile.TemporaryFile(mode="w+")
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.err, text=True, bufsize=1, env=env, cwd=ROOT)
        self.times = []
        self.head = None

    def _answer(self):
        line = self.p.stdout.readline()
        if not line:
            self.p.wait()
            self.err.seek(0)
            tail = "".join(self.err.readlines()[-20:])
            raise RuntimeError(f"{self.name} exited with status {self.p.returncode}:\n{tail}")
        return json.loads(line)

    def start(self):
        self.head = self._answer()
        return self.head

    def run(self, n):
        """One turn of n timed steps; the first is dropped when n > 2 (see the top)."""
        self.p.stdin.write(f"{n}\n")
        self.p.stdin.flush()
        t = self._answer()["times_ms"]
        self.times += t[1:] if n > 2 else t

    def finish(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.flush()
        last = self._answer()
        self.p.wait()
        return last

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def bench_model(a, model, warmup, rounds, per_round, together, tmp):
    """Runs one model, both rules; returns {rule: row}."""
    bp = os.path.join(ROOT, "models", model + ".bp")
    groups = [list(RULES)] if together else [[r] for r in RULES]
    rows = {}
    for rules in groups:
        procs = []
        try:
            order = []
            for rule in rules:
                lj = os.path.join(tmp, f"{model}.{rule}.json")
                b = Server(f"bench_step {model} {rule}",
                           [a.bench_step, bp, rule, "--serve", "--warmup", str(warmup),
                            "--target", a.target, "--precision", a.precision, "--layers-json", lj])
                procs.append(b)
                h = b.start()
                env = dict(os.environ)
                env.update(h.get("env", {}))
                t = Server(f"torch_step.py {model} {rule}",
                           [a.python, os.path.join(HERE, "torch_step.py"), lj, "--serve",
                            "--warmup", str(warmup), "--threads", str(h["threads"]),
                            "--device", a.target] + (["--tf32"] if a.precision != "ieee" else []),
                           env=env)
                procs.append(t)
                t.start()
                order += [(rule, b, t)]
            for r in range(rounds):
                turn = order[r % len(order):] + order[:r % len(order)]
                for p in (p for _, b, t in turn for p in (b, t)):
                    p.run(per_round)
            for rule, b, t in order:
                bl, tl = b.finish(), t.finish()
                rows[rule] = make_row(model, rule, a.target, b, t, bl, tl)
                rows[rule]["rules_interleaved"] = together
        except Exception as e:  # report, and go on with the other models
            print(f"bench: {model} {'/'.join(rules)}: {e}", file=sys.stderr)
            for rule in rules:
                rows[rule] = {"model": model, "rule": rule, "target": a.target, "error": str(e)}
        finally:
            for p in procs:
                p.kill()
    return rows


def make_row(model, rule, target, b, t, bl, tl):
    h, th = b.head, t.head
    bms, tms = median(b.times), median(t.times)
    flop = 6.0 * h["macs_per_sample"] * h["batch"]
    gflops = flop / (bms * 1e-3) / 1e9
    sg = bl.get("sgemm_gflops")
    return {
        "model": model, "rule": rule, "target": target, "inputs": "synthetic",
        "batch": h["batch"], "threads": h["threads"],
        "bpc_ms_per_step": bms, "pytorch_ms_per_step": tms,
        "speedup_vs_pytorch": tms / bms,
        "bpc_ms_q1": quantile(b.times, 0.25), "bpc_ms_q3": quantile(b.times, 0.75),
        "pytorch_ms_q1": quantile(t.times, 0.25), "pytorch_ms_q3": quantile(t.times, 0.75),
        "timed_steps": len(b.times), "warmup_steps": h["warmup_steps"],
        "macs_per_sample": h["macs_per_sample"],
        "flop_per_step": flop,   # 3 x 2 x macs x batch: forward + two backward GEMMs
        "gflops": gflops, "pytorch_gflops": flop / (tms * 1e-3) / 1e9,
        "sgemm_gflops": sg, "gflops_over_sgemm": gflops / sg if sg else None,
        "peak_rss_mb": bl["peak_rss_mb"], "pytorch_peak_rss_mb": tl["peak_rss_mb"],
        "bpc_compile_ms": h["bpc_compile_ms"], "frontend_ms": h["frontend_ms"],
        "codegen_ms": h["codegen_ms"],
        "jit_cold_ms": h["jit_cold_ms"], "jit_warm_ms": h["jit_warm_ms"],
        "bpc_loss": bl["loss"], "pytorch_loss": tl["loss"],
        "openblas_core": h["openblas_core"], "env": h.get("env", {}),
        "torch": th["torch"], "pytorch_threads": th["threads"],
        "pytorch_omp_wait_policy": th["omp_wait_policy"],
    }


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) and v == v else "-"


def table(rows):
    cols = ("model", "rule", "bpc ms", "torch ms", "torch/bpc", "BP/EBP", "GFLOP/s",
            "%sgemm", "RSS MB", "torch MB", "bpc ms*", "JIT cold s", "warm ms")
    w = (18, 9, 9, 9, 9, 7, 8, 7, 7, 8, 8, 10, 7)
    out = ["  ".join(c.rjust(n) if i > 1 else c.ljust(n) for i, (c, n) in enumerate(zip(cols, w)))]
    for r in rows:
        if "error" in r:
            out.append(f"{r['model']:18s}  {r['rule']:9s}  failed: {r['error'].splitlines()[0]}")
            continue
        frac = r["gflops_over_sgemm"]
        cells = [r["model"], r["rule"], fmt(r["bpc_ms_per_step"], ".1f"),
                 fmt(r["pytorch_ms_per_step"], ".1f"), fmt(r["speedup_vs_pytorch"], ".2f"),
                 (fmt(r.get("bpc_brainprop_over_ebp"), ".3f") + ("" if r["rules_interleaved"] else "+"))
                 if r["rule"] == "brainprop" else "",
                 fmt(r["gflops"], ".1f"), fmt(frac * 100 if frac else None, ".0f"),
                 fmt(r["peak_rss_mb"], ".0f"), fmt(r["pytorch_peak_rss_mb"], ".0f"),
                 fmt(r["bpc_compile_ms"], ".2f"), fmt(r["jit_cold_ms"] / 1e3, ".2f"),
                 fmt(r["jit_warm_ms"], ".1f")]
        out.append("  ".join(c.rjust(n) if i > 1 else c.ljust(n) for i, (c, n) in enumerate(zip(cells, w))))
    return "\n".join(out)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main(argv):
    ap = argparse.ArgumentParser(description="bpc against PyTorch, interleaved (make bench)")
    ap.add_argument("--bench-step", required=True)
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--models", help="comma-separated subset of " + ",".join(m for m, *_ in PLAN))
    ap.add_argument("--quick", action="store_true", help="1 warm-up, 2 rounds of 1 step (a smoke run)")
    ap.add_argument("--target", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: bpc's CUDA target against PyTorch on the GPU (each step waited for)")
    ap.add_argument("--precision", choices=("ieee", "tf32", "3xtf32"), default="ieee",
                    help="bpc's GEMM precision; with tf32 and 3xtf32 PyTorch runs with TF32 on "
                         "(its cuDNN default), with ieee off")
    a = ap.parse_args(argv[1:])
    plan = PLAN
    if a.models:
        want = a.models.split(",")
        unknown = [m for m in want if m not in {p[0] for p in PLAN}]
        if unknown:
            ap.error(f"unknown model(s): {', '.join(unknown)}")
        plan = [p for p in PLAN if p[0] in want]
    if a.quick:
        plan = [(m, 1, 2, 1, t) for m, _, _, _, t in plan]
    elif a.target == "cuda":  # GPU steps take milliseconds: many more of them
        plan = [(m, 10 * w, r, 20 * n, t) for m, w, r, n, t in plan]

    load = os.getloadavg()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"bpc bench: {a.target.upper()} target against PyTorch, synthetic inputs (random uint8 "
          "of each model's shape; no data set is read)")
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} at start; "
          f"{date}")
    print("shared, noisy machine: the ratios (taken from interleaved steps) mean more than "
          "the absolute times")
    rows = []
    t_all = time.time()
    with tempfile.TemporaryDirectory(prefix="bpc-bench.") as tmp:
        for model, warmup, rounds, per_round, together in plan:
            t0 = time.time()
            got = bench_model(a, model, warmup, rounds, per_round, together, tmp)
            bp, ebp = got["brainprop"], got["ebp"]
            if "error" not in bp and "error" not in ebp:
                for r in (bp, ebp):
                    r["bpc_brainprop_over_ebp"] = bp["bpc_ms_per_step"] / ebp["bpc_ms_per_step"]
                    r["pytorch_brainprop_over_ebp"] = bp["pytorch_ms_per_step"] / ebp["pytorch_ms_per_step"]
            for r in (bp, ebp):
                r.update(date=date, cpu=cpu_name(), cpus=os.cpu_count(), load_at_start=load[0],
                         precision=a.precision)
                rows.append(r)
            print(f"  {model}: {time.time() - t0:.0f} s", file=sys.stderr)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    print()
    print(table(rows))
    print()
    print("bpc ms, torch ms: median ms per full-batch training step; torch/bpc: "
          "speedup_vs_pytorch; BP/EBP: bpc's BrainProp step time over its EBP step time")
    print("  (+: the two rules ran one after the other, not interleaved, to save memory; "
          "PyTorch's own BP/EBP in results.json shows how much the load changed)")
    print("GFLOP/s: 3 x 2 x multiply-adds (bpc check) x batch / bpc step time; %sgemm: "
          "of OpenBLAS sgemm 2048^3 in the same process")
    print("RSS: peak resident memory of the bpc / PyTorch process; bpc ms*: bpc front end + "
          "codegen; JIT: cc of the emitted C, cold (empty cache) and warm (from the cache)")
    print(f"wrote {os.path.relpath(a.out)} ({len(rows)} rows) in {time.time() - t_all:.0f} s")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
