/* prelude_c.h: the head of every emitted C file (CPU target). Kernels become exported
 * functions with an OpenMP loop; the JIT compiles them with the system C compiler.
 * Kernel arithmetic is written in bp_real: float here, double in prelude_c64.h (the
 * double-precision build the gradient tests use). */
#include <math.h>
typedef float bp_real;
#define BP_C(x) ((float)(x))
#define BP_EXP expf
#define BP_LOG logf
#define BP_SQRT sqrtf
#define BP_FN static inline
/* ReLU as a function, not a macro: the argument is read once, so a loop of
 * BP_RELU(A[...]) has no conditional load and the compiler vectorises it. */
BP_FN bp_real BP_RELU(bp_real x) { return x > BP_C(0.0) ? x : BP_C(0.0); }
#define BP_NEG_INF (-INFINITY)
