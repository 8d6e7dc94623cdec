/* plan.c: lowering the IR to kernels and step programs (the heart of the compiler).
 *
 * For each layer this file writes the forward pass (train and eval variants) and the
 * backward pass of a training step. Bodies are C expressions over the index i that
 * compile unchanged as C and as CUDA (see templates/bp_kernel.h); GEMMs become
 * bp_gemm descriptors. Every shape and offset is a constant in the text.
 *
 * The learning rules (Pozzi, Bohte & Roelfsema, NeurIPS 2020):
 *  BrainProp: action a = argmax Q with probability 1-eps, else a draw from softmax(Q)
 *    (max-Boltzmann); reward r = [a == label]; RPE delta = r - Q_a. Only unit a sends
 *    feedback: dL/dQ_k = -delta/nb for k == a, 0 otherwise. That is exactly the
 *    gradient of L = (1/nb) sum_b 1/2 (r_b - Q_{b,a_b})^2 with the actions held fixed;
 *    the feedback then travels down the transposed forward weights and is gated by
 *    each unit's activation derivative (the three-factor rule).
 *  EBP: softmax + categorical cross-entropy, dL/dQ = (softmax(Q) - onehot)/nb.
 * The SGD step is folded into the weight GEMM: W <- (1 - 2 lr l2) W - lr * fb^T x.
 * The input feedback dX is always computed before W changes. A ReLU followed by batch
 * norm (the paper's order) is not a pass of its own: the batch norm applies it as it
 * reads, and stores relu(z) back for the backward gate.
 * Feedback pathways (ir.h, bp_feedback): the input feedback dX = fb M crosses M = W
 * (tied), a fixed random B (random), alpha sign(W) made before the layer's backward
 * (sign) or a learned B that takes W's own update right after W (kolen_pollack); with
 * direct feedback no dX is computed at all, and the top of each hidden block gets
 * fb = (dL/dQ) B_direct instead, just before its backward runs.
 * The column feedback of a conv or loccon layer (dcols, the input of col2im) lives only
 * inside that layer's backward, and the operations run one after another (in order on
 * one stream on the GPU), so every layer uses the same region, sized for the largest.
 */
#include "plan.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    bp_plan *p;
    int oom;
    int flags;         /* BP_PLAN_NO_FUSE, BP_PLAN_NO_PARTS, BP_PLAN_CUDA_ALT */
    int next_bn;       /* the layer being lowered is followed by batch norm */
    int relu_pending;  /* it left its ReLU to that batch norm (see lower_bn) */
    long dcols;        /* the shared column-feedback region (see the head of the file) */
    bp_tensor *fbs;    /* feedback matrices B, registered after every other tensor */
    int nfbs;
} cg;

static void *xrealloc(cg *c, void *ptr, size_t n) {
    void *q = realloc(ptr, n);
    if (!q) c->oom = 1;
    return q;
}

/* In a data-parallel plan (BP_PLAN_DP) the rule and batch norm divide by the global
 * batch and the Philox draws are keyed by the global sample index; otherwise the
 * rank's own batch is the whole batch. */
static const char *nb_all(const cg *c) { return c->flags & BP_PLAN_DP ? "d.nb_all" : "d.nb"; }
/* The Philox sample word for the rank's sample `var`, into buf (size >= 48). */
static const char *sample_word(const cg *c, const char *var, char *buf) {
    if (c->flags & BP_PLAN_DP) snprintf(buf, 48, "(unsigned int)(d.b0 + %s)", var);
    else snprintf(buf, 48, "(unsigned int)%s", var);
    return buf;
}

static long alloc_f(cg *c, long n) { long o = c->p->arena_floats; c->p->arena_floats += n; return o; }
static long alloc_i(cg *c, long n) { long o = c->p->arena_ints; c->p->arena_ints += n; return o; }

/* Adds a kernel and returns its index. The body is printf-formatted. */
static int kernel(cg *c, long count, int per_sample, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int kernel(cg *c, long count, int per_sample, const char *name, const char *fmt, ...) {
    bp_plan *p = c->p;
    bp_kernel *k = xrealloc(c, p->kernels, sizeof *k * (p->nkernels + 1));
    if (!k) return -1;
    p->kernels = k;
    k = &p->kernels[p->nkernels];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "bp_k%d_%s", p->nkernels, name);
    k->count = count;
    k->per_sample = per_sample;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&k->body, fmt, ap) < 0) { k->body = NULL; c->oom = 1; va_end(ap); return -1; }
    va_end(ap);
    return p->nkernels++;
}

/* Marks kernel k as per-channel over C channels (bp_kernel.channels): its body uses
 * ch and row (i = row * C + ch), not i % C and i / C. Returns k. */
static int per_channel(cg *c, int k, long C) {
    if (k >= 0) c->p->kernels[k].channels = C;
    return k;
}

/* Marks kernel k as doing `grain` elements of work per index (bp_kernel.grain). */
static int heavy(cg *c, int k, long grain) {
    if (k >= 0) c->p->kernels[k].grain = grain;
    return k;
}

static bp_op *push(cg *c, bp_prog *g, bp_op_kind kind, const char *what) {
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 32;
        bp_op *o = xrealloc(c, g->ops, sizeof *o * cap);
        if (!o) return NULL;
        g->ops = o;
        g->cap = cap;
    }
    bp_op *o = &g->ops[g->n++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    snprintf(o->what, sizeof o->what, "%s", what);
    return o;
}

static void run(cg *c, bp_prog *g, int k, const char *what) {
    bp_op *o = push(c, g, BP_OP_KERNEL, what);
    if (o) o->kernel = k;
}

static void gemm(cg *c, bp_prog *g, bp_gemm d, const char *what) {
    if (d.batch < 1) d.batch = 1;
    bp_op *o = push(c, g, BP_OP_GEMM, what);
    if (o) o->g = d;
}

static void collective(cg *c, bp_prog *g, bp_coll_kind kind, long off, long n, const char *what) {
    bp_op *o = push(c, g, BP_OP_COLLECTIVE, what);
    if (o) o->coll = (bp_coll){.kind = kind, .off = off, .n = n};
}

/* Appends a named entry to a tensor list (parameters/state, or buffers). */
static bp_tensor *named(cg *c, bp_tensor **list, int *n, int layer, const char *suffix, long off,
                        long size) {
    bp_tensor *t = xrealloc(c, *list, sizeof *t * (*n + 1));
    if (!t) return NULL;
    *list = t;
    t = &t[(*n)++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "L%d.%s", layer, suffix);
    t->layer = layer;
    t->off = off;
    t->size = size;
    t->ndim = 1;
    t->dims[0] = size;
    return t;
}

static void buffer(cg *c, int layer, const char *suffix, long off, long size) {
    named(c, &c->p->buffers, &c->p->nbuffers, layer, suffix, off, size);
}

static bp_tensor *tensor(cg *c, int layer, const char *suffix, long size, bp_init init, float std,
                         int trainable) {
    bp_plan *p = c->p;
    bp_tensor *t = named(c, &p->tensors, &p->ntensors, layer, suffix, alloc_f(c, size), size);
    if (!t) return NULL;
    t->init = init;
    t->std = std;
    t->trainable = trainable;
    return t;
}

static long tensor_off(const bp_tensor *t) { return t ? t->off : 0; }

/* A feedback matrix "Ll.feedback" of `size` floats, normal(0, std), as a tensor of its
 * own (it goes into checkpoints). It is listed after every other tensor, so that the
 * tensor indices, which key the initial draws, and with them the initial weights are
 * the same whatever the feedback. dims: from `like` (W's), or set by the caller. */
static bp_tensor *feedback_tensor(cg *c, int layer, long size, float std, int learned,
                                  const bp_tensor *like) {
    bp_tensor *t = named(c, &c->fbs, &c->nfbs, layer, "feedback", alloc_f(c, size), size);
    if (!t) return NULL;
    t->init = BP_INIT_NORMAL;
    t->std = std;
    t->trainable = learned;
    if (like) { t->ndim = like->ndim; memcpy(t->dims, like->dims, sizeof t->dims); }
    return t;
}

/* alpha sign(W) into a region of its own, before the layer's backward uses it: alpha =
 * mean |W|, summed in parts of SIGN_PART weights in a fixed order (thread-independent). */
