/* report.c: the `bpc check` table: what each layer does, its output shape, and what it
 * costs in parameters and multiply-adds per sample, so that a model can be sized up
 * before it is trained. */
#include "report.h"
#include <stdio.h>
#include <string.h>

const char *bp_thousands(long n, char *buf) {
    char digits[32];
    unsigned long u = n < 0 ? 0UL - (unsigned long)n : (unsigned long)n;
    int len = snprintf(digits, sizeof digits, "%lu", u);
    char *o = buf;
    if (n < 0) *o++ = '-';
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0) *o++ = ',';
        *o++ = digits[i];
    }
    *o = 0;
    return buf;
}

/* The layer's kind and key options, as in the .bp file but shorter. */
static void describe(const bp_layer *l, char *buf, size_t n) {
    const char *relu = l->relu ? " relu" : "";
    switch (l->kind) {
    case BP_INPUT:
        snprintf(buf, n, "input");
        break;
    case BP_DENSE:
        snprintf(buf, n, "dense %d%s", l->units, relu);
        break;
    case BP_CONV:
    case BP_LOCCON:
        snprintf(buf, n, "%s %d %dx%d s%d %s%s", bp_layer_kind_name(l->kind), l->units,
                 l->ksize, l->ksize, l->stride, l->pad_same ? "same" : "valid", relu);
        break;
    case BP_MAXPOOL:
        snprintf(buf, n, "maxpool %dx%d s%d", l->ksize, l->ksize, l->stride);
        break;
    case BP_BATCHNORM:
        snprintf(buf, n, "batchnorm");
        break;
    case BP_DROPOUT:
        snprintf(buf, n, "dropout %g", l->rate);
        break;
    case BP_OUTPUT:
        if (l->rule == BP_RULE_BRAINPROP)
            snprintf(buf, n, "output %d brainprop eps %g", l->units, l->epsilon);
        else
            snprintf(buf, n, "output %d softmax", l->units);
        break;
    }
}

void bp_print_check(FILE *out, const bp_ir *ir) {
    char desc[96], shape[48], p[32], m[32];
    const bp_layer *last = &ir->layers[ir->n - 1];
    fprintf(out, "model %s (%s): %d layers, rule %s\n", ir->name, ir->path, ir->n,
            last->rule == BP_RULE_BRAINPROP ? "brainprop" : "softmax (EBP)");
    fprintf(out, "%3s  %-30s %-14s %13s %15s\n", "#", "layer", "output", "params",
            "mult-adds");
    for (int i = 0; i < ir->n; i++) {
        const bp_layer *l = &ir->layers[i];
        describe(l, desc, sizeof desc);
        snprintf(shape, sizeof shape, "%dx%dx%d", l->out.h, l->out.w, l->out.c);
        fprintf(out, "%3d  %-30s %-14s %13s %15s\n", i, desc, shape,
                bp_thousands(l->params, p), bp_thousands(l->macs, m));
    }
    fprintf(out, "%3s  %-30s %-14s %13s %15s\n", "", "total", "",
            bp_thousands(ir->params, p), bp_thousands(ir->macs, m));
    if (bp_feedback_untied(ir)) { /* tied, the default, says nothing */
        fprintf(out, "feedback (layer: mode):");
        const char *sep = " ";
        for (int i = bp_first_trainable(ir) + 1; i < ir->n; i++) {
            const bp_layer *l = &ir->layers[i];
            if (!bp_has_weights(l->kind)) continue;
            fprintf(out, "%s%d: %s", sep, i, bp_feedback_name(l->feedback));
            if (l->feedback == BP_FB_KP) fprintf(out, " decay %g", l->fb_decay);
            sep = ", ";
        }
        fprintf(out, "\n");
    }
    const bp_train_cfg *t = &ir->train;
    fprintf(out, "train: data %s, batch %d, sgd lr %g, lr x%g every %d epochs, "
                 "epochs %d\n",
            t->dataset[0] ? t->dataset : "(none)", t->batch, t->lr, t->lr_factor,
            t->lr_every, t->epochs);
    fprintf(out, "       early stop patience %d min_delta %g, init normal(0, %g), l2 %g, "
                 "seed %llu, precision %s\n",
            t->patience, t->min_delta, t->init_std, t->l2, (unsigned long long)t->seed,
            bp_precision_name(t->precision));
}
