/* testutil.h: what the numerical tests (test_layers.c, test_rule.c) share: a model
 * opened from .bp text on the double-precision CPU target, a seeded test RNG, plain
 * reference geometry, and the gradient check against central finite differences.
 *
 * Header-only (static inline) because every tests/unit/test_*.c is linked alone with
 * the library. The references here never use the IR's derived values (padding, output
 * sizes): they recompute them from TensorFlow's rules, so a wrong IR is caught too.
 *
 * The gradient check, and why its tolerance is what it is:
 *   One `train` step (fix_actions = 1, l2 = 0) moves every trainable tensor by
 *   -lr * dL/dtheta, so g = (before - after) / lr. For a sample of elements of each
 *   tensor, theta_j +- h is set and `forward` (the train-mode forward pass and loss of
 *   the same step: same dropout masks, same fixed actions) gives L+ and L-, and
 *   g_fd = (L+ - L-) / (2h). In double precision, with h = 1e-5 * max(|theta_j|,
 *   rms(theta)) and weights of scale ~0.3, the truncation error h^2 L'''/6 is ~1e-11
 *   and the rounding error ~1e-16 |L| / h is ~1e-10, against gradients of 1e-3..1e-1.
 *   So |g_fd - g| <= 1e-6 * max|g| (over the tensor) + 1e-9 holds with two orders of
 *   margin for a right gradient, while any wrong term (a sign, a missing factor, a
 *   transposed index) is off by O(|g|) and fails it.
 *   A ReLU kink or a maxpool argmax crossed between theta-h and theta+h breaks the
 *   Taylor expansion; it is detected exactly (every ReLU layer's on/off pattern and
 *   every maxpool's argmax are compared with the unperturbed ones), and the element is
 *   replaced by another one and counted, never silently skipped.
 */
#ifndef BPC_TESTUTIL_H
#define BPC_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "frontend.h"
#include "plan.h"

/* ---- keeping the OpenMP runtime loaded ---------------------------------------------------
 * The test binaries (like bpc) do not link libgomp: it arrives with the first JIT-compiled
 * model (dlopen) and leaves with it (dlclose in bp_exec_close), while the worker threads
 * of its pool are still alive, so the next parallel region or the idle workers crash
 * (SIGSEGV in libgomp). test_layers.c's test_exec_reopen shows the bug in a child
 * process; every other test pins libgomp first so that it can check what it is about. */
#include <dlfcn.h>
static inline void tu_keep_openmp_loaded(void) {
    if (!dlopen("libgomp.so.1", RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE))
        fprintf(stderr, "note: cannot pin libgomp.so.1: %s\n", dlerror());
}

/* ---- OpenMP's wait policy ------------------------------------------------------------------
 * These tests run thousands of tiny programs; with OpenMP's default (active, spinning)
 * wait policy on a loaded machine every parallel region and every OpenBLAS call waits
 * for spinning threads to be scheduled: 25 s instead of 1 s on 2 busy cores. libgomp
 * reads the policy once, when it is loaded (before main, since OpenBLAS needs it), so
 * main re-executes the program with OMP_WAIT_POLICY=passive unless the caller chose a
 * policy. Threads still run in parallel; only idle threads sleep instead of spinning. */
#include <unistd.h>
static inline void tu_passive_openmp(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv); /* on failure, go on as we are */
}

/* ---- a seeded test RNG (splitmix64), independent of the library's Philox ---------- */

typedef struct { uint64_t s; } tu_rng;

