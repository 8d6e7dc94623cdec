/* backend_cpu.c: the CPU target. Kernels come from the JIT-compiled emitted C (one
 * exported function each), or, in a standalone trainer, from the kernels linked into
 * it (linked.h); GEMMs go to CBLAS (OpenBLAS), arenas are host memory.
 * The same code serves the double-precision variant (CPU64) used by gradient tests. */
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "exec.h"
#include "jit_c.h"
#include "linked.h"
#include "dist.h"
#include "gemm_map.h"
#include "tf32.h"

typedef void (*bp_kfn)(void *, int *, const unsigned char *, const bp_dyn *);

/* BPC_PROFILE=1: wall time per operation of the train program, summed over the run
 * and printed to stderr when the model is closed (bp_profile_print). */
typedef struct { double *sec; } profile;

typedef struct {
    void *so;
    bp_kfn *fn;        /* one per plan kernel */
    void *A;           /* float or double arena */
    int *ints;
    unsigned char *X;
    profile prof;      /* BPC_PROFILE */
    const unsigned char *images; /* the staged split (the caller's memory) */
    const int *labels;
    long nstaged;
    float *scratch;    /* TF32 / 3xTF32: the rounded or split GEMM operands */
    int *order;        /* the epoch's order, a copy */
    long norder;
} cpu;

/* The plan's GEMMs are row-major, exactly CBLAS's CblasRowMajor convention. A batch
 * of small GEMMs (loccon: one per output position) is spread over the OpenMP threads;
 * inside a parallel region the OpenMP build of OpenBLAS runs each on one thread. */
#define GEMM_CALL(call, A, B, C)                                                          \
    _Pragma("omp parallel for schedule(static) if (g->batch > 1)")                       \
    for (int i = 0; i < (g->batch > 1 ? g->batch : 1); i++)                              \
        call(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,                      \
             g->trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)g->n, (int)k, alpha,   \
             (A) + i * g->stride_a, (int)g->lda, (B) + i * g->stride_b, (int)g->ldb,     \
             beta, (C) + i * g->stride_c, (int)g->ldc);
/* the live sizes and the scalars of g at batch nb and learning rate lr (plan.h) */
#define GEMM_SCALARS                                                                     \
    long m = g->m * (g->m_nb ? nb : 1), k = g->k * (g->k_nb ? nb : 1);                   \
    alpha = g->alpha * (g->alpha_lr ? lr : 1);                                           \
    beta = g->beta - 2 * lr * g->beta_l2;
#define GEMM_BODY(call) GEMM_SCALARS GEMM_CALL(call, arena + g->a, arena + g->b, arena + g->c)

void bp_gemm_cpu(const bp_gemm *g, float *arena, int nb, float lr) {
    float alpha, beta;
    GEMM_BODY(cblas_sgemm)
}

void bp_gemm_cpu64(const bp_gemm *g, double *arena, int nb, double lr) {
    double alpha, beta;
    GEMM_BODY(cblas_dgemm)
}

/* Rounds (TF32) or splits (3xTF32: big into big[], small into small[]) n floats. */
static void to_tf32(const float *src, float *big, float *small, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) {
        if (small) bp_tf32_split(src[i], &big[i], &small[i]);
        else big[i] = bp_tf32_round(src[i]);
    }
}

void bp_gemm_cpu_prec(const bp_gemm *g, float *arena, int nb, float lr, bp_precision prec,
                      float *scratch) {
    if (prec == BP_PREC_IEEE) { bp_gemm_cpu(g, arena, nb, lr); return; }
    long na = bp_gemm_operand_extent(g, nb, 0), nbx = bp_gemm_operand_extent(g, nb, 1);
    float *Ab = scratch, *Bb = Ab + na, *As = Bb + nbx, *Bs = As + na;
    int three = prec == BP_PREC_3XTF32;
    to_tf32(arena + g->a, Ab, three ? As : NULL, na);
    to_tf32(arena + g->b, Bb, three ? Bs : NULL, nbx);
    float alpha, beta;
    GEMM_SCALARS
    if (three) { /* the small products first, as CUTLASS's 3xTF32 adds them */
        GEMM_CALL(cblas_sgemm, As, Bb, arena + g->c)
        beta = 1;
        GEMM_CALL(cblas_sgemm, Ab, Bs, arena + g->c)
    }
    GEMM_CALL(cblas_sgemm, Ab, Bb, arena + g->c)
}

