/* test_layers.c: every layer kind and option, forward and backward, in double precision.
 *
 * Each case is a tiny model `input -> [stem] -> layers under test -> output`, parsed
 * from .bp text, lowered, and JIT-compiled for the CPU64 target (runtime/exec.h). Then:
 *  - forward: every layer's output buffer "Lk.act" (train mode, then eval mode) is
 *    compared with a naive loop reference written here, fed with the previous layer's
 *    actual output, to 1e-12 of the magnitude of the terms summed. The reference
 *    recomputes output sizes and TensorFlow 'same' padding itself, and checks the IR's.
 *    Batch norm: batch statistics, Keras epsilon and moving averages; dropout: mask
 *    values; maxpool: the feedback goes to the first argmax of each window.
 *  - backward: the update of one train step, for both rules, equals -lr times the
 *    gradient of the forward loss by central finite differences (testutil.h). BrainProp
 *    runs the full batch, EBP a short one (nb = B - 1), so the 1/nb and the batch-norm
 *    statistics over the live batch are checked too.
 * The optional 1x1 "stem" conv before the layer under test makes that layer's input
 * feedback (dx) part of the check: the stem's gradient goes through it.
 * The front end has no `pad` option for maxpool; a 'same' maxpool is then made by
 * setting pad_same in the parsed IR and re-deriving the shapes here (tu_reinfer).
 * Also: dropout's kept fraction (4 sigma) and step-to-step independence, the exact
 * mask value 1/(1-rate) in double precision, and that a model can be closed and
 * another opened after an OpenMP kernel ran (in a child process, as it may crash).
 */
#include "testutil.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    bp_layer_kind kind;
    int units, k, s, same, relu;
    double rate;
} spec;

typedef struct {
    const char *name;
    int h, w, c;
    int stem;       /* a linear 1x1 conv with this many filters first (0: none) */
    spec L[6];
    int K;          /* classes */
} cfg;

#define BATCH 4
#define PER_TENSOR 24

/* ---- the model text ---------------------------------------------------------------------- */

static void src_of(const cfg *c, char *buf, size_t len, int pool_pad) {
    int at = snprintf(buf, len, "model t {\n  input %d x %d x %d;\n", c->h, c->w, c->c);
    if (c->stem) at += snprintf(buf + at, len - at, "  conv %d size 1 stride 1 pad valid;\n", c->stem);
    for (int i = 0; i < 6 && c->L[i].kind != BP_INPUT; i++) {
        const spec *s = &c->L[i];
        switch (s->kind) {
        case BP_DENSE:
            at += snprintf(buf + at, len - at, "  dense %d%s;\n", s->units, s->relu ? " relu" : "");
            break;
        case BP_CONV:
        case BP_LOCCON:
            at += snprintf(buf + at, len - at, "  %s %d size %d stride %d pad %s%s;\n",
                           s->kind == BP_CONV ? "conv" : "loccon", s->units, s->k, s->s,
                           s->same ? "same" : "valid", s->relu ? " relu" : "");
            break;
        case BP_MAXPOOL:
            at += snprintf(buf + at, len - at, "  maxpool size %d stride %d%s;\n", s->k, s->s,
                           pool_pad ? (s->same ? " pad same" : " pad valid") : "");
            break;
        case BP_BATCHNORM: at += snprintf(buf + at, len - at, "  batchnorm;\n"); break;
        case BP_DROPOUT: at += snprintf(buf + at, len - at, "  dropout %g;\n", s->rate); break;
        default: fail_msg("bad spec");
        }
    }
    snprintf(buf + at, len - at, "  output %d brainprop epsilon 0.02;\n}\n", c->K);
}

/* Shapes and paddings of every layer again, from the kinds and options alone. */
static void tu_reinfer(bp_ir *ir) {
    for (int l = 1; l < ir->n; l++) {
        bp_layer *L = &ir->layers[l];
        L->in = ir->layers[l - 1].out;
        switch (L->kind) {
        case BP_DENSE:
        case BP_OUTPUT: L->out = (bp_shape){1, 1, L->units}; break;
        case BP_CONV:
        case BP_LOCCON:
        case BP_MAXPOOL:
            L->out.h = tu_odim(L->in.h, L->ksize, L->stride, L->pad_same);
            L->out.w = tu_odim(L->in.w, L->ksize, L->stride, L->pad_same);
            L->out.c = L->kind == BP_MAXPOOL ? L->in.c : L->units;
            L->pad_top = tu_pad(L->in.h, L->ksize, L->stride, L->pad_same);
            L->pad_left = tu_pad(L->in.w, L->ksize, L->stride, L->pad_same);
            break;
        default: L->out = L->in; break;
        }
    }
}

