#!/bin/sh
# tests/oracle/test_feedback.sh: one bpc training step against PyTorch for every feedback
# pathway (tied is test_step.sh), on the CPU target.
#
# Each case writes a variant of a repository model (its output line, and for the mixed
# cases some weight layers, given their own `feedback`), runs $BUILD/oracle_dump on it
# and tests/oracle/torch_step.py on the dump: the twin there builds each pathway from
# its paper (feedback alignment, sign symmetry, Kolen-Pollack, direct feedback
# alignment) with autograd, in float64, and compares every tensor, the feedback
# matrices included (1e-5 relative; updates 1e-4). Environment: as tests/oracle/lib.sh.
TEST=test_feedback
. "$(dirname "$0")/lib.sh"

# one case: NAME MODEL DATA BATCH RULE OUTPUT_FEEDBACK [SED]: SED edits the model's
# other lines (per-layer feedback)
case_() {
    name=$1 model=$2 data=$3 batch=$4 rule=$5 fb=$6 extra=${7:-}
    bp="$TMP/$name.bp"
    sed -e "s/^\( *output .*\);/\1 feedback $fb;/" ${extra:+-e "$extra"} "models/$model.bp" > "$bp"
    # the output's mode, and every layer mode that the extra edit names, are in the model
    for want in "feedback=$fb;" $(printf '%s' "$extra" | grep -o 'feedback [a-z_]*' | tr ' ' '='); do
        grep -q "$(echo "$want" | tr '=' ' ')" "$bp" ||
            { n=$((n + 1)); echo "FAIL $name: could not write its model ($want)"; fail=$((fail + 1)); return; }
    done
    echo "== $name ($model, $rule, feedback $fb${extra:+, $extra})"
    step "$name" "$bp" "$rule" "$data" "$batch"
}

for fb in random sign kolen_pollack direct; do
    for rule in brainprop ebp; do
        case_ "dense-$fb-$rule" mnist_dense "$DATA" 32 "$rule" "$fb"
    done
    case_ "conv-$fb-brainprop" mnist_conv "$DATA" 32 brainprop "$fb"
done
case_ conv-direct-ebp mnist_conv "$DATA" 32 ebp direct
# mixed: the output's mode and two layers of their own (conv: sign; dense: kolen_pollack)
case_ conv-mixed-ebp mnist_conv "$DATA" 16 ebp random \
    's/^\( *conv .*stride 2.*relu\);/\1 feedback sign;/; s/^\( *dense .*relu\);/\1 feedback kolen_pollack decay 0.01;/'
case_ loccon-mixed-brainprop mnist_loccon "$DATA" 8 brainprop kolen_pollack \
    's/^\( *dense .*relu\);/\1 feedback random;/'
case_ loccon-direct-ebp mnist_loccon "$DATA" 8 ebp direct
# the deep net: L2 with Kolen-Pollack's decay, and direct feedback through max-pooling blocks
case_ deep-kp-brainprop cifar10_deep synthetic 8 brainprop kolen_pollack
case_ deep-direct-ebp cifar10_deep synthetic 8 ebp direct
finish