static void cpu_close(bp_exec *x) {
    cpu *c = x->impl;
    if (!c) return;
    if (c->prof.sec) bp_profile_print(x->plan, 0, "wall time", c->prof.sec);
    free(c->prof.sec);
    if (c->so) dlclose(c->so);
    free(c->fn);
    free(c->A);
    free(c->ints);
    free(c->X);
    free(c->order);
    free(c->scratch);
    free(c);
    x->impl = NULL;
}

static int cpu_open(bp_exec *x, const char *source, bp_err *e) {
    const bp_plan *p = x->plan;
    if (p->dp && x->real_size != 4) return bp_fail(e, "a data-parallel plan runs in float32 only");
    cpu *c = calloc(1, sizeof *c);
    if (!c) return bp_fail(e, "out of memory");
    x->impl = c;
    c->fn = calloc((size_t)p->nkernels + 1, sizeof *c->fn);
    c->A = calloc((size_t)p->arena_floats + 1, (size_t)x->real_size);
    c->ints = calloc((size_t)p->arena_ints + 1, sizeof *c->ints);
    c->X = calloc((size_t)(p->batch * p->x_bytes) + 1, 1);
    long ns = p->precision != BP_PREC_IEEE && x->real_size == 4 ? bp_plan_gemm_scratch(p) : 0;
    if (ns) c->scratch = malloc(sizeof *c->scratch * (size_t)ns);
    if (!c->fn || !c->A || !c->ints || !c->X || (ns && !c->scratch)) {
        char need[32], big[256];
        bp_bytes_str(p->arena_floats * (double)x->real_size + p->arena_ints * 4.0 +
                     (double)p->batch * p->x_bytes + ns * 4.0, need, sizeof need);
        bp_plan_largest(p, x->real_size, big, sizeof big);
        cpu_close(x);
        return bp_fail(e, "out of memory: the model's tensors and buffers need %s at batch %d "
                          "(%s); a smaller layer or batch needs less", need, p->batch, big);
    }
    if (bp_profile_wanted()) c->prof.sec = calloc((size_t)p->train.n + 1, sizeof(double));
    void (*lf)(void) = NULL;
    if (bp_linked_c(source, NULL, &lf, e) == 1) { /* a standalone trainer: no compiler */
        for (int i = 0; i < p->nkernels; i++) {
            if (bp_linked_c(source, p->kernels[i].name, &lf, e) != 1) { cpu_close(x); return -1; }
            c->fn[i] = (bp_kfn)lf;
        }
        return 0;
    }
    if (bp_linked_only) { cpu_close(x); return bp_linked_refuse(e, x->real_size == 8 ? "double-precision CPU" : "CPU"); }
    c->so = bp_jit_c(source, e);
    if (!c->so) { cpu_close(x); return -1; }
    for (int i = 0; i < p->nkernels; i++) {
        c->fn[i] = (bp_kfn)dlsym(c->so, p->kernels[i].name);
        if (!c->fn[i]) {
            cpu_close(x);
            return bp_fail(e, "internal error: kernel %s missing from the compiled model", p->kernels[i].name);
        }
    }
    return 0;
}