static inline uint64_t tu_next(tu_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform in [0, 1) with 53 bits */
static inline double tu_unif(tu_rng *r) { return (double)(tu_next(r) >> 11) * 0x1p-53; }
static inline int tu_int(tu_rng *r, int n) { return (int)(tu_next(r) % (uint64_t)n); }
static inline double tu_normal(tu_rng *r) {
    double u1 = 1.0 - tu_unif(r), u2 = tu_unif(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* ---- TensorFlow geometry, written out again ------------------------------------------ */

/* same: ceil(in / s); valid: floor((in - k) / s) + 1 */
static inline int tu_odim(int in, int k, int s, int same) {
    return same ? (in + s - 1) / s : (in - k) / s + 1;
}
/* same: max((out - 1) s + k - in, 0) / 2 before the first pixel; the odd one after */
static inline int tu_pad(int in, int k, int s, int same) {
    if (!same) return 0;
    int t = (tu_odim(in, k, s, 1) - 1) * s + k - in;
    return t > 0 ? t / 2 : 0;
}

/* Max pooling of one sample-batch, NHWC, padding ignored (TF): out[b,oh,ow,c] and the
 * flat input index (ih*W + iw) of the first maximum in row-major window order. */
static inline void tu_maxpool_ref(const double *in, int nb, int H, int W, int C, int k, int s,
                                  int same, double *out, int *arg) {
    int Ho = tu_odim(H, k, s, same), Wo = tu_odim(W, k, s, same);
    int pt = tu_pad(H, k, s, same), pl = tu_pad(W, k, s, same);
    for (int b = 0; b < nb; b++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++)
                for (int c = 0; c < C; c++) {
                    double m = -INFINITY;
                    int best = -1;
                    for (int kh = 0; kh < k; kh++)
                        for (int kw = 0; kw < k; kw++) {
                            int ih = oh * s - pt + kh, iw = ow * s - pl + kw;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                            double v = in[(((long)b * H + ih) * W + iw) * C + c];
                            if (best < 0 || v > m) { m = v; best = ih * W + iw; }
                        }
                    long o = (((long)b * Ho + oh) * Wo + ow) * C + c;
                    if (out) out[o] = m;
                    if (arg) arg[o] = best;
                }
}

/* ---- a model on the CPU64 target -------------------------------------------------------- */

typedef struct {
    bp_ir *ir;
    bp_plan *plan;
    bp_exec x;
    int B;                 /* the plan's batch */
    unsigned char *X;      /* [B, x_bytes] the input batch as last put */
    int *labels, *actions; /* [B] */
} tu_net;

/* Parses `src`, lowers it for `rule` and batch B, JIT-compiles it in double precision
 * and initialises the parameters (seed 1). Fails the test with the messages if any
 * stage fails. */
static inline void tu_open_ir(tu_net *n, bp_ir *ir, bp_rule rule, int B) {
    memset(n, 0, sizeof *n);
    n->ir = ir;
    n->B = B;
    n->plan = bp_plan_build(ir, rule, B);
    assert_non_null(n->plan);
    bp_err e = {{0}};
    if (bp_exec_open(&n->x, n->plan, BP_TARGET_CPU64, &e)) fail_msg("bp_exec_open: %s", e.msg);
    if (bp_exec_init_params(&n->x, 1, &e)) fail_msg("bp_exec_init_params: %s", e.msg);
    n->X = calloc((size_t)B * (size_t)n->plan->x_bytes, 1);
    n->labels = calloc((size_t)B, sizeof *n->labels);
    n->actions = calloc((size_t)B, sizeof *n->actions);
    assert_true(n->X && n->labels && n->actions);
}

static inline bp_ir *tu_parse(const char *src) {
    int nerr = 0;
    bp_ir *ir = bp_frontend_string("test.bp", src, strlen(src), stderr, &nerr);
    if (!ir) fail_msg("the front end rejected the test model (%d errors):\n%s", nerr, src);
    return ir;
}

static inline void tu_open(tu_net *n, const char *src, bp_rule rule, int B) {
    tu_open_ir(n, tu_parse(src), rule, B);
}

static inline void tu_close(tu_net *n) {
    bp_exec_close(&n->x);
    bp_plan_free(n->plan);
    bp_ir_free(n->ir);
    free(n->X);
    free(n->labels);
    free(n->actions);
    memset(n, 0, sizeof *n);
}

static inline const bp_tensor *tu_t(const tu_net *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline const bp_tensor *tu_t(const tu_net *n, const char *fmt, ...) {
    char name[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const bp_tensor *t = bp_plan_tensor(n->plan, name);
    if (!t) fail_msg("the plan has no tensor or buffer named %s", name);
    return t;
}

static inline void tu_getf(tu_net *n, long off, double *dst, long count) {
    bp_err e = {{0}};
    if (n->x.be->get(&n->x, BP_ARENA_F, off, dst, count, &e)) fail_msg("get: %s", e.msg);
}
static inline void tu_putf(tu_net *n, long off, const double *src, long count) {
    bp_err e = {{0}};
    if (n->x.be->put(&n->x, BP_ARENA_F, off, src, count, &e)) fail_msg("put: %s", e.msg);
}
static inline void tu_geti(tu_net *n, long off, int *dst, long count) {
    bp_err e = {{0}};
    if (n->x.be->get(&n->x, BP_ARENA_I, off, dst, count, &e)) fail_msg("get: %s", e.msg);
}
static inline void tu_puti(tu_net *n, long off, const int *src, long count) {
    bp_err e = {{0}};
    if (n->x.be->put(&n->x, BP_ARENA_I, off, src, count, &e)) fail_msg("put: %s", e.msg);
}
/* A fresh copy of a whole tensor or buffer. */
static inline double *tu_getv(tu_net *n, const bp_tensor *t) {
    double *v = malloc(sizeof *v * (size_t)t->size);
    assert_non_null(v);
    tu_getf(n, t->off, v, t->size);
    return v;
}

/* Puts the batch: random pixels, random labels, and actions that are right for even
 * samples and wrong for odd ones (so that both r = 1 and r = 0 occur). */
static inline void tu_batch(tu_net *n, tu_rng *r) {
    int K = n->plan->classes;
    long xs = (long)n->B * n->plan->x_bytes;
    for (long i = 0; i < xs; i++) n->X[i] = (unsigned char)tu_int(r, 256);
    for (int b = 0; b < n->B; b++) {
        n->labels[b] = tu_int(r, K);
        n->actions[b] = b % 2 == 0 ? n->labels[b] : (n->labels[b] + 1 + tu_int(r, K - 1)) % K;
    }
    bp_err e = {{0}};
    if (n->x.be->put(&n->x, BP_ARENA_X, 0, n->X, xs, &e)) fail_msg("put X: %s", e.msg);
    tu_puti(n, n->plan->labels, n->labels, n->B);
    tu_puti(n, n->plan->actions, n->actions, n->B);
}

/* Fan-in of a weight tensor: the product of its per-output dimensions. */
static inline long tu_fan_in(const bp_tensor *t) {
    if (t->ndim == 2) return t->dims[1];                           /* [out, in] */
    if (t->ndim == 4) return t->dims[1] * t->dims[2] * t->dims[3]; /* [F, K, K, C] */
    if (t->ndim == 5) return t->dims[2] * t->dims[3] * t->dims[4]; /* [P, F, K, K, C] */
    return t->size;
}

/* Replaces the library's tiny initial weights by ones that keep every layer's
 * activations O(1) (std gain/sqrt(fan_in)), and gamma/beta by non-trivial values, so
 * every gradient is well above the finite-difference noise. */
static inline void tu_params(tu_net *n, tu_rng *r, double gain) {
    for (int i = 0; i < n->plan->ntensors; i++) {
        const bp_tensor *t = &n->plan->tensors[i];
        if (!t->trainable) continue;
        double *v = malloc(sizeof *v * (size_t)t->size);
        assert_non_null(v);
        const char *s = strchr(t->name, '.') + 1;
        double sd = gain / sqrt((double)tu_fan_in(t));
        for (long j = 0; j < t->size; j++)
            v[j] = !strcmp(s, "gamma") ? 1.0 + 0.5 * (tu_unif(r) - 0.5)
                 : !strcmp(s, "beta")  ? 0.2 * tu_normal(r)
                                       : sd * tu_normal(r);
        tu_putf(n, t->off, v, t->size);
        free(v);
    }
}

static inline void tu_run(tu_net *n, const bp_prog *g, const bp_dyn *d) {
    bp_err e = {{0}};
    if (bp_exec_run(&n->x, g, d, &e)) fail_msg("bp_exec_run: %s", e.msg);
}

/* Zeroes the statistics, runs a program, returns stats[LOSS] / nb. */
static inline double tu_loss(tu_net *n, const bp_prog *g, const bp_dyn *d) {
    double z[BP_NSTATS] = {0};
    tu_putf(n, n->plan->stats, z, BP_NSTATS);
    tu_run(n, g, d);
    tu_getf(n, n->plan->stats, z, BP_NSTATS);
    return z[BP_STAT_LOSS] / d->nb;
}

static inline bp_dyn tu_dyn(double lr, int nb, unsigned step) {
    bp_dyn d;
    memset(&d, 0, sizeof d);
    d.lr = (float)lr;
    d.nb = nb;
    d.step = step;
    d.fix_actions = 1;
    d.seed = 0x5eed1234abcdull;
    return d;
}

/* ---- the kink pattern: where a finite difference is not a derivative ------------------ */

/* Every ReLU layer's on/off bits and every maxpool's argmax, for the first nb samples. */
static inline int *tu_pattern(tu_net *n, int nb, long *len) {
    const bp_ir *ir = n->ir;
    long total = 0;
    for (int l = 1; l < ir->n; l++) {
        const bp_layer *L = &ir->layers[l];
        if (L->relu || L->kind == BP_MAXPOOL) total += (long)nb * bp_shape_size(L->out);
    }
    int *pat = malloc(sizeof *pat * (size_t)(total ? total : 1));
    assert_non_null(pat);
    long at = 0;
    for (int l = 1; l < ir->n; l++) {
        const bp_layer *L = &ir->layers[l];
        if (!L->relu && L->kind != BP_MAXPOOL) continue;
        long S = bp_shape_size(L->out), m = (long)nb * S;
        if (L->kind == BP_MAXPOOL) {
            long Si = bp_shape_size(L->in);
            double *in = malloc(sizeof *in * (size_t)(nb * Si));
            assert_non_null(in);
            tu_getf(n, tu_t(n, "L%d.act", l - 1)->off, in, nb * Si);
            tu_maxpool_ref(in, nb, L->in.h, L->in.w, L->in.c, L->ksize, L->stride, L->pad_same,
                           NULL, pat + at);
            free(in);
        } else {
            double *a = malloc(sizeof *a * (size_t)m);
            assert_non_null(a);
            tu_getf(n, tu_t(n, "L%d.act", l)->off, a, m);
            for (long i = 0; i < m; i++) pat[at + i] = a[i] > 0.0;
            free(a);
        }
        at += m;
    }
    *len = total;
    return pat;
}

/* ---- the gradient check --------------------------------------------------------------- */

#define TU_FD_REL 1e-6   /* of max|g| over the tensor; see the head of this file */
#define TU_FD_ABS 1e-9
#ifndef TU_FD_H
#define TU_FD_H 1e-5     /* relative step (overridable, to see the kink detector work) */
#endif

typedef struct {
    int tensors, checked, replaced;
    double worst;        /* the largest |g_fd - g| / tol seen */
    char worst_at[96];
} tu_gc;

/* A loss for the finite differences: runs `forward` and returns L. NULL: the plan's
 * own, stats[LOSS] / nb. */
typedef double (*tu_lossfn)(tu_net *n, const bp_dyn *d);

/* The gradient of every trainable tensor from one train step, checked against central
 * differences of the forward loss at `per_tensor` elements of each (all when fewer).
 * The data (tu_batch) and parameters must be in place; they are the same afterwards
 * (the step's update is undone). `d` must have fix_actions = 1. */
static inline tu_gc tu_gradcheck_with(tu_net *n, const bp_dyn *d, int per_tensor, tu_rng *r,
                                      const char *what, tu_lossfn lossfn) {
    const bp_plan *p = n->plan;
    tu_gc res;
    memset(&res, 0, sizeof res);
    double **snap = calloc((size_t)p->ntensors, sizeof *snap);
    double **grad = calloc((size_t)p->ntensors, sizeof *grad);
    assert_true(snap && grad);
    for (int i = 0; i < p->ntensors; i++) snap[i] = tu_getv(n, &p->tensors[i]);

    double ltrain = tu_loss(n, &p->train, d);
    for (int i = 0; i < p->ntensors; i++) {
        const bp_tensor *t = &p->tensors[i];
        if (!t->trainable) continue;
        grad[i] = tu_getv(n, t);
        for (long j = 0; j < t->size; j++) grad[i][j] = (snap[i][j] - grad[i][j]) / (double)d->lr;
    }
    for (int i = 0; i < p->ntensors; i++) tu_putf(n, p->tensors[i].off, snap[i], p->tensors[i].size);

    /* `forward` must be exactly the forward part of `train`: the same loss, bit for bit */
    double l0 = tu_loss(n, &p->forward, d);
    if (l0 != ltrain) fail_msg("%s: forward loss %.17g != train-step loss %.17g", what, l0, ltrain);
    if (lossfn) lossfn(n, d);
    long plen = 0;
    int *p0 = tu_pattern(n, d->nb, &plen);

    for (int i = 0; i < p->ntensors; i++) {
        const bp_tensor *t = &p->tensors[i];
        if (!t->trainable) continue;
        res.tensors++;
        double gmax = 0.0, ss = 0.0;
        for (long j = 0; j < t->size; j++) {
            if (fabs(grad[i][j]) > gmax) gmax = fabs(grad[i][j]);
            ss += snap[i][j] * snap[i][j];
        }
        double rms = sqrt(ss / (double)t->size);
        double tol = TU_FD_REL * gmax + TU_FD_ABS;
        /* the order to try elements in: all of them, shuffled when sampling */
        long *order = malloc(sizeof *order * (size_t)t->size);
        assert_non_null(order);
        for (long j = 0; j < t->size; j++) order[j] = j;
        if (t->size > per_tensor)
            for (long j = t->size - 1; j > 0; j--) {
                long k = (long)(tu_next(r) % (uint64_t)(j + 1)), s = order[j];
                order[j] = order[k];
                order[k] = s;
            }
        int want = t->size < per_tensor ? (int)t->size : per_tensor, done = 0, replaced = 0;
        for (long o = 0; o < t->size && done < want; o++) {
            long j = order[o];
            double th = snap[i][j];
            double h = TU_FD_H * fmax(fabs(th), fmax(rms, 1e-2));
            double tp = th + h, tm = th - h;
            tu_putf(n, t->off + j, &tp, 1);
            double lp = lossfn ? lossfn(n, d) : tu_loss(n, &p->forward, d);
            long len;
            int *pp = tu_pattern(n, d->nb, &len);
            tu_putf(n, t->off + j, &tm, 1);
            double lm = lossfn ? lossfn(n, d) : tu_loss(n, &p->forward, d);
            int *pm = tu_pattern(n, d->nb, &len);
            tu_putf(n, t->off + j, &th, 1);
            int kink = memcmp(pp, p0, sizeof *p0 * (size_t)plen) ||
                       memcmp(pm, p0, sizeof *p0 * (size_t)plen);
            free(pp);
            free(pm);
            if (kink) { replaced++; continue; }
            double fd = (lp - lm) / (tp - tm), err = fabs(fd - grad[i][j]);
            if (err / tol > res.worst) {
                res.worst = err / tol;
                snprintf(res.worst_at, sizeof res.worst_at, "%s[%ld]", t->name, j);
            }
            if (!(err <= tol))
                fail_msg("%s: %s[%ld]: train-step gradient %.12g, finite difference %.12g "
                         "(|diff| %.3g > tol %.3g; max|g| %.3g)", what, t->name, j, grad[i][j],
                         fd, err, tol, gmax);
            done++;
        }
        free(order);
        /* a replaced element is a kink crossed; many of them would mean a bad h */
        if (done < want)
            fail_msg("%s: %s: only %d of %d elements away from a kink (%d replaced)", what,
                     t->name, done, want, replaced);
        if (replaced > want / 4 + 1)
            fail_msg("%s: %s: %d elements replaced for %d checked: h is too large", what,
                     t->name, replaced, done);
        res.checked += done;
        res.replaced += replaced;
    }
    free(p0);
    /* leave every tensor as it was, batch-norm moving statistics included */
    for (int i = 0; i < p->ntensors; i++) tu_putf(n, p->tensors[i].off, snap[i], p->tensors[i].size);
    for (int i = 0; i < p->ntensors; i++) { free(snap[i]); free(grad[i]); }
    free(snap);
    free(grad);
    return res;
}

static inline tu_gc tu_gradcheck(tu_net *n, const bp_dyn *d, int per_tensor, tu_rng *r,
                                 const char *what) {
    return tu_gradcheck_with(n, d, per_tensor, r, what, NULL);
}

static inline void tu_gc_print(const char *what, tu_gc g) {
    printf("  %-52s %d tensors, %3d elements, %d replaced, worst |err|/tol %.2g (%s)\n", what,
           g.tensors, g.checked, g.replaced, g.worst, g.worst_at);
}

#endif
