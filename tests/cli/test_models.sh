#!/bin/sh
# test_models.sh: `bpc check` of every paper model prints the parameter count that a
# hand count gives. Biases: none; batch norm counts gamma and beta (2 per channel).
# conv: F*K*K*Cin; loccon: Ho*Wo*F*K*K*Cin; dense: in*out.   Env: SANBPC.
set -u
fails=0
want() {  # MODEL EXPECTED
    got=$("$SANBPC" check "models/$1.bp" | awk '$1 == "total" { gsub(",", "", $2); print $2 }')
    if [ "$got" = "$2" ]; then echo "ok   $1 $got parameters"
    else echo "FAIL $1: bpc check says $got parameters, the hand count $2"; fails=$((fails + 1)); fi
}
bn() { echo $((2 * $1)); }
# conv net: conv32 s1 same, BN, conv32 s2 same, BN, dense 500 on (H/2)x(W/2)x32, out
conv() {  # H C CLASSES
    h2=$((($1 + 1) / 2))
    echo $((32*9*$2 + $(bn 32) + 32*9*32 + $(bn 32) + h2*h2*32*500 + 500*$3))
}
# loccon net, pad valid: H-2 after the first 3x3 s1, then floor((H-2-3)/2)+1
loccon() {  # H C CLASSES
    a=$(($1 - 2)); b=$(((a - 3) / 2 + 1))
    echo $((a*a*32*9*$2 + $(bn 32) + b*b*32*9*32 + $(bn 32) + b*b*32*500 + 500*$3))
}
# deep net: 64,64 | 128,128 | 128,128,128, each 3x3 same + BN, three 2x2 pools, FC500, out
deep() {  # H CLASSES
    h=$(($1 / 8))
    echo $((3*9*64 + 64*9*64 + 64*9*128 + 128*9*128 + 3*128*9*128 \
            + $(bn 64)*2 + $(bn 128)*5 + h*h*128*500 + 500*$2))
}
want mnist_dense $((784*1500 + 1500*1000 + 1000*500 + 500*10))
want mnist_conv "$(conv 28 1 10)"
want fashionmnist_conv "$(conv 28 1 10)"
want cifar10_conv "$(conv 32 3 10)"
want cifar100_conv "$(conv 32 3 100)"
want mnist_loccon "$(loccon 28 1 10)"
want cifar10_loccon "$(loccon 32 3 10)"
want cifar100_loccon "$(loccon 32 3 100)"
want cifar10_deep "$(deep 32 10)"
want cifar100_deep "$(deep 32 100)"
want tinyimagenet_deep "$(deep 64 200)"
[ "$fails" -eq 0 ]
