#!/bin/sh
# bench/run.sh: what `make bench` runs. Times bpc's CPU training step against the same
# model and rule in PyTorch, interleaved, for every paper architecture and both rules,
# on synthetic inputs; prints a table and writes bench/results.json; then the MPI scaling
# ratio (bench/mpi_scaling.py, bench/mpi_scaling.json). The work is done
# by bench/run.py (Python, because it keeps bpc and PyTorch processes alive and makes
# them take turns); this script checks what it needs first.
# Env: BUILD (build folder holding bench_step), PYTHON (default /usr/bin/python3, the
# interpreter of Debian's python3-torch), BENCH_ARGS (extra run.py arguments, e.g.
# "--models mnist_dense,mnist_conv" or "--quick").
set -eu
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
[ -x "$BUILD/bench_step" ] || { echo "bench: $BUILD/bench_step is missing: run 'make bench'" >&2; exit 2; }
"$PYTHON" -c 'import torch' 2>/dev/null || {
    echo "bench: $PYTHON cannot import torch: install Debian's python3-torch" >&2; exit 2; }
# shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments
"$PYTHON" bench/run.py --bench-step "$BUILD/bench_step" --python "$PYTHON" \
    --out bench/results.json ${BENCH_ARGS:-}
# data parallelism: 1 process x 2 threads against 2 MPI ranks x 1 thread
if command -v mpirun > /dev/null 2>&1; then
    "$PYTHON" bench/mpi_scaling.py --bpc "$BUILD/bpc" --out bench/mpi_scaling.json
else
    echo "bench: no mpirun: the MPI scaling ratio is left out (install openmpi-bin)"
fi
