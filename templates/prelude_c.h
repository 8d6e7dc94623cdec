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
#define BP_RELU(x) ((x) > BP_C(0.0) ? (x) : BP_C(0.0))
#define BP_FN static inline
#define BP_NEG_INF (-INFINITY)