/* Parses the case, checks that the IR says what the text said, and that every shape
 * and padding follows TensorFlow's rules. */
static bp_ir *ir_of(const cfg *c) {
    char src[2048];
    int any_same_pool = 0;
    for (int i = 0; i < 6; i++) any_same_pool |= c->L[i].kind == BP_MAXPOOL && c->L[i].same;
    bp_ir *ir = NULL;
    if (any_same_pool) {
        FILE *null = fopen("/dev/null", "w");
        int nerr;
        src_of(c, src, sizeof src, 1);
        ir = bp_frontend_string("test.bp", src, strlen(src), null, &nerr);
        fclose(null);
    }
    if (!ir) {
        src_of(c, src, sizeof src, 0);
        ir = tu_parse(src);
    }
    int first = c->stem ? 2 : 1;
    if (c->stem) assert_int_equal(ir->layers[1].kind, BP_CONV);
    for (int i = 0; i < 6 && c->L[i].kind != BP_INPUT; i++) {
        const spec *s = &c->L[i];
        bp_layer *L = &ir->layers[first + i];
        assert_int_equal(L->kind, s->kind);
        if (s->kind == BP_DENSE || s->kind == BP_CONV || s->kind == BP_LOCCON) {
            assert_int_equal(L->units, s->units);
            assert_int_equal(L->relu, s->relu);
        }
        if (s->kind == BP_CONV || s->kind == BP_LOCCON || s->kind == BP_MAXPOOL) {
            assert_int_equal(L->ksize, s->k);
            assert_int_equal(L->stride, s->s);
            if (s->kind == BP_MAXPOOL && s->same && !L->pad_same) {
                L->pad_same = 1; /* not in the language: see the head of this file */
                tu_reinfer(ir);
            }
            assert_int_equal(L->pad_same, s->same);
        }
        if (s->kind == BP_DROPOUT) assert_true(fabs(L->rate - s->rate) < 1e-7);
    }
    assert_int_equal(ir->layers[ir->n - 1].kind, BP_OUTPUT);
    assert_int_equal(ir->layers[ir->n - 1].units, c->K);
    /* the geometry, recomputed */
    for (int l = 1; l < ir->n; l++) {
        const bp_layer *L = &ir->layers[l], *P = &ir->layers[l - 1];
        assert_true(L->in.h == P->out.h && L->in.w == P->out.w && L->in.c == P->out.c);
        bp_shape o = L->in;
        int pt = 0, pl = 0;
        switch (L->kind) {
        case BP_DENSE:
        case BP_OUTPUT: o = (bp_shape){1, 1, L->units}; break;
        case BP_CONV:
        case BP_LOCCON:
        case BP_MAXPOOL:
            o.h = tu_odim(L->in.h, L->ksize, L->stride, L->pad_same);
            o.w = tu_odim(L->in.w, L->ksize, L->stride, L->pad_same);
            o.c = L->kind == BP_MAXPOOL ? L->in.c : L->units;
            pt = tu_pad(L->in.h, L->ksize, L->stride, L->pad_same);
            pl = tu_pad(L->in.w, L->ksize, L->stride, L->pad_same);
            assert_int_equal(L->pad_top, pt);
            assert_int_equal(L->pad_left, pl);
            break;
        default: break;
        }
        if (L->out.h != o.h || L->out.w != o.w || L->out.c != o.c)
            fail_msg("%s: layer %d (%s) is %dx%dx%d, TF rules say %dx%dx%d", c->name, l,
                     bp_layer_kind_name(L->kind), L->out.h, L->out.w, L->out.c, o.h, o.w, o.c);
    }
    return ir;
}

/* ---- the naive references ---------------------------------------------------------------- */

#define FWD_TOL 1e-12
#define BN_EPSILON 1e-3
#define BN_MOM 0.99

