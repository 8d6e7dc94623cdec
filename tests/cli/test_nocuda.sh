#!/bin/sh
# test_nocuda.sh: bpc builds and trains on the CPU where there is no CUDA toolkit, and
# its CUDA target then says it is unavailable (the build is pointed at a CUDA_HOME
# that does not exist, so none of the CUDA headers are found).  Env: DATA.
set -u
T=$(mktemp -d "${TMPDIR:-/tmp}/bpc-nocuda.XXXXXX")
trap 'rm -rf "$T"' EXIT
make -s BUILD="$T/b" CUDA_HOME="$T/no-cuda" "$T/b/bpc" > "$T/make.log" 2>&1 || { cat "$T/make.log"; exit 1; }
grep -q "CUDA headers ($T/no-cuda) ✗" "$T/make.log" || { echo "the build did not say that CUDA is missing"; cat "$T/make.log"; exit 1; }
"$T/b/bpc" train models/mnist_dense.bp --data "$DATA" --target cuda --epochs 1 --limit 500 > "$T/out" 2> "$T/err"
rc=$?
[ "$rc" -eq 2 ] && grep -q "CUDA target unavailable: bpc was built without the CUDA headers" "$T/err" ||
    { echo "cuda target: exit $rc"; cat "$T/err"; exit 1; }
"$T/b/bpc" train models/mnist_dense.bp --data "$DATA" --epochs 1 --limit 500 --test-limit 100 > "$T/out" 2>&1 ||
    { echo "cpu training failed"; cat "$T/out"; exit 1; }
grep -q "cpu target" "$T/out" && grep -q "^test accuracy" "$T/out" || { cat "$T/out"; exit 1; }
echo "ok   built without CUDA: trains on the CPU, and --target cuda says why not"
