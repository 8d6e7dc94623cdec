/* checkpoint.c: snapshots of a model's tensors, converted to and from PyTorch's names
 * and layouts in a safetensors file (see checkpoint.h for the mapping and why).
 *
 * The conversions are plain index permutations, written once as a loop that either
 * scatters (bpc -> PyTorch) or gathers (PyTorch -> bpc), so that the two directions
 * cannot disagree.
 */
#include "checkpoint.h"
#include "utf8.h"
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long bp_ckpt_floats(const bp_plan *p) {
    long n = 0;
    for (int i = 0; i < p->ntensors; i++) n += p->tensors[i].size;
    return n;
}

int bp_ckpt_nonfinite(const bp_plan *p, const float *snap, long *count) {
    int first = -1;
    long bad = 0;
    for (int i = 0; i < p->ntensors; i++) {
        long here = 0;
        for (long k = 0; k < p->tensors[i].size; k++) here += !isfinite(snap[k]);
        if (here && first < 0) first = i;
        bad += here;
        snap += p->tensors[i].size;
    }
    if (count) *count = bad;
    return first;
}

int bp_ckpt_get(bp_exec *x, float *snap, bp_err *e) {
    const bp_plan *p = x->plan;
    for (int i = 0; i < p->ntensors; i++) {
        if (bp_exec_get_f32(x, p->tensors[i].off, snap, p->tensors[i].size, e)) return -1;
        snap += p->tensors[i].size;
    }
    return 0;
}

int bp_ckpt_put(bp_exec *x, const float *snap, bp_err *e) {
    const bp_plan *p = x->plan;
    for (int i = 0; i < p->ntensors; i++) {
        if (bp_exec_put_f32(x, p->tensors[i].off, snap, p->tensors[i].size, e)) return -1;
        snap += p->tensors[i].size;
    }
    return 0;
}

/* ---- names, shapes and permutations --------------------------------------------------- */

typedef enum { CV_COPY, CV_CONV, CV_LOCCON, CV_DENSE, CV_DIRECT } cv_kind;

/* How tensor t is converted: its suffix after "Lk." and its layer's kind. A feedback
 * matrix B of W's shape (random, kolen_pollack) is laid out as W; a direct one,
 * [classes, H, W, C], becomes [classes, C, H, W]. */
static cv_kind conversion(const bp_ir *ir, const bp_tensor *t, const char **suffix) {
    const char *dot = strchr(t->name, '.');
    *suffix = dot ? dot + 1 : t->name;
    int fb = !strcmp(*suffix, "feedback");
    if ((!fb && strcmp(*suffix, "weight")) || t->layer < 0 || t->layer >= ir->n) return CV_COPY;
    if (fb && ir->layers[t->layer].feedback == BP_FB_DIRECT) return t->ndim == 4 ? CV_DIRECT : CV_COPY;
    switch (ir->layers[t->layer].kind) {
    case BP_CONV: return CV_CONV;
    case BP_LOCCON: return CV_LOCCON;
    case BP_DENSE: case BP_OUTPUT: return CV_DENSE;
    default: return CV_COPY;
    }
}

int bp_ckpt_torch_shape(const bp_ir *ir, const bp_tensor *t, char *name, long shape[5]) {
    const char *suffix;
    cv_kind k = conversion(ir, t, &suffix);
    static const char *const rename[][2] = {
        {"weight", "weight"}, {"gamma", "weight"}, {"beta", "bias"},
        {"moving_mean", "running_mean"}, {"moving_variance", "running_var"},
    };
    const char *tn = suffix;
    for (size_t i = 0; i < sizeof rename / sizeof rename[0]; i++)
        if (!strcmp(suffix, rename[i][0])) tn = rename[i][1];
    snprintf(name, 64, "%d.%s", t->layer, tn);
    const long *d = t->dims;
    switch (k) {
    case CV_CONV: /* [F, K, K, C] -> [F, C, K, K] */
        shape[0] = d[0]; shape[1] = d[3]; shape[2] = d[1]; shape[3] = d[2];
        return 4;
    case CV_LOCCON: /* [P, F, K, K, C] -> [P, F, C, K, K] */
        shape[0] = d[0]; shape[1] = d[1]; shape[2] = d[4]; shape[3] = d[2]; shape[4] = d[3];
        return 5;
    case CV_DIRECT: /* [K, H, W, C] -> [K, C, H, W] */
        shape[0] = d[0]; shape[1] = d[3]; shape[2] = d[1]; shape[3] = d[2];
        return 4;
    default:
        for (int i = 0; i < t->ndim; i++) shape[i] = d[i];
        return t->ndim;
    }
}

