#!/bin/sh
# tests/oracle/test_step.sh: one bpc training step against PyTorch, for mnist_dense and
# mnist_conv under both rules (BrainProp and EBP), on the CPU target.
#
# For each pair, $BUILD/oracle_dump runs the step on the first 32 MNIST training images
# and dumps every tensor before and after it; tests/oracle/torch_step.py replays the
# step in float64 PyTorch and compares weights, batch-norm state and loss (1e-5
# relative; updates 1e-4 relative). Environment: as tests/oracle/lib.sh says.
# Exits non-zero when any pair fails or cannot run.
TEST=test_step
. "$(dirname "$0")/lib.sh"

# MODEL:DATA:BATCH — the MNIST nets on the real images; the rest, whose data sets are
# not available offline, on synthetic images (the step's arithmetic is the same).
for spec in mnist_dense:$DATA:32 mnist_conv:$DATA:32 mnist_loccon:$DATA:8 \
            cifar10_conv:synthetic:16 cifar100_loccon:synthetic:4 cifar10_deep:synthetic:8; do
    model=${spec%%:*}; rest=${spec#*:}; data=${rest%:*}; batch=${rest##*:}
    for rule in brainprop ebp; do
        echo "== $model, $rule"
        step "$model-$rule" "models/$model.bp" "$rule" "$data" "$batch"
    done
done
finish
