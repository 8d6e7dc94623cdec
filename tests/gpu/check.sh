#!/bin/sh
# tests/gpu/check.sh: the one script to run on a machine with an NVIDIA GPU.
# Uses the build folder made elsewhere (`make build/bpc build/gpu_compare`, carried
# along; the GPU machine need not have flex, bison or a network) or builds it when
# make and the libraries are there. For every model it trains STEPS steps on the CUDA
# target and on the CPU target from the same seed and prints the largest relative
# difference of the losses and the weights, and the time per step of each target;
# the CUDA steps run as captured graphs, and again one operation at a time
# (BPC_CUDA_GRAPH=0), which must give the same numbers (GRAPH lines; fails otherwise).
# Then it compiles each model for the GPU's own architecture, times the CUDA step of
# the MNIST and CIFAR nets against the same model and rule in eager PyTorch on the GPU
# (bench/run.py --target cuda: interleaved, ratios; results in $OUT/bench_cuda.json),
# and trains one real epoch of cifar10_deep and of mnist_loccon on synthetic data of
# their shape with `bpc train --target cuda`, which prints the seconds per epoch.
# Finishes within about 8 minutes on an H200 with the defaults.
# Env: BUILD (build), STEPS (200), PYTHON (python3; needs torch with CUDA for the
# PyTorch timings), OUT (where the JSON goes; default /tmp).
set -u
BUILD=${BUILD:-build}
STEPS=${STEPS:-200}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp}
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || { echo "no GPU here"; exit 2; }
if [ ! -x "$BUILD/gpu_compare" ] || [ ! -x "$BUILD/bench_step" ]; then
    make "$BUILD/bpc" "$BUILD/gpu_compare" "$BUILD/bench_step" || exit 2
fi
missing=$(ldd "$BUILD/gpu_compare" "$BUILD/bench_step" | grep 'not found')
[ -z "$missing" ] || { echo "libraries missing on this machine:"; echo "$missing"; exit 2; }
fail=0
for spec in mnist_dense:brainprop mnist_dense:ebp mnist_conv:brainprop mnist_conv:ebp \
            mnist_loccon:brainprop cifar10_conv:brainprop cifar10_deep:brainprop cifar10_deep:ebp; do
    m=${spec%%:*}; r=${spec#*:}
    timeout 120 "$BUILD/gpu_compare" "models/$m.bp" "$r" "$STEPS" > "/tmp/gpu_${m}_${r}.log" 2>&1 || fail=1
    grep -E '^RESULT|^GRAPH|error|warning|unavailable' "/tmp/gpu_${m}_${r}.log" || tail -n 5 "/tmp/gpu_${m}_${r}.log"
done
for m in models/*.bp; do
    "$BUILD/bpc" ptx "$m" -o /tmp/gpu_check.ptx --arch "sm_$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d .)" \
        > /dev/null 2>&1 && echo "ok   sm compile $m" || { echo "FAIL sm compile $m"; fail=1; }
done
echo "== CUDA step against eager PyTorch on the GPU"
if "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    timeout 240 "$PYTHON" bench/run.py --bench-step "$BUILD/bench_step" --python "$PYTHON" --target cuda \
        --models mnist_dense,mnist_conv,mnist_loccon,cifar10_deep --out "$OUT/bench_cuda.json" || fail=1
else
    echo "FAIL $PYTHON has no torch with CUDA here: no PyTorch timings"; fail=1
fi
echo "== one real epoch on the GPU (synthetic data of the model's shape)"
for m in cifar10_deep mnist_loccon mnist_conv; do
    timeout 90 "$BUILD/bpc" train "models/$m.bp" --data synthetic --target cuda --epochs 1 \
        --test-limit 1000 --no-progress > "/tmp/gpu_epoch_$m.log" 2>&1 || fail=1
    grep -E '^epoch|error' "/tmp/gpu_epoch_$m.log" | sed "s|^|$m: |"
done
exit $fail