#define SIGN_PART 4096L
static long sign_matrix(cg *c, long w, long N, bp_prog *bw, const char *what) {
    long np = (N + SIGN_PART - 1) / SIGN_PART, parts = alloc_f(c, np + 1), m = alloc_f(c, N);
    int k1 = heavy(c, kernel(c, np, 0, "sign_parts",
        "long j1 = (i + 1) * %ldL < %ldL ? (i + 1) * %ldL : %ldL;\n"
        "    bp_real s = BP_C(0.0);\n"
        "    for (long j = i * %ldL; j < j1; j++) { bp_real v = A[%ldL + j]; s += v < BP_C(0.0) ? -v : v; }\n"
        "    A[%ldL + i] = s;",
        SIGN_PART, N, SIGN_PART, N, SIGN_PART, w, parts), SIGN_PART);
    int k2 = kernel(c, 1, 0, "sign_alpha",
        "bp_real s = BP_C(0.0);\n"
        "    for (long j = 0; j < %ldL; j++) s += A[%ldL + j];\n"
        "    A[%ldL] = s / (bp_real)%ldL;",
        np, parts, parts + np, N);
    int k3 = kernel(c, N, 0, "sign_fill",
        "bp_real v = A[%ldL + i], a = A[%ldL];\n"
        "    A[%ldL + i] = v > BP_C(0.0) ? a : v < BP_C(0.0) ? -a : BP_C(0.0);",
        w, parts + np, m);
    run(c, bw, k1, what);
    run(c, bw, k2, what);
    run(c, bw, k3, what);
    return m;
}

/* The matrix that the feedback of layer L (index l, weights w) crosses on its way down,
 * by L's feedback mode; *learned is the kolen_pollack B (updated like W), else -1.
 * Called where the backward needs it, so that sign's kernels run before dX. */
static long feedback_matrix(cg *c, int l, const bp_layer *L, const bp_tensor *w, float std,
                            bp_prog *bw, const char *what, long *learned) {
    *learned = -1;
    switch (L->feedback) {
    case BP_FB_RANDOM:
    case BP_FB_KP: {
        bp_tensor *b = feedback_tensor(c, l, w->size, std, L->feedback == BP_FB_KP, w);
        if (!b) return w->off;
        if (L->feedback == BP_FB_KP) *learned = b->off;
        return b->off;
    }
    case BP_FB_SIGN: return sign_matrix(c, w->off, w->size, bw, what);
    default: return w->off;
    }
}

/* Per-layer buffers of one step. */
typedef struct {
    long act;    /* A: [B, S] output activations */
    long fb;     /* A: [B, S] feedback dL/d(act) (-1 when never needed) */
    long S;      /* per-sample size */
} lbuf;

/* The weight GEMMs of a linear map y[M, F] = x[M, Kd] W^T, with M = rows*nb. */
static void linear_fwd(cg *c, bp_prog *g, long x, long w, long y, long rows, long F, long Kd,
                       const char *what) {
    gemm(c, g, (bp_gemm){.trans_b = 1, .m = rows, .m_nb = 1, .n = F, .k = Kd, .alpha = 1,
                         .a = x, .lda = Kd, .b = w, .ldb = Kd, .c = y, .ldc = F}, what);
}
/* dx[M, Kd] = fb[M, F] W[F, Kd] */
static void linear_dx(cg *c, bp_prog *g, long fb, long w, long dx, long rows, long F, long Kd,
                      const char *what) {
    gemm(c, g, (bp_gemm){.m = rows, .m_nb = 1, .n = Kd, .k = F, .alpha = 1,
                         .a = fb, .lda = F, .b = w, .ldb = Kd, .c = dx, .ldc = Kd}, what);
}
/* W[F, Kd] <- (1 - 2 lr l2) W - lr fb^T[F, M] x[M, Kd] */
static void linear_update(cg *c, bp_prog *g, long fb, long x, long w, long rows, long F, long Kd,
                          float l2, const char *what) {
    gemm(c, g, (bp_gemm){.trans_a = 1, .m = F, .n = Kd, .k = rows, .k_nb = 1, .alpha = -1,
                         .alpha_lr = 1, .beta = 1, .beta_l2 = l2, .a = fb, .lda = F, .b = x,
                         .ldb = Kd, .c = w, .ldc = Kd}, what);
}

static void relu_fwd(cg *c, int l, long act, long S, bp_prog *tr, bp_prog *ev, const char *what) {
    if (c->next_bn) { /* the batch norm that follows applies it as it reads */
        c->relu_pending = 1;
        return;
    }
    int k = kernel(c, S, 1, "relu", "bp_real v = A[%ldL + i]; A[%ldL + i] = v > BP_C(0.0) ? v : BP_C(0.0);",
                   act, act);
    run(c, tr, k, what);
    run(c, ev, k, what);
}

/* The ReLU's derivative gates the feedback: relu'(z) = [y > 0]. */
static void relu_gate(cg *c, long act, long fb, long S, bp_prog *tr, const char *what) {
    int k = kernel(c, S, 1, "relu_gate", "if (!(A[%ldL + i] > BP_C(0.0))) A[%ldL + i] = BP_C(0.0);", act, fb);
    run(c, tr, k, what);
}

/* im2col for conv and loccon: cols[b, p, q], p = oh*Wo+ow, q = (kh*K + kw)*Cin + c,
 * zero where the window overhangs the (TF 'same') padding. With many input channels
 * one index is one value, and neighbouring channels are neighbouring indices
 * (per_channel: row = (b, p, kh, kw)): a GPU warp stores 32 consecutive floats, the
 * CPU's SIMD loop runs over the channels of one tap. With few (an image's 1 or 3),
 * where a SIMD loop over channels is too short, one index fills one kernel row
 * (fixed b, p, kh): K*Cin values, contiguous in both arrays. */
#define IM2COL_MIN_CHANNELS 16
static int im2col(cg *c, const bp_layer *L, long in, long cols) {
    long P = (long)L->out.h * L->out.w, K = L->ksize, Cin = L->in.c, KKC = K * K * Cin;
    if (Cin >= IM2COL_MIN_CHANNELS)
        return per_channel(c, kernel(c, P * KKC, 1, "im2col",
            "long b = row / %ldL, r = row %% %ldL, p = r / %ldL;\n"
            "    int t = (int)(r %% %ldL), oh = (int)(p / %d), ow = (int)(p %% %d);\n"
            "    int ih = oh * %d - %d + t / %d, iw = ow * %d - %d + t %% %d;\n"
            "    int inside = ih >= 0 && ih < %d && iw >= 0 && iw < %d;\n"
            "    A[%ldL + i] = inside ? A[%ldL + b * %ldL + ((long)ih * %d + iw) * %ldL + ch] : BP_C(0.0);",
            P * K * K, P * K * K, K * K, K * K, L->out.w, L->out.w, L->stride, L->pad_top, (int)K,
            L->stride, L->pad_left, (int)K, L->in.h, L->in.w, cols, in, bp_shape_size(L->in), L->in.w,
            Cin), Cin);
    return kernel(c, P * K, 1, "im2col",
        "long b = i / %ldL, r = i %% %ldL, p = r / %ldL;\n"
        "    int kh = (int)(r %% %ldL), oh = (int)(p / %d), ow = (int)(p %% %d);\n"
        "    int ih = oh * %d - %d + kh;\n"
        "    bp_real *dst = A + %ldL + (b * %ldL + p) * %ldL + kh * %ldL;\n"
        "    const bp_real *src = A + %ldL + b * %ldL + (long)ih * %ldL;\n"
        "    for (int kw = 0; kw < %ld; kw++) {\n"
        "        int iw = ow * %d - %d + kw;\n"
        "        int inside = ih >= 0 && ih < %d && iw >= 0 && iw < %d;\n"
        "        for (int ch = 0; ch < %ld; ch++)\n"
        "            dst[kw * %ld + ch] = inside ? src[(long)iw * %ld + ch] : BP_C(0.0);\n"
        "    }",
        P * K, P * K, K, K, L->out.w, L->out.w, L->stride, L->pad_top, cols, P, KKC, K * Cin,
        in, bp_shape_size(L->in), (long)L->in.w * Cin, K, L->stride, L->pad_left, L->in.h,
        L->in.w, Cin, Cin, Cin);
}

/* The loop nest, as source text, over every output window (oh, ow; at kernel offset
 * kh, kw) of a conv or pool layer L that covers input pixel (ih, iw), with `inner` as
 * its body. col2im and the max-pool backward both gather through it. */