static void *arena_ptr(bp_exec *x, bp_arena a, long off, size_t *elem) {
    cpu *c = x->impl;
    switch (a) {
    case BP_ARENA_F: *elem = (size_t)x->real_size; return (char *)c->A + (size_t)off * *elem;
    case BP_ARENA_I: *elem = sizeof(int); return c->ints + off;
    case BP_ARENA_X: break;
    }
    *elem = 1;
    return c->X + off;
}

static int cpu_put(bp_exec *x, bp_arena a, long off, const void *src, long n, bp_err *e) {
    size_t el;
    void *dst = arena_ptr(x, a, off, &el);
    memcpy(dst, src, (size_t)n * el);
    return 0;
}

static int cpu_get(bp_exec *x, bp_arena a, long off, void *dst, long n, bp_err *e) {
    size_t el;
    const void *src = arena_ptr(x, a, off, &el);
    memcpy(dst, src, (size_t)n * el);
    return 0;
}


static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void run_op(bp_exec *x, const bp_op *o, const bp_dyn *d) {
    cpu *c = x->impl;
    if (o->kind == BP_OP_KERNEL) c->fn[o->kernel](c->A, c->ints, c->X, d);
    else if (o->kind == BP_OP_COLLECTIVE) { /* a data-parallel plan (float arena only) */
        float *at = (float *)c->A + o->coll.off;
        if (o->coll.kind == BP_COLL_SUM) bp_dist_sum(at, o->coll.n);
        else bp_dist_gather(at, o->coll.n, d->nb_all);
    }
    else if (x->real_size == 8) bp_gemm_cpu64(&o->g, c->A, d->nb, d->lr);
    else bp_gemm_cpu_prec(&o->g, c->A, d->nb, d->lr, x->plan->precision, c->scratch);
}

static int cpu_run(bp_exec *x, const bp_prog *g, const bp_dyn *d, bp_err *e) {
    cpu *c = x->impl;
    int prof = c->prof.sec && g == &x->plan->train;
    for (int i = 0; i < g->n; i++) {
        double t0 = prof ? now_s() : 0;
        run_op(x, &g->ops[i], d);
        if (prof) c->prof.sec[i] += now_s() - t0;
    }
    return 0;
}

static int cpu_stage(bp_exec *x, const unsigned char *images, const int *labels, long n, bp_err *e) {
    cpu *c = x->impl;
    c->images = images;
    c->labels = labels;
    c->nstaged = n;
    return 0;
}

static int cpu_order(bp_exec *x, const int *idx, long n, bp_err *e) {
    cpu *c = x->impl;
    int *o = realloc(c->order, sizeof *o * (size_t)(n > 0 ? n : 1));
    if (!o) return bp_fail(e, "out of memory for the order of %ld images", n);
    memcpy(o, idx, sizeof *o * (size_t)n);
    c->order = o;
    c->norder = n;
    return 0;
}

static int cpu_gather(bp_exec *x, long first, int nb, bp_err *e) {
    cpu *c = x->impl;
    const bp_plan *p = x->plan;
    if (first < 0 || nb < 0 || nb > p->batch || first + nb > c->norder)
        return bp_fail(e, "internal error: gather of %d images at %ld of an order of %ld", nb, first, c->norder);
    for (int b = 0; b < nb; b++) {
        long k = c->order[first + b];
        if (k < 0 || k >= c->nstaged)
            return bp_fail(e, "internal error: image %ld of %ld staged", k, c->nstaged);
        memcpy(c->X + (size_t)b * p->x_bytes, c->images + (size_t)k * p->x_bytes, (size_t)p->x_bytes);
        c->ints[p->labels + b] = c->labels[k];
    }
    return 0;
}

const bp_backend bp_backend_cpu = {"cpu", cpu_open, cpu_put, cpu_get, cpu_run, cpu_close,
                                   cpu_stage, cpu_order, cpu_gather};
const bp_backend bp_backend_cpu64 = {"cpu64", cpu_open, cpu_put, cpu_get, cpu_run, cpu_close,
                                     cpu_stage, cpu_order, cpu_gather};
