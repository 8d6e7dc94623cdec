#!/usr/bin/python3
"""mpi_scaling.py: data parallelism on this machine, as a ratio taken in one run.

    /usr/bin/python3 bench/mpi_scaling.py --bpc build/bpc [--model models/mnist_conv.bp]
                                          [--rounds 3] [--out bench/mpi_scaling.json]

Trains the same model for one epoch on `--data synthetic` (6,400 training images) in
two ways that use the same two cores, in turns (A B A B ...): one process with two
threads (OMP_NUM_THREADS=2), and `mpirun -np 2` with one thread per rank. The figure is
each run's training seconds per epoch (summary.json, evaluation left out); the ratio is
the median one-process time over the median two-rank time (above 1: the ranks are
faster). Prints a line per run and writes the JSON list of runs plus the summary.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile

from run import cpu_name  # bench/run.py, beside this file


def train(cmd, env, out):
    r = subprocess.run(cmd + ["--out", out], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit(f"mpi_scaling: {' '.join(cmd)} failed (exit {r.returncode}):\n{r.stdout[-2000:]}")
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)["seconds_per_epoch"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bpc", default="build/bpc")
    ap.add_argument("--model", default="models/mnist_conv.bp")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="bench/mpi_scaling.json")
    a = ap.parse_args()
    if not shutil.which("mpirun"):
        sys.exit("mpi_scaling: no mpirun (install openmpi-bin and libopenmpi-dev)")
    limit, val = 7040, 640  # an epoch trains on limit - val images
    base = [a.bpc, "train", a.model, "--data", "synthetic", "--limit", str(limit), "--val", str(val),
            "--test-limit", "200", "--epochs", "1", "--no-progress", "--target", "cpu"]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    one = dict(env, OMP_NUM_THREADS="2")
    two = dict(env, OMP_NUM_THREADS="1")
    mpi = ["mpirun", "-np", "2", "--oversubscribe", "--mca", "btl", "self,vader"]
    rows, t1, t2 = [], [], []
    with tempfile.TemporaryDirectory(prefix="bpc-mpi-bench.") as tmp:
        train(base, one, os.path.join(tmp, "warm"))  # the JIT's cache, once
        for k in range(a.rounds):
            s1 = train(base, one, os.path.join(tmp, f"one{k}"))
            s2 = train(mpi + base, two, os.path.join(tmp, f"two{k}"))
            t1.append(s1)
            t2.append(s2)
            rows += [{"config": "1 process x 2 threads", "round": k, "seconds_per_epoch": s1},
                     {"config": "2 ranks x 1 thread", "round": k, "seconds_per_epoch": s2}]
            print(f"round {k + 1}: 1 process x 2 threads {s1:.2f} s/epoch, 2 ranks x 1 thread {s2:.2f} s/epoch")
    ratio = statistics.median(t1) / statistics.median(t2)
    summary = {"model": os.path.basename(a.model), "images_per_epoch": limit - val, "cpu": cpu_name(),
               "cpus": os.cpu_count(), "median_one_process_s": statistics.median(t1),
               "median_two_ranks_s": statistics.median(t2), "one_over_two_ranks": ratio}
    with open(a.out, "w") as f:
        json.dump({"summary": summary, "runs": rows}, f, indent=1)
        f.write("\n")
    print(f"mpi scaling, {summary['model']} on {summary['cpu']}: 1 process x 2 threads / 2 ranks x 1 thread = "
          f"{ratio:.2f} (above 1: the ranks are faster); wrote {a.out}")


if __name__ == "__main__":
    main()
