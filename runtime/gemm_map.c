/* gemm_map.c: row-major plan GEMM -> column-major cuBLAS call (see gemm_map.h).
 * Pure host code without CUDA, so the CPU tests cover what the GPU will run. */
#include "gemm_map.h"
#include <limits.h>

void bp_gemm_scalars(const bp_gemm *g, float lr, float *alpha, float *beta) {
    *alpha = g->alpha * (g->alpha_lr ? lr : 1.0f);
    *beta = g->beta - 2.0f * lr * g->beta_l2;
}

/* Operand `which` (0: A, 1: B) of g stored row-major, at live sizes m and k: rows x
 * cols with leading dimension *ld, at *off, batch members *stride apart. A is [m,k]
 * ([k,m] transposed), B is [k,n] ([n,k]). */
static void operand_shape(const bp_gemm *g, long m, long k, int which, long *rows, long *cols, long *ld,
                          long *off, long *stride) {
    int t = which ? g->trans_b : g->trans_a;
    *rows = which ? (t ? g->n : k) : (t ? k : m);
    *cols = which ? (t ? k : g->n) : (t ? m : k);
    *ld = which ? g->ldb : g->lda;
    *off = which ? g->b : g->a;
    *stride = which ? g->stride_b : g->stride_a;
}

/* Floats from an operand's first element to its last, batch members included. */
static long span(long rows, long cols, long ld, int batch, long stride) {
    if (rows <= 0 || cols <= 0) return 0;
    return (rows - 1) * ld + cols + (long)(batch - 1) * (batch > 1 ? stride : 0);
}

/* Checks one operand stored row-major as rows x cols (leading dimension ld, offset
 * off, `batch` copies stride apart) for the arena. */
static int operand(const char *name, long rows, long cols, long ld, long off, int batch, long stride,
                   long arena, bp_err *e) {
    if (ld < (cols > 1 ? cols : 1))
        return bp_fail(e, "GEMM operand %s: leading dimension %ld is less than its %ld columns", name, ld, cols);
    if (ld > INT_MAX) return bp_fail(e, "GEMM operand %s: leading dimension %ld does not fit cuBLAS", name, ld);
    if (rows == 0 || cols == 0) return 0; /* not touched */
    if (off < 0 || (batch > 1 && (stride < 0 || stride > arena)))
        return bp_fail(e, "GEMM operand %s: negative offset %ld or bad stride %ld", name, off, stride);
    long last = off + span(rows, cols, ld, batch, stride) - 1;
    if (last >= arena)
        return bp_fail(e, "GEMM operand %s reaches float %ld, past the arena of %ld floats", name, last, arena);
    return 0;
}

int bp_gemm_map(const bp_gemm *g, int nb, float lr, long arena, bp_gemm_cm *cm, bp_err *e) {
    int batch = g->batch > 1 ? g->batch : 1;
    if (nb < 0 || g->m < 0 || g->n < 0 || g->k < 0)
        return bp_fail(e, "GEMM with a negative dimension (m=%ld n=%ld k=%ld nb=%d)", g->m, g->n, g->k, nb);
    if (g->m > INT_MAX || g->n > INT_MAX || g->k > INT_MAX)
        return bp_fail(e, "GEMM dimension too large for cuBLAS (m=%ld n=%ld k=%ld)", g->m, g->n, g->k);
    long m = g->m * (g->m_nb ? nb : 1), n = g->n, k = g->k * (g->k_nb ? nb : 1);
    if (m > INT_MAX || k > INT_MAX)
        return bp_fail(e, "GEMM dimension too large for cuBLAS (m=%ld k=%ld with nb=%d)", m, k, nb);
    int touch = m > 0 && n > 0, ab = touch && k > 0;
    for (int w = 0; w < 2; w++) { /* A and B (operand_shape); C is [m,n] */
        long rows, cols, ld, off, stride;
        operand_shape(g, m, k, w, &rows, &cols, &ld, &off, &stride);
        if (operand(w ? "B" : "A", ab ? rows : 0, cols, ld, off, batch, stride, arena, e)) return -1;
    }
    if (operand("C", touch ? m : 0, n, g->ldc, g->c, batch, g->stride_c, arena, e)) return -1;
    /* the C of one batch entry must not overlap another's: on the GPU they run at once */
    if (touch && batch > 1) {
        int apart = g->stride_c >= (m - 1) * g->ldc + n;                     /* one after another */
        int interleaved = g->stride_c >= n && (batch - 1) * g->stride_c + n <= g->ldc; /* side by side */
        if (!apart && !interleaved)
            return bp_fail(e, "batched GEMM: the %d outputs overlap (stride %ld, ldc %ld, %ld x %ld)",
                           batch, g->stride_c, g->ldc, m, n);
    }
    /* C^T[n,m] = op(B)^T[n,k] op(A)^T[k,m]: swap the operands, keep transposes and lds */
    cm->trans_a = g->trans_b != 0;
    cm->trans_b = g->trans_a != 0;
    cm->m = (int)n;
    cm->n = (int)m;
    cm->k = (int)k;
    cm->a = g->b;
    cm->lda = (int)g->ldb;
    cm->stride_a = g->stride_b;
    cm->b = g->a;
    cm->ldb = (int)g->lda;
    cm->stride_b = g->stride_a;
    cm->c = g->c;
    cm->ldc = (int)g->ldc;
    cm->stride_c = g->stride_c;
    cm->batch = batch;
    bp_gemm_scalars(g, lr, &cm->alpha, &cm->beta);
    return 0;
}

long bp_gemm_operand_extent(const bp_gemm *g, int nb, int which) {
    long rows, cols, ld, off, stride;
    operand_shape(g, g->m * (g->m_nb ? nb : 1), g->k * (g->k_nb ? nb : 1), which, &rows, &cols, &ld, &off,
                  &stride);
    return span(rows, cols, ld, g->batch > 1 ? g->batch : 1, stride);
}

long bp_plan_gemm_scratch(const bp_plan *p) {
    long most = 0;
    const bp_prog *progs[] = {&p->train, &p->eval, &p->forward};
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < progs[j]->n; i++) {
            const bp_op *o = &progs[j]->ops[i];
            if (o->kind != BP_OP_GEMM) continue;
            long n = 2 * (bp_gemm_operand_extent(&o->g, p->batch, 0) + bp_gemm_operand_extent(&o->g, p->batch, 1));
            if (n > most) most = n;
        }
    return most;
}
