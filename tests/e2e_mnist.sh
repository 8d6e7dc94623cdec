#!/bin/sh
# e2e_mnist.sh BPC DATA: trains models/mnist_conv.bp with BrainProp for one epoch on
# the real MNIST (CPU target), evaluated on all 10,000 test images.
# Thresholds: after one epoch BrainProp's greedy train accuracy is above 0.8, but the
# test accuracy lags (about 0.7): it uses the batch-norm moving averages, and with
# Keras' momentum 0.99 and the paper's tiny initial weights the moving variance is
# still dominated by its initial 1 after 469 steps. By epoch 2 it is above 0.97.
# So: train accuracy >= 0.75 and test accuracy >= 0.6, and one metrics line.
# --val test: train on all 60,000 images (469 steps), as these thresholds assume; the
# default 10% hold-out leaves 422 steps, and the moving variance lags further.
BPC=$1; DATA=$2
out=$(mktemp -d "${TMPDIR:-/tmp}/bpc-e2e.XXXXXX")
trap 'rm -rf "$out"' EXIT
"$BPC" train models/mnist_conv.bp --data "$DATA" --target cpu --epochs 1 --val test --metrics "$out/m.jsonl" | tee "$out/log" || exit 1
acc=$(sed -n 's/^test accuracy \([0-9.]*\) (10000 images).*/\1/p' "$out/log")
tacc=$(sed -n 's/^epoch .* train-acc \([0-9.]*\) .*/\1/p' "$out/log")
[ -n "$acc" ] && [ -n "$tacc" ] || { echo "no accuracy lines"; exit 1; }
[ "$(wc -l < "$out/m.jsonl")" -eq 1 ] || { echo "expected one metrics line"; exit 1; }
awk -v a="$acc" -v t="$tacc" 'BEGIN {
    if (t < 0.75) { print "train accuracy " t " < 0.75"; exit 1 }
    if (a < 0.60) { print "test accuracy " a " < 0.60"; exit 1 } }'
