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
expect "--ranks with --batch" 1 "--ranks takes the batch from the train block" \
    "$SANBPC" models/mnist_conv.bp -o "$T/x.c" --ranks 2 --batch 8
expect "--ranks 0" 1 "--ranks takes a whole number from 1 to 4096" "$SANBPC" models/mnist_conv.bp -o "$T/x.c" --ranks 0
expect "--ranks for train" 1 "to train on N ranks, start \`mpirun -np N bpc train" "$SANBPC" train models/mnist_conv.bp --ranks 2
expect "--ranks above the batch" 1 "--ranks 129 is more than the train block's batch of 128" \
    "$SANBPC" models/mnist_conv.bp -o "$T/x.c" --ranks 129
# --ranks 3: one rank's program, at most 43 of the 128 samples, with its collectives
if "$SANBPC" models/mnist_conv.bp -o "$T/dp.c" --ranks 3 2> "$T/err" && grep -q 'sum over the ranks' "$T/dp.c" &&
    head -n 1 "$T/dp.c" | grep -q "batch 43 (one rank's share of 128, data-parallel)"; then
    echo "ok   emit --ranks 3: one rank's program with its collectives"
else
    echo "FAIL emit --ranks 3:"; sed 's/^/  /' "$T/err"; fails=$((fails + 1))
fi

# an output that would replace its own input, a device or a FIFO
cp models/mnist_dense.bp "$T/self.bp"
expect "emit over the model" 1 "-o $T/self.bp is the model file itself" "$SANBPC" "$T/self.bp" -o "$T/self.bp"
expect "ptx over the model" 1 "is the model file itself" "$SANBPC" ptx "$T/self.bp" -o "$T/self.bp"
cmp -s models/mnist_dense.bp "$T/self.bp" && echo "ok   the model is intact" ||
    { echo "FAIL emitting over the model changed it"; fails=$((fails + 1)); }
mkfifo "$T/fifo"
expect "build over a FIFO" 1 "-o $T/fifo exists and is not a regular file" "$SANBPC" build "$T/self.bp" -o "$T/fifo"
[ -p "$T/fifo" ] && echo "ok   the FIFO is still a FIFO" || { echo "FAIL build replaced the FIFO"; fails=$((fails + 1)); }

# a failed write to standard output is an error (a full disk; Linux's /dev/full here)
expect "stdout on a full disk" 2 "cannot write the standard output: No space left on device" \
    sh -c '"$0" check models/mnist_dense.bp > /dev/full' "$SANBPC"
expect "--help on a full disk" 2 "cannot write the standard output" sh -c '"$0" --help > /dev/full' "$SANBPC"

# values the options and the language refuse
expect "hexadecimal --lr" 1 "--lr takes a number from" "$SANBPC" train models/mnist_dense.bp --lr 0x10
expect "ptx --arch not virtual" 1 "--arch for ptx is one virtual architecture" \
    "$SANBPC" ptx models/mnist_dense.bp -o "$T/x.ptx" --arch compute_1
sed 's/epsilon 0.02/epsilon 1e-50/' models/mnist_conv.bp > "$T/tiny_eps.bp"
expect "epsilon below a float" 1 "epsilon 1e-50 is too small for a float (it would be 0)" "$SANBPC" check "$T/tiny_eps.bp"
sed 's/init        normal 0.01/init normal 3e38/' models/mnist_dense.bp > "$T/huge_init.bp"
expect "init std whose draws overflow" 1 "init std 3e38 is too large: a draw of 6.7 std would not fit a float" \
    "$SANBPC" check "$T/huge_init.bp"

# a model with no data set: --data synthetic trains it in its own shape, anything else says what to add
printf 'model free { input 5x5x2; dense 7 relu; output 3 brainprop; }\ntrain { batch 8; }\n' > "$T/free.bp"
expect "no data set" 1 "free.bp: the model names no data set; add \`data mnist;\`" \
    "$BPC" train "$T/free.bp" --data "$DATA" --epochs 1
grep -q "error: .*: error:" "$T/err" && { echo "FAIL 'error:' twice in one message"; fails=$((fails + 1)); }
"$BPC" train "$T/free.bp" --data synthetic --epochs 1 --limit 64 --test-limit 16 > "$T/log" 2>&1 &&
    grep -q "^test accuracy" "$T/log" && echo "ok   no data set, synthetic data" ||
    { echo "FAIL no data set, synthetic data"; sed 's/^/  /' "$T/log"; fails=$((fails + 1)); }

# a checkpoint holding a NaN is refused by eval and by --resume, naming the tensor
"$BPC" train models/mnist_dense.bp --data "$DATA" --epochs 1 --limit 256 --test-limit 64 --out "$T/run" > /dev/null 2>&1
/usr/bin/python3 - "$T/run/last.safetensors" "$T/nan.safetensors" <<'PY'
import struct, sys
sys.path.insert(0, "tests/cli")
import st_file
header, meta, data = st_file.read(sys.argv[1])
buf = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", buf[:8])
at = 8 + n + header["3.weight"]["data_offsets"][0] + 4 * 5   # the sixth value of 3.weight
open(sys.argv[2], "wb").write(buf[:at] + struct.pack("<f", float("nan")) + buf[at + 4:])
PY
expect "eval of a NaN checkpoint" 1 "holds 1 NaN or infinite value (the first in 3.weight)" \
    "$BPC" eval models/mnist_dense.bp "$T/nan.safetensors" --data "$DATA" --test-limit 64
cp "$T/nan.safetensors" "$T/run/last.safetensors"
expect "resume from a NaN checkpoint" 1 "NaN or infinite" "$BPC" train --resume "$T/run" --data "$DATA"

