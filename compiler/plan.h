/* plan.h: the step plan, one format for both targets.
 *
 * The code generator turns the IR into (1) kernels, each a loop body specialised with
 * constant shapes and offsets, and (2) programs: ordered lists of operations, each
 * either a kernel launch or a GEMM descriptor. The runtime executes a program on the
 * CPU (kernels from the JIT-compiled C, GEMMs through CBLAS) or on CUDA (kernels from
 * NVRTC, GEMMs through cuBLAS). A GEMM is described once, row-major, and each backend
 * maps it to its library, so a transpose or leading-dimension mistake shows up on the
 * CPU where tests can see it.
 *
 * All tensors live in two arenas with offsets fixed at compile time:
 *   float arena A: parameters, batch-norm state, activations, feedback, statistics;
 *   int arena I: labels, actions, greedy predictions, pooling argmax.
 */
#ifndef BPC_PLAN_H
#define BPC_PLAN_H

#include <stdio.h>
#include "ir.h"

/* C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, all row-major in the float arena.
 * a, b, c, the leading dimensions and the strides count elements of the float arena
 * (floats, doubles on CPU64), not bytes.
 * With batch > 1: `batch` such GEMMs, operand i at offset + i*stride.
 * m_nb / k_nb: that dimension is multiplied by the live batch size nb at run time.
 * alpha_lr: alpha is multiplied by the learning rate (the SGD update folded into the
 * GEMM: W <- W - lr * dW). beta_l2: beta becomes beta - 2*lr*beta_l2 (L2 weight decay,
 * the gradient of l2 * sum(w^2)). */
typedef struct {
    int trans_a, trans_b;
    long m, n, k;
    int m_nb, k_nb;
    float alpha, beta;
    int alpha_lr;
    float beta_l2;
    long a, b, c;
    long lda, ldb, ldc;
    int batch;
    long stride_a, stride_b, stride_c;
} bp_gemm;

/* A generated kernel: body over index i, run for count (x nb if per_sample) values.
 * channels > 0: i runs over an NHWC tensor with that many channels and the body may
 * also use ch = i % channels and row = i / channels; the C wrapper (templates/kernel_c_ch.in) then loops over
 * rows with an inner SIMD loop over ch, so per-channel operands are contiguous loads.
 * grain: the work of one index in elements (1 unless an index loops inside), so that
 * OpenMP splits a kernel of a few heavy indices across threads.
 * cuda_alt: 0, or 1 + the index of a kernel that the CUDA target runs in this one's
 * place: the same values in the same order of arithmetic, laid out for the GPU (one
 * channel per index, so that a warp's loads and stores are coalesced) where that
 * layout would cost the CPU its vectorised loop. Both are emitted for both targets;
 * BP_PLAN_CUDA_ALT makes every target run the CUDA choice, so that the CPU tests
 * check it. */
typedef struct {
    char name[48];
    long count;
    int per_sample;
    long channels;
    long grain;
    char *body;
    int cuda_alt;
} bp_kernel;

typedef enum { BP_OP_KERNEL, BP_OP_GEMM, BP_OP_COLLECTIVE } bp_op_kind;

/* A collective operation of a data-parallel plan (BP_PLAN_DP), over the ranks:
 *   SUM:    the n floats at off, summed over the ranks, on every rank;
 *   GATHER: a per-sample array at off, n floats per sample of the global batch: each
 *           rank holds its own samples' rows (b0 .. b0 + nb - 1 of bp_dyn) and gets
 *           every other rank's, in rank order (an in-place allgather). */
typedef enum { BP_COLL_SUM, BP_COLL_GATHER } bp_coll_kind;
typedef struct {
    bp_coll_kind kind;
    long off, n;
} bp_coll;

typedef struct {
    bp_op_kind kind;
    int kernel;        /* BP_OP_KERNEL: index into bp_plan.kernels */
    bp_gemm g;         /* BP_OP_GEMM */
    bp_coll coll;      /* BP_OP_COLLECTIVE */
    char what[64];     /* for listings: "conv@3:3 forward", ... */
} bp_op;

typedef struct { bp_op *ops; int n, cap; } bp_prog;

typedef enum { BP_INIT_NORMAL, BP_INIT_ZEROS, BP_INIT_ONES } bp_init;

/* A named tensor in the float arena that outlives a step: a parameter or state.
 * Names and layouts follow the layer index: "L3.weight" [F, K, K, Cin] (OHWI) for
 * conv, [P, F, K, K, Cin] for loccon, [out, in] for dense/output; "L2.gamma",
 * "L2.beta", "L2.moving_mean", "L2.moving_variance" for batch norm. */
typedef struct {
    char name[48];
    int layer;
    long off, size;    /* elements of the float arena */
    int ndim;
    long dims[5];
    bp_init init;
    float std;         /* BP_INIT_NORMAL */
    int trainable;
} bp_tensor;

/* Statistics accumulated by the programs in A[stats + BP_STAT_*]; the runtime zeroes
 * them at the start of an epoch (train) or an evaluation (eval) and reads them after. */
enum {
    BP_STAT_LOSS = 0,    /* sum of per-sample losses (BrainProp: 1/2 RPE^2; EBP: cross-entropy) */
    BP_STAT_REWARD,      /* sum of rewards (BrainProp) or of correct actions (EBP) */
    BP_STAT_CORRECT,     /* sum of greedy-correct samples (argmax Q == label) */
    BP_STAT_SEEN,        /* samples seen */
    BP_STAT_EVAL_CORRECT,
    BP_STAT_EVAL_SEEN,
    BP_NSTATS
};