static void cmp(const char *what, int l, const double *got, const double *ref, const double *scl,
                long m) {
    for (long i = 0; i < m; i++)
        if (!(fabs(got[i] - ref[i]) <= FWD_TOL * scl[i] + 1e-300))
            fail_msg("%s: L%d.act[%ld] = %.17g, reference %.17g (tolerance %.3g)", what, l, i,
                     got[i], ref[i], FWD_TOL * scl[i]);
}

/* Every mask value is 0 or 1/(1-rate), to `tol` relative. test_dropout_mask_value
 * asks for double precision (1e-12); elsewhere a float-rounded constant (MASK_LOOSE)
 * is let through so that the other dropout checks still run. */
#define MASK_STRICT 1e-12
#define MASK_LOOSE 1e-6
static void check_mask(const double *mask, long m, float rate, double tol, const char *what) {
    double keep = 1.0 / (1.0 - (double)rate);
    for (long i = 0; i < m; i++)
        if (mask[i] != 0.0 && !(fabs(mask[i] - keep) <= tol * keep))
            fail_msg("%s: mask[%ld] = %.17g; a mask is 0 or 1/(1-rate) = %.17g (rate %.9g, "
                     "relative tolerance %g)", what, i, mask[i], keep, (double)rate, tol);
}

/* Checks layer l's output in the mode just run (eval or train) against the reference
 * computed from layer l-1's actual output. `before` holds every tensor as it was
 * before the run (for the batch-norm moving averages). */
