/* align.c: the alignment metrics (align.h): two probe steps, one with the model's
 * feedback and one with tied feedback, and the angles between what they change. */
#include "align.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "checkpoint.h"
#include "dist.h"

int bp_align_open(bp_align *a, const bp_plan *p, bp_target t, bp_err *e) {
    memset(a, 0, sizeof *a);
    const bp_ir *ir = p->ir;
    a->rows = malloc(sizeof *a->rows * (size_t)ir->n);
    if (bp_ir_tied(ir, &a->tied_ir) || !a->rows) return bp_fail(e, "out of memory for the alignment metrics");
    for (int l = 0; l < ir->n; l++) {
        if (l >= bp_first_trainable(ir) && bp_has_weights(ir->layers[l].kind))
            a->rows[a->nrows++] = (bp_align_row){.layer = l, .update_angle = NAN, .weight_angle = NAN};
    }
    /* one process's plan over the whole probe, also when p is one rank's share */
    a->tied = bp_plan_build(&a->tied_ir, p->rule, p->global_batch);
    if (!a->tied) return bp_fail(e, "out of memory building the tied plan of the alignment metrics");
    if (bp_exec_open(&a->y, a->tied, t, e)) return -1;
    a->opened = 1;
    return 0;
}

void bp_align_close(bp_align *a) {
    if (a->opened) bp_exec_close(&a->y);
    bp_plan_free(a->tied);
    free(a->tied_ir.layers);
    free(a->rows);
    memset(a, 0, sizeof *a);
}

/* Where tensor `name` of plan p starts in a snapshot of p (checkpoint.h), or -1. */
static long snap_at(const bp_plan *p, const char *name, long *size) {
    long off = 0;
    for (int i = 0; i < p->ntensors; i++) {
        if (!strcmp(p->tensors[i].name, name)) { *size = p->tensors[i].size; return off; }
        off += p->tensors[i].size;
    }
    return -1;
}

