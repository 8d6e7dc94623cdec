#!/bin/sh
# e2e_mnist.sh BPC DATA: trains models/mnist_conv.bp with BrainProp for one epoch on
# the real MNIST (CPU target) and requires a test accuracy of at least 90% on all
# 10,000 test images, and a metrics line for the epoch.
BPC=$1; DATA=$2
out=$(mktemp -d "${TMPDIR:-/tmp}/bpc-e2e.XXXXXX")
trap 'rm -rf "$out"' EXIT
"$BPC" train models/mnist_conv.bp --data "$DATA" --target cpu --epochs 1 --metrics "$out/m.jsonl" | tee "$out/log" || exit 1
acc=$(sed -n 's/^test accuracy \([0-9.]*\) (10000 images).*/\1/p' "$out/log")
[ -n "$acc" ] || { echo "no final test accuracy line"; exit 1; }
[ "$(wc -l < "$out/m.jsonl")" -eq 1 ] || { echo "expected one metrics line"; exit 1; }
awk -v a="$acc" 'BEGIN { if (a < 0.90) { print "test accuracy " a " < 0.90"; exit 1 } }'
