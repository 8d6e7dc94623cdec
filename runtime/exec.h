/* exec.h: runs a plan's programs on a target.
 *
 * A bp_exec owns the compiled kernels and the three arenas of one model instance (A:
 * reals, I: ints, X: the uint8 input batch). The backends implement the same eight
 * operations: open (compile the emitted source and allocate zeroed arenas), put/get
 * (copy between host memory and an arena), run (one program: kernel launches and
 * GEMMs in plan order), close, and stage/order/gather (the training images kept where
 * the kernels read them).
 *   CPU:  the emitted C is compiled by the system C compiler into a shared object,
 *         cached by hash (runtime/jit_c.c), loaded with dlopen; GEMMs via CBLAS.
 *   CUDA: the emitted CUDA is compiled by NVRTC; libcuda, NVRTC and cuBLAS are loaded
 *         with dlopen at run time (runtime/backend_cuda.c), so bpc needs none of them
 *         to build or to run on the CPU.
 */
#ifndef BPC_EXEC_H
#define BPC_EXEC_H

#include <stdint.h>
#include "bp_kernel.h"
#include "err.h"
#include "plan.h"

/* BP_TARGET_CPU64 is the CPU target in double precision (float arena of doubles,
 * cblas_dgemm): the tests use it to compare gradients with finite differences. */
typedef enum { BP_TARGET_CPU, BP_TARGET_CUDA, BP_TARGET_CPU64 } bp_target;

/* The arenas, as seen by put/get: A (bp_real: float, or double on CPU64), I (int),
 * X (uint8 input batch [B, x_bytes]). */
typedef enum { BP_ARENA_F, BP_ARENA_I, BP_ARENA_X } bp_arena;

typedef struct bp_exec bp_exec;

typedef struct {
    const char *name;
    /* Compile `source` (the bp_emit output for this target) and allocate zeroed arenas. */
    int (*open)(bp_exec *x, const char *source, bp_err *e);
    /* Copy n elements (reals, ints or bytes) at element offset off. The caller keeps
     * within the arena: the CPU does no bounds check (a plain memcpy) and cannot fail;
     * CUDA fails on a driver error, including one left by an earlier kernel. */
    int (*put)(bp_exec *x, bp_arena a, long off, const void *src, long n, bp_err *e);
    int (*get)(bp_exec *x, bp_arena a, long off, void *dst, long n, bp_err *e);
    /* Run one program with the step's dynamic values. */
    int (*run)(bp_exec *x, const bp_prog *g, const bp_dyn *d, bp_err *e);
    void (*close)(bp_exec *x);
    /* The training images kept where the kernels read them, so that a step copies
     * nothing from the host (the CPU keeps pointers; the GPU uploads them once):
     * stage keeps a split (n images of plan->x_bytes bytes, uint8 NHWC, and their
     * labels; both must stay valid until close), order sets the epoch's order (n
     * indices into the staged split, copied), gather puts images order[first ..
     * first+nb) into the X arena and their labels at plan->labels. On the GPU gather is
     * the kernel bp_gather (templates/gather_cu.in), queued like the plan's kernels.
     * Errors: out of (device) memory, a range outside what was staged or ordered. */
    int (*stage)(bp_exec *x, const unsigned char *images, const int *labels, long n, bp_err *e);
    int (*order)(bp_exec *x, const int *idx, long n, bp_err *e);
    int (*gather)(bp_exec *x, long first, int nb, bp_err *e);
} bp_backend;

struct bp_exec {
    const bp_plan *plan;
    bp_target target;
    const bp_backend *be;
    int real_size;         /* bytes per element of the float arena: 4, or 8 on CPU64 */
    void *impl;            /* the backend's state */
};

extern const bp_backend bp_backend_cpu;
extern const bp_backend bp_backend_cpu64;
extern const bp_backend bp_backend_cuda;

/* Emits the plan for the target, compiles it and allocates the arenas. Returns 0, or
 * -1 with e set: the target is unavailable (CUDA without a driver or GPU: the message
 * says why), the C compiler failed (its log is shown), out of memory, or (CPU) the
 * arenas would need more than 90% of the machine's physical memory. bp_exec_close is
 * safe after a failed open. */
int bp_exec_open(bp_exec *x, const bp_plan *p, bp_target t, bp_err *e);
void bp_exec_close(bp_exec *x);

/* Initialises every tensor of the plan on the host (normal(0, std) by Box-Muller from
 * Philox keyed by (seed, tensor index, BP_RNG_INIT), ones or zeros) and uploads it.
 * Both targets therefore start from bit-identical weights. */
int bp_exec_init_params(bp_exec *x, uint64_t seed, bp_err *e);

/* put/get on the float arena in float, whatever the target's precision. */
int bp_exec_put_f32(bp_exec *x, long off, const float *src, long n, bp_err *e);
int bp_exec_get_f32(bp_exec *x, long off, float *dst, long n, bp_err *e);

/* Runs a program (x->plan->train, ->eval or ->forward). Returns 0, or -1 with e set
 * (CUDA: a failed launch or GEMM). On CUDA it does not wait for the GPU: an error
 * inside a kernel shows at the next put or get, which waits. */
int bp_exec_run(bp_exec *x, const bp_prog *g, const bp_dyn *d, bp_err *e);

/* BPC_PROFILE (set and not "0"): each target then sums the time of every operation of
 * the train program over the run (CPU: wall clock; CUDA: events around each operation,
 * no graphs) and prints the table when the model is closed. bp_profile_wanted says
 * whether it is set. bp_profile_print writes to stderr the 25 slowest operations of
 * the train program, `sec` holding seconds per operation (plan->train.n of them), as
 * percentages of their sum, with the name of the kernel the target ran (cuda: its
 * cuda_alt, bp_kernel_for) and the layer; `how` names the clock in the title ("wall
 * time"); it overwrites sec. */
int bp_profile_wanted(void);
void bp_profile_print(const bp_plan *p, int cuda, const char *how, double *sec);

/* The row-major GEMM of a plan step on host memory, through CBLAS: what the CPU
 * backend runs, exposed for tests. `arena` is the float arena base. */
void bp_gemm_cpu(const bp_gemm *g, float *arena, int nb, float lr);
void bp_gemm_cpu64(const bp_gemm *g, double *arena, int nb, double lr);

/* The same GEMM in a precision mode (ir.h's bp_precision): IEEE is bp_gemm_cpu; TF32
 * rounds both operands (every element op(A) and op(B) read, runtime/tf32.h) into
 * scratch and multiplies the copies; 3XTF32 splits them into big and small parts and
 * adds alpha*As*Bb, alpha*Ab*Bs, then alpha*Ab*Bb to beta*C, in that order. scratch
 * holds bp_plan_gemm_scratch(plan) floats (gemm_map.h; unused for IEEE). */
void bp_gemm_cpu_prec(const bp_gemm *g, float *arena, int nb, float lr, bp_precision prec,
                      float *scratch);

#endif
