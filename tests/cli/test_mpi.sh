#!/bin/sh
# test_mpi.sh: data-parallel training over MPI ranks on the CPU target (runtime/dist.h),
# with OpenMPI's mpirun, 2 ranks on this machine (--oversubscribe: there may be fewer
# cores), one thread each:
#  - 2 ranks x 64 against 1 process x 128, mnist_conv, BrainProp and EBP, 20 steps, each
#    step from the same state: as exact as one process against the double-precision
#    step, losses to 1e-5, and the ranks' weights the same bits (build/mpi_compare);
#  - `mpirun -np 2 bpc train` on the real MNIST: rank 0 alone writes the run folder; a
#    run stopped after one epoch, or by Ctrl-C to mpirun in the middle of one, and
#    resumed with the same number of ranks is bit-identical to one that was not stopped;
#  - one rank killed with SIGKILL: the job stops with mpirun's message and a non-zero
#    exit, the checkpoint of the last finished epoch is intact and resumes;
#  - on a machine without a GPU, the CUDA target under several ranks (NCCL) stops every
#    rank with the reason (tests/gpu/check.sh runs it on GPUs);
#  - more ranks than the batch has samples: refused on every rank, with the reason;
#  - `bpc repro` under mpirun hands the runs of a grid to the ranks.
# Env: BPC, BUILD, DATA (data root holding mnist/), PYTHON.
set -u
TEST=mpi
. tests/cli/lib.sh
PY=${PYTHON:-/usr/bin/python3}
BUILD=${BUILD:-build}
if ! command -v mpirun > /dev/null 2>&1; then
    echo "skip test_mpi: no mpirun (install openmpi-bin and libopenmpi-dev, then build again)"
    exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
# no network interface needed: shared memory between the ranks of this machine
MPI="mpirun -np 2 --oversubscribe --mca btl self,vader"

for rule in brainprop ebp; do
    if $MPI "$BUILD/mpi_compare" models/mnist_conv.bp $rule 20 > "$T/cmp.log" 2>&1; then
        ok "$(grep '^RESULT' "$T/cmp.log" | cut -c8-140)..."
    else bad "2 ranks against one process, $rule" "$T/cmp.log"; fi
done

RUN0="models/mnist_conv.bp --data $DATA --limit 2816 --val 256 --test-limit 256 --no-progress"
RUN="$RUN0 --target cpu"
$MPI "$BPC" train $RUN --epochs 6 --out "$T/a" > "$T/a.log" 2>&1 || bad "mpirun -np 2 bpc train" "$T/a.log"
grep -q "^data parallel: 2 ranks, each training at most 64 of every batch of 128" "$T/a.log" &&
    ok "2 ranks train, the log says how" || bad "the data-parallel line" "$T/a.log"
[ "$(grep -c '^epoch' "$T/a.log")" -eq 6 ] && [ "$(wc -l < "$T/a/metrics.jsonl")" -eq 6 ] &&
    ok "rank 0 alone logs and writes metrics.jsonl" || bad "the log or metrics.jsonl has other ranks' lines" "$T/a.log"
$MPI "$BPC" train $RUN --epochs 1 --out "$T/b" > "$T/b.log" 2>&1 &&
    $MPI "$BPC" train --resume "$T/b" --epochs 6 > "$T/b2.log" 2>&1 || bad "stop and resume under mpirun" "$T/b2.log"
if "$PY" tests/cli/same_run.py "$T/a" "$T/b" > "$T/same.log" 2>&1; then ok "resumed with 2 ranks = not stopped"
else bad "resumed with 2 ranks = not stopped" "$T/same.log"; fi