# a model file whose name is not UTF-8: the checkpoint header and eval --json stay valid JSON
bad_name="$T/$(printf 'm\303(')".bp
cp models/mnist_dense.bp "$bad_name"
if "$BPC" train "$bad_name" --data "$DATA" --epochs 1 --limit 256 --test-limit 32 --out "$T/run8" > "$T/log" 2>&1 &&
   "$BPC" eval "$bad_name" "$T/run8" --data "$DATA" --test-limit 32 --json > "$T/eval.json" 2>> "$T/log" &&
   /usr/bin/python3 - "$T/eval.json" "$T/run8/last.safetensors" >> "$T/log" 2>&1 <<'PY'
import json, struct, sys
ev = json.load(open(sys.argv[1], encoding="utf-8"))
assert ev["source"].endswith("m\ufffd(.bp"), ev["source"]
b = open(sys.argv[2], "rb").read()
(n,) = struct.unpack("<Q", b[:8])
meta = json.loads(b[8:8 + n].decode("utf-8"))["__metadata__"]
assert meta["source_file"].endswith("m\ufffd(.bp"), meta["source_file"]
PY
then echo "ok   a file name that is not UTF-8 gives valid JSON"
else echo "FAIL a file name that is not UTF-8:"; sed 's/^/  /' "$T/log" | tail -n 15; fails=$((fails + 1)); fi

# run folders and --metrics
R="$BPC train models/mnist_dense.bp --data $DATA --limit 256 --test-limit 64 --no-progress"
# a failed start leaves model.bp; the next fresh run in that folder writes its own
mkdir -p "$T/rf"; cp tests/golden/ok_cifar10_deep.bp "$T/rf/model.bp"
$R --epochs 1 --out "$T/rf" > "$T/log" 2>&1 && cmp -s models/mnist_dense.bp "$T/rf/model.bp" &&
    echo "ok   a fresh run replaces a stale model.bp" ||
    { echo "FAIL a fresh run kept a stale model.bp"; fails=$((fails + 1)); }
# best.safetensors lost between the two writes: a resume writes it again from last
rm "$T/rf/best.safetensors"
"$BPC" train --resume "$T/rf" --epochs 2 --data "$DATA" --no-progress > "$T/log" 2>&1 && [ -f "$T/rf/best.safetensors" ] &&
    "$BPC" eval models/mnist_dense.bp "$T/rf" --data "$DATA" --test-limit 64 > /dev/null 2>> "$T/log" &&
    echo "ok   a resume rewrites a missing best.safetensors" ||
    { echo "FAIL a missing best.safetensors:"; tail -n 5 "$T/log" | sed 's/^/  /'; fails=$((fails + 1)); }
# --metrics /dev/stdout with stdout in a file: the lines land in it, not under the log
$R --epochs 2 --metrics /dev/stdout > "$T/so.txt" 2> "$T/log"
[ "$(grep -c '^{"epoch": ' "$T/so.txt")" -eq 2 ] && grep -q "^test accuracy" "$T/so.txt" &&
    echo "ok   --metrics /dev/stdout into a file keeps both" ||
    { echo "FAIL --metrics /dev/stdout:"; sed 's/^/  /' "$T/so.txt" | head; fails=$((fails + 1)); }
ln -s "$T/rs/metrics.jsonl" "$T/ml"
expect "--metrics linked to the run folder's own file" 1 "is inside the run folder $T/rs, which keeps its own metrics.jsonl" \
    $R --epochs 1 --out "$T/rs" --metrics "$T/ml"
mkfifo "$T/mfifo"
expect "--metrics on a FIFO nobody reads" 2 "a FIFO that no process is reading" $R --epochs 1 --metrics "$T/mfifo"
# "--" ends the options: a model file whose name starts with a dash
cp models/mnist_dense.bp "$T/-dash.bp"
case $SANBPC in /*) sb=$SANBPC ;; *) sb=$PWD/$SANBPC ;; esac
(cd "$T" && "$sb" check -- -dash.bp > out 2> err) && grep -q "^model mnist_dense (-dash.bp)" "$T/out" &&
    echo "ok   -- before a model named -dash.bp" || { echo "FAIL --"; fails=$((fails + 1)); }
# a message that names a long path keeps its reason
long=$T/$(printf 'a%.0s' $(seq 200))/$(printf 'b%.0s' $(seq 200))/$(printf 'c%.0s' $(seq 200))/$(printf 'd%.0s' $(seq 200))/$(printf 'e%.0s' $(seq 200))
expect "a long path keeps the reason" 2 "x.safetensors: cannot open" \
    "$SANBPC" eval models/mnist_dense.bp "$long/x.safetensors" --data "$DATA"

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

# out of memory names what needed how much: a 1,048,576-unit dense layer under a 4 GiB
# address-space limit (the plain bpc: the sanitizers reserve far more than that; one
# thread: the stacks and arenas of more would use the limit up first on a bigger machine)
printf 'model big {\n  input 28 x 28 x 1;\n  dense 1048576 relu;\n  output 10 brainprop;\n}\n' > "$T/big.bp"
expect "out of memory, with the layer and bytes" 2 \
    "the largest is L1.weight of layer 1 (dense 1048576, line 3): 822,083,584 values, 3.1 GiB" \
    env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    sh -c 'ulimit -v 4000000 && exec "$0" train "$1" --data synthetic --epochs 1' "$BPC" "$T/big.bp"
expect "--limit 1: nothing left to train on" 1 "1 training image (--limit): nothing is left to train on" \
    "$BPC" train models/mnist_dense.bp --data "$DATA" --epochs 1 --limit 1

[ "$fails" -eq 0 ]
