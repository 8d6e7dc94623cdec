#!/bin/sh
# tests/gpu/check.sh: the one script to run on a machine with an NVIDIA GPU.
# Uses the build folder made elsewhere (`make build/bpc build/gpu_compare
# build/bench_step`, carried along; the GPU machine need not have flex, bison or a
# network) or builds it when make and the libraries are there. In order:
#  1. CUDA against CPU (build/gpu_compare), same seed, same batches: every MODEL:RULE
#     trains STEPS steps (DEEP_STEPS for the deep nets) with each step starting from
#     the CPU's state (--sync): the loss must agree, and each tensor after the step
#     must be as close to the same step done in double precision as the CPU's float
#     step is (SYNC lines; see compare.c); then, unless FREE=0, the nets that are not
#     deep run FREE_STEPS steps freely, which shows how far the two trajectories drift
#     apart (RESULT lines; no pass or fail: a near-tie in Q flips an action and the
#     runs part). In both, the CUDA steps run as captured graphs and again one
#     operation at a time (BPC_CUDA_GRAPH=0), which must give the same numbers
#     (GRAPH lines). Then the precision modes (PRECISION_MODELS, each in tf32 and
#     3xtf32: `precision` written into a copy of the model): the GPU's step against the
#     CPU target's same mode, which rounds the GEMM operands as the GPU does, with the
#     double-precision step (exact, every mode) as the yardstick.
#  2. Each model compiled for the GPU's own architecture (bpc ptx --arch sm_XY).
#  3. The CUDA step of the MNIST nets and cifar10_deep against the same model and rule
#     in eager PyTorch on the GPU (bench/run.py --target cuda: interleaved, ratios;
#     results in $OUT/bench_cuda.json); cifar10_deep and mnist_conv again in tf32 (PyTorch
#     with TF32 on, its cuDNN default) and 3xtf32 ($OUT/bench_cuda_tf32.json,
#     $OUT/bench_cuda_3xtf32.json).
#  4. One real epoch of cifar10_deep, mnist_loccon and mnist_conv on synthetic data of
#     their shape with `bpc train --target cuda` (seconds per epoch), and of
#     cifar10_deep with --precision tf32.
#  5. A GPU profile of the training step of mnist_conv, mnist_loccon and cifar10_deep
#     (BPC_PROFILE: CUDA events around each operation).
#  6. Data parallelism through NCCL (build/mpi_compare --target cuda): one rank's
#     data-parallel plan on the GPU, every collective through a one-rank NCCL
#     communicator, against one CPU process for STEPS steps of mnist_conv (both rules)
#     and DEEP_STEPS of cifar10_deep; with 2 GPUs and mpirun, also 2 ranks, and one
#     epoch of `mpirun -np 2 bpc train --target cuda`.
# Stops at once when the first model cannot run on the GPU at all (exit 2 from
# gpu_compare: no device, a kernel that does not compile, a crash), since every later
# model would fail the same way and the machine's time is short.
# On an H200 (2026-11-30) part 1 took about 3 minutes (in an earlier form: 200 steps
# each, no double-precision step), part 2 half a minute, part 3 two and a half, parts
# 4 and 5 half a minute together.
# Env: BUILD (build), STEPS (100), DEEP_STEPS (20), FREE_STEPS (300), PYTHON (python3;
# needs torch with CUDA for the PyTorch timings), OUT (where the JSON goes; default
# /tmp), LOGS (where each step's log goes; default /tmp), MODELS (the MODEL:RULE list
# to compare; default below), PARTS (the parts to run; default "1 2 3 4 5 6"), FREE (0:
# no free runs).
set -u
BUILD=${BUILD:-build}
STEPS=${STEPS:-100}
DEEP_STEPS=${DEEP_STEPS:-20}
FREE_STEPS=${FREE_STEPS:-300}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp}
LOGS=${LOGS:-/tmp}
MODELS=${MODELS:-"mnist_dense:brainprop mnist_dense:ebp mnist_conv:brainprop mnist_conv:ebp
    mnist_loccon:brainprop cifar10_conv:brainprop cifar10_deep:brainprop cifar10_deep:ebp
    docs/results/feedback/mnist_conv_kolen_pollack.bp:brainprop docs/results/feedback/mnist_conv_sign.bp:ebp
    docs/results/feedback/mnist_dense_direct.bp:brainprop"}
PRECISION_MODELS=${PRECISION_MODELS:-"mnist_conv:brainprop cifar10_deep:brainprop cifar10_deep:ebp"}
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || { echo "no GPU here"; exit 2; }
if [ ! -x "$BUILD/gpu_compare" ] || [ ! -x "$BUILD/bench_step" ] || [ ! -x "$BUILD/mpi_compare" ]; then
    make "$BUILD/bpc" "$BUILD/gpu_compare" "$BUILD/bench_step" "$BUILD/mpi_compare" || exit 2
fi
# (bpc links OpenMPI when it was built with it: libmpi must be on this machine too)
missing=$(ldd "$BUILD/bpc" "$BUILD/gpu_compare" "$BUILD/bench_step" "$BUILD/mpi_compare" | grep 'not found')
[ -z "$missing" ] || { echo "libraries missing on this machine:"; echo "$missing"; exit 2; }
PARTS=${PARTS:-1 2 3 4 5 6}
want() { case " $PARTS " in *" $1 "*) echo "== $(date +%T) part $1";; *) return 1;; esac; }
mkdir -p "$LOGS"
fail=0
first=1
# compare MODEL RULE MODE STEPS: one gpu_compare run; MODE is --sync or free
compare() {
    bp=models/$1.bp; [ -f "$1" ] && bp=$1   # a repository model's name, or a .bp file
    log="$LOGS/gpu_$(basename "$1" .bp)_$2_${3#--}.log"
    t0=$(date +%s)
    sync=; [ "$3" = --sync ] && sync=--sync
    timeout 150 "$BUILD/gpu_compare" "$bp" "$2" "$4" $sync > "$log" 2>&1
    rc=$?
    echo "-- $1 $2 $3: $(($(date +%s) - t0)) s"
    grep -E '^RESULT|^GRAPH|^SYNC|error|warning|unavailable' "$log" || tail -n 5 "$log"
    if [ $rc -ne 0 ]; then
        fail=1
        echo "FAIL gpu_compare $1 $2 $3 (exit $rc)"
        tail -n 20 "$log"
        [ $first = 1 ] && [ $rc -ne 1 ] && { echo "FAIL the first model cannot run on the GPU: stopping"; exit 2; }
    fi
    first=0
}
want 1 && for spec in $MODELS; do
    m=${spec%%:*}; r=${spec#*:}
    case $m in
    *deep*) compare "$m" "$r" --sync "$DEEP_STEPS" ;;
    *) compare "$m" "$r" --sync "$STEPS"; [ "${FREE:-1}" = 0 ] || compare "$m" "$r" free "$FREE_STEPS" ;;
    esac