static void windows_over(char *buf, size_t n, const bp_layer *L, const char *inner) {
    snprintf(buf, n,
        "    for (int kh = 0; kh < %d; kh++) {\n"
        "        int th = ih + %d - kh;\n"
        "        if (th < 0 || th %% %d) continue;\n"
        "        int oh = th / %d;\n"
        "        if (oh >= %d) continue;\n"
        "        for (int kw = 0; kw < %d; kw++) {\n"
        "            int tw = iw + %d - kw;\n"
        "            if (tw < 0 || tw %% %d) continue;\n"
        "            int ow = tw / %d;\n"
        "            if (ow >= %d) continue;\n"
        "%s"
        "        }\n"
        "    }",
        L->ksize, L->pad_top, L->stride, L->stride, L->out.h, L->ksize, L->pad_left,
        L->stride, L->stride, L->out.w, inner);
}

/* col2im: the input feedback gathers every column entry that read that pixel. A gather
 * (not a scatter) so no two iterations write the same place. One index is one pixel
 * (b, ih, iw), all Cin channels: the CPU's form, whose inner loop over channels is
 * vectorised. With 16 or more channels the CUDA target runs a second form (cuda_alt),
 * one index per (pixel, channel), neighbouring channels at neighbouring indices, so a
 * warp's loads and stores are coalesced; it sums the same windows in the same order.
 * (On the CPU that form is 3.5x slower: its window loops sit inside the SIMD loop over
 * channels, which the C compiler then leaves scalar.) */
static int col2im(cg *c, const bp_layer *L, long dcols, long dx) {
    long P = (long)L->out.h * L->out.w, K = L->ksize, Cin = L->in.c, KKC = K * K * Cin;
    long HW = (long)L->in.h * L->in.w;
    char inner[256], loops[1024];
    snprintf(inner, sizeof inner,
        "            const bp_real *src = A + %ldL + (b * %ldL + (long)oh * %d + ow) * %ldL + (kh * %ld + kw) * %ld;\n"
        "            for (int ch = 0; ch < %ld; ch++) dst[ch] += src[ch];\n",
        dcols, P, L->out.w, KKC, K, Cin, Cin);
    windows_over(loops, sizeof loops, L, inner);
    int k = kernel(c, HW, 1, "col2im",
        "long b = i / %ldL, r = i %% %ldL;\n"
        "    int ih = (int)(r / %d), iw = (int)(r %% %d);\n"
        "    bp_real *dst = A + %ldL + i * %ldL;\n"
        "    for (int ch = 0; ch < %ld; ch++) dst[ch] = BP_C(0.0);\n"
        "%s",
        HW, HW, L->in.w, L->in.w, dx, Cin, Cin, loops);
    if (k < 0 || Cin < IM2COL_MIN_CHANNELS) return k;
    snprintf(inner, sizeof inner,
        "            s += A[%ldL + (b * %ldL + (long)oh * %d + ow) * %ldL + (kh * %ld + kw) * %ldL + ch];\n",
        dcols, P, L->out.w, KKC, K, Cin);
    windows_over(loops, sizeof loops, L, inner);
    int g = per_channel(c, kernel(c, HW * Cin, 1, "col2im_ch",
        "long b = row / %ldL, r = row %% %ldL;\n"
        "    int ih = (int)(r / %d), iw = (int)(r %% %d);\n"
        "    bp_real s = BP_C(0.0);\n"
        "%s\n"
        "    A[%ldL + i] = s;",
        HW, HW, L->in.w, L->in.w, loops, dx), Cin);
    if (g >= 0) c->p->kernels[k].cuda_alt = g + 1;
    return k;
}

/* conv (tied weights) and loccon (untied: one weight matrix per output position). */
static void lower_conv(cg *c, int l, const bp_layer *L, lbuf *in, lbuf *out, bp_prog *tr,
                       bp_prog *ev, int need_dx, float std, float l2, bp_prog *bw) {
    int loc = L->kind == BP_LOCCON;
    long P = (long)L->out.h * L->out.w, F = L->units, KKC = (long)L->ksize * L->ksize * L->in.c;
    long B = c->p->batch;
    bp_tensor *w = tensor(c, l, "weight", (loc ? P : 1) * F * KKC, BP_INIT_NORMAL, std, 1);
    if (!w) return;
    if (loc) { w->ndim = 5; w->dims[0] = P; w->dims[1] = F; w->dims[2] = L->ksize; w->dims[3] = L->ksize; w->dims[4] = L->in.c; }
    else { w->ndim = 4; w->dims[0] = F; w->dims[1] = L->ksize; w->dims[2] = L->ksize; w->dims[3] = L->in.c; }
    long W = w->off;
    long cols = alloc_f(c, B * P * KKC);
    char what[64];
    snprintf(what, sizeof what, "%s@%d:%d im2col", bp_layer_kind_name(L->kind), L->loc.line, L->loc.col);
    int k = im2col(c, L, in->act, cols);
    run(c, tr, k, what);
    run(c, ev, k, what);
    snprintf(what, sizeof what, "%s@%d:%d forward", bp_layer_kind_name(L->kind), L->loc.line, L->loc.col);
    for (int pass = 0; pass < 2; pass++) {
        bp_prog *g = pass ? ev : tr;
        if (!loc) linear_fwd(c, g, cols, W, out->act, P, F, KKC, what);
        else /* y[b, p, :] = cols[b, p, :] W_p^T for every p: P GEMMs of nb rows */
            gemm(c, g, (bp_gemm){.trans_b = 1, .m = 1, .m_nb = 1, .n = F, .k = KKC, .alpha = 1,
                 .a = cols, .lda = P * KKC, .b = W, .ldb = KKC, .c = out->act, .ldc = P * F,
                 .batch = (int)P, .stride_a = KKC, .stride_b = F * KKC, .stride_c = F}, what);
    }
    if (L->relu) relu_fwd(c, l, out->act, out->S, tr, ev, what);

    /* backward, into bw (emitted in reverse layer order by the caller) */
    snprintf(what, sizeof what, "%s@%d:%d backward", bp_layer_kind_name(L->kind), L->loc.line, L->loc.col);
    if (L->relu) relu_gate(c, out->act, out->fb, out->S, bw, what);
    long dcols = -1, kp = -1;
    if (need_dx) {
        dcols = c->dcols;
        long M = feedback_matrix(c, l, L, w, std, bw, what, &kp);
        if (!loc) linear_dx(c, bw, out->fb, M, dcols, P, F, KKC, what);
        else gemm(c, bw, (bp_gemm){.m = 1, .m_nb = 1, .n = KKC, .k = F, .alpha = 1,
                  .a = out->fb, .lda = P * F, .b = M, .ldb = KKC, .c = dcols, .ldc = P * KKC,
                  .batch = (int)P, .stride_a = F, .stride_b = F * KKC, .stride_c = KKC}, what);
    }
    l2 += L->fb_decay / 2; /* kolen_pollack: (1 - lr decay) on both W and B */
    for (int t = 0; t < (kp >= 0 ? 2 : 1); t++) { /* W, then kolen_pollack's B */
        long target = t ? kp : W;
        if (!loc) linear_update(c, bw, out->fb, cols, target, P, F, KKC, l2, what);
        else gemm(c, bw, (bp_gemm){.trans_a = 1, .m = F, .n = KKC, .k = 1, .k_nb = 1, .alpha = -1,
                  .alpha_lr = 1, .beta = 1, .beta_l2 = l2, .a = out->fb, .lda = P * F, .b = cols,
                  .ldb = P * KKC, .c = target, .ldc = KKC, .batch = (int)P, .stride_a = F,
                  .stride_b = KKC, .stride_c = F * KKC}, what);
    }
    if (need_dx) run(c, bw, col2im(c, L, dcols, in->fb), what);
}