/* Moves one tensor between layouts: to_torch = 1 scatters bpc `a` into PyTorch `b`,
 * 0 gathers PyTorch `b` into bpc `a`. Both directions use the same index pair. */
static void permute(const bp_ir *ir, const bp_tensor *t, float *a, float *b, int to_torch) {
    const char *suffix;
    cv_kind k = conversion(ir, t, &suffix);
#define MOVE(ia, ib) do { if (to_torch) b[ib] = a[ia]; else a[ia] = b[ib]; } while (0)
    if (k == CV_CONV || k == CV_LOCCON) {
        long P = k == CV_LOCCON ? t->dims[0] : 1;
        const long *d = k == CV_LOCCON ? t->dims + 1 : t->dims;
        long F = d[0], K = d[1], C = d[3], per = F * K * K * C;
        for (long p = 0; p < P; p++)
            for (long f = 0; f < F; f++)
                for (long kh = 0; kh < K; kh++)
                    for (long kw = 0; kw < K; kw++)
                        for (long c = 0; c < C; c++)
                            MOVE(p * per + ((f * K + kh) * K + kw) * C + c,
                                 p * per + ((f * C + c) * K + kh) * K + kw);
        return;
    }
    if (k == CV_DENSE || k == CV_DIRECT) { /* rows of NHWC pixels -> rows of NCHW ones */
        bp_shape in = ir->layers[t->layer].in;
        if (k == CV_DIRECT) in = (bp_shape){(int)t->dims[1], (int)t->dims[2], (int)t->dims[3]};
        long N = t->dims[0], HW = (long)in.h * in.w, C = in.c, D = k == CV_DIRECT ? HW * C : t->dims[1];
        if (HW > 1 && HW * C == D) {
            for (long n = 0; n < N; n++)
                for (long s = 0; s < HW; s++)
                    for (long c = 0; c < C; c++) MOVE(n * D + s * C + c, n * D + c * HW + s);
            return;
        }
    }
    for (long i = 0; i < t->size; i++) MOVE(i, i);
#undef MOVE
}

/* ---- metadata ------------------------------------------------------------------------- */

void bp_ckpt_meta_set(bp_ckpt_meta *mt, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *v = NULL;
    int len = vasprintf(&v, fmt, ap);
    va_end(ap);
    if (len < 0) v = NULL;
    if (v) { /* the header is JSON, so UTF-8: a file name may not be */
        char *u = bp_utf8_fix(v);
        free(v);
        v = u;
    }
    for (int i = 0; i < mt->n; i++)
        if (mt->m[i].key && !strcmp(mt->m[i].key, key)) {
            free((char *)mt->m[i].value);
            mt->m[i].value = v;
            return;
        }
    if (mt->n == mt->cap) {
        int cap = mt->cap ? 2 * mt->cap : 32;
        bp_st_meta *m = realloc(mt->m, sizeof *m * (size_t)cap);
        if (!m) { free(v); mt->oom = 1; return; }
        mt->m = m;
        mt->cap = cap;
    }
    mt->m[mt->n].key = strdup(key);
    mt->m[mt->n].value = v;
    mt->n++;
}

void bp_ckpt_meta_free(bp_ckpt_meta *mt) {
    for (int i = 0; i < mt->n; i++) {
        free((char *)mt->m[i].key);
        free((char *)mt->m[i].value);
    }
    free(mt->m);
    memset(mt, 0, sizeof *mt);
}

/* ---- write ---------------------------------------------------------------------------- */

int bp_ckpt_write(const char *path, const bp_ir *ir, const bp_plan *p, const float *snap,
                  const bp_ckpt_meta *mt, bp_err *e) {
    int oom = mt && mt->oom;
    for (int i = 0; mt && i < mt->n; i++) oom |= !mt->m[i].key || !mt->m[i].value;
    if (oom) return bp_fail(e, "%s: out of memory building the metadata", path);
    long total = bp_ckpt_floats(p);
    float *buf = malloc(sizeof *buf * (size_t)(total ? total : 1));
    size_t nt = p->ntensors > 0 ? (size_t)p->ntensors : 1;
    bp_st_tensor *ts = calloc(nt, sizeof *ts);
    char (*names)[64] = calloc(nt, sizeof *names);
    if (!buf || !ts || !names) {
        free(buf); free(ts); free(names);
        return bp_fail(e, "%s: out of memory", path);
    }
    long at = 0;
    for (int i = 0; i < p->ntensors; i++) {
        const bp_tensor *t = &p->tensors[i];
        bp_st_tensor *s = &ts[i];
        s->ndim = bp_ckpt_torch_shape(ir, t, names[i], s->shape);
        s->name = names[i];
        s->dtype = BP_ST_F32;
        s->data = buf + at;
        s->nbytes = sizeof(float) * (size_t)t->size;
        permute(ir, t, (float *)(snap + at), buf + at, 1);
        at += t->size;
    }
    int rc = bp_st_write(path, ts, p->ntensors, mt ? mt->m : NULL, mt ? mt->n : 0, e);
    free(buf);
    free(ts);
    free(names);
    return rc;
}

