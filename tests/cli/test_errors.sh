#!/bin/sh
# test_errors.sh: bad input to `bpc` gets a clear message and the documented exit
# status (1: the user's input, 2: I/O or numerical failure), and never a crash.
# Uses the sanitized bpc ($SANBPC) where training is not involved.
# Env: BPC, SANBPC, DATA (data root holding mnist/).
set -u
T=$(mktemp -d "${TMPDIR:-/tmp}/bpc-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0

# expect NAME STATUS PATTERN CMD...: CMD exits STATUS and its stderr matches PATTERN.
expect() {
    name=$1 want=$2 pat=$3; shift 3
    "$@" > "$T/out" 2> "$T/err"
    rc=$?
    if [ "$rc" -ne "$want" ] || ! grep -q -e "$pat" "$T/err"; then
        echo "FAIL $name: exit $rc (want $want), stderr:"; sed 's/^/  /' "$T/err" | head -n 20
        fails=$((fails + 1))
    else
        echo "ok   $name"
    fi
}

expect "missing model file" 2 "no_such.bp" "$SANBPC" check "$T/no_such.bp"
expect "no arguments" 1 "usage" "$SANBPC"
expect "unknown option" 1 "unknown option '--frobnicate'" "$SANBPC" check models/mnist_conv.bp --frobnicate
expect "bad --epochs" 1 "--epochs takes a whole number" "$SANBPC" train models/mnist_conv.bp --epochs x
expect "bad --rule" 1 "--rule is brainprop or ebp" "$SANBPC" models/mnist_conv.bp -o "$T/x.c" --rule maybe
expect "emit without -o" 1 "missing -o" "$SANBPC" models/mnist_conv.bp

# a model whose input does not fit the data set: a located error, status 1
sed 's/input     28 x 28 x 1;/input     32 x 32 x 3;/' models/mnist_conv.bp > "$T/wrong_input.bp"
expect "input vs data shape" 1 "wrong_input.bp:5:3: error: the input is 32x32x3, but mnist images are 28x28x1" \
    "$BPC" train "$T/wrong_input.bp" --data "$DATA" --target cpu --epochs 1 --limit 256
sed 's/output    10 brainprop/output    7 brainprop/' models/mnist_conv.bp > "$T/wrong_out.bp"
expect "output vs classes" 1 "wrong_out.bp:13:3: error: output has 7 units, but mnist has 10 classes" \
    "$BPC" train "$T/wrong_out.bp" --data "$DATA" --target cpu --epochs 1 --limit 256

# a truncated data file: status 2, the file is named
mkdir -p "$T/data/mnist"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    cp "$DATA/mnist/$f" "$T/data/mnist/$f" 2>/dev/null || cp "$DATA/mnist/$f.gz" "$T/data/mnist/$f.gz"
done
head -c 1000 "$DATA/mnist/t10k-images-idx3-ubyte" > "$T/data/mnist/t10k-images-idx3-ubyte"
expect "truncated IDX" 2 "t10k-images-idx3-ubyte.*truncated" \
    "$BPC" train models/mnist_conv.bp --data "$T/data" --target cpu --epochs 1 --limit 256
expect "missing data" 2 "bpc data fetch mnist" \
    "$BPC" train models/mnist_conv.bp --data "$T/empty" --target cpu --epochs 1

# a learning rate that blows up: the run stops with the epoch and step, status 2
expect "NaN loss" 2 "the loss became .* at epoch 1, step" \
    "$BPC" train models/mnist_dense.bp --data "$DATA" --target cpu --epochs 1 --limit 2560 --lr 1e6

# CUDA target without a GPU: says so, status 2
if ! nvidia-smi > /dev/null 2>&1; then
    expect "cuda unavailable" 2 "CUDA target unavailable" \
        "$BPC" train models/mnist_conv.bp --data "$DATA" --target cuda --epochs 1 --limit 256
fi

# the CPU JIT's C compiler (fresh caches, so that nothing compiled before is reused)
expect "CC that does not exist" 2 "cannot run the C compiler 'no-such-cc': install gcc (or set CC)" \
    env CC=no-such-cc XDG_CACHE_HOME="$T/cache1" "$SANBPC" train models/mnist_dense.bp --data "$DATA" \
    --epochs 1 --limit 256
expect "CC of blanks" 2 "cannot run the C compiler" \
    env CC="  " XDG_CACHE_HOME="$T/cache2" "$SANBPC" train models/mnist_dense.bp --data "$DATA" \
    --epochs 1 --limit 256
expect "CC that fails silently" 2 "the C compiler 'false' failed (exit status 1) on .* and printed nothing" \
    env CC=false XDG_CACHE_HOME="$T/cache3" "$SANBPC" train models/mnist_dense.bp --data "$DATA" \
    --epochs 1 --limit 256
expect "CC that succeeds without an object" 2 "exited successfully but wrote no object file" \
    env CC=true XDG_CACHE_HOME="$T/cache4" "$SANBPC" train models/mnist_dense.bp --data "$DATA" \
    --epochs 1 --limit 256

[ "$fails" -eq 0 ]