static void lower_dense(cg *c, int l, const bp_layer *L, lbuf *in, lbuf *out, bp_prog *tr,
                        bp_prog *ev, int need_dx, float std, float l2, bp_prog *bw) {
    long D = in->S, N = L->units;
    bp_tensor *w = tensor(c, l, "weight", N * D, BP_INIT_NORMAL, std, 1);
    if (!w) return;
    w->ndim = 2; w->dims[0] = N; w->dims[1] = D;
    char what[64];
    snprintf(what, sizeof what, "%s@%d:%d forward", bp_layer_kind_name(L->kind), L->loc.line, L->loc.col);
    linear_fwd(c, tr, in->act, w->off, out->act, 1, N, D, what);
    linear_fwd(c, ev, in->act, w->off, out->act, 1, N, D, what);
    if (L->relu) relu_fwd(c, l, out->act, out->S, tr, ev, what);
    snprintf(what, sizeof what, "%s@%d:%d backward", bp_layer_kind_name(L->kind), L->loc.line, L->loc.col);
    if (L->relu) relu_gate(c, out->act, out->fb, out->S, bw, what);
    long kp = -1;
    if (need_dx) linear_dx(c, bw, out->fb, feedback_matrix(c, l, L, w, std, bw, what, &kp), in->fb, 1, N, D, what);
    l2 += L->fb_decay / 2; /* kolen_pollack: (1 - lr decay) on both W and B */
    linear_update(c, bw, out->fb, in->act, w->off, 1, N, D, l2, what);
    if (kp >= 0) linear_update(c, bw, out->fb, in->act, kp, 1, N, D, l2, what);
}

/* Keras BatchNormalization over the channel axis: batch statistics (biased variance)
 * in training, moving averages (momentum 0.99) in evaluation, epsilon 1e-3. */
#define BN_MOMENTUM 0.99
#define BN_EPS 1e-3
/* Batch statistics go through partial sums over parts of each sample's rows: a part
 * is a run of bn_part(HW) consecutive rows (pixels) of one sample, so the partials
 * are per (sample, part, channel), one index each, and their number does not depend
 * on threads. Neighbouring channels are neighbouring indices: contiguous loads for the
 * CPU's SIMD loop over channels and coalesced loads for a GPU warp. */
/* Rows per part: the smallest divisor of HW (pixels per sample) of at least 48, or HW
 * when there is none. Long enough that the partials are a small fraction of the
 * reads, short enough that a GPU gets thousands of indices. */
static long bn_part(long HW) {
    for (long m = 48; m < HW; m++)
        if (HW % m == 0) return m;
    return HW;
}
/* The per-part kernel of batch norm's statistics (forward) and reductions (backward):
 * one index per (sample, part of M rows, channel) of PC, per channel over C. It sums two
 * quantities in double over the part's rows, `body` adding to s and q for row r and
 * channel ch, and writes the pair A[part + 2i] = (first), A[part + 2i + 1] = (second),
 * C expressions of s and q. */
static int part_sums(cg *c, const char *name, long PC, long M, long C, const char *body,
                     const char *first, const char *second, long part) {
    /* data-parallel: the rank's pairs go to its samples' place in the global array */
    char at[64] = "i";
    if (c->flags & BP_PLAN_DP) snprintf(at, sizeof at, "((long)d.b0 * %ldL + i)", PC);
    return per_channel(c, kernel(c, PC, 1, name,
        "const long r0 = row * %ldL;\n"
        "    double s = 0.0, q = 0.0;\n"
        "    for (long r = r0; r < r0 + %ldL; r++) {\n"
        "%s"
        "    }\n"
        "    A[%ldL + %s * 2] = (bp_real)(%s);\n"
        "    A[%ldL + %s * 2 + 1] = (bp_real)(%s);",
        M, M, body, part, at, first, part, at, second), C);
}