# start_epoch DIR N: starts `mpirun ... bpc train $RUN --epochs N --out DIR` in the
# background (its pid in $mp) and returns once its first epoch is in metrics.jsonl
start_epoch() {
    $MPI "$BPC" train $RUN --epochs "$2" --out "$1" > "$1.log" 2>&1 &
    mp=$!
    i=0
    while [ ! -s "$1/metrics.jsonl" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
}

# Ctrl-C to mpirun once the first of 6 epochs is written: every rank stops after the
# same step, rank 0 saves it, and the resumed run is the run that was never stopped.
# mpirun passes a signal on to the ranks about 1 s after it gets it, and an epoch takes
# about 1 s here: the ranks get it somewhere in epochs 2 to 6 (also on a machine 3 times
# as fast). Between two epochs is a stop too, but not the one meant here: then try
# again with another delay.
for delay in 0.2 0.6 1.1; do
    rm -rf "$T/i"
    start_epoch "$T/i" 6
    sleep $delay
    kill -INT $mp
    wait $mp
    grep -q "^bpc: interrupted by SIGTERM at epoch [2-6], step" "$T/i.log" && break
done
grep -q "^bpc: interrupted by SIGTERM at epoch [2-6], step .*; saved $T/i/last.safetensors" "$T/i.log" &&
    ok "Ctrl-C to mpirun: the ranks stop together, rank 0 saves ($(grep '^bpc: interrupted' "$T/i.log" | grep -o 'at epoch [0-9]*, step [0-9]* of [0-9]*'))" ||
    bad "Ctrl-C to mpirun, in the middle of an epoch" "$T/i.log"
$MPI "$BPC" train --resume "$T/i" > "$T/log" 2>&1 || bad "resume after Ctrl-C" "$T/log"
if "$PY" tests/cli/same_run.py "$T/a" "$T/i" > "$T/same.log" 2>&1; then ok "resumed mid-epoch = not stopped"
else bad "resumed mid-epoch = not stopped" "$T/same.log"; fi

# SIGKILL to rank 1 once the first epoch is written
start_epoch "$T/k" 3
for p in $(pgrep -P $mp); do
    tr '\0' '\n' < /proc/$p/environ 2> /dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && kill -KILL $p
done
wait $mp
rc=$?
[ $rc -ne 0 ] && grep -q "rank 1 .*exited on signal 9" "$T/k.log" && ok "a killed rank stops the job (exit $rc) and mpirun says which" ||
    bad "a killed rank: exit $rc" "$T/k.log"
"$BPC" eval models/mnist_conv.bp "$T/k/last.safetensors" --data "$DATA" --test-limit 64 > "$T/log" 2>&1 &&
    ok "its last checkpoint is intact" || bad "the checkpoint after a killed rank" "$T/log"
$MPI "$BPC" train --resume "$T/k" --epochs 2 > "$T/log" 2>&1 && ok "and resumes under mpirun" || bad "resume after a killed rank" "$T/log"

if command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L > /dev/null 2>&1; then
    echo "skip: a GPU is here, so the CUDA target under 2 ranks is tests/gpu/check.sh's"
else
    # (a bpc built without nccl.h says that first)
    $MPI "$BPC" train $RUN0 --epochs 1 --target cuda > "$T/log" 2>&1
    rc=$?
    [ $rc -eq 2 ] && grep -q -E "error: (CUDA target unavailable|data parallelism on the CUDA target needs NCCL)" "$T/log" &&
        ok "the CUDA target under 2 ranks without a GPU: exit 2 and why" || bad "the CUDA target under 2 ranks: exit $rc" "$T/log"
fi
sed 's/batch  *[0-9]*;/batch 1;/' models/mnist_dense.bp > "$T/b1.bp"
expect "2 ranks for a batch of 1" 1 "2 ranks for a batch of 1: every rank needs a sample of each batch" \
    $MPI "$BPC" train "$T/b1.bp" --data synthetic --epochs 1 --target cpu
$MPI "$BPC" repro --models mnist_dense --rules brainprop,ebp --seeds 1 --out "$T/grid" --data synthetic \
    --epochs 1 --limit 600 --test-limit 100 --no-progress > "$T/log" 2>&1 &&
    [ -f "$T/grid/mnist_dense-brainprop-seed1/summary.json" ] && [ -f "$T/grid/mnist_dense-ebp-seed1/summary.json" ] &&
    grep -q "2 of 2 runs done" "$T/log" && ok "bpc repro under mpirun: the ranks share the grid" ||
    bad "bpc repro under mpirun" "$T/log"
[ "$fails" -eq 0 ]
