/* prelude_c64.h: the C target in double precision. Same kernels as prelude_c.h, with
 * bp_real = double; used by the tests to check gradients against finite differences
 * in double precision. */
#include <math.h>
typedef double bp_real;
#define BP_C(x) ((double)(x))
#define BP_EXP exp
#define BP_LOG log
#define BP_SQRT sqrt
#define BP_FN static inline
/* ReLU as a function, not a macro: the argument is read once, so a loop of
 * BP_RELU(A[...]) has no conditional load and the compiler vectorises it. */
BP_FN bp_real BP_RELU(bp_real x) { return x > BP_C(0.0) ? x : BP_C(0.0); }
#define BP_NEG_INF (-INFINITY)