typedef struct {
    bp_ir *ir;             /* borrowed */
    bp_rule rule;
    bp_precision precision; /* of every GEMM: ir->train.precision (ir.h) */
    int dp;                /* built with BP_PLAN_DP: batch is one rank's share of
                              global_batch, and train holds collectives */
    int global_batch;      /* the batch of one SGD step over all ranks */
    int batch;             /* compile-time maximum batch size B */
    int classes;
    long x_bytes;          /* input bytes per sample (H*W*C) */
    long arena_floats, arena_ints;
    long labels;           /* I: [B] labels, written by the runtime */
    long actions;          /* I: [B] chosen actions */
    long preds;            /* I: [B] greedy predictions argmax Q */
    long q;                /* A: [B, classes] Q-values of the output layer */
    long rpe;              /* A: [B] reward-prediction error (BrainProp) */
    long stats;            /* A: [BP_NSTATS] */
    bp_kernel *kernels; int nkernels;
    bp_prog train;         /* one SGD step: forward (training mode), rule, backward, update */
    bp_prog eval;          /* forward in evaluation mode, greedy action, accuracy */
    bp_prog forward;       /* train's forward part and loss, no backward pass and no SGD
                              step (for checks); like train it still moves the batch-norm
                              moving averages and adds to the stats */
    bp_tensor *tensors; int ntensors;
    /* Per-step buffers worth inspecting (tests, debugging), each B * S floats of the
     * arena (ndim 1, dims[0] = B * S; read as [B, S], S = the layer's per-sample size,
     * NHWC): "L3.act" layer outputs; "L3.fb" their feedback, dL/d(act), from the first
     * trainable layer on (nothing below it needs feedback) — for a layer with ReLU,
     * after the backward pass it holds dL/d(pre-activation), the feedback gated by
     * ReLU'; "L5.mask" dropout masks (0 or 1/(1-rate)). Same struct as tensors; init
     * is unused. */
    bp_tensor *buffers; int nbuffers;
} bp_plan;

/* Lowers the IR to a plan for the given rule and batch size (ir->train.batch when
 * batch <= 0). Returns NULL only on out-of-memory. */
bp_plan *bp_plan_build(bp_ir *ir, bp_rule rule, int batch);

/* The same with the faster paths switched off, to test them against the plain ones:
 * BP_PLAN_PLAIN lowers every ReLU as its own kernel (no fusion into the batch norm
 * that follows) and computes batch-norm statistics one channel per iteration (no
 * partial sums per part of the rows). BP_PLAN_CUDA_ALT: every program runs each
 * kernel's cuda_alt in its place, on any target (see bp_kernel).
 * BP_PLAN_DP: data parallelism, the plan of one rank, batch its share of the train
 * block's batch (global_batch). The result of a step equals one process's step over
 * the whole batch: the Philox draws are keyed by the global sample index (b0 + b),
 * the rule divides by the global batch (nb_all), batch norm gathers every rank's
 * partial sums (BP_COLL_GATHER) and combines them in the one-process order, and each
 * weight update is made as a gradient, summed over the ranks (BP_COLL_SUM), then
 * applied by a kernel. Only the summed gradients round differently (by the order of
 * the sums). Batch norm always takes the per-part path here. */
enum { BP_PLAN_NO_FUSE = 1, BP_PLAN_NO_PARTS = 2, BP_PLAN_PLAIN = 3, BP_PLAN_CUDA_ALT = 4,
       BP_PLAN_DP = 8 };
bp_plan *bp_plan_build_flags(bp_ir *ir, bp_rule rule, int batch, int flags);

/* The data-parallel plan (BP_PLAN_DP) of one of `ranks` ranks: its batch is the largest
 * share of the train block's batch, ceil(batch / ranks) (dist.h's bp_dist_share). The
 * callers refuse ranks > ir->train.batch first. NULL only on out-of-memory. */
bp_plan *bp_plan_build_rank(bp_ir *ir, bp_rule rule, int ranks);
void bp_plan_free(bp_plan *p);

/* For an out-of-memory message: writes into buf (size n) which tensor or per-step
 * buffer of p is largest, with its layer and size in elements of elem_size bytes, as
 * "the largest is L1.weight of layer 1 (dense 1048576, line 3): 822,083,584 values,
 * 3.1 GiB". Returns buf. */
const char *bp_plan_largest(const bp_plan *p, int elem_size, char *buf, size_t n);

/* Writes bytes as "3.1 GiB", "12.0 MiB" or "512 bytes" into buf (size n); returns buf. */
const char *bp_bytes_str(double bytes, char *buf, size_t n);

/* The kernel a target runs where the plan names kernel k: its cuda_alt on CUDA (cuda
 * nonzero), else k itself. */
static inline int bp_kernel_for(const bp_plan *p, int k, int cuda) {
    int alt = p->kernels[k].cuda_alt;
    return cuda && alt > 0 && alt <= p->nkernels ? alt - 1 : k;
}

/* Emits the complete source for a target: "c" (kernels as OpenMP loops, exported C
 * functions), "c64" (the same in double precision, for gradient checks) or "cuda"
 * (extern "C" __global__ kernels for NVRTC). The plan itself is
 * written as a commented listing at the end. Returns 0, or -1 on a write error. */
int bp_emit(FILE *out, const bp_plan *p, const char *target);

/* Finds a tensor (parameter or state) or, failing that, a buffer by name, or NULL. */
const bp_tensor *bp_plan_tensor(const bp_plan *p, const char *name);

#endif