static void check_layer(tu_net *n, int l, int nb, int eval, double **before, const char *what) {
    const bp_layer *L = &n->ir->layers[l];
    long Si = bp_shape_size(L->in), So = bp_shape_size(L->out), m = nb * So;
    double *in = malloc(sizeof *in * (size_t)(nb * Si)), *got = malloc(sizeof *got * (size_t)m);
    double *ref = calloc((size_t)m, sizeof *ref), *scl = calloc((size_t)m, sizeof *scl);
    assert_true(in && got && ref && scl);
    tu_getf(n, tu_t(n, "L%d.act", l - 1)->off, in, nb * Si);
    tu_getf(n, tu_t(n, "L%d.act", l)->off, got, m);
    int H = L->in.h, W = L->in.w, C = L->in.c, K = L->ksize, S = L->stride;
    int Ho = tu_odim(H, K, S, L->pad_same), Wo = tu_odim(W, K, S, L->pad_same);
    int pt = tu_pad(H, K, S, L->pad_same), pl = tu_pad(W, K, S, L->pad_same);
    switch (L->kind) {
    case BP_DENSE:
    case BP_OUTPUT: {
        double *w = tu_getv(n, tu_t(n, "L%d.weight", l));
        for (int b = 0; b < nb; b++)
            for (long o = 0; o < So; o++) {
                double s = 0, a = 0;
                for (long d = 0; d < Si; d++) {
                    double t = in[b * Si + d] * w[o * Si + d];
                    s += t;
                    a += fabs(t);
                }
                ref[b * So + o] = L->relu && s < 0 ? 0.0 : s;
                scl[b * So + o] = a;
            }
        free(w);
        break;
    }
    case BP_CONV:
    case BP_LOCCON: {
        double *w = tu_getv(n, tu_t(n, "L%d.weight", l));
        int F = L->units;
        for (int b = 0; b < nb; b++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++)
                    for (int f = 0; f < F; f++) {
                        double s = 0, a = 0;
                        long wp = L->kind == BP_LOCCON ? ((long)(oh * Wo + ow) * F + f) : f;
                        for (int kh = 0; kh < K; kh++)
                            for (int kw = 0; kw < K; kw++)
                                for (int c = 0; c < C; c++) {
                                    int ih = oh * S - pt + kh, iw = ow * S - pl + kw;
                                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                    double t = in[(((long)b * H + ih) * W + iw) * C + c] *
                                               w[((wp * K + kh) * K + kw) * C + c];
                                    s += t;
                                    a += fabs(t);
                                }
                        long o = (((long)b * Ho + oh) * Wo + ow) * F + f;
                        ref[o] = L->relu && s < 0 ? 0.0 : s;
                        scl[o] = a;
                    }
        free(w);
        break;
    }
    case BP_MAXPOOL:
        tu_maxpool_ref(in, nb, H, W, C, K, S, L->pad_same, ref, NULL);
        for (long i = 0; i < m; i++) scl[i] = fabs(ref[i]);
        break;
    case BP_BATCHNORM: {
        long HW = (long)H * W, cnt = nb * HW;
        double *g = tu_getv(n, tu_t(n, "L%d.gamma", l)), *be = tu_getv(n, tu_t(n, "L%d.beta", l));
        const bp_tensor *tm = tu_t(n, "L%d.moving_mean", l), *tv = tu_t(n, "L%d.moving_variance", l);
        double *mm = tu_getv(n, tm), *mv = tu_getv(n, tv);
        double *mm0 = before[tm - n->plan->tensors], *mv0 = before[tv - n->plan->tensors];
        for (int c = 0; c < C; c++) {
            double mu = 0, var = 0, amu = 0;
            for (long r = 0; r < cnt; r++) mu += in[r * C + c];
            mu /= (double)cnt;
            for (long r = 0; r < cnt; r++) var += (in[r * C + c] - mu) * (in[r * C + c] - mu);
            var /= (double)cnt; /* biased, as Keras */
            if (eval) {
                mu = mm[c];
                var = mv[c];
            } else {
                /* moving = 0.99 moving + 0.01 batch (biased variance) */
                double em = BN_MOM * mm0[c] + (1 - BN_MOM) * mu;
                double ev = BN_MOM * mv0[c] + (1 - BN_MOM) * var;
                if (!(fabs(mm[c] - em) <= 1e-12 * (fabs(em) + fabs(mm0[c]) + fabs(mu))))
                    fail_msg("%s: L%d.moving_mean[%d] = %.17g, expected %.17g", what, l, c, mm[c], em);
                if (!(fabs(mv[c] - ev) <= 1e-12 * (fabs(ev) + fabs(mv0[c]))))
                    fail_msg("%s: L%d.moving_variance[%d] = %.17g, expected %.17g (biased batch "
                             "variance %.17g)", what, l, c, mv[c], ev, var);
            }
            amu = fabs(mu);
            double inv = 1.0 / sqrt(var + BN_EPSILON);
            for (long r = 0; r < cnt; r++) {
                double x = in[r * C + c];
                ref[r * C + c] = g[c] * (x - mu) * inv + be[c];
                scl[r * C + c] = fabs(g[c]) * (fabs(x) + amu) * inv + fabs(be[c]) + 1e-300;
            }
        }
        free(g); free(be); free(mm); free(mv);
        break;
    }
    case BP_DROPOUT: {
        if (eval) {
            memcpy(ref, in, sizeof *ref * (size_t)m);
        } else {
            double *mask = tu_getv(n, tu_t(n, "L%d.mask", l));
            check_mask(mask, m, L->rate, MASK_LOOSE, what);
            for (long i = 0; i < m; i++) ref[i] = in[i] * mask[i];
            free(mask);
        }
        for (long i = 0; i < m; i++) scl[i] = fabs(ref[i]);
        break;
    }
    default: fail_msg("unexpected layer kind");
    }
    cmp(what, l, got, ref, scl, m);
    free(in); free(got); free(ref); free(scl);
}

/* Runs `forward` then `eval` and checks every layer in both modes; the input layer is
 * pixels / 255. */
static void check_forward(tu_net *n, const bp_dyn *d, const char *what) {
    const bp_plan *p = n->plan;
    double **before = calloc((size_t)p->ntensors, sizeof *before);
    assert_non_null(before);
    for (int i = 0; i < p->ntensors; i++) before[i] = tu_getv(n, &p->tensors[i]);
    assert_int_equal(p->q, tu_t(n, "L%d.act", n->ir->n - 1)->off);
    for (int eval = 0; eval < 2; eval++) {
        tu_loss(n, eval ? &p->eval : &p->forward, d);
        long S0 = p->x_bytes;
        double *a0 = malloc(sizeof *a0 * (size_t)(d->nb * S0));
        assert_non_null(a0);
        tu_getf(n, tu_t(n, "L0.act")->off, a0, d->nb * S0);
        for (long i = 0; i < d->nb * S0; i++)
            if (!(fabs(a0[i] - n->X[i] / 255.0) <= 1e-15))
                fail_msg("%s: L0.act[%ld] = %.17g, pixel %d / 255", what, i, a0[i], n->X[i]);
        free(a0);
        for (int l = 1; l < n->ir->n; l++) check_layer(n, l, d->nb, eval, before, what);
    }
    /* leave the state as it was */
    for (int i = 0; i < p->ntensors; i++) {
        tu_putf(n, p->tensors[i].off, before[i], p->tensors[i].size);
        free(before[i]);
    }
    free(before);
}