static void lower_bn(cg *c, int l, const bp_layer *L, lbuf *in, lbuf *out, bp_prog *tr,
                     bp_prog *ev, int need_dx, bp_prog *bw) {
    long C = L->out.c, S = out->S, HW = S / C, B = c->p->batch;
    /* Batch norm right after a layer with ReLU takes the ReLU over (that layer skipped
     * its own pass): every read of the input goes through BP_RELU. */
    int fuse_relu = c->relu_pending;
    c->relu_pending = 0;
    const char *rl = fuse_relu ? "BP_RELU" : "";
    /* read each offset at once: the next tensor() may move the list */
    long G = tensor_off(tensor(c, l, "gamma", C, BP_INIT_ONES, 0, 1));
    long BE = tensor_off(tensor(c, l, "beta", C, BP_INIT_ZEROS, 0, 1));
    long MM = tensor_off(tensor(c, l, "moving_mean", C, BP_INIT_ZEROS, 0, 0));
    long MV = tensor_off(tensor(c, l, "moving_variance", C, BP_INIT_ONES, 0, 0));
    if (c->oom) return;
    long mean = alloc_f(c, C), inv = alloc_f(c, C);
    long dg = alloc_f(c, C), db = alloc_f(c, C);
    char what[64];
    snprintf(what, sizeof what, "batchnorm@%d:%d forward", L->loc.line, L->loc.col);
    int parts = !(c->flags & BP_PLAN_NO_PARTS) || (c->flags & BP_PLAN_DP);
    long M = bn_part(HW), P = HW / M; /* rows per part, parts per sample */
    long GB = c->p->global_batch; /* data-parallel: every rank's pairs */
    long part = parts ? alloc_f(c, GB * P * C * 2) : 0;
    int dp = c->flags & BP_PLAN_DP;
    int ks;
    if (parts) {
        /* Statistics in two kernels: each (sample, part, channel) gets the mean of its M
         * rows and their sum of squared deviations from it, from one pass of sums of x
         * and x^2 in double: a float's square is exact in double, and with M of at most
         * a few hundred the cancellation in sum(x^2) - sum(x)^2 / M costs about
         * M * 1e-16 * mean^2 / variance, far below float precision for any data a float
         * can tell apart. (One inner loop: the CPU's SIMD loop over channels needs it.)
         * Then one channel per index combines the nb * P parts in order. All parts
         * have M rows, so Chan et al.'s combination reduces to
         *   mean = mean of the part means,
         *   M2   = sum of the parts' M2 + M * sum of (part mean - mean)^2,
         * with no division per part. A part's M2 may round to a hair below zero; the
         * variance is clamped once, at the end. */
        char body[256], mean_of[32], m2_of[48];
        snprintf(body, sizeof body, "        double x = %s(A[%ldL + r * %ldL + ch]);\n"
                 "        s += x;\n        q += x * x;\n", rl, in->act, C);
        snprintf(mean_of, sizeof mean_of, "s / %ld.0", M);
        snprintf(m2_of, sizeof m2_of, "q - s * s / %ld.0", M);
        run(c, tr, part_sums(c, "bn_partial", P * C, M, C, body, mean_of, m2_of, part), what);
        if (dp) collective(c, tr, BP_COLL_GATHER, part, P * C * 2, what);
        ks = heavy(c, kernel(c, C, 0, "bn_stats",
            "const long K = (long)%s * %ldL;\n"
            "    double mu = 0.0, m2 = 0.0, dev = 0.0;\n"
            "    for (long k = 0; k < K; k++) mu += A[%ldL + (k * %ldL + i) * 2];\n"
            "    mu /= (double)K;\n"
            "    for (long k = 0; k < K; k++) {\n"
            "        double t = A[%ldL + (k * %ldL + i) * 2] - mu;\n"
            "        dev += t * t;\n"
            "        m2 += A[%ldL + (k * %ldL + i) * 2 + 1];\n"
            "    }\n"
            "    double v = (m2 + %ld.0 * dev) / ((double)K * %ld.0);\n"
            "    if (v < 0.0) v = 0.0;\n"
            "    A[%ldL + i] = (bp_real)mu;\n"
            "    A[%ldL + i] = (bp_real)(1.0 / sqrt(v + %.17g));\n"
            "    A[%ldL + i] = (bp_real)(%.17g * A[%ldL + i] + %.17g * mu);\n"
            "    A[%ldL + i] = (bp_real)(%.17g * A[%ldL + i] + %.17g * v);",
            nb_all(c), P, part, C, part, C, part, C, M, M, mean, inv, BN_EPS, MM,
            BN_MOMENTUM, MM, 1 - BN_MOMENTUM, MV, BN_MOMENTUM, MV, 1 - BN_MOMENTUM), B * P);
    } else {
        /* the plain path (the reference for the parts): two-pass statistics in
         * double, one channel per index */
        ks = heavy(c, kernel(c, C, 0, "bn_stats",
        "long n = (long)d.nb * %ldL;\n"
        "    double s = 0.0, v = 0.0;\n"
        "    for (long r = 0; r < n; r++) s += %s(A[%ldL + r * %ldL + i]);\n"
        "    double mu = s / (double)n;\n"
        "    for (long r = 0; r < n; r++) { double t = %s(A[%ldL + r * %ldL + i]) - mu; v += t * t; }\n"
        "    v /= (double)n;\n"
        "    A[%ldL + i] = (bp_real)mu;\n"
        "    A[%ldL + i] = (bp_real)(1.0 / sqrt(v + %.17g));\n"
        "    A[%ldL + i] = (bp_real)(%.17g * A[%ldL + i] + %.17g * mu);\n"
        "    A[%ldL + i] = (bp_real)(%.17g * A[%ldL + i] + %.17g * v);",
        HW, rl, in->act, C, rl, in->act, C, mean, inv, BN_EPS, MM, BN_MOMENTUM, MM,
        1 - BN_MOMENTUM, MV, BN_MOMENTUM, MV, 1 - BN_MOMENTUM), B * HW);
    }
    /* with the ReLU fused, the normalisation also stores relu(z) back for the ReLU's
     * backward gate. The normalised input xhat is not kept: the backward pass computes
     * it again from the input, with the same float operations, so to the same bits
     * (a buffer of B * S floats less, and one stream less to write). */
    char wb[96] = "";
    if (fuse_relu) snprintf(wb, sizeof wb, "    A[%ldL + i] = x;\n", in->act);
    int kn = kernel(c, S, 1, "bn_norm",
        "bp_real x = %s(A[%ldL + i]);\n"
        "%s"
        "    bp_real xh = (x - A[%ldL + ch]) * A[%ldL + ch];\n"
        "    A[%ldL + i] = A[%ldL + ch] * xh + A[%ldL + ch];",
        rl, in->act, wb, mean, inv, out->act, G, BE);
    int ke = kernel(c, S, 1, "bn_infer",
        "bp_real x = %s(A[%ldL + i]);\n"
        "%s"
        "    bp_real xh = (x - A[%ldL + ch]) / BP_SQRT(A[%ldL + ch] + BP_C(%.9g));\n"
        "    A[%ldL + i] = A[%ldL + ch] * xh + A[%ldL + ch];",
        rl, in->act, wb, MM, MV, BN_EPS, out->act, G, BE);
    per_channel(c, kn, C);
    per_channel(c, ke, C);
    run(c, tr, ks, what);
    run(c, tr, kn, what);
    run(c, ev, ke, what);

    snprintf(what, sizeof what, "batchnorm@%d:%d backward", L->loc.line, L->loc.col);
    /* xhat of element r (row) and channel ch, as bn_norm computed it; the input holds
     * relu(z) by then when the ReLU is fused */
    char xh_row[160], xh_i[160];
    snprintf(xh_row, sizeof xh_row, "(A[%ldL + r * %ldL + ch] - A[%ldL + ch]) * A[%ldL + ch]",
             in->act, C, mean, inv);
    if (parts) {
        /* sum(dy * xhat) and sum(dy) per channel: per part of rows, then in order */
        char body[320];
        snprintf(body, sizeof body, "        double dy = A[%ldL + r * %ldL + ch];\n"
                 "        bp_real xh = %s;\n        s += dy * xh;\n        q += dy;\n",
                 out->fb, C, xh_row);
        run(c, bw, part_sums(c, "bn_reduce_partial", P * C, M, C, body, "s", "q", part), what);
        if (dp) collective(c, bw, BP_COLL_GATHER, part, P * C * 2, what);
        run(c, bw, heavy(c, kernel(c, C, 0, "bn_reduce",
            "const long K = (long)%s * %ldL;\n"
            "    double sg = 0.0, sb = 0.0;\n"
            "    for (long k = 0; k < K; k++) {\n"
            "        sg += A[%ldL + (k * %ldL + i) * 2];\n"
            "        sb += A[%ldL + (k * %ldL + i) * 2 + 1];\n"
            "    }\n"
            "    A[%ldL + i] = (bp_real)sg;\n"
            "    A[%ldL + i] = (bp_real)sb;",
            nb_all(c), P, part, C, part, C, dg, db), B * P), what);
    } else {
        run(c, bw, heavy(c, kernel(c, C, 0, "bn_reduce",
        "long n = (long)d.nb * %ldL;\n"
        "    const long ch = i;\n"
        "    double sg = 0.0, sb = 0.0;\n"
        "    for (long r = 0; r < n; r++) {\n"
        "        double dy = A[%ldL + r * %ldL + ch];\n"
        "        bp_real xh = %s;\n"
        "        sg += dy * xh;\n"
        "        sb += dy;\n"
        "    }\n"
        "    A[%ldL + i] = (bp_real)sg;\n"
        "    A[%ldL + i] = (bp_real)sb;",
        HW, out->fb, C, xh_row, dg, db), B * HW), what);
    }
    snprintf(xh_i, sizeof xh_i, "(A[%ldL + i] - A[%ldL + ch]) * A[%ldL + ch]", in->act, mean, inv);
    if (need_dx)
        run(c, bw, per_channel(c, kernel(c, S, 1, "bn_dx",
            "bp_real n = (bp_real)((long)%s * %ldL);\n"
            "    bp_real xh = %s;\n"
            "    A[%ldL + i] = A[%ldL + ch] * A[%ldL + ch] *\n"
            "        (A[%ldL + i] - A[%ldL + ch] / n - xh * A[%ldL + ch] / n);",
            nb_all(c), HW, xh_i, in->fb, G, inv, out->fb, db, dg), C), what);
    run(c, bw, kernel(c, C, 0, "bn_update",
        "A[%ldL + i] -= d.lr * A[%ldL + i];\n"
        "    A[%ldL + i] -= d.lr * A[%ldL + i];",
        G, dg, BE, db), what);
}

/* Inverted dropout: keep with probability 1-rate and scale by 1/(1-rate). Unit j of
 * sample b draws word j%4 of the Philox block j/4 of (seed, step, b, BP_RNG_DROPOUT +
 * layer), compared as an integer so both targets keep the same units. */
static void lower_dropout(cg *c, int l, const bp_layer *L, lbuf *in, lbuf *out, bp_prog *tr,
                          bp_prog *ev, int need_dx, bp_prog *bw) {
    long S = out->S, B = c->p->batch;
    long mask = alloc_f(c, B * S);
    buffer(c, l, "mask", mask, B * S);
    double t = floor((double)L->rate * 4294967296.0);
    if (t > 4294967295.0) t = 4294967295.0;
    unsigned int thresh = (unsigned int)t;
    double scale = 1.0 / (1.0 - (double)L->rate); /* BP_C rounds it for float targets */
    char what[64];
    snprintf(what, sizeof what, "dropout@%d:%d forward", L->loc.line, L->loc.col);
    /* One Philox block gives the draws of four consecutive units. The kernel runs per
     * sample (row) over its blocks (ch), the four words spelled out, so that the C
     * compiler vectorises Philox across blocks; words past the end of a sample are
     * guarded only when S is not a multiple of 4. */
    long G = (S + 3) / 4;
    char body[2048], sw[48];
    int at = snprintf(body, sizeof body,
        "bp_u32x4 u = bp_rand_block(d.seed, d.step, %s, BP_RNG_DROPOUT + %uu, (unsigned int)ch);\n"
        "    long j = row * %ldL + ch * 4;\n", sample_word(c, "row", sw), (unsigned)l, S);
    for (int w = 0; w < 4; w++) {
        char guard[48] = "";
        if (S % 4 && w > 0) snprintf(guard, sizeof guard, "if (ch * 4 + %d < %ldL) ", w, S);
        at += snprintf(body + at, sizeof body - (size_t)at,
            "    %s{ bp_real m = u.v[%d] >= %uu ? BP_C(%.17g) : BP_C(0.0);\n"
            "      A[%ldL + j + %d] = m; A[%ldL + j + %d] = A[%ldL + j + %d] * m; }\n",
            guard, w, thresh, scale, mask, w, out->act, w, in->act, w);
    }
    run(c, tr, per_channel(c, kernel(c, G, 1, "dropout", "%s", body), G), what);
    run(c, ev, kernel(c, S, 1, "copy", "A[%ldL + i] = A[%ldL + i];", out->act, in->act), what);
    snprintf(what, sizeof what, "dropout@%d:%d backward", L->loc.line, L->loc.col);
    if (need_dx)
        run(c, bw, kernel(c, S, 1, "dropout_back", "A[%ldL + i] = A[%ldL + i] * A[%ldL + i];",
                          in->fb, out->fb, mask), what);
}

