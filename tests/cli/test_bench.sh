#!/bin/sh
# test_bench.sh: a smoke test of `make bench`'s two timers, with no timing thresholds
# (these machines are shared and noisy). build/bench_step runs mnist_dense for 2 steps
# and must print one JSON object with every key bench/run.py reads; bench/torch_step.py
# must run the PyTorch twin of the same model (from the layer list bench_step wrote)
# for 1 step and print its JSON. The CUDA side (--target cuda, --device cuda) must run
# where there is a GPU and, where there is none, stop with status 2 and say why.
# Env: BUILD (holds bench_step).
set -u
BUILD=${BUILD:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/bpc-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0

for rule in brainprop ebp; do
    "$BUILD/bench_step" models/mnist_dense.bp "$rule" --steps 2 --warmup 1 \
        --layers-json "$T/layers.$rule.json" > "$T/out.json" 2> "$T/err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "FAIL bench_step $rule exited with status $rc:"; sed 's/^/  /' "$T/err"; fails=$((fails + 1)); continue
    fi
    if python3 - "$T/out.json" "$rule" <<'PY'
import json, math, sys
d = json.load(open(sys.argv[1]))
need = ["model", "rule", "target", "inputs", "batch", "threads", "macs_per_sample",
        "frontend_ms", "codegen_ms", "bpc_compile_ms", "jit_cold_ms", "jit_warm_ms",
        "times_ms", "ms_per_step_median", "ms_per_step_q1", "ms_per_step_q3", "gflops",
        "sgemm_gflops", "peak_rss_mb", "loss", "env", "warmup_steps"]
missing = [k for k in need if k not in d]
assert not missing, f"missing keys {missing}"
assert d["model"] == "mnist_dense" and d["rule"] == sys.argv[2] and d["target"] == "cpu"
assert d["inputs"] == "synthetic" and d["batch"] == 128 and d["macs_per_sample"] == 3181000
assert len(d["times_ms"]) == 2 and all(t > 0 for t in d["times_ms"])
for k in ("gflops", "sgemm_gflops", "peak_rss_mb", "jit_cold_ms", "jit_warm_ms"):
    assert isinstance(d[k], (int, float)) and d[k] > 0, f"{k} = {d[k]!r}"
assert math.isfinite(d["loss"]), f"loss {d['loss']}"
PY
    then echo "ok   bench_step $rule: JSON with every key"
    else echo "FAIL bench_step $rule: bad JSON:"; sed 's/^/  /' "$T/out.json"; fails=$((fails + 1)); fi

    if /usr/bin/python3 bench/torch_step.py "$T/layers.$rule.json" --steps 1 --warmup 0 \
            --threads 1 > "$T/torch.json" 2> "$T/err" &&
       python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ms_per_step_median"] > 0 and d["peak_rss_mb"] > 0 and d["rule"] == sys.argv[2], d' \
            "$T/torch.json" "$rule" 2>> "$T/err"; then
        echo "ok   torch_step.py $rule: JSON"
    else
        echo "FAIL torch_step.py $rule:"; sed 's/^/  /' "$T/err" "$T/torch.json" | tail -n 20; fails=$((fails + 1))
    fi
done
# --target cuda / --device cuda: a real step where a GPU is, else a clear refusal
"$BUILD/bench_step" models/mnist_dense.bp brainprop --steps 2 --warmup 1 --no-cold --target cuda \
    > "$T/out.json" 2> "$T/err"
rc=$?
if [ "$rc" -eq 0 ] && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["target"] == "cuda" and d["sgemm_gflops"] is None and len(d["times_ms"]) == 2, d' "$T/out.json"; then
    echo "ok   bench_step --target cuda: a GPU is here and the step ran"
elif [ "$rc" -eq 2 ] && grep -q "CUDA target unavailable: " "$T/err"; then
    echo "ok   bench_step --target cuda without a GPU: status 2, $(head -c 90 "$T/err")"
else
    echo "FAIL bench_step --target cuda: status $rc"; sed 's/^/  /' "$T/err" "$T/out.json" | tail -n 20; fails=$((fails + 1))
fi
/usr/bin/python3 bench/torch_step.py "$T/layers.brainprop.json" --steps 1 --warmup 0 --device cuda \
    > "$T/torch.json" 2> "$T/err"
rc=$?
if [ "$rc" -eq 0 ] && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["target"] == "cuda", d' "$T/torch.json"; then
    echo "ok   torch_step.py --device cuda: a GPU is here and the step ran"
elif [ "$rc" -eq 2 ] && grep -q "this PyTorch sees no GPU" "$T/err"; then
    echo "ok   torch_step.py --device cuda without a GPU: status 2, it says so"
else
    echo "FAIL torch_step.py --device cuda: status $rc"; sed 's/^/  /' "$T/err" | tail -n 20; fails=$((fails + 1))
fi
# the MPI scaling ratio: one round, JSON with the summary (no timing threshold)
if command -v mpirun > /dev/null 2>&1; then
    if /usr/bin/python3 bench/mpi_scaling.py --bpc "$BUILD/bpc" --rounds 1 --out "$T/mpi.json" > "$T/mpi.log" 2>&1 &&
        /usr/bin/python3 -c "import json, sys; s = json.load(open(sys.argv[1]))['summary']; assert s['one_over_two_ranks'] > 0" "$T/mpi.json"; then
        echo "ok   bench/mpi_scaling.py: $(tail -n 1 "$T/mpi.log" | cut -c1-100)"
    else
        echo "FAIL bench/mpi_scaling.py"; sed 's/^/  /' "$T/mpi.log" | tail -n 20; fails=$((fails + 1))
    fi
else
    echo "skip bench/mpi_scaling.py: no mpirun (install openmpi-bin)"
fi
[ "$fails" -eq 0 ]