/* After one train step, the feedback into each maxpool's input is the output feedback
 * at the first argmax of every window (summed where windows overlap), zero elsewhere,
 * then gated by the ReLU of the layer below if it has one. */
static void check_pool_routing(tu_net *n, const bp_dyn *d, const char *what) {
    int routed = 0;
    tu_loss(n, &n->plan->train, d);
    for (int l = 2; l < n->ir->n; l++) {
        const bp_layer *L = &n->ir->layers[l], *P = &n->ir->layers[l - 1];
        if (L->kind != BP_MAXPOOL) continue;
        long Si = bp_shape_size(L->in), So = bp_shape_size(L->out), nb = d->nb;
        double *in = malloc(sizeof *in * (size_t)(nb * Si)), *fin = malloc(sizeof *fin * (size_t)(nb * Si));
        double *fout = malloc(sizeof *fout * (size_t)(nb * So));
        double *ref = calloc((size_t)(nb * Si), sizeof *ref);
        int *arg = malloc(sizeof *arg * (size_t)(nb * So));
        assert_true(in && fin && fout && ref && arg);
        tu_getf(n, tu_t(n, "L%d.act", l - 1)->off, in, nb * Si);
        tu_getf(n, tu_t(n, "L%d.fb", l - 1)->off, fin, nb * Si);
        tu_getf(n, tu_t(n, "L%d.fb", l)->off, fout, nb * So);
        tu_maxpool_ref(in, (int)nb, L->in.h, L->in.w, L->in.c, L->ksize, L->stride, L->pad_same,
                       NULL, arg);
        int C = L->in.c;
        double fmax_ = 0;
        for (long b = 0; b < nb; b++)
            for (long o = 0; o < So; o++) {
                long src = b * Si + (long)arg[b * So + o] * C + o % C;
                ref[src] += fout[b * So + o];
                if (fabs(fout[b * So + o]) > fmax_) fmax_ = fabs(fout[b * So + o]);
            }
        if (P->relu)
            for (long i = 0; i < nb * Si; i++)
                if (!(in[i] > 0)) ref[i] = 0;
        assert_true(fmax_ > 0);
        for (long i = 0; i < nb * Si; i++)
            if (!(fabs(fin[i] - ref[i]) <= 1e-12 * fmax_))
                fail_msg("%s: L%d.fb[%ld] = %.17g, routed to the argmax: %.17g", what, l - 1, i,
                         fin[i], ref[i]);
        free(in); free(fin); free(fout); free(ref); free(arg);
        routed++;
    }
    assert_true(routed > 0);
}

/* One case: forward checks and gradient checks for BrainProp (nb = B) and EBP
 * (nb = B - 1). */
static void run_case(const cfg *c) {
    for (int rule = 0; rule < 2; rule++) {
        tu_net n;
        tu_open_ir(&n, ir_of(c), rule ? BP_RULE_EBP : BP_RULE_BRAINPROP, BATCH);
        tu_rng r = {0x1234567ull + 77ull * (uint64_t)rule + (uint64_t)c->h * 1000 + c->w};
        tu_params(&n, &r, 1.0);
        tu_batch(&n, &r);
        bp_dyn d = tu_dyn(1.0, rule ? BATCH - 1 : BATCH, 7 + rule);
        char what[160];
        snprintf(what, sizeof what, "%s [%s, nb %d]", c->name, rule ? "ebp" : "brainprop", d.nb);
        check_forward(&n, &d, what);
        tu_gc g = tu_gradcheck(&n, &d, PER_TENSOR, &r, what);
        tu_gc_print(what, g);
        int pools = 0;
        for (int l = 0; l < n.ir->n; l++) pools += n.ir->layers[l].kind == BP_MAXPOOL;
        if (pools) check_pool_routing(&n, &d, what);
        tu_close(&n);
    }
}