/* The angle between a and b in degrees, in double; NAN when either is zero. */
static double angle(const double *a, const double *b, long n) {
    double ab = 0, aa = 0, bb = 0;
    for (long i = 0; i < n; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
    if (!(aa > 0 && bb > 0)) return NAN;
    double c = ab / sqrt(aa * bb);
    return acos(c > 1 ? 1 : c < -1 ? -1 : c) * 180.0 / M_PI;
}

/* Images b0 .. b0 + nb - 1 of the probe into x's input and labels (and, when acts is
 * not NULL, their actions). */
static int feed_probe(bp_exec *x, const bp_split *s, int b0, int nb, const int *acts, bp_err *e) {
    const bp_plan *p = x->plan;
    if (x->be->put(x, BP_ARENA_X, 0, s->x + (long)b0 * p->x_bytes, (long)nb * p->x_bytes, e) ||
        x->be->put(x, BP_ARENA_I, p->labels, s->y + b0, nb, e))
        return -1;
    return acts ? x->be->put(x, BP_ARENA_I, p->actions, acts, nb, e) : 0;
}

/* One layer's angles from the snapshots before (s0) and after the model's step (sm) and
 * after the tied step (st, in the tied plan's order); lr was 1. */
static void layer_angles(const bp_align *a, const bp_plan *p, bp_align_row *r, const float *s0,
                         const float *sm, const float *st, double *u, double *v) {
    const bp_layer *L = &p->ir->layers[r->layer];
    char name[64];
    long n = 0, nt = 0;
    snprintf(name, sizeof name, "L%d.weight", r->layer);
    long w = snap_at(p, name, &n), wt = snap_at(a->tied, name, &nt);
    if (w < 0 || wt < 0 || n != nt) return;
    /* W1 = (1 - 2 l2 - decay) W0 - dL/dW: the update without its decay terms */
    double l2 = p->ir->train.l2, keep_m = 1 - 2 * l2 - L->fb_decay, keep_t = 1 - 2 * l2;
    for (long i = 0; i < n; i++) {
        u[i] = keep_m * s0[w + i] - sm[w + i];
        v[i] = keep_t * s0[w + i] - st[wt + i];
    }
    r->update_angle = angle(u, v, n);
    r->weight_angle = NAN;
    if (r->layer == bp_first_trainable(p->ir) || L->feedback == BP_FB_DIRECT) return;
    long nb_ = 0, b = -1;
    if (L->feedback == BP_FB_RANDOM || L->feedback == BP_FB_KP) {
        snprintf(name, sizeof name, "L%d.feedback", r->layer);
        if ((b = snap_at(p, name, &nb_)) < 0 || nb_ != n) return;
    }
    for (long i = 0; i < n; i++) {
        double wi = s0[w + i];
        u[i] = wi;
        v[i] = b >= 0 ? s0[b + i] : L->feedback == BP_FB_SIGN ? (wi > 0) - (wi < 0) : wi;
    }
    r->weight_angle = angle(u, v, n);
}

int bp_align_measure(bp_align *a, bp_exec *x, const bp_split *s, uint64_t seed, bp_err *e) {
    const bp_plan *p = x->plan;
    /* a data-parallel plan (every rank calls this): each rank steps its share of the
     * probe, and the actions of all are gathered for the tied step */
    int nb = (int)(s->n < p->global_batch ? s->n : p->global_batch), b0 = 0, mine = nb;
    if (p->dp) bp_dist_share(nb, bp_dist_rank(), &b0, &mine);
    long nf = bp_ckpt_floats(p), nt = bp_ckpt_floats(a->tied), big = 1;
    for (int i = 0; i < p->ntensors; i++) if (p->tensors[i].size > big) big = p->tensors[i].size;
    float *s0 = malloc(sizeof *s0 * (size_t)nf), *sm = malloc(sizeof *sm * (size_t)nf);
    float *st = malloc(sizeof *st * (size_t)(nt ? nt : 1));
    double *u = malloc(sizeof *u * (size_t)big), *v = malloc(sizeof *v * (size_t)big);
    int *acts = malloc(sizeof *acts * (size_t)(nb ? nb : 1));
    int rc = s0 && sm && st && u && v && acts ? 0 : bp_fail(e, "out of memory for the alignment metrics");
    if (!rc && nb < 1) rc = bp_fail(e, "no training images for the alignment probe");
    bp_dyn d = {.lr = 1, .nb = mine, .step = BP_ALIGN_STEP, .seed = seed, .b0 = b0, .nb_all = nb};
    /* the model's own step, then everything back */
    if (!rc) rc = bp_ckpt_get(x, s0, e);
    if (!rc) rc = feed_probe(x, s, b0, mine, NULL, e);
    if (!rc) rc = bp_exec_run(x, &p->train, &d, e);
    if (!rc) rc = x->be->get(x, BP_ARENA_I, p->actions, acts + b0, mine, e);
    if (!rc && p->dp) bp_dist_gather_int(acts, nb);
    d = (bp_dyn){.lr = 1, .nb = nb, .step = BP_ALIGN_STEP, .seed = seed};
    if (!rc) rc = bp_ckpt_get(x, sm, e);
    if (!rc) rc = bp_ckpt_put(x, s0, e);
    /* the tied step from the same tensors, with the same actions */
    for (int i = 0; !rc && i < a->tied->ntensors; i++) {
        const bp_tensor *t = &a->tied->tensors[i];
        long n = 0, at = snap_at(p, t->name, &n);
        if (at < 0 || n != t->size) rc = bp_fail(e, "the tied plan's %s is not in the model", t->name);
        else rc = bp_exec_put_f32(&a->y, t->off, s0 + at, n, e);
    }
    d.fix_actions = 1;
    if (!rc) rc = feed_probe(&a->y, s, 0, nb, acts, e);
    if (!rc) rc = bp_exec_run(&a->y, &a->tied->train, &d, e);
    if (!rc) rc = bp_ckpt_get(&a->y, st, e);
    for (int k = 0; !rc && k < a->nrows; k++) layer_angles(a, p, &a->rows[k], s0, sm, st, u, v);
    free(s0); free(sm); free(st); free(u); free(v); free(acts);
    return rc;
}

static void json_angle(FILE *f, const char *key, double v) {
    if (isfinite(v)) fprintf(f, ", \"%s\": %.4f", key, v);
    else fprintf(f, ", \"%s\": null", key);
}

int bp_align_json(FILE *f, const bp_align *a, const bp_ir *ir) {
    fprintf(f, "\"align\": [");
    for (int k = 0; k < a->nrows; k++) {
        const bp_layer *L = &ir->layers[a->rows[k].layer];
        fprintf(f, "%s{\"layer\": %d, \"kind\": \"%s\", \"feedback\": \"%s\"", k ? ", " : "",
                a->rows[k].layer, bp_layer_kind_name(L->kind), bp_feedback_name(L->feedback));
        json_angle(f, "update_angle", a->rows[k].update_angle);
        json_angle(f, "weight_angle", a->rows[k].weight_angle);
        fprintf(f, "}");
    }
    return fprintf(f, "]");
}