/* Max pooling (TF padding rules); the argmax index (ih*W+iw) goes to the int arena and
 * the backward pass routes each output's feedback to it. Ties keep the first maximum. */
static void lower_maxpool(cg *c, int l, const bp_layer *L, lbuf *in, lbuf *out, bp_prog *tr,
                          bp_prog *ev, int need_dx, bp_prog *bw) {
    long S = out->S, B = c->p->batch, C = L->out.c;
    long arg = alloc_i(c, B * S);
    char what[64];
    snprintf(what, sizeof what, "maxpool@%d:%d forward", L->loc.line, L->loc.col);
    long OHW = S / C, IHW = in->S / C;
    /* every window inside the input (no padding used): no bounds tests, the same
     * order of comparisons, so the same maximum and the same first argmax */
    int inside = L->pad_top == 0 && L->pad_left == 0 &&
                 (L->out.h - 1) * L->stride + L->ksize <= L->in.h &&
                 (L->out.w - 1) * L->stride + L->ksize <= L->in.w;
    int k = inside ? per_channel(c, kernel(c, S, 1, "maxpool",
        "long b = row / %ldL, px = row %% %ldL;\n"
        "    int oh = (int)(px / %dL), ow = (int)(px %% %dL);\n"
        "    const bp_real *src = A + %ldL + b * %ldL + ((long)oh * %d * %d + (long)ow * %d) * %ldL + ch;\n"
        "    bp_real m = src[0]; int best = oh * %d * %d + ow * %d;\n"
        "    for (int kh = 0; kh < %d; kh++)\n"
        "        for (int kw = 0; kw < %d; kw++) {\n"
        "            bp_real v = src[((long)kh * %d + kw) * %ldL];\n"
        "            if (v > m) { m = v; best = (oh * %d + kh) * %d + ow * %d + kw; }\n"
        "        }\n"
        "    A[%ldL + i] = m;\n"
        "    I[%ldL + i] = best;",
        OHW, OHW, L->out.w, L->out.w, in->act, in->S, L->stride, L->in.w, L->stride, C,
        L->stride, L->in.w, L->stride, L->ksize, L->ksize, L->in.w, C, L->stride, L->in.w,
        L->stride, out->act, arg), C)
        : per_channel(c, kernel(c, S, 1, "maxpool",
        "long b = row / %ldL, px = row %% %ldL;\n"
        "    int oh = (int)(px / %dL), ow = (int)(px %% %dL);\n"
        "    bp_real m = BP_NEG_INF; int best = -1;\n"
        "    for (int kh = 0; kh < %d; kh++) {\n"
        "        int ih = oh * %d - %d + kh;\n"
        "        if (ih < 0 || ih >= %d) continue;\n"
        "        for (int kw = 0; kw < %d; kw++) {\n"
        "            int iw = ow * %d - %d + kw;\n"
        "            if (iw < 0 || iw >= %d) continue;\n"
        "            bp_real v = A[%ldL + b * %ldL + ((long)ih * %d + iw) * %ldL + ch];\n"
        "            if (best < 0 || v > m) { m = v; best = ih * %d + iw; }\n"
        "        }\n"
        "    }\n"
        "    A[%ldL + i] = m;\n"
        "    I[%ldL + i] = best;",
        OHW, OHW, L->out.w, L->out.w, L->ksize, L->stride, L->pad_top, L->in.h,
        L->ksize, L->stride, L->pad_left, L->in.w, in->act, in->S, L->in.w, C, L->in.w,
        out->act, arg), C);
    run(c, tr, k, what);
    run(c, ev, k, what);
    if (!need_dx) return;
    snprintf(what, sizeof what, "maxpool@%d:%d backward", L->loc.line, L->loc.col);
    if (L->stride == L->ksize && L->pad_top == 0 && L->pad_left == 0) {
        /* windows that tile the input (the paper's 2x2 stride 2): a pixel is in one
         * window at most, so no loop over windows. 0 + fb, as the general sum, keeps a
         * -0 feedback +0 and the numbers bit for bit. */
        run(c, bw, per_channel(c, kernel(c, in->S, 1, "maxpool_back",
            "long b = row / %ldL, px = row %% %ldL;\n"
            "    int ih = (int)(px / %dL), iw = (int)(px %% %dL), oh = ih / %d, ow = iw / %d;\n"
            "    bp_real s = BP_C(0.0);\n"
            "    if (oh < %d && ow < %d) {\n"
            "        long o = b * %ldL + ((long)oh * %d + ow) * %ldL + ch;\n"
            "        if (I[%ldL + o] == ih * %d + iw) s = BP_C(0.0) + A[%ldL + o];\n"
            "    }\n"
            "    A[%ldL + i] = s;",
            IHW, IHW, L->in.w, L->in.w, L->stride, L->stride, L->out.h, L->out.w, S, L->out.w, C,
            arg, L->in.w, out->fb, in->fb), C), what);
        return;
    }
    char inner[256], loops[1024];
    snprintf(inner, sizeof inner,
        "            long o = b * %ldL + ((long)oh * %d + ow) * %ldL + ch;\n"
        "            if (I[%ldL + o] == me) s += A[%ldL + o];\n",
        S, L->out.w, C, arg, out->fb);
    windows_over(loops, sizeof loops, L, inner);
    run(c, bw, per_channel(c, kernel(c, in->S, 1, "maxpool_back",
        "long b = row / %ldL, px = row %% %ldL;\n"
        "    int ih = (int)(px / %dL), iw = (int)(px %% %dL);\n"
        "    int me = ih * %d + iw;\n"
        "    bp_real s = BP_C(0.0);\n"
        "%s\n"
        "    A[%ldL + i] = s;",
        IHW, IHW, L->in.w, L->in.w, L->in.w, loops, in->fb), C), what);
}

/* The output layer: Q = x W^T, then the rule's action selection, reward, RPE and the
 * feedback dL/dQ, and the epoch statistics. */