/* ---- read ----------------------------------------------------------------------------- */

static void shape_str(char *buf, size_t n, const long *shape, int ndim) {
    size_t at = 0;
    at += (size_t)snprintf(buf + at, n - at, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%ld", i ? ", " : "", shape[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
}

/* Collects up to 4 differences into msg; counts the rest. */
typedef struct {
    char msg[900];
    int n;
} diffs;

static void differ(diffs *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void differ(diffs *d, const char *fmt, ...) {
    if (d->n++ >= 4) return;
    size_t at = strlen(d->msg);
    if (at && at + 2 < sizeof d->msg) { strcat(d->msg, "; "); at += 2; }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg + at, sizeof d->msg - at, fmt, ap);
    va_end(ap);
}

int bp_ckpt_read(const char *path, const char *model, const bp_ir *ir, const bp_plan *p,
                 const char *sha256, float *snap, bp_st_file *f, bp_err *e) {
    memset(f, 0, sizeof *f);
    if (bp_st_read(path, f, e)) return -1;
    diffs d = {{0}, 0};
    char name[64], want[96], got[96];
    long shape[5];
    for (int i = 0; i < p->ntensors; i++) {
        const bp_tensor *t = &p->tensors[i];
        int nd = bp_ckpt_torch_shape(ir, t, name, shape);
        const bp_st_tensor *s = bp_st_find(f, name);
        if (!s) { differ(&d, "%s is missing", name); continue; }
        int same = s->ndim == nd;
        for (int k = 0; same && k < nd; k++) same = s->shape[k] == shape[k];
        if (!same) {
            shape_str(got, sizeof got, s->shape, s->ndim);
            shape_str(want, sizeof want, shape, nd);
            differ(&d, "%s is %s in the checkpoint but %s in the model", name, got, want);
        } else if (s->dtype != BP_ST_F32) {
            differ(&d, "%s is %s, not F32", name, bp_st_dtype_name(s->dtype));
        }
    }
    for (int j = 0; j < f->n; j++) {
        int known = 0;
        for (int i = 0; !known && i < p->ntensors; i++) {
            bp_ckpt_torch_shape(ir, &p->tensors[i], name, shape);
            known = !strcmp(name, f->tensors[j].name);
        }
        if (!known) differ(&d, "%s is not in the model", f->tensors[j].name);
    }
    if (d.n) {
        char more[32] = "";
        if (d.n > 4) snprintf(more, sizeof more, "; and %d more", d.n - 4);
        bp_fail(e, "%s does not fit %s: %s%s", path, model, d.msg, more);
        bp_st_free(f);
        return BP_CKPT_MISMATCH;
    }
    const char *h = bp_st_meta_get(f, "source_sha256");
    if (sha256 && h && strcmp(h, sha256)) {
        bp_fail(e, "%s was saved from a different source of %s (source_sha256 %.12s... in the "
                   "checkpoint, %.12s... now); the names and shapes match, but the weights may "
                   "mean something else: use the source it was trained from (a run folder keeps "
                   "it as model.bp)", path, model, h, sha256);
        bp_st_free(f);
        return BP_CKPT_MISMATCH;
    }
    long at = 0;
    for (int i = 0; i < p->ntensors; i++) {
        const bp_tensor *t = &p->tensors[i];
        bp_ckpt_torch_shape(ir, t, name, shape);
        const bp_st_tensor *s = bp_st_find(f, name);
        permute(ir, t, snap + at, (float *)s->data, 0);
        at += t->size;
    }
    long bad;
    int k = bp_ckpt_nonfinite(p, snap, &bad);
    if (k >= 0) {
        bp_ckpt_torch_shape(ir, &p->tensors[k], name, shape);
        bp_fail(e, "%s holds %ld NaN or infinite value%s (the first in %s); weights like these "
                   "cannot be evaluated or trained on: use an earlier checkpoint", path, bad,
                bad == 1 ? "" : "s", name);
        bp_st_free(f);
        return BP_CKPT_MISMATCH;
    }
    return 0;
}