#define DENSE(u, r) {BP_DENSE, u, 0, 0, 0, r, 0}
#define CONV(f, k, s, same, r) {BP_CONV, f, k, s, same, r, 0}
#define LOCCON(f, k, s, same, r) {BP_LOCCON, f, k, s, same, r, 0}
#define POOL(k, s, same) {BP_MAXPOOL, 0, k, s, same, 0, 0}
#define BN {BP_BATCHNORM, 0, 0, 0, 0, 0, 0}
#define DROP(rate) {BP_DROPOUT, 0, 0, 0, 0, 0, rate}

static void run_cases(const cfg *c, int nc) {
    tu_keep_openmp_loaded();
    for (int i = 0; i < nc; i++) run_case(&c[i]);
}

static void test_dense(void **state) {
    (void)state;
    static const cfg c[] = {
        {"dense 7 (linear)", 3, 4, 2, 0, {DENSE(7, 0)}, 4},
        {"dense 7 relu, dense 5 relu", 3, 4, 2, 0, {DENSE(7, 1), DENSE(5, 1)}, 4},
        {"output only", 2, 3, 3, 0, {{0}}, 5},
    };
    run_cases(c, sizeof c / sizeof *c);
}

/* conv and loccon share the cases; `kind` picks the layer. */
static void conv_cases(bp_layer_kind kind) {
#define CV(f, k, s, same, r) {kind, f, k, s, same, r, 0}
    const cfg c[] = {
        {"7x5x3 K3 s1 same relu", 7, 5, 3, 3, {CV(4, 3, 1, 1, 1)}, 3},
        {"7x5x3 K3 s2 same relu", 7, 5, 3, 3, {CV(4, 3, 2, 1, 1)}, 3},
        {"7x5x3 K2 s2 same", 7, 5, 3, 3, {CV(3, 2, 2, 1, 0)}, 3},
        {"7x5x3 K1 s1 valid relu", 7, 5, 3, 3, {CV(4, 1, 1, 0, 1)}, 3},
        {"7x5x3 K3 s2 valid relu", 7, 5, 3, 3, {CV(4, 3, 2, 0, 1)}, 3},
        {"8x6x2 K2 s1 same relu (odd pad)", 8, 6, 2, 2, {CV(3, 2, 1, 1, 1)}, 3},
        {"6x7x2 K3 s2 same, K2 s1 valid relu", 6, 7, 2, 2, {CV(2, 3, 2, 1, 1), CV(3, 2, 1, 0, 1)}, 4},
        {"7x5x3 K3 s1 same relu, first layer", 7, 5, 3, 0, {CV(4, 3, 1, 1, 1)}, 3},
        {"5x5x1 K3 s1 valid relu, first layer", 5, 5, 1, 0, {CV(3, 3, 1, 0, 1)}, 3},
    };
#undef CV
    char names[sizeof c / sizeof *c][96];
    cfg cc[sizeof c / sizeof *c];
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        cc[i] = c[i];
        snprintf(names[i], sizeof names[i], "%s %s", kind == BP_CONV ? "conv" : "loccon", c[i].name);
        cc[i].name = names[i];
    }
    run_cases(cc, sizeof c / sizeof *c);
}

static void test_conv(void **state) { (void)state; conv_cases(BP_CONV); }
static void test_loccon(void **state) { (void)state; conv_cases(BP_LOCCON); }

static void test_maxpool(void **state) {
    (void)state;
    static const cfg c[] = {
        {"maxpool 7x5 size 2 stride 2 valid", 7, 5, 2, 3, {POOL(2, 2, 0)}, 3},
        {"maxpool 7x5 size 2 stride 2 same", 7, 5, 2, 3, {POOL(2, 2, 1)}, 3},
        {"maxpool 7x5 size 3 stride 2 same", 7, 5, 2, 3, {POOL(3, 2, 1)}, 3},
        {"maxpool 7x5 size 3 stride 2 valid", 7, 5, 2, 3, {POOL(3, 2, 0)}, 3},
        {"maxpool 6x6 size 3 stride 2 same (pad 0/1)", 6, 6, 1, 2, {POOL(3, 2, 1)}, 3},
        {"maxpool 5x5 size 3 stride 1 same (overlap)", 5, 5, 1, 2, {POOL(3, 1, 1)}, 3},
        {"conv relu, maxpool 8x7 size 2 stride 2", 8, 7, 1, 0, {CONV(3, 3, 1, 1, 1), POOL(2, 2, 0)}, 3},
    };
    run_cases(c, sizeof c / sizeof *c);
}