static void lower_output(cg *c, int l, const bp_layer *L, lbuf *in, lbuf *out, bp_prog *tr,
                         bp_prog *ev, int need_dx, float std, float l2, bp_prog *bw) {
    bp_plan *p = c->p;
    long K = L->units, B = p->batch;
    lower_dense(c, l, L, in, out, tr, ev, need_dx, std, l2, bw);
    p->q = out->act;
    long loss = alloc_f(c, B), reward = alloc_f(c, B), correct = alloc_f(c, B);
    p->rpe = alloc_f(c, B);
    char what[64];
    snprintf(what, sizeof what, "output@%d:%d %s", L->loc.line, L->loc.col,
             L->rule == BP_RULE_BRAINPROP ? "action, reward, RPE" : "softmax, cross-entropy");
    const char *greedy =
        "const bp_real *q = A + %ldL + i * %ldL;\n"
        "    int g = 0;\n"
        "    for (int k = 1; k < %ld; k++) if (q[k] > q[g]) g = k;\n"
        "    int y = I[%ldL + i];\n"
        "    I[%ldL + i] = g;\n";
    char *head = NULL;
    if (asprintf(&head, greedy, out->act, K, K, p->labels, p->preds) < 0) { c->oom = 1; return; }
    int ksel;
    char sw[48];
    if (L->rule == BP_RULE_BRAINPROP) {
        /* max-Boltzmann: with probability eps (word 0 of the Philox block of
         * (seed, step, sample, BP_RNG_EXPLORE)) draw from softmax(Q) by inverting its
         * CDF at word 1; otherwise act greedily. */
        ksel = kernel(c, 1, 1, "brainprop_select",
            "%s"
            "    int a = g;\n"
            "    if (d.fix_actions) {\n"
            "        a = I[%ldL + i];\n"
            "    } else {\n"
            "        bp_u32x4 u = bp_rand_block(d.seed, d.step, %s, BP_RNG_EXPLORE, 0u);\n"
            "        if (bp_u01(u.v[0]) < BP_C(%.9g)) {\n"
            "            bp_real z = BP_C(0.0);\n"
            "            for (int k = 0; k < %ld; k++) z += BP_EXP(q[k] - q[g]);\n"
            "            bp_real t = bp_u01(u.v[1]) * z, cum = BP_C(0.0);\n"
            "            a = %ld;\n"
            "            for (int k = 0; k < %ld; k++) {\n"
            "                cum += BP_EXP(q[k] - q[g]);\n"
            "                if (t < cum) { a = k; break; }\n"
            "            }\n"
            "        }\n"
            "    }\n"
            "    bp_real r = a == y ? BP_C(1.0) : BP_C(0.0);\n"
            "    bp_real delta = r - q[a];\n"
            "    I[%ldL + i] = a;\n"
            "    A[%ldL + i] = delta;\n"
            "    for (int k = 0; k < %ld; k++) A[%ldL + i * %ldL + k] = BP_C(0.0);\n"
            "    A[%ldL + i * %ldL + a] = -delta / (bp_real)%s;\n"
            "    A[%ldL + i] = BP_C(0.5) * delta * delta;\n"
            "    A[%ldL + i] = r;\n"
            "    A[%ldL + i] = g == y ? BP_C(1.0) : BP_C(0.0);",
            head, p->actions, sample_word(c, "i", sw), L->epsilon, K, K - 1, K, p->actions, p->rpe, K,
            out->fb, K, out->fb, K, nb_all(c), loss, reward, correct);
    } else {
        ksel = kernel(c, 1, 1, "ebp_softmax",
            "%s"
            "    bp_real z = BP_C(0.0);\n"
            "    for (int k = 0; k < %ld; k++) z += BP_EXP(q[k] - q[g]);\n"
            "    for (int k = 0; k < %ld; k++)\n"
            "        A[%ldL + i * %ldL + k] = (BP_EXP(q[k] - q[g]) / z - (k == y ? BP_C(1.0) : BP_C(0.0))) / (bp_real)%s;\n"
            "    I[%ldL + i] = g;\n"
            "    A[%ldL + i] = BP_LOG(z) - (q[y] - q[g]);\n"
            "    A[%ldL + i] = g == y ? BP_C(1.0) : BP_C(0.0);\n"
            "    A[%ldL + i] = g == y ? BP_C(1.0) : BP_C(0.0);",
            head, K, K, out->fb, K, nb_all(c), p->actions, loss, reward, correct);
    }
    /* sums over the batch in a fixed order, so the result does not depend on threads */
    int kstat = kernel(c, 1, 0, "train_stats",
        "bp_real sl = BP_C(0.0), sr = BP_C(0.0), sc = BP_C(0.0);\n"
        "    for (int b = 0; b < d.nb; b++) { sl += A[%ldL + b]; sr += A[%ldL + b]; sc += A[%ldL + b]; }\n"
        "    A[%ldL] += sl; A[%ldL] += sr; A[%ldL] += sc; A[%ldL] += (bp_real)d.nb;",
        loss, reward, correct, p->stats + BP_STAT_LOSS, p->stats + BP_STAT_REWARD,
        p->stats + BP_STAT_CORRECT, p->stats + BP_STAT_SEEN);
    int kev = kernel(c, 1, 1, "eval_select",
        "%s    A[%ldL + i] = g == y ? BP_C(1.0) : BP_C(0.0);", head, correct);
    int kevs = kernel(c, 1, 0, "eval_stats",
        "bp_real sc = BP_C(0.0);\n"
        "    for (int b = 0; b < d.nb; b++) sc += A[%ldL + b];\n"
        "    A[%ldL] += sc; A[%ldL] += (bp_real)d.nb;",
        correct, p->stats + BP_STAT_EVAL_CORRECT, p->stats + BP_STAT_EVAL_SEEN);
    free(head);
    run(c, tr, ksel, what);
    run(c, tr, kstat, what);
    snprintf(what, sizeof what, "output@%d:%d greedy action, accuracy", L->loc.line, L->loc.col);
    run(c, ev, kev, what);
    run(c, ev, kevs, what);
}

static void append(cg *c, bp_prog *dst, const bp_prog *src) {
    for (int i = 0; i < src->n; i++) {
        bp_op *o = push(c, dst, src->ops[i].kind, src->ops[i].what);
        if (!o) return;
        *o = src->ops[i];
    }
}

/* Direct feedback alignment: the top of each hidden block (weight layer l and the
 * layers after it up to the next weight layer) gets fb[top] = (dL/dQ)[nb, classes]
 * B_l[classes, S_top], B_l fixed random ("Ll.feedback", [classes, H, W, C] of the top's
 * output, NHWC; [classes, S] after a dense layer), into dfa[top]: it runs just before
 * the top's backward, which then carries it down through the block to l (whose dX is
 * never computed). BrainProp's
 * dL/dQ is nonzero at the chosen unit only, so this is row a of B_l times -RPE/nb. */
static void direct_feedback(cg *c, const bp_ir *ir, const lbuf *buf, bp_prog *dfa, float std) {
    int n = ir->n, K = ir->layers[n - 1].units;
    for (int l = bp_first_trainable(ir); l < n - 1 && !c->oom; l++) {
        if (!bp_has_weights(ir->layers[l].kind)) continue;
        int top = l;
        while (top + 1 < n - 1 && !bp_has_weights(ir->layers[top + 1].kind)) top++;
        bp_shape o = ir->layers[top].out;
        bp_tensor *b = feedback_tensor(c, l, K * buf[top].S, std, 0, NULL);
        if (!b) return;
        if (o.h == 1 && o.w == 1) { b->ndim = 2; b->dims[0] = K; b->dims[1] = o.c; }
        else { b->ndim = 4; b->dims[0] = K; b->dims[1] = o.h; b->dims[2] = o.w; b->dims[3] = o.c; }
        char what[64];
        snprintf(what, sizeof what, "%s@%d:%d direct feedback", bp_layer_kind_name(ir->layers[top].kind),
                 ir->layers[top].loc.line, ir->layers[top].loc.col);
        gemm(c, &dfa[top], (bp_gemm){.m = 1, .m_nb = 1, .n = buf[top].S, .k = K, .alpha = 1,
             .a = buf[n - 1].fb, .lda = K, .b = b->off, .ldb = buf[top].S, .c = buf[top].fb,
             .ldc = buf[top].S}, what);
    }
}

/* Data parallelism: every weight update of the train program (a GEMM that folds the
 * SGD step in, alpha_lr) becomes its gradient G = alpha op(A) op(B) into a buffer of
 * its own, the sum of G over the ranks, and a kernel that applies it as the GEMM would
 * have: W <- (beta - 2 lr l2) W + lr G. The updated tensors are contiguous (ldc = n,
 * batch members back to back), so G has W's layout. */
static void dp_updates(cg *c, bp_prog *train) {
    bp_prog out = {0};
    for (int i = 0; i < train->n && !c->oom; i++) {
        const bp_op *o = &train->ops[i];
        if (o->kind != BP_OP_GEMM || !o->g.alpha_lr) {
            bp_op *q = push(c, &out, o->kind, o->what);
            if (q) *q = *o;
            continue;
        }
        bp_gemm g = o->g;
        int nbat = g.batch > 1 ? g.batch : 1;
        if (g.m_nb || g.ldc != g.n || (nbat > 1 && g.stride_c != g.m * g.n)) {
            fprintf(stderr, "bpc: internal error: a weight update (%s) that is not contiguous\n", o->what);
            abort();
        }
        long n = nbat * g.m * g.n, grad = alloc_f(c, n), w = g.c;
        float beta = g.beta, l2 = g.beta_l2;
        g.c = grad;
        g.alpha_lr = 0;
        g.beta = 0;
        g.beta_l2 = 0;
        gemm(c, &out, g, o->what);
        collective(c, &out, BP_COLL_SUM, grad, n, o->what);
        run(c, &out, kernel(c, n, 0, "dp_update",
            "A[%ldL + i] = (BP_C(%.9g) - BP_C(2.0) * d.lr * BP_C(%.9g)) * A[%ldL + i] + d.lr * A[%ldL + i];",
            w, beta, l2, w, grad), o->what);
    }
    free(train->ops);
    *train = out;
}

bp_plan *bp_plan_build(bp_ir *ir, bp_rule rule, int batch) {
    return bp_plan_build_flags(ir, rule, batch, 0);
}

bp_plan *bp_plan_build_rank(bp_ir *ir, bp_rule rule, int ranks) {
    return bp_plan_build_flags(ir, rule, (ir->train.batch + ranks - 1) / ranks, BP_PLAN_DP);
}

