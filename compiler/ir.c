/* ir.c: small helpers on the IR that front end and code generators share. */
#include "ir.h"
#include <stdlib.h>
#include <string.h>

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

const char *const BP_PRECISION_NAMES[BP_NPRECISIONS] = {"ieee", "tf32", "3xtf32"};
const char *const BP_FEEDBACK_NAMES[BP_NFEEDBACKS] = {"tied", "random", "sign", "kolen_pollack", "direct"};

const char *bp_precision_name(bp_precision p) {
    return p >= 0 && p < BP_NPRECISIONS ? BP_PRECISION_NAMES[p] : "?";
}

int bp_precision_parse(const char *s, bp_precision *p) {
    for (int i = 0; i < BP_NPRECISIONS; i++)
        if (!strcmp(s, BP_PRECISION_NAMES[i])) {
            *p = (bp_precision)i;
            return 0;
        }
    return -1;
}

const char *bp_feedback_name(bp_feedback f) {
    return f >= 0 && f < BP_NFEEDBACKS ? BP_FEEDBACK_NAMES[f] : "?";
}

int bp_has_weights(bp_layer_kind k) {
    return k == BP_DENSE || k == BP_CONV || k == BP_LOCCON || k == BP_OUTPUT;
}

int bp_first_trainable(const bp_ir *ir) {
    for (int l = 1; l < ir->n; l++)
        if (bp_has_weights(ir->layers[l].kind) || ir->layers[l].kind == BP_BATCHNORM) return l;
    return ir->n;
}

int bp_feedback_untied(const bp_ir *ir) {
    int first = bp_first_trainable(ir);
    for (int l = first + 1; l < ir->n; l++)
        if (bp_has_weights(ir->layers[l].kind) && ir->layers[l].feedback != BP_FB_TIED) return 1;
    return 0;
}

int bp_ir_tied(const bp_ir *ir, bp_ir *tied) {
    *tied = *ir;
    tied->layers = malloc(sizeof *ir->layers * (size_t)(ir->n ? ir->n : 1));
    if (!tied->layers) return -1;
    memcpy(tied->layers, ir->layers, sizeof *ir->layers * (size_t)ir->n);
    for (int l = 0; l < ir->n; l++) {
        tied->layers[l].feedback = BP_FB_TIED;
        tied->layers[l].fb_decay = 0;
    }
    return 0;
}
