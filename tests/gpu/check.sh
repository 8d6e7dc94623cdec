#!/bin/sh
# tests/gpu/check.sh: the one script to run on a machine with an NVIDIA GPU.
# Uses the build folder made elsewhere (`make build/bpc build/gpu_compare`, carried
# along; the GPU machine need not have flex, bison or a network) or builds it when
# make and the libraries are there. For every model it trains STEPS steps on the CUDA
# target and on the CPU target from the same seed and prints the largest relative
# difference of the losses and the weights, and the time per step of each target.
# Then it compiles each model for the GPU's own architecture. Finishes within about
# 8 minutes on an H200 with the defaults.   Env: BUILD (build), STEPS (200).
set -u
BUILD=${BUILD:-build}
STEPS=${STEPS:-200}
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || { echo "no GPU here"; exit 2; }
if [ ! -x "$BUILD/gpu_compare" ]; then make "$BUILD/bpc" "$BUILD/gpu_compare" || exit 2; fi
missing=$(ldd "$BUILD/gpu_compare" | grep 'not found')
[ -z "$missing" ] || { echo "libraries missing on this machine:"; echo "$missing"; exit 2; }
fail=0
for spec in mnist_dense:brainprop mnist_dense:ebp mnist_conv:brainprop mnist_conv:ebp \
            mnist_loccon:brainprop cifar10_conv:brainprop cifar10_deep:brainprop cifar10_deep:ebp; do
    m=${spec%%:*}; r=${spec#*:}
    timeout 120 "$BUILD/gpu_compare" "models/$m.bp" "$r" "$STEPS" > "/tmp/gpu_${m}_${r}.log" 2>&1 || fail=1
    grep -E '^RESULT|error|unavailable' "/tmp/gpu_${m}_${r}.log" || tail -n 5 "/tmp/gpu_${m}_${r}.log"
done
for m in models/*.bp; do
    "$BUILD/bpc" ptx "$m" -o /tmp/gpu_check.ptx --arch "sm_$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d .)" \
        > /dev/null 2>&1 && echo "ok   sm compile $m" || { echo "FAIL sm compile $m"; fail=1; }
done
exit $fail