done
want 1 && mkdir -p "$LOGS/precision" && for spec in $PRECISION_MODELS; do
    m=${spec%%:*}; r=${spec#*:}
    for p in tf32 3xtf32; do
        v="$LOGS/precision/${m}_$p.bp"
        sed "s/^train {/train {\n  precision $p;/" "models/$m.bp" > "$v"
        grep -q "^  precision $p;" "$v" || { echo "FAIL $m $p: no 'train {' line to set the precision in"; fail=1; continue; }
        case $m in *deep*) n=$DEEP_STEPS ;; *) n=$STEPS ;; esac
        compare "$v" "$r" --sync "$n"
    done
done
arch="sm_$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d .)"
want 2 && for m in models/*.bp; do
    "$BUILD/bpc" ptx "$m" -o /tmp/gpu_check.ptx --arch "$arch" \
        > /dev/null 2>&1 && echo "ok   $arch compile $m" || { echo "FAIL $arch compile $m"; fail=1; }
done
if ! want 3; then :
elif "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    timeout 240 "$PYTHON" bench/run.py --bench-step "$BUILD/bench_step" --python "$PYTHON" --target cuda \
        --models mnist_dense,mnist_conv,mnist_loccon,cifar10_deep --out "$OUT/bench_cuda.json" || fail=1
    for p in tf32 3xtf32; do
        timeout 150 "$PYTHON" bench/run.py --bench-step "$BUILD/bench_step" --python "$PYTHON" --target cuda \
            --precision $p --models mnist_conv,cifar10_deep --out "$OUT/bench_cuda_$p.json" || fail=1
    done
else
    echo "FAIL $PYTHON has no torch with CUDA here: no PyTorch timings"; fail=1
fi
want 4 && for m in cifar10_deep mnist_loccon mnist_conv; do
    timeout 90 "$BUILD/bpc" train "models/$m.bp" --data synthetic --target cuda --epochs 1 \
        --test-limit 1000 --no-progress > "$LOGS/gpu_epoch_$m.log" 2>&1 || fail=1
    grep -E '^epoch|^cuda|error' "$LOGS/gpu_epoch_$m.log" | sed "s|^|$m: |"
done
want 4 && { timeout 90 "$BUILD/bpc" train models/cifar10_deep.bp --data synthetic --target cuda --epochs 1 \
        --test-limit 1000 --no-progress --precision tf32 > "$LOGS/gpu_epoch_tf32.log" 2>&1 || fail=1
    grep -E '^epoch|^precision|error' "$LOGS/gpu_epoch_tf32.log" | sed "s|^|cifar10_deep tf32: |"; }
want 5 && for m in mnist_conv mnist_loccon cifar10_deep; do
    BPC_PROFILE=1 timeout 60 "$BUILD/bench_step" "models/$m.bp" brainprop --target cuda --steps 30 \
        --warmup 3 --no-cold 2> "$LOGS/gpu_profile_$m.log" > /dev/null || fail=1
    echo "$m:"; grep -A 12 '^profile' "$LOGS/gpu_profile_$m.log"
done
# dp NAME STEPS [mpirun -np N]: one mpi_compare run of each rule with the ranks on CUDA
dp() {
    m=$1 n=$2; shift 2
    for r in brainprop ebp; do
        log="$LOGS/nccl_${m}_${r}_${3:-1}ranks.log"
        timeout 150 "$@" "$BUILD/mpi_compare" --target cuda "models/$m.bp" "$r" "$n" > "$log" 2>&1 ||
            { fail=1; echo "FAIL mpi_compare --target cuda $m $r $*"; tail -n 20 "$log"; }
        grep -E '^RESULT|RANKS DISAGREE|error' "$log"
    done
}
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
want 6 && { dp mnist_conv "$STEPS"; dp cifar10_deep "$DEEP_STEPS"; }
if want 6 && [ "$gpus" -ge 2 ] && command -v mpirun > /dev/null; then
    dp mnist_conv "$STEPS" mpirun -np 2
    timeout 150 mpirun -np 2 "$BUILD/bpc" train models/mnist_conv.bp --data synthetic --target cuda \
        --epochs 1 --test-limit 1000 --no-progress > "$LOGS/nccl_epoch.log" 2>&1 || fail=1
    grep -E '^epoch|^cuda|^data|error' "$LOGS/nccl_epoch.log" | sed 's|^|2 ranks: |'
elif want 6; then
    echo "part 6: $gpus GPU(s)$(command -v mpirun > /dev/null || echo ', no mpirun'): no 2-rank NCCL run"
fi
echo "== $(date +%T) done"
exit $fail
