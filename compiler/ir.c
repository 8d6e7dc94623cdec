/* ir.c: small helpers on the IR that front end and code generators share. */
#include "ir.h"
#include <stdlib.h>

void bp_ir_free(bp_ir *ir) {
    if (!ir) return;
    free(ir->name);
    free(ir->path);
    free(ir->layers);
    free(ir);
}

int bp_out_dim(int in, int k, int stride, int pad_same) {
    if (stride <= 0) return 0;
    if (pad_same) return (in + stride - 1) / stride;
    if (in < k) return 0;
    return (in - k) / stride + 1;
}

int bp_pad_before(int in, int k, int stride, int pad_same) {
    if (!pad_same) return 0;
    int out = bp_out_dim(in, k, stride, 1);
    int total = (out - 1) * stride + k - in;
    if (total < 0) total = 0;
    return total / 2;
}

const char *bp_layer_kind_name(bp_layer_kind k) {
    switch (k) {
    case BP_INPUT: return "input";
    case BP_DENSE: return "dense";
    case BP_CONV: return "conv";
    case BP_LOCCON: return "loccon";
    case BP_MAXPOOL: return "maxpool";
    case BP_BATCHNORM: return "batchnorm";
    case BP_DROPOUT: return "dropout";
    case BP_OUTPUT: return "output";
    }
    return "?";
}
