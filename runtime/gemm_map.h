/* gemm_map.h: a plan's row-major GEMM as the column-major call cuBLAS takes.
 *
 * A row-major matrix M[r, c] with leading dimension ld is, read column-major, the
 * matrix M^T[c, r] with the same ld. So the plan's C[m,n] = op(A) op(B) is computed
 * by cuBLAS as C^T[n,m] = op(B)^T op(A)^T: the operands swap places, the transposes
 * stay with their operand, m and n swap, and every leading dimension is kept:
 *     cublasSgemm(h, opB, opA, n, m, k, &alpha, B, ldb, A, lda, &beta, C, ldc)
 * This is the classic place for a CUDA bug, and it has no GPU in it, so it is a pure
 * function here and tests/unit/test_gemm_map.c runs its result through a naive
 * column-major GEMM on the CPU against a naive row-major one of the descriptor.
 * It also checks the call: dimensions that fit cuBLAS's int arguments, leading
 * dimensions cuBLAS accepts, and every element it may touch inside the arena.
 */
#ifndef BPC_GEMM_MAP_H
#define BPC_GEMM_MAP_H

#include "err.h"
#include "plan.h"

/* One column-major (BLAS/cuBLAS) sgemm, or `batch` of them at the given strides:
 * C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C, offsets in floats into the arena. */
typedef struct {
    int trans_a, trans_b;   /* 1: op(X) = X^T */
    int m, n, k;
    long a, b, c;           /* a is the plan's b, b the plan's a */
    int lda, ldb, ldc;
    float alpha, beta;
    int batch;              /* >= 1 */
    long long stride_a, stride_b, stride_c;
} bp_gemm_cm;

/* The step's alpha and beta: alpha * lr when alpha_lr, beta - 2 lr l2 (the weight
 * decay folded into the update), in float. The CUDA target calls this; the CPU's
 * GEMM_BODY (backend_cpu.c) writes the same two expressions in the arena's precision,
 * so they agree in float (CPU64 computes them in double). */
void bp_gemm_scalars(const bp_gemm *g, float lr, float *alpha, float *beta);

/* Maps g for the live batch size nb and learning rate lr. arena_floats is the float
 * arena's size: every element the call may read or write must lie inside it.
 * Returns 0, or -1 with e saying what is wrong with the descriptor. */
int bp_gemm_map(const bp_gemm *g, int nb, float lr, long arena_floats, bp_gemm_cm *cm, bp_err *e);

/* Elements of the float arena that GEMM g reads for operand A (which 0) or B (which 1)
 * at live batch size nb, its batch members and the gaps of its leading dimension
 * included: the span from its first element to its last (0: not read). The precision
 * modes round or split that span into scratch (exec.h's bp_gemm_cpu_prec, the CUDA
 * target's bp_tf32_split). */
long bp_gemm_operand_extent(const bp_gemm *g, int nb, int which);

/* Floats of scratch that the precision modes need for any GEMM of p's programs at p's
 * batch: twice (big and small parts) both operands' extents of the largest. */
long bp_plan_gemm_scratch(const bp_plan *p);

#endif