static void test_batchnorm(void **state) {
    (void)state;
    static const cfg c[] = {
        {"conv relu, batchnorm", 6, 5, 2, 0, {CONV(3, 3, 1, 1, 1), BN}, 3},
        {"dense relu, batchnorm", 3, 3, 2, 0, {DENSE(6, 1), BN}, 3},
        {"stem, batchnorm, conv", 5, 4, 2, 2, {BN, CONV(3, 3, 2, 1, 1)}, 3},
        {"conv relu, bn, conv s2 relu, bn, dense", 6, 6, 1, 0,
         {CONV(3, 3, 1, 1, 1), BN, CONV(3, 3, 2, 1, 1), BN, DENSE(5, 1)}, 4},
    };
    run_cases(c, sizeof c / sizeof *c);
}

static void test_dropout(void **state) {
    (void)state;
    static const cfg c[] = {
        {"dense relu, dropout 0.3, dense relu, dropout 0.5", 4, 4, 2, 0,
         {DENSE(12, 1), DROP(0.3), DENSE(8, 1), DROP(0.5)}, 3},
        {"conv relu, dropout 0.3", 5, 5, 2, 0, {CONV(3, 3, 1, 1, 1), DROP(0.3)}, 3},
        {"dropout 0.8 on the input", 4, 3, 2, 0, {DROP(0.8), DENSE(6, 1)}, 3},
    };
    run_cases(c, sizeof c / sizeof *c);
}

/* The kept fraction of a large layer is 1 - rate within 4 sigma, for each rate; the
 * masks differ between samples and between steps, and repeat for the same step. */
static void test_dropout_statistics(void **state) {
    (void)state;
    static const double rates[] = {0.3, 0.5, 0.8, 0.02};
    tu_keep_openmp_loaded();
    for (size_t k = 0; k < sizeof rates / sizeof *rates; k++) {
        char src[256];
        snprintf(src, sizeof src, "model t { input 32 x 32 x 4; dropout %g; output 2 brainprop; }",
                 rates[k]);
        const int NB = 25;
        tu_net n;
        tu_open(&n, src, BP_RULE_BRAINPROP, NB);
        tu_rng r = {99 + k};
        tu_batch(&n, &r);
        const bp_tensor *mt = tu_t(&n, "L1.mask");
        long S = 32 * 32 * 4, N = NB * S, kept = 0;
        assert_int_equal(mt->size, N);
        double rate = n.ir->layers[1].rate;
        bp_dyn d = tu_dyn(0.1, NB, 11);
        tu_loss(&n, &n.plan->forward, &d);
        double *m1 = tu_getv(&n, mt);
        char what[64];
        snprintf(what, sizeof what, "dropout %g", rates[k]);
        check_mask(m1, N, n.ir->layers[1].rate, MASK_LOOSE, what);
        for (long i = 0; i < N; i++) kept += m1[i] != 0.0;
        double p = 1.0 - rate, sigma = sqrt(p * (1 - p) / (double)N);
        double frac = (double)kept / (double)N;
        printf("  dropout %-4g kept %.5f of %ld, expected %.5f (%.2f sigma)\n", rates[k], frac, N,
               p, (frac - p) / sigma);
        if (!(fabs(frac - p) <= 4 * sigma))
            fail_msg("dropout %g: kept fraction %.5f, expected %.5f +- 4 x %.5f", rates[k], frac,
                     p, sigma);
        /* sample 0 and sample 1 do not share a mask */
        assert_true(memcmp(m1, m1 + S, sizeof *m1 * (size_t)S) != 0);
        /* the same step draws the same mask, another step another one */
        tu_loss(&n, &n.plan->forward, &d);
        double *m2 = tu_getv(&n, mt);
        assert_memory_equal(m1, m2, sizeof *m1 * (size_t)N);
        d.step = 12;
        tu_loss(&n, &n.plan->forward, &d);
        double *m3 = tu_getv(&n, mt);
        long same = 0;
        for (long i = 0; i < N; i++) same += (m1[i] != 0) == (m3[i] != 0);
        /* independent masks agree at p^2 + (1-p)^2 of the units, not at all of them */
        double pa = p * p + (1 - p) * (1 - p), sa = sqrt(pa * (1 - pa) / (double)N);
        if (!(fabs((double)same / (double)N - pa) <= 4 * sa))
            fail_msg("dropout %g: steps 11 and 12 agree at %.5f of the units, independent "
                     "masks at %.5f", rates[k], (double)same / (double)N, pa);
        free(m1); free(m2); free(m3);
        tu_close(&n);
    }
}

