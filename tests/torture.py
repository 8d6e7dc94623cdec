#!/usr/bin/python3
"""torture.py: kill training with SIGKILL at random moments, resume it each time, and
compare the result with a run that was never interrupted: it must be bit-identical.

    /usr/bin/python3 tests/torture.py [--kills 50] [--epochs 40] [--seed 1] [--bpc build/bpc]

The run is models/mnist_dense.bp with BrainProp on `--data synthetic` (3000 training
images, 500 held out, 500 test), one thread (a resume is bit-identical with the same
thread count). Every other kill waits for a checkpoint write to be under way (a
`*.safetensors.XXXXXX.tmp` file in the run folder: files.h writes to a temporary file, fsyncs
and renames) and kills at once; the rest land at a uniformly random moment of an epoch
or of the start-up. After each kill the run is resumed (`bpc train --resume`, or a
fresh start when it was killed before its first checkpoint) and killed again, until
the kills are spent; then it runs to the end. Checked: every resume starts (no
corrupt checkpoint, exit status of the killed process -9), no temporary file is left
at the end, and tests/cli/same_run.py finds the two run folders identical (tensors
of last and best, metrics.jsonl and summary.json but their timings). Prints one line
per kill and a summary; exit status 1 on any failure.
"""
import argparse, os, random, signal, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bpc", default=os.path.join(ROOT, "build", "bpc"))
    a = ap.parse_args()
    rng = random.Random(a.seed)
    env = dict(os.environ, OMP_NUM_THREADS="1", BPC_GNUPLOT="none")
    model = os.path.join(ROOT, "models", "mnist_dense.bp")
    opts = ["--data", "synthetic", "--limit", "3000", "--val", "500", "--test-limit", "500",
            "--epochs", str(a.epochs), "--no-progress"]
    tmp = tempfile.mkdtemp(prefix="bpc-torture.")
    ref, run = os.path.join(tmp, "ref"), os.path.join(tmp, "run")
    log = open(os.path.join(tmp, "log"), "w")

    t0 = time.monotonic()
    r = subprocess.run([a.bpc, "train", model, *opts, "--out", ref], env=env, stdout=log, stderr=log)
    if r.returncode != 0:
        sys.exit(f"torture: the uninterrupted run failed (exit {r.returncode}); see {tmp}/log")
    full = time.monotonic() - t0
    epoch = full / a.epochs
    print(f"uninterrupted: {a.epochs} epochs in {full:.1f} s")

    fails, in_write, in_ckpt, killed = 0, 0, 0, 0
    for k in range(a.kills):
        started = os.path.exists(os.path.join(run, "last.safetensors"))
        cmd = [a.bpc, "train", "--resume", run] if started else [a.bpc, "train", model, *opts, "--out", run]
        p = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
        if k % 2 == 0:  # during a checkpoint write: wait for its temporary file
            deadline = time.monotonic() + 3 * epoch + 5
            hit = False
            while time.monotonic() < deadline and p.poll() is None:
                if os.path.isdir(run) and any(n.endswith(".tmp") and ".safetensors." in n for n in os.listdir(run)):
                    hit = True
                    break
                time.sleep(0.0005)  # leave the cores to the run
            how = "during a checkpoint write" if hit else "(no checkpoint write seen in time)"
        else:
            time.sleep(rng.uniform(0.0, 1.5 * epoch + 0.3))
            how = "at a random moment"
            hit = os.path.isdir(run) and any(n.endswith(".tmp") for n in os.listdir(run))
        tmps = sorted(n.split(".")[0] for n in os.listdir(run) if n.endswith(".tmp")) if hit else []
        in_ckpt += any(t in ("last", "best") for t in tmps)
        p.send_signal(signal.SIGKILL)
        rc = p.wait()
        in_write += hit
        done = sum(1 for _ in open(os.path.join(run, "metrics.jsonl"))) if os.path.exists(
            os.path.join(run, "metrics.jsonl")) else 0
        killed += rc == -signal.SIGKILL
        if rc not in (-signal.SIGKILL, 0):
            fails += 1
            print(f"FAIL kill {k + 1}: the run exited {rc} before the kill; see {tmp}/log")
        being = f" (writing {', '.join(tmps)})" if tmps else ""
        print(f"kill {k + 1:2d} {how}{being}: {done} epochs in metrics.jsonl")
        if rc == 0:
            break  # it finished before the kill: nothing left to interrupt

    r = subprocess.run([a.bpc, "train", "--resume", run], env=env, stdout=log, stderr=log)
    if r.returncode != 0:
        fails += 1
        print(f"FAIL the last resume exited {r.returncode}; see {tmp}/log")
    left = [n for n in os.listdir(run) if n.endswith(".tmp")]
    if left:
        fails += 1
        print(f"FAIL temporary files left: {left}")
    same = subprocess.run([sys.executable, os.path.join(HERE, "cli", "same_run.py"), ref, run],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if same.returncode != 0:
        fails += 1
        print("FAIL the resumed run differs from the uninterrupted one:\n" + same.stdout)
    else:
        print("ok   the run killed and resumed is bit-identical to the uninterrupted one")
    # a run that finished before most kills, or no kill inside a write, tested little
    if killed < (a.kills + 1) // 2 or (a.kills >= 2 and in_write == 0):
        fails += 1
        print(f"FAIL only {killed} of {a.kills} kills stopped a running bpc, {in_write} of them during a "
              f"write: the run is too short for this machine")
    print(f"torture: {killed} SIGKILLs ({in_write} during an atomic write, {in_ckpt} of "
          f"them of a checkpoint), "
          f"resumed each time, {fails} failed")
    if not fails:
        subprocess.run(["rm", "-rf", tmp])
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