bp_plan *bp_plan_build_flags(bp_ir *ir, bp_rule rule, int batch, int flags) {
    bp_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    cg c = {.p = p, .flags = flags};
    p->ir = ir;
    p->rule = rule;
    p->precision = ir->train.precision;
    p->batch = batch > 0 ? batch : ir->train.batch;
    p->dp = (flags & BP_PLAN_DP) != 0;
    p->global_batch = p->dp ? ir->train.batch : p->batch;
    long B = p->batch;
    const bp_layer *out = &ir->layers[ir->n - 1];
    p->classes = out->units;
    p->x_bytes = bp_shape_size(ir->layers[0].out);
    p->labels = alloc_i(&c, B);
    p->actions = alloc_i(&c, B);
    p->preds = alloc_i(&c, B);
    p->stats = alloc_f(&c, BP_NSTATS);

    lbuf *buf = calloc(ir->n, sizeof *buf);
    bp_prog *bw = calloc(ir->n, sizeof *bw); /* backward ops per layer */
    bp_prog *dfa = calloc(ir->n, sizeof *dfa); /* direct feedback into a block's top, run before its backward */
    if (!buf || !bw || !dfa) { free(buf); free(bw); free(dfa); bp_plan_free(p); return NULL; }
    int first_trainable = bp_first_trainable(ir);
    int direct = out->feedback == BP_FB_DIRECT;
    for (int l = 0; l < ir->n; l++) {
        buf[l].S = bp_shape_size(ir->layers[l].out);
        buf[l].act = alloc_f(&c, B * buf[l].S);
        buf[l].fb = l >= first_trainable ? alloc_f(&c, B * buf[l].S) : -1;
        buffer(&c, l, "act", buf[l].act, B * buf[l].S);
        if (buf[l].fb >= 0) buffer(&c, l, "fb", buf[l].fb, B * buf[l].S);
    }
    /* input: uint8 pixels / 255 */
    char what[64];
    snprintf(what, sizeof what, "input@%d:%d pixels/255", ir->layers[0].loc.line, ir->layers[0].loc.col);
    int kin = kernel(&c, buf[0].S, 1, "input", "A[%ldL + i] = (bp_real)X[i] * (BP_C(1.0) / BP_C(255.0));", buf[0].act);
    run(&c, &p->train, kin, what);
    run(&c, &p->eval, kin, what);

    /* the shared column feedback: the largest dcols of a conv or loccon layer with dx */
    long dcols = 0;
    for (int l = first_trainable + 1; l < ir->n; l++) {
        const bp_layer *L = &ir->layers[l];
        long n = B * L->out.h * L->out.w * (long)L->ksize * L->ksize * L->in.c;
        if ((L->kind == BP_CONV || L->kind == BP_LOCCON) && n > dcols) dcols = n;
    }
    c.dcols = alloc_f(&c, dcols);

    float std = ir->train.init_std, l2 = ir->train.l2;
    for (int l = 1; l < ir->n && !c.oom; l++) {
        bp_layer L = ir->layers[l];
        if (L.kind == BP_OUTPUT) L.rule = rule;
        int need_dx = l - 1 >= first_trainable && !(direct && bp_has_weights(L.kind));
        c.next_bn = !(c.flags & BP_PLAN_NO_FUSE) && l + 1 < ir->n && ir->layers[l + 1].kind == BP_BATCHNORM;
        lbuf *in = &buf[l - 1], *o = &buf[l];
        switch (L.kind) {
        case BP_DENSE: lower_dense(&c, l, &L, in, o, &p->train, &p->eval, need_dx, std, l2, &bw[l]); break;
        case BP_CONV:
        case BP_LOCCON: lower_conv(&c, l, &L, in, o, &p->train, &p->eval, need_dx, std, l2, &bw[l]); break;
        case BP_BATCHNORM: lower_bn(&c, l, &L, in, o, &p->train, &p->eval, need_dx, &bw[l]); break;
        case BP_DROPOUT: lower_dropout(&c, l, &L, in, o, &p->train, &p->eval, need_dx, &bw[l]); break;
        case BP_MAXPOOL: lower_maxpool(&c, l, &L, in, o, &p->train, &p->eval, need_dx, &bw[l]); break;
        case BP_OUTPUT: lower_output(&c, l, &L, in, o, &p->train, &p->eval, need_dx, std, l2, &bw[l]); break;
        case BP_INPUT: break;
        }
    }
    if (direct) direct_feedback(&c, ir, buf, dfa, std);
    /* the feedback matrices last (see feedback_tensor) */
    for (int i = 0; i < c.nfbs && !c.oom; i++) { /* a new entry, then the whole of fbs[i] */
        bp_tensor *t = named(&c, &p->tensors, &p->ntensors, 0, "", 0, 0);
        if (t) *t = c.fbs[i];
    }
    free(c.fbs);
    /* the train-mode forward pass alone, for gradient checks */
    append(&c, &p->forward, &p->train);
    /* the backward pass: the feedback travels from the output down */
    for (int l = ir->n - 1; l >= 1 && !c.oom; l--) {
        append(&c, &p->train, &dfa[l]);
        append(&c, &p->train, &bw[l]);
    }
    if (p->dp) dp_updates(&c, &p->train);
    for (int l = 0; l < ir->n; l++) { free(bw[l].ops); free(dfa[l].ops); }
    free(bw);
    free(dfa);
    free(buf);
    if (c.oom) { bp_plan_free(p); return NULL; }
    if (flags & BP_PLAN_CUDA_ALT) { /* the CUDA target's choice of kernels, on any target */
        bp_prog *progs[] = {&p->train, &p->eval, &p->forward};
        for (int g = 0; g < 3; g++)
            for (int i = 0; i < progs[g]->n; i++) {
                bp_op *o = &progs[g]->ops[i];
                if (o->kind == BP_OP_KERNEL) o->kernel = bp_kernel_for(p, o->kernel, 1);
            }
    }
    return p;
}

void bp_plan_free(bp_plan *p) {
    if (!p) return;
    for (int i = 0; i < p->nkernels; i++) free(p->kernels[i].body);
    free(p->kernels);
    free(p->train.ops);
    free(p->forward.ops);
    free(p->eval.ops);
    free(p->tensors);
    free(p->buffers);
    free(p);
}

const bp_tensor *bp_plan_tensor(const bp_plan *p, const char *name) {
    for (int i = 0; i < p->ntensors; i++)
        if (!strcmp(p->tensors[i].name, name)) return &p->tensors[i];
    for (int i = 0; i < p->nbuffers; i++)
        if (!strcmp(p->buffers[i].name, name)) return &p->buffers[i];
    return NULL;
}

const char *bp_bytes_str(double bytes, char *buf, size_t n) {
    if (bytes >= 1073741824.0) snprintf(buf, n, "%.1f GiB", bytes / 1073741824.0);
    else if (bytes >= 1048576.0) snprintf(buf, n, "%.1f MiB", bytes / 1048576.0);
    else if (bytes >= 1024.0) snprintf(buf, n, "%.1f KiB", bytes / 1024.0);
    else snprintf(buf, n, "%.0f bytes", bytes);
    return buf;
}

/* v with thousands separators, into buf (size >= 32) */
static const char *grouped(long v, char *buf) {
    char d[24];
    int len = snprintf(d, sizeof d, "%ld", v), o = 0;
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = d[i];
    }
    buf[o] = 0;
    return buf;
}

const char *bp_plan_largest(const bp_plan *p, int elem_size, char *buf, size_t n) {
    const bp_tensor *big = NULL;
    for (int i = 0; i < p->ntensors; i++)
        if (!big || p->tensors[i].size > big->size) big = &p->tensors[i];
    for (int i = 0; i < p->nbuffers; i++)
        if (!big || p->buffers[i].size > big->size) big = &p->buffers[i];
    if (!big) return snprintf(buf, n, "the model has no tensors"), buf;
    const bp_layer *l = &p->ir->layers[big->layer];
    char count[32], size[32];
    snprintf(buf, n, "the largest is %s of layer %d (%s %d, line %d): %s values, %s", big->name,
             big->layer, bp_layer_kind_name(l->kind), l->units, l->loc.line,
             grouped(big->size, count), bp_bytes_str((double)big->size * elem_size, size, sizeof size));
    return buf;
}