/* In double precision the kept units are scaled by 1/(1-rate) to double precision,
 * as the output of every other layer is: the CPU64 target is the gradient oracle. */
static void test_dropout_mask_value(void **state) {
    (void)state;
    static const double rates[] = {0.3, 0.5, 0.8, 0.1};
    tu_keep_openmp_loaded();
    for (size_t k = 0; k < sizeof rates / sizeof *rates; k++) {
        char src[256], what[64];
        snprintf(src, sizeof src, "model t { input 4 x 4 x 2; dropout %g; output 2 brainprop; }",
                 rates[k]);
        snprintf(what, sizeof what, "dropout %g", rates[k]);
        tu_net n;
        tu_open(&n, src, BP_RULE_BRAINPROP, 4);
        tu_rng r = {5 + k};
        tu_batch(&n, &r);
        bp_dyn d = tu_dyn(0.1, 4, 3);
        tu_loss(&n, &n.plan->forward, &d);
        const bp_tensor *mt = tu_t(&n, "L1.mask");
        double *m = tu_getv(&n, mt);
        check_mask(m, mt->size, n.ir->layers[1].rate, MASK_STRICT, what);
        free(m);
        tu_close(&n);
    }
}

/* Closing a model and opening another must work after a parallel (OpenMP) kernel ran:
 * a trainer that evaluates with a second instance, or any test, does so. Run in a child
 * process, without the libgomp pin of the other tests, so that a crash is a failure
 * here and not the end of this program. Must run first, before this process starts
 * an OpenMP thread pool. */
static int reopen_child(void) {
    static const char *srcs[2] = {
        "model a { input 32 x 32 x 4; dropout 0.3; output 2 brainprop; }",
        "model b { input 32 x 32 x 4; dropout 0.5; output 3 brainprop; }",
    };
    for (int k = 0; k < 2; k++) {
        int nerr;
        bp_ir *ir = bp_frontend_string("t.bp", srcs[k], strlen(srcs[k]), stderr, &nerr);
        if (!ir) return 2;
        bp_plan *p = bp_plan_build(ir, BP_RULE_BRAINPROP, 16); /* 16 x 4096 >= 8192: parallel */
        bp_exec x;
        bp_err e = {{0}};
        if (!p || bp_exec_open(&x, p, BP_TARGET_CPU64, &e) || bp_exec_init_params(&x, 1, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 3;
        }
        bp_dyn d = tu_dyn(0.1, 16, 1);
        if (bp_exec_run(&x, &p->forward, &d, &e)) return 4;
        bp_exec_close(&x);
        bp_plan_free(p);
        bp_ir_free(ir);
        usleep(200000); /* the pool's workers are spinning or asleep now */
    }
    return 0;
}

static void test_exec_reopen(void **state) {
    (void)state;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* cmocka's handlers would turn a crash into exit(255) or run other tests here */
        static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
        for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) signal(sigs[i], SIG_DFL);
        _exit(reopen_child());
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st))
        fail_msg("open, run (OpenMP), close, open again: killed by signal %d (%s). libgomp "
                 "is not linked into the program; it came with the JIT-compiled model and "
                 "dlclose unloaded it under its live thread pool", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(int argc, char **argv) {
    (void)argc;
    tu_passive_openmp(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_reopen),
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_loccon),
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_dropout_statistics),
        cmocka_unit_test(test_dropout_mask_value),
    };
    if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER")); /* e.g. "test_conv" */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
